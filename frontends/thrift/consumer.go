package thriftapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/consumer"
	"github.com/mqgate/mqgate/sdk"
)

// Defaults of ConsumerService calls that leave a field out.
const (
	// DefaultPullBatch is the maxBatchSize of a pull or fetch that sends
	// none (or 0).
	DefaultPullBatch = 32
	// DefaultPullLinger is the maxLingerTime of a pull or fetch that sends
	// none.
	DefaultPullLinger = 500 * time.Millisecond
)

// ConsumerService method names, as on the wire and in metrics.
const (
	methodPull            = "pull"
	methodSubmit          = "submit"
	methodGetConsumeStats = "getConsumeStats"
	methodFetch           = "fetch"
	methodAck             = "ack"
)

// ConsumerServer serves DDMQ's ConsumerService. It is safe for concurrent
// use, and its connections, limits and shutdown are those of
// ProducerServer.
type ConsumerServer struct {
	*server
}

// NewConsumerServer returns a server answering ConsumerService calls
// through c. Options.Listen defaults to DefaultConsumerListen; Delayer is
// not used. It panics only if opts.Registry holds a different collector
// under the Thrift metrics' names.
func NewConsumerServer(opts Options, c consume.Consumer) *ConsumerServer {
	if opts.Listen == "" {
		opts.Listen = DefaultConsumerListen
	}
	s := newServer("consumer", "thrift.consumer_listen", opts)
	s.processor = consumer.NewConsumerServiceProcessor(&consumerService{
		opts:     s.opts,
		consumer: c,
		log:      s.log,
		metrics:  s.metrics,
	})
	return &ConsumerServer{s}
}

// consumerService answers ConsumerService calls. pull, submit and
// getConsumeStats answer errors with a PullException; fetch and ack, which
// declare none, with FetchResponse.code and false. A panic is code 100.
type consumerService struct {
	opts     Options
	consumer consume.Consumer
	log      *slog.Logger
	metrics  *thriftMetrics
}

var _ consumer.ConsumerService = (*consumerService)(nil)

// Pull applies the request's ConsumeResult chain, then waits up to
// maxLingerTime for up to maxBatchSize messages of one qid.
func (h *consumerService) Pull(ctx context.Context, req *consumer.PullRequest) (*consumer.PullResponse, error) {
	var resp *consumer.PullResponse
	code, msg := h.serve(ctx, methodPull, func() (err error) {
		resp, err = h.pull(ctx, req)
		return err
	})
	if code != sdk.CodeOK {
		return nil, &consumer.PullException{Code: int32(code), Message: msg}
	}
	return resp, nil
}

// Submit applies a ConsumeResult chain and answers true.
func (h *consumerService) Submit(ctx context.Context, result *consumer.ConsumeResult_) (bool, error) {
	code, msg := h.serve(ctx, methodSubmit, func() error {
		if result == nil {
			return sdk.Errorf(sdk.CodeIllegal, "result: required")
		}
		ct := h.callToken()
		acks, err := decodeChain(result, "result", ct)
		if err == nil {
			ctx, err = authenticateCall(ctx, ct)
		}
		if err == nil {
			err = authorizeAcks(ctx, acks)
		}
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, h.opts.DefaultTimeout)
		defer cancel()
		refused, err := h.applyAcks(ctx, acks, h.opts.DefaultTimeout)
		if err != nil {
			return err
		}
		// DDMQ's cproxy answers true whatever it skipped
		// (ConsumerServiceImpl.submit).
		if h.opts.strict() {
			return nil
		}
		return refused
	})
	if code != sdk.CodeOK {
		return false, &consumer.PullException{Code: int32(code), Message: msg}
	}
	return true, nil
}

