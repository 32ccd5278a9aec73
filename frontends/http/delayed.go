package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mqgate/mqgate/core/delay"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// errDelayNotEnabled answers the delay routes when Options.Delayer is nil.
var errDelayNotEnabled = sdk.Errorf(sdk.CodeIllegal, "delay messages are not enabled")

// delayedResponse is the 200 body of POST /v1/topics/:topic/delayed for
// one message.
type delayedResponse struct {
	ID          string `json:"id"`
	DeliverAtMs int64  `json:"deliver_at_ms"`
}

// delayedBatchResponse is the 200 body of POST /v1/topics/:topic/delayed
// for {"messages": [...]}.
type delayedBatchResponse struct {
	Results []delayedResult `json:"results"`
}

// delayedResult is one message's outcome in a batch: its id and due time
// when it was added (code 0), code and message when it failed (with the
// id when one is known).
type delayedResult struct {
	ID          string   `json:"id,omitempty"`
	DeliverAtMs *int64   `json:"deliver_at_ms,omitempty"`
	Code        sdk.Code `json:"code"`
	Message     string   `json:"message,omitempty"`
}

// cancelResponse is the 200 body of DELETE /v1/topics/:topic/delayed/:id.
type cancelResponse struct {
	ID        string `json:"id"`
	Cancelled bool   `json:"cancelled"`
}

// addDelayed serves POST /v1/topics/:topic/delayed. Bad input, a due time
// beyond delay.max among it, is refused before the Delayer is called, so
// it adds nothing. delay_ms counts from the arrival of the request.
//
// A call error from the Delayer is answered with its code's status and
// error body. One message is answered {"id", "deliver_at_ms"}, or its
// error. A batch is answered as the produce route answers one: the error
// when every message failed with one and the same code, else 200 with one
// result per message in request order.
func (s *Server) addDelayed(c *gin.Context) {
	now := time.Now()
	dl := s.opts.Delayer
	if dl == nil {
		s.abortWithError(c, errDelayNotEnabled)
		return
	}
	topic := c.Param("topic")
	if err := topicname.Validate(topic); err != nil {
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
	msgs, batch, err := decodeDelayed(body, now, dl.Max())
	if err == nil {
		err = s.checkDelayed(topic, msgs, batch, now, dl.Max())
	}
	if err == nil {
		err = s.opts.Quotas.Produce(ctx, len(msgs), delayedSize(msgs))
	}
	if err != nil {
		s.abortWithError(c, err)
		return
	}

	results, err := dl.Add(ctx, msgs)
	if err == nil && len(results) != len(msgs) {
		err = fmt.Errorf("%d results for %d messages", len(results), len(msgs))
	}
	if err != nil {
		s.abortWithError(c, fmt.Errorf("adding delay messages to %s: %w", topic, err))
		return
	}
	if !batch {
		r := results[0]
		if r.Err != nil {
			s.abortWithError(c, fmt.Errorf("adding a delay message to %s: %w", topic, r.Err))
			return
		}
		c.PureJSON(http.StatusOK, delayedResponse{ID: r.ID, DeliverAtMs: deliverAtMs(r, &msgs[0])})
		return
	}

	out := make([]delayedResult, len(results))
	failed, sameCode := 0, true
	for i, r := range results {
		if r.Err == nil {
			at := deliverAtMs(r, &msgs[i])
			out[i] = delayedResult{ID: r.ID, DeliverAtMs: &at, Code: sdk.CodeOK}
			continue
		}
		code, msg := s.clientError(r.Err)
		out[i] = delayedResult{ID: r.ID, Code: code, Message: msg}
		if failed > 0 && code != out[0].Code {
			sameCode = false
		}
		failed++
	}
	if failed == len(out) && sameCode {
		abortWithCode(c, out[0].Code, out[0].Message)
		return
	}
	c.PureJSON(http.StatusOK, delayedBatchResponse{Results: out})
}

// checkDelayed sets the topic of decoded delayed messages and refuses them
// over the HTTP limits or when (*delay.Message).Validate does, naming the
// message of a batch.
func (s *Server) checkDelayed(topic string, msgs []delay.Message, batch bool, now time.Time, max time.Duration) error {
	if err := s.checkBatchSize(len(msgs)); err != nil {
		return err
	}
	for i := range msgs {
		m := &msgs[i]
		m.Topic = topic
		if err := s.checkMessageSize(i, &m.Msg); err != nil {
			return err
		}
		if err := m.Validate(now, max); err != nil {
			if batch {
				return inBatch(i, err)
			}
			return err
		}
	}
	return nil
}

// delayedSize is what msgs count against their principal's
// bytes_per_second: the sum of the Size of the messages they deliver.
func delayedSize(msgs []delay.Message) int64 {
	var n int64
	for i := range msgs {
		n += int64(msgs[i].Msg.Size())
	}
	return n
}

// inBatch names message i of a batch in front of an *sdk.Error's message:
// "messages[3].loop.times: ..." for one naming a loop field, else
// "messages[3]: ...".
func inBatch(i int, err error) error {
	var e *sdk.Error
	if !errors.As(err, &e) {
		return err
	}
	sep := ": "
	if strings.HasPrefix(e.Msg, "loop.") {
		sep = "."
	}
	return &sdk.Error{Code: e.Code, Msg: "messages[" + strconv.Itoa(i) + "]" + sep + e.Msg}
}

// deliverAtMs is when r's message fires, in milliseconds since the epoch:
// the Delayer's DueAt, or the requested one when the Delayer left it zero.
func deliverAtMs(r delay.Result, m *delay.Message) int64 {
	if r.DueAt.IsZero() {
		return m.DueAt.UnixMilli()
	}
	return r.DueAt.UnixMilli()
}

// cancelDelayed serves DELETE /v1/topics/:topic/delayed/:id. A cancel is
// idempotent: it answers 200 whether or not id was ever added, and
// promises that nothing with id on topic is delivered after it.
func (s *Server) cancelDelayed(c *gin.Context) {
	dl := s.opts.Delayer
	if dl == nil {
		s.abortWithError(c, errDelayNotEnabled)
		return
	}
	topic := c.Param("topic")
	if err := topicname.Validate(topic); err != nil {
		s.abortWithError(c, err)
		return
	}
	id := c.Param("id")
	if id == "" {
		s.abortWithError(c, illegalf("id: required to cancel"))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	// A cancel is a record the gateway writes, of the id's size.
	if err := s.opts.Quotas.Produce(ctx, 1, int64(len(id))); err != nil {
		s.abortWithError(c, err)
		return
	}
	if err := dl.Cancel(ctx, topic, id); err != nil {
		s.abortWithError(c, fmt.Errorf("cancelling delay message %q on %s: %w", id, topic, err))
		return
	}
	c.PureJSON(http.StatusOK, cancelResponse{ID: id, Cancelled: true})
}
