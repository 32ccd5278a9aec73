package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	gojson "github.com/goccy/go-json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/consumer"
)

// consumePull: N messages of S bytes are produced first (not timed); then
// C consumers of one group pull batches of B and ack each batch on their
// next pull, until all N are acked: through HTTP (consume-pull-http) or
// DDMQ's Thrift ConsumerService with the piggybacked result
// (consume-pull-thrift). The direct side is a franz-go group consumer
// polling B records and committing them, the same way, on the same broker.
var consumePullHTTP = scenario{
	repeatable: true,
	name:       "consume-pull-http",
	about:      "HTTP pull + piggybacked ack vs a franz-go group consumer committing each batch (-format protobuf: answers as PullResponse)",
	gateway: func(ctx context.Context, e *env, p params) (result, error) {
		topic := p.named("bench-consume-http")
		if err := e.fill(ctx, topic, p); err != nil {
			return result{}, err
		}
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: p.concurrency * 2}}
		// A group of its own: a member of another scenario's group lingering
		// in it would make this one wait out a rebalance.
		url := "http://" + e.httpAddr + "/v1/groups/" + p.named("bench-http") + "/topics/" + topic + "/pull"
		return consumeLoop(ctx, p, func(prev *ackState) (*ackState, int, error) {
			body := map[string]any{"max_messages": p.batch, "max_wait_ms": 1000}
			if prev != nil {
				body["ack"] = map[string]any{"qid": prev.qid, "success": prev.offsets}
			}
			b, _ := json.Marshal(body)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
			if err != nil {
				return nil, 0, err
			}
			req.Header.Set("Content-Type", "application/json")
			if p.format == "protobuf" {
				req.Header.Set("Accept", "application/x-protobuf")
			}
			resp, err := client.Do(req)
			if err != nil {
				return nil, 0, err
			}
			defer resp.Body.Close()
			if p.format == "protobuf" {
				return readPullProtobuf(resp)
			}
			var out struct {
				Context struct {
					Qid string `json:"qid"`
				} `json:"context"`
				Messages []struct {
					Offset int64 `json:"offset"`
				} `json:"messages"`
			}
			// The answer is read with goccy/go-json, as a client that cares
			// for its CPU would: encoding/json's decoding of 100 KiB
			// answers cost the bench as much CPU as the gateway spent.
			raw, done, err := readAnswer(resp)
			defer done()
			if err != nil || resp.StatusCode != 200 || gojson.Unmarshal(raw, &out) != nil {
				return nil, 0, fmt.Errorf("pull: status %d", resp.StatusCode)
			}
			if len(out.Messages) == 0 {
				return nil, 0, nil
			}
			st := &ackState{qid: out.Context.Qid}
			for _, m := range out.Messages {
				st.offsets = append(st.offsets, m.Offset)
			}
			return st, len(out.Messages), nil
		}), nil
	},
	direct: directConsume,
}

// answerBuffers hold pull answers while they are read.
var answerBuffers = sync.Pool{New: func() any { return new([]byte) }}

// readAnswer reads an answer's body into a pooled buffer, sized once from
// its Content-Length when it has one, as a client that cares for its CPU
// would (io.ReadAll grows from 512 bytes by copying). done returns the
// buffer; the body must not be used after it.
func readAnswer(resp *http.Response) (body []byte, done func(), err error) {
	bp := answerBuffers.Get().(*[]byte)
	done = func() { answerBuffers.Put(bp) }
	if n := resp.ContentLength; n >= 0 && n <= 64<<20 {
		if int64(cap(*bp)) < n {
			*bp = make([]byte, n)
		}
		b := (*bp)[:n]
		_, err = io.ReadFull(resp.Body, b)
		return b, done, err
	}
	b, err := io.ReadAll(resp.Body)
	return b, done, err
}