// GetConsumeStats reports the group's committed and end offsets per qid,
// of one topic or of every topic it has a session for.
func (h *consumerService) GetConsumeStats(ctx context.Context, req *consumer.ConsumeStatsRequest) ([]*consumer.ConsumeStats, error) {
	var out []*consumer.ConsumeStats
	code, msg := h.serve(ctx, methodGetConsumeStats, func() error {
		if req == nil {
			return sdk.Errorf(sdk.CodeIllegal, "request: required")
		}
		ct := h.callToken()
		group, err := ct.group("request.group", req.Group)
		if err != nil {
			return err
		}
		topic := req.GetTopic()
		if topic != "" {
			if err := checkTopic("request.topic", topic); err != nil {
				return err
			}
		}
		if ctx, err = authenticateCall(ctx, ct); err != nil {
			return err
		}
		if err := authorize(ctx, acl.ReadStats, topic, group); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, h.opts.DefaultTimeout)
		defer cancel()
		stats, err := h.consumer.Stats(ctx, group, topic)
		if err != nil {
			return h.timedOut(ctx, fmt.Errorf("reading the consume stats of %s: %w", group, err), h.opts.DefaultTimeout)
		}
		out = make([]*consumer.ConsumeStats, len(stats))
		for i, st := range stats {
			out[i] = &consumer.ConsumeStats{
				Group: st.Group, Topic: st.Topic,
				ConsumeOffsets: nonNilOffsets(st.ConsumeOffsets), ProduceOffsets: nonNilOffsets(st.ProduceOffsets),
			}
		}
		return nil
	})
	if code != sdk.CodeOK {
		return nil, &consumer.PullException{Code: int32(code), Message: msg}
	}
	return out, nil
}

// Fetch reads the explicit offsets of fetchOffset. Its IDL declares no
// exception: an error is FetchResponse.code, with no results, and logged.
func (h *consumerService) Fetch(ctx context.Context, req *consumer.FetchRequest) (*consumer.FetchResponse, error) {
	start := time.Now()
	resp := &consumer.FetchResponse{Results: []*consumer.QidResponse{}}
	code, msg := h.serve(ctx, methodFetch, func() error {
		ct := h.callToken()
		call, err := decodeFetch(req, h.limits(), ct)
		if err == nil {
			ctx, err = authenticateCall(ctx, ct)
		}
		if err == nil {
			err = authorizeTopics(ctx, acl.Consume, call.offsets, call.group)
		}
		if err == nil && len(call.offsets) == 0 {
			// The group's queues: its subscriptions, which only admin
			// may change, say which topics.
			err = authorize(ctx, acl.Consume, "", call.group)
		}
		if err != nil {
			return err
		}
		timeout := call.wait + h.opts.DefaultTimeout
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		qms, err := h.consumer.Fetch(ctx, call.group, call.cluster, call.offsets, call.max, call.wait)
		if err != nil {
			return h.timedOut(ctx, fmt.Errorf("fetching: %w", err), timeout)
		}
		for _, q := range qms {
			next := q.NextOffset
			resp.Results = append(resp.Results, &consumer.QidResponse{
				Topic: q.Topic, Qid: q.Qid, NextRequestOffset: &next, Messages: encodeMessages(q.Messages),
			})
		}
		return nil
	})
	c := int32(code)
	resp.Code = &c
	if code != sdk.CodeOK {
		resp.Results = []*consumer.QidResponse{}
		h.log.Warn("thrift fetch failed", "code", int(code), "msg", msg)
		// DDMQ's LowLevelCarreraConsumer reads no code: it takes a failed
		// fetch for an empty one and asks again at once. Holding the
		// answer for the linger, as an empty answer is held, keeps such a
		// client from spinning the gateway.
		h.holdFailedFetch(ctx, req, start)
	}
	return resp, nil
}

