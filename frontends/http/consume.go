package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// Defaults of the consume routes' bodies.
const (
	// DefaultPullMessages is the max_messages of a pull or fetch that
	// sends none.
	DefaultPullMessages = 32
	// DefaultPullWait is the max_wait_ms of a pull or fetch that sends
	// none.
	DefaultPullWait = 500 * time.Millisecond
)

// errConsumeNotEnabled answers the consume routes when Options.Consumer is
// nil.
var errConsumeNotEnabled = sdk.Errorf(sdk.CodeIllegal, "consumption is not enabled")

// pullContext says where a pull's messages come from: the context an ack
// names.
type pullContext struct {
	Group string `json:"group"`
	Topic string `json:"topic"`
	Qid   string `json:"qid"`
}

// pullResponse is the 200 body of POST .../pull.
type pullResponse struct {
	Context  pullContext       `json:"context"`
	Messages []consumedMessage `json:"messages"`
}

// ackResponse is the 200 body of POST .../ack: the count of offsets
// reported, success and fail together.
type ackResponse struct {
	Acked int `json:"acked"`
}

// statsResponse is the 200 body of GET /v1/groups/:group/stats.
type statsResponse struct {
	Stats []statsJSON `json:"stats"`
}

type statsJSON struct {
	Group          string           `json:"group"`
	Topic          string           `json:"topic"`
	ConsumeOffsets map[string]int64 `json:"consume_offsets"`
	ProduceOffsets map[string]int64 `json:"produce_offsets"`
	Lag            int64            `json:"lag"`
	// BeyondEnd is omitted unless a committed offset is past its end.
	BeyondEnd map[string]int64 `json:"beyond_end,omitempty"`
}

// fetchResponse is the 200 body of POST /v1/fetch.
type fetchResponse struct {
	Results []fetchResult `json:"results"`
}

type fetchResult struct {
	Topic      string            `json:"topic"`
	Qid        string            `json:"qid"`
	NextOffset int64             `json:"next_offset"`
	Messages   []consumedMessage `json:"messages"`
}

// commitResponse is the 200 body of POST /v1/commit.
type commitResponse struct {
	Committed bool `json:"committed"`
}

// consumedMessage is a message as the consume routes answer it: the
// fields of a produced message (key, value or value_base64, headers,
// tags) plus where it was read and how often it was delivered.
type consumedMessage struct {
	// Key is absent when the message has none; KeyBase64 replaces it when
	// the key is not valid UTF-8.
	Key       *string `json:"key,omitempty"`
	KeyBase64 *string `json:"key_base64,omitempty"`
	// Value when the bytes are valid UTF-8, else ValueBase64.
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
	// Headers in record order, repeats kept; HeadersBase64 (values in
	// base64) replaces it when a value is not valid UTF-8.
	Headers       *headersJSON `json:"headers,omitempty"`
	HeadersBase64 *headersJSON `json:"headers_base64,omitempty"`
	Tags          string       `json:"tags,omitempty"`
	Offset        int64        `json:"offset"`
	Qid           string       `json:"qid"`
	TimestampMs   int64        `json:"timestamp_ms"`
	Attempt       int          `json:"attempt"`
}

// headersJSON writes headers as one JSON object in their order, a
// repeated name repeated, values as text or, with b64, standard base64.
type headersJSON struct {
	headers []sdk.Header
	b64     bool
}

func (h headersJSON) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, hd := range h.headers {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(hd.Key)
		if err != nil {
			return nil, err
		}
		b = append(append(b, k...), ':')
		var v []byte
		if h.b64 {
			v, err = json.Marshal(base64.StdEncoding.EncodeToString(hd.Value))
		} else {
			v, err = json.Marshal(string(hd.Value))
		}
		if err != nil {
			return nil, err
		}
		b = append(b, v...)
	}
	return append(b, '}'), nil
}

// encodeConsumed turns consumed messages into their JSON form; never nil.
func encodeConsumed(msgs []consume.Message) []consumedMessage {
	out := make([]consumedMessage, len(msgs))
	for i := range msgs {
		out[i] = encodeConsumedMessage(&msgs[i])
	}
	return out
}

