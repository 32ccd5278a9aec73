package thriftapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/delay"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/sdk"
)

// Method names, as on the wire and in metrics.
const (
	methodSendSync      = "sendSync"
	methodSendBatchSync = "sendBatchSync"
	methodSendAsync     = "sendAsync"
	methodSendDelaySync = "sendDelaySync"
)

// msgOK is the msg of a successful Result, as DDMQ's proxy sends it.
const msgOK = "OK"

// maxBatchTopicsInFlight bounds the topics of one sendBatchSync produced
// at the same time.
const maxBatchTopicsInFlight = 16

// maxSummaryBytes bounds the msg of a sendBatchSync that partly failed.
const maxSummaryBytes = 4096

// producerService answers ProducerService calls. Its methods never return
// an error: every outcome, panics included, is a Result with a code, so a
// call never costs the client its connection.
type producerService struct {
	opts     Options
	producer Producer
	log      *slog.Logger
	metrics  *thriftMetrics
}

var _ producer.ProducerService = (*producerService)(nil)

// SendSync produces one message and waits for the broker's
// acknowledgement, at most timeoutMs milliseconds (Options.DefaultTimeout
// when <= 0, capped at Options.MaxTimeout).
func (h *producerService) SendSync(ctx context.Context, message *producer.Message, timeoutMs int64) (*producer.Result_, error) {
	return h.call(methodSendSync, func() *producer.Result_ {
		return withKey(h.sendSync(ctx, message, timeoutMs), message)
	}), nil
}

// SendBatchSync produces messages, possibly of several topics, and answers
// code 0 when every one was acknowledged; otherwise the code of the first
// failure and a msg naming every failed index.
func (h *producerService) SendBatchSync(ctx context.Context, messages []*producer.Message) (*producer.Result_, error) {
	res, _ := h.sendBatchSyncReleasing(ctx, messages)
	return res, nil
}

// sendBatchSyncReleasing is SendBatchSync, saying whether nothing holds
// the messages' bytes any more (see releasingProducer): never after a
// panic.
func (h *producerService) sendBatchSyncReleasing(ctx context.Context, messages []*producer.Message) (res *producer.Result_, released bool) {
	res = h.call(methodSendBatchSync, func() *producer.Result_ {
		var r *producer.Result_
		r, released = h.sendBatchSync(ctx, messages)
		return r
	})
	return res, released
}

// SendAsync answers code 0 once the message is durable in the local
// spool.
func (h *producerService) SendAsync(ctx context.Context, message *producer.Message) (*producer.Result_, error) {
	return h.call(methodSendAsync, func() *producer.Result_ {
		return withKey(h.sendAsync(ctx, message), message)
	}), nil
}

// SendDelaySync adds a delay or loop message, or cancels one, through
// Options.Delayer, waiting at most timeoutMs milliseconds as SendSync
// does. Without a Delayer it refuses every call with code 11.
func (h *producerService) SendDelaySync(ctx context.Context, delayMessage *producer.DelayMessage, timeoutMs int64) (*producer.DelayResult_, error) {
	internal := func() *producer.DelayResult_ {
		return withDelayID(&producer.DelayResult_{Code: int32(sdk.CodeInternal), Msg: "internal error"}, delayMessage)
	}
	return serveCall(h, methodSendDelaySync, internal, func() *producer.DelayResult_ {
		return h.sendDelaySync(ctx, delayMessage, timeoutMs)
	}), nil
}

// result is what every method answers: Result or DelayResult.
type result interface {
	GetCode() int32
	GetMsg() string
}

// call runs one method's body, turning a panic into code 100, and records
// the outcome.
func (h *producerService) call(method string, body func() *producer.Result_) *producer.Result_ {
	internal := func() *producer.Result_ {
		return &producer.Result_{Code: int32(sdk.CodeInternal), Msg: "internal error"}
	}
	return serveCall(h, method, internal, body)
}