// holdFailedFetch waits until the request's linger (DefaultPullLinger when
// it has none; at least 20 ms, at most the request timeout) has passed
// since start, or ctx ends.
func (h *consumerService) holdFailedFetch(ctx context.Context, req *consumer.FetchRequest, start time.Time) {
	hold := DefaultPullLinger
	if req != nil && req.MaxLingerTime != nil {
		hold = time.Duration(*req.MaxLingerTime) * time.Millisecond
	}
	hold = min(max(hold, minFailedFetchHold), h.opts.DefaultTimeout)
	t := time.NewTimer(time.Until(start.Add(hold)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// minFailedFetchHold is the least a failed fetch is held: DDMQ's cproxy
// holds an empty pull at least 20 ms (MIN_LINGER_TIME), as mqgate holds
// an empty fetch.
const minFailedFetchHold = 20 * time.Millisecond

// Ack commits the given offsets for the group, with no session and no
// tracking. Its IDL declares no exception: an error is false, and logged.
func (h *consumerService) Ack(ctx context.Context, result *consumer.AckResult_) (bool, error) {
	code, msg := h.serve(ctx, methodAck, func() error {
		if h.opts.strict() && result != nil && countOffsets(result.Offsets) == 0 {
			// Nothing to commit: DDMQ's cproxy answers true before it
			// reads anything else (ConsumerServiceImpl.ack).
			return nil
		}
		ct := h.callToken()
		group, err := decodeAckResult(result, ct)
		if err == nil {
			ctx, err = authenticateCall(ctx, ct)
		}
		if err == nil {
			err = authorizeTopics(ctx, acl.Commit, result.Offsets, group)
		}
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, h.opts.DefaultTimeout)
		defer cancel()
		if err := h.consumer.Commit(ctx, result.Cluster, group, result.Offsets); err != nil {
			return h.timedOut(ctx, fmt.Errorf("committing offsets of %s: %w", group, err), h.opts.DefaultTimeout)
		}
		audit(ctx, "offsets committed", acl.Commit, fmt.Sprintf("group %q offsets %v", group, result.Offsets))
		return nil
	})
	if code != sdk.CodeOK {
		h.log.Warn("thrift ack failed", "code", int(code), "msg", msg)
		return false, nil
	}
	return true, nil
}

func (h *consumerService) pull(ctx context.Context, req *consumer.PullRequest) (*consumer.PullResponse, error) {
	ct := h.callToken()
	call, err := decodePull(req, h.limits(), ct)
	if err == nil {
		ctx, err = authenticateCall(ctx, ct)
	}
	if err == nil {
		err = authorizeAcks(ctx, call.acks)
	}
	if err == nil {
		err = authorize(ctx, acl.Consume, call.topic, call.group)
	}
	if err != nil {
		return nil, err
	}
	timeout := call.wait + h.opts.DefaultTimeout
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Offsets the gateway cannot apply (not handed out here, or of a qid
	// that moved to another gateway, which redelivers them) are skipped
	// and logged, and the pull goes on, as DDMQ's cproxy pulls whatever
	// its doSubmit skipped (ConsumerServiceImpl.pull): DDMQ's SDK passes
	// the same result again after an exception, which would block the
	// consumer. Other errors fail the pull.
	if _, err := h.applyAcks(ctx, call.acks, timeout); err != nil {
		return nil, err
	}
	b, err := h.consumer.Pull(ctx, call.group, call.topic, call.max, call.wait)
	if err != nil {
		return nil, h.timedOut(ctx, fmt.Errorf("pulling %s for %s: %w", call.topic, call.group, err), timeout)
	}
	group := call.group
	if b.Group != "" {
		group = b.Group
	}
	// The context goes back as the client named the group, token and all:
	// DDMQ's SDK acks with it, in the next pull or a submit, and those
	// calls must carry the token too.
	resp := &consumer.PullResponse{
		Context:  &consumer.Context{GroupId: ct.prefix() + group, Topic: call.topic, Qid: b.Qid},
		Messages: encodeMessages(b.Messages),
	}
	if b.Topic != "" {
		resp.Context.Topic = b.Topic
	}
	return resp, nil
}

// callToken is the token gatherer of one call, whose tokens are in group
// names.
func (h *consumerService) callToken() *callToken {
	return &callToken{carrier: h.opts.Token, inGroups: true}
}

func (h *consumerService) limits() consumeLimits {
	return consumeLimits{maxBatch: h.consumer.MaxBatch(), maxWait: h.opts.DefaultTimeout}
}

// timedOut turns err into code 12 naming timeout when it comes from ctx's
// deadline; other errors pass through.
func (h *consumerService) timedOut(ctx context.Context, err error, timeout time.Duration) error {
	var e *sdk.Error
	if !errors.As(err, &e) && errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		return sdk.Errorf(sdk.CodeTimeout, "timed out after %s", timeout)
	}
	return err
}

// serve runs one method's body, turning a panic into code 100, and
// records the outcome. It returns the code and message the client sees.
func (h *consumerService) serve(ctx context.Context, method string, body func() error) (code sdk.Code, msg string) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("panic serving thrift call", "method", method, "panic", r, "stack", string(debug.Stack()))
			code, msg = sdk.CodeInternal, "internal error"
		}
		elapsed := time.Since(start)
		h.metrics.observe(method, code, elapsed)
		logCall(ctx, h.log, method, code, msg, elapsed)
	}()
	if err := body(); err != nil {
		code, msg = clientError(ctx, h.log, err, fmt.Sprintf("timed out after %s", h.opts.DefaultTimeout))
		return code, msg
	}
	return sdk.CodeOK, msgOK
}

// nonNilOffsets returns m, or an empty map for nil: Thrift writes both the
// same, but a Go client reads nil back as an empty map anyway.
func nonNilOffsets(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}
