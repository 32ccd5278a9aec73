package rocketmq

import (
	"context"
	"strconv"
	"sync"

	"github.com/mqgate/mqgate/plugins/rocketmq/internal/remoting"
	"github.com/mqgate/mqgate/sdk"
)

// queueFields are the header fields naming one queue.
func queueFields(topic string, q queue, kv ...string) map[string]string {
	return fields(append([]string{"topic", topic, "queueId", strconv.Itoa(q.id)}, kv...)...)
}

// offsetCall asks a broker for one number in the "offset" field of its
// answer. notFound, when not nil, is what QUERY_NOT_FOUND means.
func offsetCall(ctx context.Context, p *pool, addr string, code int16, f map[string]string, notFound *int64) (int64, error) {
	resp, err := p.invoke(ctx, addr, remoting.NewRequest(code, f, nil))
	if err != nil {
		return 0, err
	}
	if resp.Code == remoting.QueryNotFound && notFound != nil {
		return *notFound, nil
	}
	if resp.Code != remoting.Success {
		return 0, brokerError("topic "+f["topic"]+" queue "+f["queueId"], resp)
	}
	n, err := strconv.ParseInt(resp.ExtFields["offset"], 10, 64)
	if err != nil {
		return 0, sdk.Errorf(sdk.CodeInternal, "rocketmq broker %s: bad offset %q", addr, resp.ExtFields["offset"])
	}
	return n, nil
}

func minOffset(ctx context.Context, p *pool, addr, topic string, q queue) (int64, error) {
	return offsetCall(ctx, p, addr, remoting.GetMinOffset, queueFields(topic, q), nil)
}

func maxOffset(ctx context.Context, p *pool, addr, topic string, q queue) (int64, error) {
	return offsetCall(ctx, p, addr, remoting.GetMaxOffset, queueFields(topic, q), nil)
}

// committedOffset is the group's stored offset for q, -1 when it has none.
func committedOffset(ctx context.Context, p *pool, addr, group, topic string, q queue) (int64, error) {
	none := int64(-1)
	return offsetCall(ctx, p, addr, remoting.QueryConsumerOffset, queueFields(topic, q, "consumerGroup", group), &none)
}

// storeOffset writes the group's offset for q and waits for the broker.
func storeOffset(ctx context.Context, p *pool, addr, group, topic string, q queue, offset int64) error {
	f := queueFields(topic, q, "consumerGroup", group, "commitOffset", strconv.FormatInt(offset, 10))
	resp, err := p.invoke(ctx, addr, remoting.NewRequest(remoting.UpdateConsumerOffset, f, nil))
	if err != nil {
		return err
	}
	if resp.Code != remoting.Success {
		return brokerError("committing "+q.qid()+" of "+topic, resp)
	}
	return nil
}

// ListOffsets gives every read queue of the topics, in partition order.
func (b *Backend) ListOffsets(ctx context.Context, topics []string, group string) ([]sdk.QidOffsets, error) {
	cfg, p, rs, err := b.state()
	if err != nil {
		return nil, err
	}
	var out []sdk.QidOffsets
	for _, t := range topics {
		name := cfg.wrap(t)
		r, err := rs.get(ctx, name, false)
		if err != nil {
			return nil, err
		}
		offs := make([]sdk.QidOffsets, len(r.read))
		errs := make([]error, len(r.read))
		var wg sync.WaitGroup
		for i, q := range r.read {
			wg.Go(func() {
				addr := r.addrs[q.broker]
				o := sdk.QidOffsets{Topic: t, Qid: q.qid(), Partition: int32(i), Committed: -1}
				if o.Start, errs[i] = minOffset(ctx, p, addr, name, q); errs[i] != nil {
					return
				}
				if o.End, errs[i] = maxOffset(ctx, p, addr, name, q); errs[i] != nil {
					return
				}
				if group != "" {
					o.Committed, errs[i] = committedOffset(ctx, p, addr, cfg.wrap(group), name, q)
				}
				offs[i] = o
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
		out = append(out, offs...)
	}
	return out, nil
}

// Commit stores a group's offsets on the brokers that own the queues.
// RocketMQ takes commits from anyone, members or not.
func (b *Backend) Commit(ctx context.Context, group string, offsets []sdk.Offset) error {
	cfg, p, rs, err := b.state()
	if err != nil {
		return err
	}
	return commitOffsets(ctx, cfg, p, rs, cfg.wrap(group), offsets)
}

func commitOffsets(ctx context.Context, cfg config, p *pool, rs *routes, group string, offsets []sdk.Offset) error {
	for _, o := range offsets {
		q, err := parseQid(o.Qid)
		if err != nil {
			return sdk.Errorf(sdk.CodeIllegal, "topic %s: %v", o.Topic, err)
		}
		if o.Offset < 0 {
			return sdk.Errorf(sdk.CodeIllegal, "topic %s qid %s: offset %d is negative", o.Topic, o.Qid, o.Offset)
		}
		name := cfg.wrap(o.Topic)
		r, err := rs.get(ctx, name, false)
		if err != nil {
			return err
		}
		addr := r.addrs[q.broker]
		if addr == "" {
			return sdk.Errorf(sdk.CodeUnavailable, "topic %s qid %s: broker %s has no master", o.Topic, o.Qid, q.broker)
		}
		if err := storeOffset(ctx, p, addr, group, name, q, o.Offset); err != nil {
			return err
		}
	}
	return nil
}
