package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// delayHeader is mqproxy's delay request, in seconds: an HTTP header, or a
// key of the body's headers as mqproxy's own examples send it.
const delayHeader = "x-delay"

// kafkaSendRequest is mqproxy's body: {"headers": {...}, "topic": "t",
// "payload": "..."}.
type kafkaSendRequest struct {
	Headers map[string]string `json:"headers"`
	Topic   string            `json:"topic"`
	Payload *string           `json:"payload"`
}

// kafkaSendReply is mqproxy's answer. Errors also carry the standard error
// body, so both mqproxy clients (reading code) and mqgate clients (reading
// error) understand them.
type kafkaSendReply struct {
	Code  sdk.Code     `json:"code"`
	Msg   string       `json:"msg"`
	Error *errorDetail `json:"error,omitempty"`
}

// kafkaSend serves POST /v1/kafka/send, mqproxy's produce route: one
// message, produced sync (default) or spooled with ?mode=async.
func (s *Server) kafkaSend(c *gin.Context) {
	async, err := asyncMode(c)
	if err != nil {
		s.kafkaSendFail(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	body, err := s.readBody(ctx, c)
	if err != nil {
		s.kafkaSendFail(c, err)
		return
	}
	topic, msg, delay, err := decodeKafkaSend(body)
	if err == nil && delay == "" {
		delay = c.GetHeader(delayHeader)
	}
	if err == nil && delay != "" {
		err = sdk.Errorf(sdk.CodeIllegal, "%s: delay messages are not enabled", delayHeader)
	}
	if err == nil {
		err = s.checkLimits([]produce.Message{msg})
	}
	if err != nil {
		s.kafkaSendFail(c, err)
		return
	}
	if async {
		err = s.producer.ProduceAsync(ctx, topic, []produce.Message{msg})
	} else {
		var res []sdk.ProduceResult
		res, err = s.producer.Produce(ctx, topic, []produce.Message{msg})
		if err == nil && len(res) == 1 {
			err = res[0].Err
		}
	}
	if err != nil {
		s.kafkaSendFail(c, fmt.Errorf("producing to %s: %w", topic, err))
		return
	}
	c.JSON(http.StatusOK, kafkaSendReply{Code: sdk.CodeOK, Msg: "ok"})
}

func (s *Server) kafkaSendFail(c *gin.Context, err error) {
	code, msg := s.clientError(err)
	c.AbortWithStatusJSON(statusOf(code), kafkaSendReply{Code: code, Msg: msg, Error: &errorDetail{Code: code, Message: msg}})
}

// decodeKafkaSend decodes mqproxy's body strictly: unknown fields, a
// missing payload or an illegal topic are code 11 naming the field. The
// body's headers become message headers in name order, except x-delay,
// which it returns apart.
func decodeKafkaSend(body []byte) (topic string, msg produce.Message, delay string, err error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return "", msg, "", illegalf(`request body is empty; want {"topic": "...", "payload": "...", "headers": {...}}`)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req kafkaSendRequest
	if err := dec.Decode(&req); err != nil {
		return "", msg, "", kafkaSendDecodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", msg, "", illegalf("unexpected data after the JSON object")
	}
	if err := topicname.Validate(req.Topic); err != nil {
		return "", msg, "", err
	}
	if req.Payload == nil {
		return "", msg, "", illegalf("payload is required")
	}
	msg = produce.Message{Value: []byte(*req.Payload), Partition: sdk.PartitionHash}
	names := make([]string, 0, len(req.Headers))
	for k := range req.Headers {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if strings.EqualFold(k, delayHeader) {
			delay = req.Headers[k]
			continue
		}
		msg.Headers = append(msg.Headers, sdk.Header{Key: k, Value: []byte(req.Headers[k])})
	}
	return req.Topic, msg, delay, nil
}

func kafkaSendDecodeError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return illegalf("malformed JSON at byte offset %d: %v", syntax.Offset, err)
	case errors.As(err, &typ):
		return illegalf("%s: must be %s", typ.Field, kafkaSendFieldType(typ.Field))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return illegalf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return illegalf("malformed JSON: the body ends early")
	}
	return illegalf("request body must be a JSON object: %v", err)
}

func kafkaSendFieldType(field string) string {
	switch {
	case field == "headers":
		return "an object of string values"
	case strings.HasPrefix(field, "headers"):
		return "a string"
	}
	return "a string"
}