func encodeConsumedMessage(m *consume.Message) consumedMessage {
	out := consumedMessage{Tags: m.Tags, Offset: m.Offset, Qid: m.Qid, TimestampMs: unixMs(m.Timestamp), Attempt: m.Attempt}
	if m.Key != nil {
		if utf8.Valid(m.Key) {
			k := string(m.Key)
			out.Key = &k
		} else {
			k := base64.StdEncoding.EncodeToString(m.Key)
			out.KeyBase64 = &k
		}
	}
	if utf8.Valid(m.Value) {
		v := string(m.Value)
		out.Value = &v
	} else {
		v := base64.StdEncoding.EncodeToString(m.Value)
		out.ValueBase64 = &v
	}
	if len(m.Headers) > 0 {
		text := true
		for _, h := range m.Headers {
			if !utf8.Valid(h.Value) {
				text = false
				break
			}
		}
		if text {
			out.Headers = &headersJSON{headers: m.Headers}
		} else {
			out.HeadersBase64 = &headersJSON{headers: m.Headers, b64: true}
		}
	}
	return out
}

// unixMs is t in milliseconds since the epoch; 0 for the zero time.
func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// consumer returns Options.Consumer, or answers code 11 when there is
// none.
func (s *Server) consumer(c *gin.Context) (consume.Consumer, bool) {
	if s.opts.Consumer == nil {
		s.abortWithError(c, errConsumeNotEnabled)
		return nil, false
	}
	return s.opts.Consumer, true
}

// subscription checks a group and topic pair.
func subscription(group, topic string) error {
	if err := topicname.ValidateGroup(group); err != nil {
		return err
	}
	return topicname.Validate(topic)
}

// pullLimits turns a body's max_messages and max_wait_ms into a pull's:
// defaults when absent, capped to Consumer.MaxBatch and RequestTimeout.
func (s *Server) pullLimits(cons consume.Consumer, maxMessages, maxWaitMs *int64) (int, time.Duration) {
	n := int64(DefaultPullMessages)
	if maxMessages != nil {
		n = *maxMessages
	}
	n = max(1, min(n, int64(cons.MaxBatch())))
	wait := min(DefaultPullWait, s.opts.RequestTimeout)
	if maxWaitMs != nil {
		wait = s.opts.RequestTimeout
		if *maxWaitMs < int64(s.opts.RequestTimeout/time.Millisecond) {
			wait = time.Duration(*maxWaitMs) * time.Millisecond
		}
	}
	return int(n), wait
}