// serveCall runs one method's body, answering internal() when it panics,
// and records the outcome.
func serveCall[R result](h *producerService, method string, internal func() R, body func() R) (res R) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("panic serving thrift call", "method", method, "panic", r, "stack", string(debug.Stack()))
			res = internal()
		}
		h.observe(context.Background(), method, sdk.Code(res.GetCode()), res.GetMsg(), time.Since(start))
	}()
	return body()
}

// observe counts, times and logs one answered call: internal errors at
// Warn, everything else at Debug.
func (h *producerService) observe(ctx context.Context, method string, code sdk.Code, msg string, elapsed time.Duration) {
	h.metrics.observe(method, code, elapsed)
	logCall(ctx, h.log, method, code, msg, elapsed)
}

// logCall logs one answered call: internal errors at Warn, everything
// else at Debug. The line's arguments are made only when it is written:
// at the default level, three allocations a call saved.
func logCall(ctx context.Context, log *slog.Logger, method string, code sdk.Code, msg string, elapsed time.Duration) {
	level := slog.LevelDebug
	if code == sdk.CodeInternal {
		level = slog.LevelWarn
	}
	if log.Enabled(ctx, level) {
		log.Log(ctx, level, "thrift call", "method", method, "code", int(code), "msg", msg, "duration", elapsed)
	}
}

func (h *producerService) sendSync(ctx context.Context, m *producer.Message, timeoutMs int64) *producer.Result_ {
	if m != nil && m.Topic == heartbeatTopic {
		// DDMQ's pproxy answers its heartbeat before it looks at anything
		// else, and produces nothing (ProducerAsyncServerImpl.sendSync).
		return &producer.Result_{Code: int32(sdk.CodeOK), Msg: msgOK}
	}
	ctx, err := h.authenticateMessages(ctx, []*producer.Message{m}, false)
	if err != nil {
		return h.failure(ctx, err, "")
	}
	topic, msg, err := decodeMessage(m, oneMessage, h.opts.MaxMessageBytes, h.opts.strict())
	if err == nil {
		err = authorize(ctx, acl.Produce, topic, "")
	}
	if err == nil {
		err = h.opts.Quotas.Produce(ctx, 1, int64(msg.Size()))
	}
	if err != nil {
		return h.failure(ctx, err, "")
	}
	timeout := h.timeout(timeoutMs)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	results, err := h.producer.Produce(ctx, topic, []produce.Message{msg})
	if err == nil {
		err = singleResult(topic, results)
	}
	if err != nil {
		return h.failure(ctx, err, fmt.Sprintf("timed out after %s (the sendSync timeout)", timeout))
	}
	return &producer.Result_{Code: int32(sdk.CodeOK), Msg: msgOK}
}