// readPullProtobuf reads a PullResponse answer with protowire, as the JSON
// side reads its answer with goccy/go-json into the fields it acks: the
// qid and the offsets, each message's value found (not copied) on the way.
func readPullProtobuf(resp *http.Response) (*ackState, int, error) {
	raw, done, err := readAnswer(resp)
	defer done()
	if err != nil || resp.StatusCode != 200 {
		return nil, 0, fmt.Errorf("pull: status %d", resp.StatusCode)
	}
	malformed := fmt.Errorf("pull: a malformed PullResponse")
	st := &ackState{}
	for b := raw; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return nil, 0, malformed
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, 0, malformed
		}
		b = b[n:]
		var offset int64 // proto3 leaves out a 0
		var value []byte // what a client hands its code, without a copy
		for len(v) > 0 {
			fnum, ftyp, n := protowire.ConsumeTag(v)
			if n < 0 {
				return nil, 0, malformed
			}
			v = v[n:]
			n = protowire.ConsumeFieldValue(fnum, ftyp, v)
			if n < 0 {
				return nil, 0, malformed
			}
			switch {
			case num == 1 && fnum == 3: // context.qid
				q, _ := protowire.ConsumeBytes(v)
				st.qid = string(q)
			case num == 2 && fnum == 5: // message.offset
				o, _ := protowire.ConsumeVarint(v)
				offset = int64(o)
			case num == 2 && fnum == 2: // message.value
				value, _ = protowire.ConsumeBytes(v)
			}
			v = v[n:]
		}
		if num == 2 {
			st.offsets = append(st.offsets, offset)
			st.valueBytes += len(value)
		}
	}
	if len(st.offsets) == 0 {
		return nil, 0, nil
	}
	return st, len(st.offsets), nil
}

var consumePullThrift = scenario{
	repeatable: true,
	name:       "consume-pull-thrift",
	about:      "Thrift ConsumerService pull with the piggybacked ConsumeResult vs a franz-go group consumer",
	gateway:    thriftPull("bench-consume-thrift", "bench-thrift", false),
	direct:     directConsume,
}

// consumePullThriftGroup is consume-pull-thrift the way DDMQ's SDKs pull:
// without a topic, from a group subscribed to one (through the admin
// route), each batch's ack carrying the context the pull answered.
var consumePullThriftGroup = scenario{
	repeatable: true,
	name:       "consume-pull-thrift-group",
	about:      "Thrift pull without a topic (a subscribed group, as DDMQ's SDKs pull) vs a franz-go group consumer",
	gateway:    thriftPull("bench-consume-group", "bench-group", true),
	direct:     directConsume,
}

// thriftPull consumes topic as group through the Thrift ConsumerService,
// naming the topic in each pull, or (subscribed) subscribing group to it
// first and naming none.
func thriftPull(topic, group string, subscribed bool) func(ctx context.Context, e *env, p params) (result, error) {
	return func(ctx context.Context, e *env, p params) (result, error) {
		topic, group := p.named(topic), p.named(group)
		if err := e.fill(ctx, topic, p); err != nil {
			return result{}, err
		}
		var reqTopic *string
		if subscribed {
			if err := e.subscribe(ctx, group, topic); err != nil {
				return result{}, err
			}
		} else {
			reqTopic = &topic
		}
		clients := make(chan *consumer.ConsumerServiceClient, p.concurrency)
		for range p.concurrency {
			trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(e.consumerAddr, nil), nil)
			if err := trans.Open(); err != nil {
				return result{}, err
			}
			defer trans.Close()
			clients <- consumer.NewConsumerServiceClientFactory(trans, thrift.NewTCompactProtocolFactoryConf(nil))
		}
		batch, linger := int32(p.batch), int32(1000)
		return consumeLoop(ctx, p, func(prev *ackState) (*ackState, int, error) {
			c := <-clients
			defer func() { clients <- c }()
			req := &consumer.PullRequest{GroupId: group, Topic: reqTopic, MaxBatchSize: &batch, MaxLingerTime: &linger}
			if prev != nil {
				req.Result_ = &consumer.ConsumeResult_{Context: &consumer.Context{GroupId: group, Topic: prev.topic, Qid: prev.qid}, SuccessOffsets: prev.offsets, FailOffsets: []int64{}}
			}
			resp, err := c.Pull(ctx, req)
			if err != nil {
				return nil, 0, err
			}
			if len(resp.Messages) == 0 {
				return nil, 0, nil
			}
			st := &ackState{topic: resp.Context.Topic, qid: resp.Context.Qid}
			for _, m := range resp.Messages {
				st.offsets = append(st.offsets, m.Offset)
			}
			return st, len(resp.Messages), nil
		}), nil
	}
}

