package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mqgate/mqgate/frontends/http/httppb"
)

// produceHTTP: N messages of S bytes, B per HTTP request, C requests in
// flight, through POST /v1/topics/{topic}/messages in sync mode; against
// the same through a direct franz-go client, B records per ProduceSync, C
// calls in flight. Both wait for the broker's acknowledgement of every
// batch, so the comparison is like for like. -format picks the body:
// a JSON batch, NDJSON, a protobuf ProduceRequest, or raw (one message per request, its value the
// body and its key in X-Mqgate-Key; the direct side then produces one
// record per call too).
var produceHTTP = scenario{
	repeatable: true,
	name:       "produce-http",
	about:      "sync HTTP produce vs direct franz-go ProduceSync, same batch and concurrency (-format json|ndjson|protobuf|raw)",
	gateway: func(ctx context.Context, e *env, p params) (result, error) {
		path := "/v1/topics/bench-http/messages"
		postAs, done, err := poster(p, e.httpAddr)
		if err != nil {
			return result{}, err
		}
		defer done()
		var post func(worker, call int) error
		switch p.format {
		case "json", "ndjson", "protobuf":
			bodies, ctype := jsonBodies, "application/json"
			switch p.format {
			case "ndjson":
				bodies, ctype = ndjsonBodies, "application/x-ndjson"
			case "protobuf":
				bodies, ctype = protobufBodies, "application/x-protobuf"
			}
			all, err := bodies(p)
			if err != nil {
				return result{}, err
			}
			post = func(worker, call int) error {
				return postAs(worker, path, ctype, nil, all[call%len(all)])
			}
		case "raw":
			value := randomValue(p.size)
			post = func(worker, call int) error {
				key := http.Header{"X-Mqgate-Key": {strconv.Itoa(call)}}
				return postAs(worker, path, "application/octet-stream", key, value)
			}
		default:
			return result{}, fmt.Errorf("-format must be json, ndjson, protobuf or raw, not %q", p.format)
		}
		// Warm up: creates the topic and the connections.
		if err := post(0, 0); err != nil {
			return result{}, fmt.Errorf("warm-up: %w", err)
		}
		return runCalls(p, post), nil
	},
	direct: directProduce,
	adjust: func(p params) params {
		if p.format == "raw" {
			p.batch = 1 // one message per request, so one record per call
		}
		return p
	},
}

// directProduce is every produce scenario's direct side: a franz-go client
// doing ProduceSync of the same batches with the same concurrency, into the
// same broker.
func directProduce(ctx context.Context, e *env, p params) (result, error) {
	if e.backend == "rocketmq" {
		return directProduceRocketMQ(ctx, e, p)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafkaAddr),
		kgo.ProducerBatchMaxBytes(16<<20), kgo.MaxBufferedRecords(p.batch*p.concurrency*2))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	// The embedded broker creates topics only when asked (auto-created
	// ones would not survive a crash); the gateway does the same.
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, int32(p.partitions), -1, nil, "bench-direct"); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return result{}, fmt.Errorf("creating bench-direct: %w", err)
	}
	value := randomValue(p.size)
	batch := func(call int) []*kgo.Record {
		rs := make([]*kgo.Record, p.batch)
		for j := range rs {
			rs[j] = &kgo.Record{Topic: "bench-direct", Key: []byte(strconv.Itoa(call*p.batch + j)), Value: value}
		}
		return rs
	}
	if err := cl.ProduceSync(ctx, batch(0)...).FirstErr(); err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}
	return runCalls(p, func(_, call int) error { return cl.ProduceSync(ctx, batch(call)...).FirstErr() }), nil
}

// jsonBodies are produce bodies of p.batch messages of p.size bytes. They
// differ only in keys; built once, so the client's JSON encoding does not
// count against the gateway.
func jsonBodies(p params) ([][]byte, error) {
	value := string(randomValue(p.size))
	bodies := make([][]byte, 16)
	for i := range bodies {
		type msg struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		}
		msgs := make([]msg, p.batch)
		for j := range msgs {
			msgs[j] = msg{Key: strconv.Itoa(i*p.batch + j), Value: value}
		}
		b, err := json.Marshal(map[string]any{"messages": msgs})
		if err != nil {
			return nil, err
		}
		bodies[i] = b
	}
	return bodies, nil
}