func (h *producerService) sendDelaySync(ctx context.Context, m *producer.DelayMessage, timeoutMs int64) *producer.DelayResult_ {
	dl := h.opts.Delayer
	if dl == nil {
		return withDelayID(&producer.DelayResult_{Code: int32(sdk.CodeIllegal), Msg: "delay messages are not enabled"}, m)
	}
	ct := h.callToken()
	var err error
	if m != nil {
		err = ct.property("delayMessage.properties", m.Properties)
	}
	if err == nil {
		ctx, err = authenticateCall(ctx, ct)
	}
	if err != nil {
		return withDelayID(h.delayFailure(ctx, err, ""), m)
	}
	// DDMQ checks the topic (allowed, not its own) before the delay's
	// fields (DelayRequest.checkDelayMessage).
	var req delayRequest
	err = checkDelayTopic(ctx, dl, m)
	if err == nil {
		req, err = decodeDelayMessage(m, time.Now(), dl.Max(), h.opts.MaxMessageBytes)
	}
	if err == nil {
		// A cancel is a record the gateway writes, of the id's size.
		n := int64(req.msg.Msg.Size())
		if req.cancel {
			n = int64(len(req.msg.ID))
		}
		err = h.opts.Quotas.Produce(ctx, 1, n)
	}
	if err != nil {
		return withDelayID(h.delayFailure(ctx, err, ""), m)
	}
	timeout := h.timeout(timeoutMs)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	timeoutMsg := fmt.Sprintf("timed out after %s (the sendDelaySync timeout)", timeout)
	topic, id := req.msg.Topic, req.msg.ID
	if req.cancel {
		if err := dl.Cancel(ctx, topic, id); err != nil {
			return withDelayID(h.delayFailure(ctx, fmt.Errorf("cancelling delay message %q on %s: %w", id, topic, err), timeoutMsg), m)
		}
		return &producer.DelayResult_{Code: int32(sdk.CodeOK), Msg: msgOK, UniqDelayMsgId: id}
	}
	results, err := dl.Add(ctx, []delay.Message{req.msg})
	switch {
	case err != nil:
	case len(results) != 1:
		err = fmt.Errorf("%d results for 1 message", len(results))
	default:
		err = results[0].Err
		if results[0].ID != "" {
			id = results[0].ID
		}
	}
	if err != nil {
		res := h.delayFailure(ctx, fmt.Errorf("adding a delay message to %s: %w", topic, err), timeoutMsg)
		res.UniqDelayMsgId = id
		return res
	}
	return &producer.DelayResult_{Code: int32(sdk.CodeOK), Msg: msgOK, UniqDelayMsgId: id}
}

// msgPath names a message of a call in errors: oneMessage, "message", for
// that of sendSync and sendAsync, msgPath(i), "messages[i]", for the i-th
// of sendBatchSync. It becomes text only when an error names it: made for
// every message of a batch, the names cost two allocations a message.
type msgPath int

const oneMessage msgPath = -1

func (p msgPath) String() string {
	if p < 0 {
		return "message"
	}
	return "messages[" + strconv.Itoa(int(p)) + "]"
}

// callToken is the token gatherer of one call.
func (h *producerService) callToken() *callToken {
	return &callToken{carrier: h.opts.Token}
}

// authenticateMessages takes the token property out of the messages of a
// call, a batch's (sendBatchSync) or its one message, and returns ctx with
// the call's principal. A nil message carries nothing: decodeMessage
// refuses it next.
func (h *producerService) authenticateMessages(ctx context.Context, ms []*producer.Message, batch bool) (context.Context, error) {
	ct := h.callToken()
	for i, m := range ms {
		if m == nil || ct.carrier == nil {
			continue
		}
		path := oneMessage
		if batch {
			path = msgPath(i)
		}
		if err := ct.property(path.String()+".properties", m.Properties); err != nil {
			return ctx, err
		}
	}
	return authenticateCall(ctx, ct)
}

// checkDelayTopic checks a sendDelaySync call's topic: a valid name (code
// 11), one the caller may add to or cancel on (13), and not one the
// gateway keeps to itself (13).
func checkDelayTopic(ctx context.Context, dl delay.Delayer, m *producer.DelayMessage) error {
	if m == nil {
		return nil // decodeDelayMessage says so
	}
	if err := topicname.Validate(m.Topic); err != nil {
		return prefixed("delayMessage", err)
	}
	op := acl.ProduceDelayed
	if m.Action == delayActionCancel {
		op = acl.CancelDelay
	}
	if err := authorize(ctx, op, m.Topic, ""); err != nil {
		return err
	}
	return dl.CheckTopic(m.Topic)
}

// delayFailure answers err with its code and message.
func (h *producerService) delayFailure(ctx context.Context, err error, timeoutMsg string) *producer.DelayResult_ {
	code, msg := h.clientError(ctx, err, timeoutMsg)
	return &producer.DelayResult_{Code: int32(code), Msg: msg}
}

