package rocketmq

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	rmqerrors "github.com/apache/rocketmq-client-go/v2/errors"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/mqgate/mqgate/sdk"
)

// maxMessageBytes is RocketMQ's default maxMessageSize: brokers refuse a
// message, or a batch, over it.
const maxMessageBytes = 4 << 20

// Produce sends the records, grouped by queue into batch sends. Records of
// one queue go in order; queues go in parallel.
func (b *Backend) Produce(ctx context.Context, records []sdk.Record) ([]sdk.ProduceResult, error) {
	cfg, _, rs, err := b.state()
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	prod := b.producer
	b.mu.Unlock()

	results := make([]sdk.ProduceResult, len(records))
	type key struct {
		topic string
		q     queue
	}
	var order []key
	groups := map[key][]int{}
	routesOf := map[string]*route{}
	routeErrs := map[string]error{} // one lookup per topic and call
	for i := range records {
		r := &records[i]
		name := cfg.wrap(r.Topic)
		if err := routeErrs[name]; err != nil {
			results[i].Err = err
			continue
		}
		rt := routesOf[name]
		if rt == nil {
			if err := checkTopic(r.Topic); err != nil {
				routeErrs[name], results[i].Err = err, err
				continue
			}
			if rt, err = b.produceRoute(ctx, cfg, rs, name); err != nil {
				routeErrs[name], results[i].Err = err, err
				continue
			}
			routesOf[name] = rt
		}
		q, err := pickQueue(r, rt)
		if err != nil {
			results[i].Err = err
			continue
		}
		if n := len(r.Value); n > maxMessageBytes {
			results[i].Err = sdk.Errorf(sdk.CodeTooLarge, "record of %d bytes exceeds RocketMQ's maxMessageSize of %d bytes", n, maxMessageBytes)
			continue
		}
		k := key{name, q}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.sendTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, k := range order {
		idx := groups[k]
		rt := routesOf[k.topic]
		wg.Go(func() {
			for len(idx) > 0 {
				n := batchLen(records, idx)
				b.sendBatch(ctx, prod, rs, k.topic, k.q, rt, records, idx[:n], results)
				idx = idx[n:]
			}
		})
	}
	wg.Wait()
	return results, nil
}

// autoCreateTopic is the template topic of brokers that create topics on
// first send (autoCreateTopicEnable); its route says which brokers do.
const autoCreateTopic = "TBW102"

// produceRoute is the route to produce to topic by. A topic that does not
// exist yet gets, where brokers create topics on first send, the route it
// will have: default_queues queues on each broker that serves the template
// topic, as RocketMQ clients assume too.
func (b *Backend) produceRoute(ctx context.Context, cfg config, rs *routes, topic string) (*route, error) {
	r, err := rs.get(ctx, topic, false)
	if sdk.CodeOf(err) != sdk.CodeTopicNotExist {
		return r, err
	}
	tmpl, terr := rs.get(ctx, autoCreateTopic, false)
	if terr != nil {
		return nil, err
	}
	auto := &route{addrs: tmpl.addrs, at: tmpl.at, auto: true}
	for _, broker := range slices.Sorted(maps.Keys(tmpl.addrs)) {
		n := 0
		for _, q := range tmpl.write {
			if q.broker == broker {
				n++
			}
		}
		for id := range min(n, int(cfg.defaultQueues)) {
			auto.write = append(auto.write, queue{broker, id})
		}
	}
	auto.read = auto.write
	return auto, nil
}

// maxTopicLength is RocketMQ's limit on topic names.
const maxTopicLength = 127

// checkTopic applies RocketMQ's topic rule, which is narrower than
// mqgate's: no dots, at most 127 characters.
func checkTopic(topic string) error {
	if len(topic) > maxTopicLength {
		return sdk.Errorf(sdk.CodeIllegal, "topic %s: %d characters; RocketMQ allows at most %d", topic, len(topic), maxTopicLength)
	}
	for i, c := range topic {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '%' || c == '|') {
			return sdk.Errorf(sdk.CodeIllegal, "topic %s: character %q at byte %d is not allowed; RocketMQ topics are made of [a-zA-Z0-9_%%|-]", topic, c, i)
		}
	}
	return nil
}

// pickQueue applies the record's partition choice to the writable queues.
func pickQueue(r *sdk.Record, rt *route) (queue, error) {
	n := len(rt.write)
	if n == 0 {
		// Brokers drained for maintenance (write permission off) or
		// without a master: it passes, so the record may be sent again.
		return queue{}, sdk.Errorf(sdk.CodeUnavailable, "topic %s has no writable queue: its brokers take no writes now (write permission off, or no master up)", r.Topic)
	}
	switch p := r.Partition; {
	case p >= 0:
		if int(p) >= n {
			return queue{}, sdk.Errorf(sdk.CodeIllegal, "partition %d out of range: topic %s has %d queues", p, r.Topic, n)
		}
		return rt.write[p], nil
	case p == sdk.PartitionHash:
		return rt.write[r.Hash%uint64(n)], nil
	case p == sdk.PartitionRandom:
		return rt.write[rand.IntN(n)], nil
	default:
		return queue{}, sdk.Errorf(sdk.CodeIllegal, "partition %d: want >= 0, %d (hash) or %d (random)", p, sdk.PartitionHash, sdk.PartitionRandom)
	}
}