// subscribe subscribes group to topic through the gateway's admin route.
func (e *env) subscribe(ctx context.Context, group, topic string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+e.httpAddr+"/v1/admin/groups/"+group+"/subscriptions/"+topic, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("subscribing %s to %s: status %d", group, topic, resp.StatusCode)
	}
	return nil
}

// ackState is a batch to ack on the next pull.
type ackState struct {
	topic   string
	qid     string
	offsets []int64
	// valueBytes is what the batch's values held, where a reader finds
	// them without decoding them into structs.
	valueBytes int
}

// consumeLoop runs C workers, each pulling and acking its previous batch on
// the next pull, until N messages were pulled and acked.
func consumeLoop(ctx context.Context, p params, pull func(prev *ackState) (*ackState, int, error)) result {
	var got atomic.Int64
	var mu sync.Mutex
	r := result{}
	start := time.Now()
	// The run ends when the N-th message arrives, not when the last
	// worker's pull has waited out its linger on an empty topic.
	var finished time.Time
	var once sync.Once
	deadline := start.Add(5 * time.Minute)
	var wg sync.WaitGroup
	for range p.concurrency {
		wg.Go(func() {
			var prev *ackState
			for got.Load() < int64(p.n) && time.Now().Before(deadline) {
				t0 := time.Now()
				st, n, err := pull(prev)
				mu.Lock()
				r.latency = append(r.latency, time.Since(t0))
				if err != nil {
					r.failures++
					if r.failures == 1 {
						fmt.Println("first failure:", err)
					}
				}
				mu.Unlock()
				prev = st
				if got.Add(int64(n)) >= int64(p.n) {
					once.Do(func() { finished = time.Now() })
				}
			}
			if prev != nil { // the last batch's ack
				pull(prev)
			}
		})
	}
	wg.Wait()
	if finished.IsZero() {
		finished = time.Now()
	}
	r.elapsed = finished.Sub(start)
	r.msgs = int(got.Load())
	r.bytes = int64(r.msgs * p.size)
	return r
}

// fill produces N messages of S bytes to topic with franz-go.
func (e *env) fill(ctx context.Context, topic string, p params) error {
	defer e.restartMeter() // the fill is not timed
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafkaAddr), kgo.ProducerBatchMaxBytes(16<<20), kgo.MaxBufferedRecords(p.batch*p.concurrency*4))
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, int32(p.partitions), -1, nil, topic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return err
	}
	value := randomValue(p.size)
	for i := 0; i < p.n; i += 1000 {
		var rs []*kgo.Record
		for j := i; j < min(i+1000, p.n); j++ {
			rs = append(rs, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(j)), Value: value})
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			return err
		}
	}
	return nil
}

// directConsume: a franz-go group consumer polling B records and
// committing them, until N are consumed.
func directConsume(ctx context.Context, e *env, p params) (result, error) {
	if err := e.requireKafka("consume-pull"); err != nil {
		return result{}, err
	}
	topic := p.named("bench-consume-direct")
	if err := e.fill(ctx, topic, p); err != nil {
		return result{}, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafkaAddr), kgo.ConsumerGroup(p.named("bench-direct")), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	r := result{}
	start := time.Now()
	for r.msgs < p.n {
		t0 := time.Now()
		fs := cl.PollRecords(ctx, p.batch)
		recs := fs.Records()
		if err := cl.CommitRecords(ctx, recs...); err != nil {
			r.failures++
		}
		r.latency = append(r.latency, time.Since(t0))
		r.msgs += len(recs)
	}
	r.elapsed = time.Since(start)
	r.bytes = int64(r.msgs * p.size)
	return r, nil
}