// withDelayID sets res.UniqDelayMsgId to the id the client sent, which
// DelayResult echoes; an id over delay.MaxIDBytes, which was refused, is
// not echoed, so that an answer is never as big as a hostile request.
func withDelayID(res *producer.DelayResult_, m *producer.DelayMessage) *producer.DelayResult_ {
	if m != nil && m.UniqDelayMsgId != nil && len(*m.UniqDelayMsgId) <= delay.MaxIDBytes {
		res.UniqDelayMsgId = *m.UniqDelayMsgId
	}
	return res
}

func (h *producerService) sendAsync(ctx context.Context, m *producer.Message) *producer.Result_ {
	ctx, err := h.authenticateMessages(ctx, []*producer.Message{m}, false)
	if err != nil {
		return h.failure(ctx, err, "")
	}
	topic, msg, err := decodeMessage(m, oneMessage, h.opts.MaxMessageBytes, h.opts.strict())
	if err == nil {
		err = authorize(ctx, acl.Produce, topic, "")
	}
	if err == nil {
		err = h.opts.Quotas.Produce(ctx, 1, int64(msg.Size()))
	}
	if err != nil {
		return h.failure(ctx, err, "")
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.DefaultTimeout)
	defer cancel()
	if err := h.producer.ProduceAsync(ctx, topic, []produce.Message{msg}); err != nil {
		return h.failure(ctx, err, fmt.Sprintf("spooling timed out after %s", h.opts.DefaultTimeout))
	}
	return &producer.Result_{Code: int32(sdk.CodeOK), Msg: msgOK}
}

// topicBatch is the messages of one topic in a sendBatchSync, in request
// order, with their indexes in the request.
type topicBatch struct {
	topic   string
	msgs    []produce.Message
	indexes []int
}

// sendBatchSync answers a sendBatchSync call, and says whether nothing
// holds its messages' bytes any more: when it refused the call before
// producing, or when every produce said so.
func (h *producerService) sendBatchSync(ctx context.Context, ms []*producer.Message) (*producer.Result_, bool) {
	switch {
	case len(ms) == 0 && h.opts.strict():
		// DDMQ's pproxy answers an empty batch OK
		// (ProducerAsyncServerImpl.sendBatchSync).
		return &producer.Result_{Code: int32(sdk.CodeOK), Msg: msgOK}, true
	case len(ms) == 0:
		return h.failure(ctx, sdk.Errorf(sdk.CodeIllegal, "messages: must not be empty"), ""), true
	case len(ms) > h.opts.MaxBatchMessages:
		return h.failure(ctx, sdk.Errorf(sdk.CodeTooLarge, "messages: %d messages, over the limit of %d per call (http.max_batch_messages)",
			len(ms), h.opts.MaxBatchMessages), ""), true
	}
	ctx, err := h.authenticateMessages(ctx, ms, true)
	if err != nil {
		return h.failure(ctx, err, ""), true
	}
	var batches []*topicBatch
	byTopic := make(map[string]*topicBatch)
	var size int64
	for i, m := range ms {
		topic, msg, err := decodeMessage(m, msgPath(i), h.opts.MaxMessageBytes, h.opts.strict())
		if err == nil {
			err = authorize(ctx, acl.Produce, topic, "")
		}
		if err != nil {
			return h.failure(ctx, err, ""), true
		}
		b := byTopic[topic]
		if b == nil {
			if err := h.permit(i, topic); err != nil {
				return h.failure(ctx, err, ""), true
			}
			b = &topicBatch{topic: topic}
			if len(batches) == 0 {
				// Room for all: most batches have one topic, and
				// growing from nothing was a twentieth of their CPU.
				b.msgs, b.indexes = make([]produce.Message, 0, len(ms)), make([]int, 0, len(ms))
			}
			byTopic[topic] = b
			batches = append(batches, b)
		}
		b.msgs = append(b.msgs, msg)
		b.indexes = append(b.indexes, i)
		size += int64(msg.Size())
	}
	// The whole call or none of it: a quota refusal fails every message.
	if err := h.opts.Quotas.Produce(ctx, len(ms), size); err != nil {
		return h.failure(ctx, err, ""), true
	}

	ctx, cancel := context.WithTimeout(ctx, h.opts.DefaultTimeout)
	defer cancel()
	timeoutMsg := fmt.Sprintf("timed out after %s", h.opts.DefaultTimeout)
	errs := make([]error, len(ms)) // nil: acknowledged
	var (
		wg   sync.WaitGroup
		held atomic.Bool // some produce did not say it let go of its messages
	)
	sem := make(chan struct{}, maxBatchTopicsInFlight)
	for _, b := range batches {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			results, let, err := h.produceRecovering(ctx, b.topic, b.msgs)
			if !let {
				held.Store(true)
			}
			if err == nil && len(results) != len(b.msgs) {
				err = fmt.Errorf("producing to %s: %d results for %d messages", b.topic, len(results), len(b.msgs))
			}
			for j, i := range b.indexes {
				if err != nil {
					errs[i] = err
				} else {
					errs[i] = results[j].Err
				}
			}
		})
	}
	wg.Wait()
	released := !held.Load()

	var failures []failure
	for i, err := range errs {
		if err != nil {
			code, msg := h.clientError(ctx, err, timeoutMsg)
			failures = append(failures, failure{index: i, code: code, msg: msg})
		}
	}
	if len(failures) == 0 {
		return &producer.Result_{Code: int32(sdk.CodeOK), Msg: msgOK}, released
	}
	return &producer.Result_{Code: int32(failures[0].code), Msg: summarize(failures, len(ms))}, released
}