// batchLen is how many of idx fit one batch send.
func batchLen(records []sdk.Record, idx []int) int {
	size := 0
	for i, j := range idx {
		r := &records[j]
		size += len(r.Value) + len(r.Key) + len(r.Tags) + 64
		for _, h := range r.Headers {
			size += len(h.Key) + len(h.Value) + 8
		}
		if i > 0 && (size > maxBatchBytes || i >= maxBatchMessages) {
			return i
		}
	}
	return len(idx)
}

// sendBatch sends records idx to queue q of topic and fills their results.
func (b *Backend) sendBatch(ctx context.Context, prod interface {
	SendSync(context.Context, ...*primitive.Message) (*primitive.SendResult, error)
}, rs *routes, topic string, q queue, rt *route, records []sdk.Record, idx []int, results []sdk.ProduceResult) {
	msgs := make([]*primitive.Message, len(idx))
	ids := make([]string, len(idx))
	mq := &primitive.MessageQueue{Topic: topic, BrokerName: q.broker, QueueId: q.id}
	for i, j := range idx {
		m := toMessage(topic, &records[j])
		m.Queue = mq
		// Batches get no id from the client; give every message one, the
		// id RocketMQ tools show as the message id.
		ids[i] = primitive.CreateUniqID()
		m.WithProperty(primitive.PropertyUniqueClientMessageIdKeyIndex, ids[i])
		msgs[i] = m
	}
	res, err := prod.SendSync(ctx, msgs...)
	if err == nil && res.Status != primitive.SendOK {
		err = fmt.Errorf("send status %d", res.Status)
	}
	if err != nil {
		cacheMiss := isRouteCacheMiss(err)
		err = sendError(err, records[idx[0]].Topic, q)
		if sdk.CodeOf(err) == sdk.CodeTopicNotExist || rt.auto {
			rs.get(ctx, topic, true) // forget the route; the next call asks again
		}
		switch {
		case sdk.CodeOf(err) == sdk.CodeTopicNotExist && rt.auto:
			// The brokers create topics on first send, but rocketmq-client-go
			// lost the race with a concurrent first send (its route cache
			// had neither the topic nor the template yet): worth retrying.
			err = &sdk.Error{Code: sdk.CodeUnavailable, Msg: err.Error() + " (the topic is being created; retry)"}
		case cacheMiss:
			// The name server has the topic (rt is its route), but
			// rocketmq-client-go's caches do not, yet: of concurrent first
			// sends to a topic, one fills them (the topic's queues, then
			// its brokers' addresses) while the others read them unlocked,
			// and one that finds the queues but not the address fails. A
			// retry finds both, or, if the topic went away, the route
			// forgotten above gives code 14 then.
			err = &sdk.Error{Code: sdk.CodeUnavailable, Msg: err.Error() + " (the client is still loading the topic's route; retry)"}
		}
		for _, j := range idx {
			results[j].Err = err
		}
		return
	}
	for i, j := range idx {
		results[j] = sdk.ProduceResult{
			Qid:       q.qid(),
			Partition: rt.partition(q),
			Offset:    res.QueueOffset + int64(i),
			MessageID: ids[i],
		}
	}
}

// isRouteCacheMiss reports whether a send failed in rocketmq-client-go,
// before reaching a broker, for want of the topic's route in its caches.
func isRouteCacheMiss(err error) bool {
	return strings.Contains(err.Error(), "route info not found")
}

// brokerCode finds the broker's answer in the client's error text
// ("CODE: 17, DESC: ...").
var brokerCode = regexp.MustCompile(`CODE: (\d+)`)

// sendError maps a rocketmq-client-go send error to the code clients see.
func sendError(err error, topic string, q queue) error {
	msg := fmt.Sprintf("producing to %s qid %s: %v", topic, q.qid(), err)
	code := sdk.CodeUnavailable
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, rmqerrors.ErrRequestTimeout):
		// The client answers a call its broker did not answer in time
		// with its own error or the context's, whichever fires first.
		code = sdk.CodeTimeout
	case isRouteCacheMiss(err):
		code = sdk.CodeTopicNotExist
	default:
		if m := brokerCode.FindStringSubmatch(err.Error()); m != nil {
			n, _ := strconv.Atoi(m[1])
			switch n {
			case 17:
				code = sdk.CodeTopicNotExist
			case 13:
				code = sdk.CodeIllegal
			case 16:
				code = sdk.CodeNotAllowed
			case 1, 2, 10, 11, 12, 14:
				code = sdk.CodeUnavailable
			default:
				code = sdk.CodeInternal
			}
		}
	}
	return &sdk.Error{Code: code, Msg: msg}
}
