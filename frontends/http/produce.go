package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// produceResponse is the 200 body of POST /v1/topics/:topic/messages.
type produceResponse struct {
	Results []produceResult `json:"results"`
}

// produceResult is one message's outcome: partition and offset when it was
// produced (code 0), code and message when it failed.
type produceResult struct {
	Partition *int32   `json:"partition,omitempty"`
	Offset    *int64   `json:"offset,omitempty"`
	Code      sdk.Code `json:"code"`
	Message   string   `json:"message,omitempty"`
}

// produce serves POST /v1/topics/:topic/messages. Bad input is refused
// before the producer is called, so it changes nothing.
//
// A call error from the producer is answered with its code's status and
// error body. Otherwise:
//   - when every message failed with one and the same code, the answer is
//     that code's status with the first failure's error body, as if the call
//     had failed (a single failed message is answered this way);
//   - else the answer is 200 with one result per message in request order,
//     and a failed message's result carries its code and message instead of
//     partition and offset: a client must check every result's code.
func (s *Server) produce(c *gin.Context) {
	topic := c.Param("topic")
	if err := topicname.Validate(topic); err != nil {
		s.abortWithError(c, err)
		return
	}
	async, err := asyncMode(c)
	if err != nil {
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
	msgs, err := decodeProduceBody(c.Request, body, bodyLimits{
		maxMessages: s.opts.MaxBatchMessages,
		maxDecoded:  s.opts.MaxBodyBytes,
		reserve:     s.growCharge(ctx, &charge),
	})
	if err == nil {
		err = s.checkLimits(msgs)
	}
	if err == nil {
		err = s.opts.Quotas.Produce(ctx, len(msgs), sizeOf(msgs))
	}
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	if async {
		if err := s.producer.ProduceAsync(ctx, topic, msgs); err != nil {
			s.abortWithError(c, fmt.Errorf("spooling for %s: %w", topic, err))
			return
		}
		c.PureJSON(http.StatusAccepted, asyncResponse{Accepted: len(msgs)})
		return
	}

	results, released, err := s.produceReleasing(ctx, topic, msgs)
	if released {
		// msgs share body's bytes; nothing holds them now.
		defer recycleBody(body)
	}
	if err != nil {
		s.abortWithError(c, fmt.Errorf("producing to %s: %w", topic, err))
		return
	}
	if len(results) != len(msgs) {
		s.abortWithError(c, fmt.Errorf("producing to %s: %d results for %d messages", topic, len(results), len(msgs)))
		return
	}

	out := make([]produceResult, len(results))
	failed, sameCode := 0, true
	for i := range results {
		// A pointer into results: the result's Partition and Offset are
		// pointed to without a copy of each escaping to the heap.
		r := &results[i]
		if r.Err == nil {
			out[i] = produceResult{Partition: &r.Partition, Offset: &r.Offset, Code: sdk.CodeOK}
			continue
		}
		code, msg := s.clientError(r.Err)
		out[i] = produceResult{Code: code, Message: msg}
		if failed > 0 && code != out[0].Code {
			sameCode = false
		}
		failed++
	}
	if failed == len(out) && sameCode {
		abortWithCode(c, out[0].Code, out[0].Message)
		return
	}
	sendAppended(c, func(b []byte) []byte { return appendProduceAnswer(b, out) })
}

// releasingProducer is a Producer that also says whether nothing holds a
// produce's messages any more once it returns (*router.Router is one):
// only then is the request body's buffer, which they share, reused.
type releasingProducer interface {
	ProduceReleasing(ctx context.Context, topic string, msgs []produce.Message) (results []sdk.ProduceResult, released bool, err error)
}

// produceReleasing produces msgs, saying whether their bytes are free to
// reuse: never with a producer that does not say.
func (s *Server) produceReleasing(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, bool, error) {
	if p, ok := s.producer.(releasingProducer); ok {
		return p.ProduceReleasing(ctx, topic, msgs)
	}
	results, err := s.producer.Produce(ctx, topic, msgs)
	return results, false, err
}

// appendProduceAnswer appends the 200 body of a produce, the bytes
// encoding/json writes for produceResponse{Results: results}.
func appendProduceAnswer(b []byte, results []produceResult) []byte {
	b = append(b, `{"results":[`...)
	for i := range results {
		r := &results[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		if r.Partition != nil {
			b = append(b, `"partition":`...)
			b = strconv.AppendInt(b, int64(*r.Partition), 10)
			b = append(b, ',')
		}
		if r.Offset != nil {
			b = append(b, `"offset":`...)
			b = strconv.AppendInt(b, *r.Offset, 10)
			b = append(b, ',')
		}
		b = append(b, `"code":`...)
		b = strconv.AppendInt(b, int64(r.Code), 10)
		if r.Message != "" {
			b = append(b, `,"message":`...)
			b = appendJSONString(b, r.Message, false)
		}
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}

// asyncResponse is the 202 body of an async produce: every message is
// durable in the spool and will be delivered.
type asyncResponse struct {
	Accepted int `json:"accepted"`
}

// asyncMode reads the mode query parameter: sync (the default) or async.
func asyncMode(c *gin.Context) (bool, error) {
	if c.Request.URL.RawQuery == "" {
		return false, nil // without parsing an empty query into a map
	}
	switch mode := c.Query("mode"); mode {
	case "", "sync":
		return false, nil
	case "async":
		return true, nil
	default:
		return false, sdk.Errorf(sdk.CodeIllegal, "mode: must be sync or async; got %q", truncate(mode))
	}
}

// checkLimits refuses a request over http.max_batch_messages or holding a
// message over http.max_message_bytes.
func (s *Server) checkLimits(msgs []produce.Message) error {
	if err := s.checkBatchSize(len(msgs)); err != nil {
		return err
	}
	for i := range msgs {
		if err := s.checkMessageSize(i, &msgs[i]); err != nil {
			return err
		}
	}
	return nil
}

// checkBatchSize refuses n messages over http.max_batch_messages.
func (s *Server) checkBatchSize(n int) error {
	if n > s.opts.MaxBatchMessages {
		return sdk.Errorf(sdk.CodeTooLarge, "%d messages exceed http.max_batch_messages (%d)", n, s.opts.MaxBatchMessages)
	}
	return nil
}

// checkMessageSize refuses message i of a request when it is over
// http.max_message_bytes.
func (s *Server) checkMessageSize(i int, m *produce.Message) error {
	if n := m.Size(); n > s.opts.MaxMessageBytes {
		return sdk.Errorf(sdk.CodeTooLarge, "message %d is %d bytes, over http.max_message_bytes (%d)", i, n, s.opts.MaxMessageBytes)
	}
	return nil
}

// sizeOf is what msgs count against their principal's bytes_per_second:
// the sum of their Size.
func sizeOf(msgs []produce.Message) int64 {
	var n int64
	for i := range msgs {
		n += int64(msgs[i].Size())
	}
	return n
}

// truncate shortens a client-sent string for an error message.
func truncate(s string) string {
	const limit = 40
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