// pull serves POST /v1/groups/:group/topics/:topic/pull: the body's ack
// first, then up to max_messages of one qid within max_wait_ms.
func (s *Server) pull(c *gin.Context) {
	cons, ok := s.consumer(c)
	if !ok {
		return
	}
	group, topic := c.Param("group"), c.Param("topic")
	if err := subscription(group, topic); err != nil {
		s.abortWithError(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	body, charge, ok := s.bodyOrAbort(ctx, c)
	if !ok {
		return
	}
	req, err := decodePullBody(body)
	// The decoded request holds what the pull needs: the body's bytes are
	// not kept while the pull waits for messages.
	charge.Release()
	if err == nil && req.ack != nil {
		err = s.checkAckSize(req.ack)
	}
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	max, wait := s.pullLimits(cons, req.maxMessages, req.maxWaitMs)
	// The pull may wait its whole wait and then take a request timeout.
	ctx, cancel = context.WithTimeout(c.Request.Context(), wait+s.opts.RequestTimeout)
	defer cancel()
	if a := req.ack; a != nil && len(a.success)+len(a.fail) > 0 {
		if err := cons.Ack(ctx, []consume.Ack{{Group: group, Topic: topic, Qid: a.qid, Success: a.success, Fail: a.fail}}); err != nil {
			// An ack the gateway cannot apply (an offset not handed out
			// here, a qid that moved to another gateway, which redelivers
			// it) does not block the pull; other errors fail it.
			if code := sdk.CodeOf(err); code != sdk.CodeIllegal && code != sdk.CodeNotFound {
				s.abortWithError(c, fmt.Errorf("acking %s of %s for %s: %w", a.qid, topic, group, err))
				return
			}
			s.log.Warn("piggybacked ack not applied; pulling anyway", "group", group, "topic", topic, "error", err)
		}
	}
	b, err := cons.Pull(ctx, group, topic, max, wait)
	if err != nil {
		s.abortWithError(c, fmt.Errorf("pulling %s for %s: %w", topic, group, err))
		return
	}
	c.PureJSON(http.StatusOK, pullResponse{
		Context:  pullContext{Group: group, Topic: topic, Qid: b.Qid},
		Messages: encodeConsumed(b.Messages),
	})
}

// checkAckSize refuses an ack of more offsets than
// http.max_batch_messages.
func (s *Server) checkAckSize(a *ackBody) error {
	if n := len(a.success) + len(a.fail); n > s.opts.MaxBatchMessages {
		return sdk.Errorf(sdk.CodeTooLarge, "an ack of %d offsets exceeds http.max_batch_messages (%d)", n, s.opts.MaxBatchMessages)
	}
	return nil
}

// ack serves POST /v1/groups/:group/topics/:topic/ack.
func (s *Server) ack(c *gin.Context) {
	cons, ok := s.consumer(c)
	if !ok {
		return
	}
	group, topic := c.Param("group"), c.Param("topic")
	if err := subscription(group, topic); err != nil {
		s.abortWithError(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	body, charge, ok := s.bodyOrAbort(ctx, c)
	if !ok {
		return
	}
	defer charge.Release()
	a, err := decodeAckBody(body)
	if err == nil {
		err = s.checkAckSize(&a)
	}
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	if err := cons.Ack(ctx, []consume.Ack{{Group: group, Topic: topic, Qid: a.qid, Success: a.success, Fail: a.fail}}); err != nil {
		s.abortWithError(c, fmt.Errorf("acking %s of %s for %s: %w", a.qid, topic, group, err))
		return
	}
	c.PureJSON(http.StatusOK, ackResponse{Acked: len(a.success) + len(a.fail)})
}

// stats serves GET /v1/groups/:group/stats[?topic=T].
func (s *Server) stats(c *gin.Context) {
	cons, ok := s.consumer(c)
	if !ok {
		return
	}
	group := c.Param("group")
	if err := topicname.ValidateGroup(group); err != nil {
		s.abortWithError(c, err)
		return
	}
	topic := c.Query("topic")
	if _, given := c.GetQuery("topic"); given {
		if err := topicname.Validate(topic); err != nil {
			s.abortWithError(c, err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	stats, err := cons.Stats(ctx, group, topic)
	if err != nil {
		s.abortWithError(c, fmt.Errorf("reading the stats of %s: %w", group, err))
		return
	}
	out := statsResponse{Stats: make([]statsJSON, len(stats))}
	for i, st := range stats {
		out.Stats[i] = statsJSON{
			Group: st.Group, Topic: st.Topic,
			ConsumeOffsets: nonNilOffsets(st.ConsumeOffsets), ProduceOffsets: nonNilOffsets(st.ProduceOffsets),
			Lag: st.Lag, BeyondEnd: st.BeyondEnd,
		}
	}
	c.PureJSON(http.StatusOK, out)
}

func nonNilOffsets(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

// fetch serves POST /v1/fetch: explicit offsets, outside any session.
func (s *Server) fetch(c *gin.Context) {
	cons, ok := s.consumer(c)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	body, charge, ok := s.bodyOrAbort(ctx, c)
	if !ok {
		return
	}
	defer charge.Release()
	req, err := decodeFetchBody(body)
	if err == nil {
		err = s.authorizeTopics(c, acl.Consume, req.offsets, req.group)
	}
	if err == nil && len(req.offsets) == 0 {
		err = s.authorize(c, acl.Consume, "", req.group) // the group's queues
	}
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	max, wait := s.pullLimits(cons, req.maxMessages, req.maxWaitMs)
	ctx, cancel = context.WithTimeout(c.Request.Context(), wait+s.opts.RequestTimeout)
	defer cancel()
	qms, err := cons.Fetch(ctx, req.group, req.cluster, req.offsets, max, wait)
	if err != nil {
		s.abortWithError(c, fmt.Errorf("fetching: %w", err))
		return
	}
	out := fetchResponse{Results: make([]fetchResult, len(qms))}
	for i, q := range qms {
		out.Results[i] = fetchResult{Topic: q.Topic, Qid: q.Qid, NextOffset: q.NextOffset, Messages: encodeConsumed(q.Messages)}
	}
	c.PureJSON(http.StatusOK, out)
}

// commit serves POST /v1/commit: stores a group's offsets, with no
// session and no tracking.
func (s *Server) commit(c *gin.Context) {
	cons, ok := s.consumer(c)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	body, charge, ok := s.bodyOrAbort(ctx, c)
	if !ok {
		return
	}
	defer charge.Release()
	req, err := decodeCommitBody(body)
	if err == nil {
		err = s.authorizeTopics(c, acl.Commit, req.offsets, req.group)
	}
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	if err := cons.Commit(ctx, req.cluster, req.group, req.offsets); err != nil {
		s.abortWithError(c, fmt.Errorf("committing offsets of %s: %w", req.group, err))
		return
	}
	s.audit(c, "offsets committed", acl.Commit, fmt.Sprintf("group %q offsets %v", req.group, req.offsets))
	c.PureJSON(http.StatusOK, commitResponse{Committed: true})
}