// topicPermitter is a Producer that says whether clients may produce to a
// topic at all (the router: topics.auto_create).
type topicPermitter interface {
	Permit(topic string) error
}

// permit refuses a batch whose message i names a topic clients may not
// produce to, before any of it is produced: a client that sends the batch
// again (DDMQ's Java SDK does, on any code) would otherwise produce the
// other messages again. Produce checks the topic anyway; a Producer that
// cannot tell up front is left to it.
func (h *producerService) permit(i int, topic string) error {
	p, ok := h.producer.(topicPermitter)
	if !ok {
		return nil
	}
	err := p.Permit(topic)
	var e *sdk.Error
	if errors.As(err, &e) {
		return &sdk.Error{Code: e.Code, Msg: msgPath(i).String() + ": " + e.Msg}
	}
	return err
}

// produceRecovering calls Produce, turning a panic into an error: it runs
// on a goroutine of its own, out of reach of call's recover. It says
// whether nothing holds msgs' bytes any more: only when the producer
// says so (releasingProducer), and never after a panic.
func (h *producerService) produceRecovering(ctx context.Context, topic string, msgs []produce.Message) (results []sdk.ProduceResult, released bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("panic producing a thrift batch", "topic", topic, "panic", r, "stack", string(debug.Stack()))
			results, released, err = nil, false, fmt.Errorf("producing to %s: panic: %v", topic, r)
		}
	}()
	if p, ok := h.producer.(releasingProducer); ok {
		return p.ProduceReleasing(ctx, topic, msgs)
	}
	results, err = h.producer.Produce(ctx, topic, msgs)
	return results, false, err
}

// releasingProducer is a Producer that also says whether nothing holds a
// produce's messages any more once it returns (*router.Router is one):
// only then is the frame their bodies are in reused.
type releasingProducer interface {
	ProduceReleasing(ctx context.Context, topic string, msgs []produce.Message) (results []sdk.ProduceResult, released bool, err error)
}

// failure is one failed message of a batch.
type failure struct {
	index int
	code  sdk.Code
	msg   string
}

