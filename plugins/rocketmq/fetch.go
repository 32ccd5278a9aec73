package rocketmq

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/mqgate/mqgate/plugins/rocketmq/internal/remoting"
	"github.com/mqgate/mqgate/sdk"
)

// Pull request flags (PullSysFlag).
const (
	pullSuspend      = 1 << 1
	pullSubscription = 1 << 2
)

const (
	// defaultPullMessages is what one pull asks for when the caller sets no
	// bound; brokers return at most 32 from memory anyway.
	defaultPullMessages = 32
	// fetchGroup is the group named in pulls made outside any group; pulls
	// never commit for it.
	fetchGroup = "MQGATE_FETCH"
)

// pullResult is a broker's answer to one pull.
type pullResult struct {
	found    bool
	moved    bool // the offset was outside the queue
	msgs     []*primitive.MessageExt
	next     int64
	min, max int64
}

// pull reads up to maxMsgs messages of q from offset, holding the request
// at the broker for up to suspend when there are none.
func pull(ctx context.Context, p *pool, addr, group, topic string, q queue, offset int64, maxMsgs int32, suspend time.Duration) (pullResult, error) {
	flag := pullSubscription
	if suspend > 0 {
		flag |= pullSuspend
	}
	f := queueFields(topic, q,
		"consumerGroup", group,
		"queueOffset", strconv.FormatInt(offset, 10),
		"maxMsgNums", strconv.Itoa(int(maxMsgs)),
		"sysFlag", strconv.Itoa(flag),
		"commitOffset", "0",
		"suspendTimeoutMillis", strconv.FormatInt(suspend.Milliseconds(), 10),
		"subscription", "*",
		"subVersion", "0",
		"expressionType", "TAG",
	)
	ctx, cancel := context.WithTimeout(ctx, suspend+15*time.Second)
	defer cancel()
	resp, err := p.invoke(ctx, addr, remoting.NewRequest(remoting.PullMessage, f, nil))
	if err != nil {
		return pullResult{}, err
	}
	var r pullResult
	switch resp.Code {
	case remoting.Success:
		r.found = true
	case remoting.PullNotFound, remoting.PullRetryImmediately:
	case remoting.PullOffsetMoved:
		r.moved = true
	default:
		return pullResult{}, brokerError(fmt.Sprintf("pulling %s qid %s", topic, q.qid()), resp)
	}
	num := func(k string) int64 {
		n, _ := strconv.ParseInt(resp.ExtFields[k], 10, 64)
		return n
	}
	r.next, r.min, r.max = num("nextBeginOffset"), num("minOffset"), num("maxOffset")
	if r.found {
		if r.msgs, err = decodeMessages(resp.Body); err != nil {
			return pullResult{}, sdk.Errorf(sdk.CodeInternal, "pulling %s qid %s: %v", topic, q.qid(), err)
		}
		for _, m := range r.msgs {
			m.Queue.BrokerName = q.broker
		}
	}
	return r, nil
}

// decodeMessages decodes a pull body with the client's decoder, which
// trusts its input; a corrupt body is an error rather than a crash.
func decodeMessages(body []byte) (msgs []*primitive.MessageExt, err error) {
	defer func() {
		if v := recover(); v != nil {
			msgs, err = nil, fmt.Errorf("corrupt message data: %v", v)
		}
	}()
	return primitive.DecodeMessage(body), nil
}

// Fetch reads each position with one pull, outside any group. The pulls
// run together and wait at their brokers for up to req.MaxWait; once one
// of them has records the others are called off, so Fetch waits for at
// least one record, not for one at every position.
func (b *Backend) Fetch(ctx context.Context, req sdk.FetchRequest) ([]sdk.FetchResult, error) {
	cfg, p, rs, err := b.state()
	if err != nil {
		return nil, err
	}
	maxMsgs := req.MaxRecords
	if maxMsgs <= 0 {
		maxMsgs = defaultPullMessages
	}
	out := make([]sdk.FetchResult, len(req.Positions))
	waiting, callOff := context.WithCancel(ctx)
	defer callOff()
	var wg sync.WaitGroup
	for i, pos := range req.Positions {
		wg.Go(func() {
			r := b.fetchOne(waiting, cfg, p, rs, pos, maxMsgs, req.MaxWait)
			switch {
			case len(r.Records) > 0:
				callOff()
			case r.Err != nil && waiting.Err() != nil && ctx.Err() == nil:
				// Called off because another position had records:
				// nothing new here.
				r = sdk.FetchResult{Topic: pos.Topic, Qid: pos.Qid, NextOffset: pos.Offset}
			}
			out[i] = r
		})
	}
	wg.Wait()
	return out, nil
}

func (b *Backend) fetchOne(ctx context.Context, cfg config, p *pool, rs *routes, pos sdk.FetchPosition, maxMsgs int32, wait time.Duration) sdk.FetchResult {
	res := sdk.FetchResult{Topic: pos.Topic, Qid: pos.Qid, NextOffset: pos.Offset}
	q, err := parseQid(pos.Qid)
	if err != nil {
		res.Err = sdk.Errorf(sdk.CodeIllegal, "topic %s: %v", pos.Topic, err)
		return res
	}
	name := cfg.wrap(pos.Topic)
	rt, err := b.queueRoute(ctx, rs, name, q)
	if err != nil {
		res.Err = err
		return res
	}
	pr, err := pull(ctx, p, rt.addrs[q.broker], cfg.wrap(fetchGroup), name, q, pos.Offset, maxMsgs, wait)
	if err != nil {
		res.Err = err
		return res
	}
	if pr.moved || pos.Offset < pr.min || pos.Offset > pr.max {
		res.Err = sdk.Errorf(sdk.CodeIllegal, "topic %s qid %s: offset %d out of range [%d, %d]", pos.Topic, pos.Qid, pos.Offset, pr.min, pr.max)
		return res
	}
	for _, m := range pr.msgs {
		if m.QueueOffset >= pos.Offset {
			res.Records = append(res.Records, toRecord(m, pos.Topic, rt))
		}
	}
	if pr.found || pr.next > pos.Offset {
		res.NextOffset = pr.next
	}
	return res
}