// protobufBodies are jsonBodies as ProduceRequests of mqgate_http.proto.
func protobufBodies(p params) ([][]byte, error) {
	value := randomValue(p.size)
	bodies := make([][]byte, 16)
	for i := range bodies {
		req := &httppb.ProduceRequest{Messages: make([]*httppb.Message, p.batch)}
		for j := range req.Messages {
			req.Messages[j] = &httppb.Message{Key: []byte(strconv.Itoa(i*p.batch + j)), Value: value}
		}
		b, err := proto.Marshal(req)
		if err != nil {
			return nil, err
		}
		bodies[i] = b
	}
	return bodies, nil
}

// ndjsonBodies are jsonBodies with one message object per line.
func ndjsonBodies(p params) ([][]byte, error) {
	bodies, err := jsonBodies(p)
	if err != nil {
		return nil, err
	}
	for i, b := range bodies {
		var batch struct{ Messages []json.RawMessage }
		if err := json.Unmarshal(b, &batch); err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		for _, m := range batch.Messages {
			buf.Write(m)
			buf.WriteByte('\n')
		}
		bodies[i] = buf.Bytes()
	}
	return bodies, nil
}

// poster returns the function the load of produce-http posts with, on
// the HTTP client -http-client names, to the server at addr: worker posts
// body to path as ctype with the headers hdr, and fails unless the answer
// is 200. done closes the client's connections.
func poster(p params, addr string) (post func(worker int, path, ctype string, hdr http.Header, body []byte) error, done func(), err error) {
	switch p.httpClient {
	case "net/http", "":
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: p.concurrency * 2}}
		return func(_ int, path, ctype string, hdr http.Header, body []byte) error {
			return postWith(client, "http://"+addr+path, ctype, hdr, body, http.StatusOK)
		}, client.CloseIdleConnections, nil
	case "raw":
		client := newRawHTTP(addr, p.concurrency)
		return func(worker int, path, ctype string, hdr http.Header, body []byte) error {
			status, answer, err := client.post(worker, path, ctype, hdr, body)
			if err == nil && status != http.StatusOK {
				err = fmt.Errorf("%d: %s", status, answer)
			}
			return err
		}, client.close, nil
	}
	return nil, nil, fmt.Errorf("-http-client must be net/http or raw, not %q", p.httpClient)
}

// postStatus posts body as JSON and fails unless the answer has the
// status want.
func postStatus(client *http.Client, url string, body []byte, want int) error {
	return postWith(client, url, "application/json", nil, body, want)
}

// postWith posts body as ctype with the headers hdr, and fails unless
// the answer has the status want.
func postWith(client *http.Client, url, ctype string, hdr http.Header, body []byte, want int) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	maps.Copy(req.Header, hdr)
	req.Header.Set("Content-Type", ctype)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, done, _ := readAnswer(resp)
	defer done()
	if resp.StatusCode != want {
		return fmt.Errorf("%d: %s", resp.StatusCode, b)
	}
	return nil
}

// runCalls makes N/B calls with C workers and times them. call gets the
// worker's index (0..C-1) and the call's.
func runCalls(p params, call func(worker, i int) error) result {
	calls := p.n / p.batch
	var next atomic.Int64
	var mu sync.Mutex
	r := result{latency: make([]time.Duration, 0, calls)}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range p.concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= calls {
					return
				}
				t0 := time.Now()
				err := call(w, i)
				d := time.Since(t0)
				mu.Lock()
				r.latency = append(r.latency, d)
				if err != nil {
					r.failures++
					if r.failures == 1 {
						fmt.Println("first failure:", err)
					}
				} else {
					r.msgs += p.batch
					r.bytes += int64(p.batch * p.size)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	return r
}

// randomValue is size random letters and digits: safe in JSON as is, and
// about as compressible as real payloads, so neither side wins by
// compressing a run of one byte.
func randomValue(size int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, size)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return b
}