// summarize says which messages of a batch of n failed and why, grouping
// indexes by reason in the order reasons first appear:
// `3 of 5 failed: [1 3-4] code 14 topic "x" does not exist; [2] code 12 timed out after 10s`.
func summarize(failures []failure, n int) string {
	type reason struct {
		code    sdk.Code
		msg     string
		indexes []int
	}
	var reasons []*reason
	for _, f := range failures {
		var r *reason
		for _, have := range reasons {
			if have.code == f.code && have.msg == f.msg {
				r = have
				break
			}
		}
		if r == nil {
			r = &reason{code: f.code, msg: f.msg}
			reasons = append(reasons, r)
		}
		r.indexes = append(r.indexes, f.index)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d failed: ", len(failures), n)
	for i, r := range reasons {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "[%s] code %d %s", ranges(r.indexes), r.code, r.msg)
		if b.Len() > maxSummaryBytes {
			break
		}
	}
	return truncateUTF8(b.String(), maxSummaryBytes)
}

// ranges writes ascending indexes compactly: "1 3-5 9".
func ranges(indexes []int) string {
	var b strings.Builder
	for i := 0; i < len(indexes); {
		j := i
		for j+1 < len(indexes) && indexes[j+1] == indexes[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(indexes[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(indexes[j]))
		}
		if b.Len() > maxSummaryBytes {
			break
		}
		i = j + 1
	}
	return b.String()
}

// truncateUTF8 cuts s to at most limit bytes on a character boundary,
// marking the cut with "...".
func truncateUTF8(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// singleResult is the error of the one result Produce returned for one
// message.
func singleResult(topic string, results []sdk.ProduceResult) error {
	if len(results) != 1 {
		return fmt.Errorf("producing to %s: %d results for 1 message", topic, len(results))
	}
	return results[0].Err
}

// timeout turns a client's timeout in milliseconds into the call's
// deadline: Options.DefaultTimeout when <= 0, at most Options.MaxTimeout.
func (h *producerService) timeout(ms int64) time.Duration {
	switch {
	case ms <= 0:
		return h.opts.DefaultTimeout
	case ms >= int64(h.opts.MaxTimeout/time.Millisecond):
		return h.opts.MaxTimeout
	default:
		return time.Duration(ms) * time.Millisecond
	}
}

// failure answers err with its code and message.
func (h *producerService) failure(ctx context.Context, err error, timeoutMsg string) *producer.Result_ {
	code, msg := h.clientError(ctx, err, timeoutMsg)
	return &producer.Result_{Code: int32(code), Msg: msg}
}

// clientError is the code and message a client sees for err: an
// *sdk.Error keeps its own; a call Stop cancelled is code 17; a deadline is
// code 12 with timeoutMsg; anything else is an internal error whose details
// go to the log, not to the client.
func (h *producerService) clientError(ctx context.Context, err error, timeoutMsg string) (sdk.Code, string) {
	return clientError(ctx, h.log, err, timeoutMsg)
}

// clientError is the code and message a client sees for err, for both
// services: see (*producerService).clientError.
func clientError(ctx context.Context, log *slog.Logger, err error, timeoutMsg string) (sdk.Code, string) {
	var e *sdk.Error
	if errors.As(err, &e) && e.Code != sdk.CodeOK {
		return e.Code, e.Msg
	}
	if ctx.Err() != nil && errors.As(context.Cause(ctx), &e) {
		return e.Code, e.Msg
	}
	switch code := sdk.CodeOf(err); code {
	case sdk.CodeTimeout:
		return code, timeoutMsg
	case sdk.CodeUnavailable:
		return code, "call cancelled: the client closed the connection"
	default:
		log.Error("internal error serving a thrift call", "err", err)
		return sdk.CodeInternal, "internal error"
	}
}

// withKey sets res.Key to the message's key, which Result echoes.
func withKey(res *producer.Result_, m *producer.Message) *producer.Result_ {
	if m != nil {
		key := m.Key
		res.Key = &key
	}
	return res
}
