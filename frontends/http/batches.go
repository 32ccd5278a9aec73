package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/mqgate/mqgate/core/consume"
)

// BatchSubscription names the (group, topic) whose batch-id cursor the
// root routes /info, /fetch_new, /fetch_old and /ack serve
// (http.batch_default), as ape_dts serves its one stream.
type BatchSubscription struct {
	Group, Topic string
}

// Formats of the batch-id routes' data.
const (
	formatJSON = "json"
	formatAvro = "avro"
)

// batchResponse is the 200 body of fetch_new and fetch_old: data is
// consumedList, or avroRecords with format=avro.
type batchResponse struct {
	Data    any   `json:"data"`
	BatchID int64 `json:"batch_id"`
}

// batchAckResponse is the 200 body of POST ack.
type batchAckResponse struct {
	AckedBatchID int64 `json:"acked_batch_id"`
}

// subscriptionOf says which (group, topic) a batch-id request is for.
type subscriptionOf func(c *gin.Context) (group, topic string)

// pathSubscription reads the group and topic of a
// /v1/groups/:group/topics/:topic/batches/ route.
func pathSubscription(c *gin.Context) (string, string) {
	return c.Param("group"), c.Param("topic")
}

// defaultSubscription is Options.BatchDefault, for the root routes.
func (s *Server) defaultSubscription(*gin.Context) (string, string) {
	return s.opts.BatchDefault.Group, s.opts.BatchDefault.Topic
}

// batchCursor checks what every batch-id route needs: a consumer and a
// valid subscription.
func (s *Server) batchCursor(c *gin.Context, sub subscriptionOf) (cons consume.Consumer, group, topic string, ok bool) {
	cons, ok = s.consumer(c)
	if !ok {
		return nil, "", "", false
	}
	group, topic = sub(c)
	if err := subscription(group, topic); err != nil {
		s.abortWithError(c, err)
		return nil, "", "", false
	}
	return cons, group, topic, true
}

// batchInfo serves GET info: {"acked_batch_id": A, "sent_batch_id": S}.
func (s *Server) batchInfo(sub subscriptionOf) gin.HandlerFunc {
	return func(c *gin.Context) {
		cons, group, topic, ok := s.batchCursor(c, sub)
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
		defer cancel()
		info, err := cons.BatchInfo(ctx, group, topic)
		if err != nil {
			s.abortWithError(c, fmt.Errorf("reading the batch cursor of %s on %s: %w", group, topic, err))
			return
		}
		c.PureJSON(http.StatusOK, info)
	}
}

// batchFetchNew serves GET fetch_new?batch_size=N[&ack_batch_id=K][&format=avro]:
// acks K first when given, then answers the next batch of up to N
// messages (N capped to Consumer.MaxBatch).
func (s *Server) batchFetchNew(sub subscriptionOf) gin.HandlerFunc {
	return func(c *gin.Context) {
		cons, group, topic, ok := s.batchCursor(c, sub)
		if !ok {
			return
		}
		format, err := batchFormat(c)
		if err != nil {
			s.abortWithError(c, err)
			return
		}
		size, err := queryInt(c, "batch_size", true)
		if err == nil && *size < 1 {
			err = illegalf("batch_size: must be >= 1; got %d", *size)
		}
		if err != nil {
			s.abortWithError(c, err)
			return
		}
		ackID, err := queryInt(c, "ack_batch_id", false)
		if err != nil {
			s.abortWithError(c, err)
			return
		}
		n := int(min(*size, int64(max(cons.MaxBatch(), 1))))
		ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
		defer cancel()
		id, msgs, err := cons.FetchNew(ctx, group, topic, n, ackID)
		if err != nil {
			s.abortWithError(c, fmt.Errorf("fetching a new batch of %s on %s: %w", group, topic, err))
			return
		}
		c.PureJSON(http.StatusOK, batchResponse{Data: batchData(format, topic, msgs), BatchID: id})
	}
}

// batchFetchOld serves GET fetch_old?old_batch_id=K[&format=avro]: batch K
// again, the same messages.
func (s *Server) batchFetchOld(sub subscriptionOf) gin.HandlerFunc {
	return func(c *gin.Context) {
		cons, group, topic, ok := s.batchCursor(c, sub)
		if !ok {
			return
		}
		format, err := batchFormat(c)
		if err != nil {
			s.abortWithError(c, err)
			return
		}
		id, err := queryInt(c, "old_batch_id", true)
		if err != nil {
			s.abortWithError(c, err)
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
		defer cancel()
		msgs, err := cons.FetchOld(ctx, group, topic, *id)
		if err != nil {
			s.abortWithError(c, fmt.Errorf("fetching batch %d of %s on %s again: %w", *id, group, topic, err))
			return
		}
		c.PureJSON(http.StatusOK, batchResponse{Data: batchData(format, topic, msgs), BatchID: *id})
	}
}

// batchAck serves POST ack with {"ack_batch_id": K}: acks every batch up
// to K.
func (s *Server) batchAck(sub subscriptionOf) gin.HandlerFunc {
	return func(c *gin.Context) {
		cons, group, topic, ok := s.batchCursor(c, sub)
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
		id, err := decodeBatchAckBody(body)
		if err != nil {
			s.abortWithError(c, err)
			return
		}
		acked, err := cons.AckBatch(ctx, group, topic, id)
		if err != nil {
			s.abortWithError(c, fmt.Errorf("acking batch %d of %s on %s: %w", id, group, topic, err))
			return
		}
		c.PureJSON(http.StatusOK, batchAckResponse{AckedBatchID: acked})
	}
}

// messageSchemaJSON serves GET /v1/schemas/message.avsc.
func (s *Server) messageSchemaJSON(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", []byte(messageSchema))
}

// batchData is msgs as format asks: message objects, or Avro records.
func batchData(format, topic string, msgs []consume.Message) any {
	if format != formatAvro {
		return consumedList(msgs)
	}
	recs := make(avroRecords, len(msgs))
	for i := range msgs {
		recs[i] = appendMessageAvro(nil, topic, &msgs[i])
	}
	return recs
}

// batchFormat reads the format query parameter: json (the default) or
// avro.
func batchFormat(c *gin.Context) (string, error) {
	switch f := c.Query("format"); f {
	case "", formatJSON:
		return formatJSON, nil
	case formatAvro:
		return formatAvro, nil
	default:
		return "", illegalf("format: must be json or avro; got %q", truncate(f))
	}
}

// queryInt reads the integer query parameter name: nil when it is absent
// and not required.
func queryInt(c *gin.Context, name string, required bool) (*int64, error) {
	v, given := c.GetQuery(name)
	if !given {
		if required {
			return nil, illegalf("%s: required", name)
		}
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, illegalf("%s: must be an integer; got %q", name, truncate(v))
	}
	return &n, nil
}
