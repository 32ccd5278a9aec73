package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/delay"
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
// message, produced sync (default) or spooled with ?mode=async; with
// x-delay, added as a delay message due that many seconds after the
// request arrived (mode does not matter then).
func (s *Server) kafkaSend(c *gin.Context) {
	now := time.Now()
	async, err := asyncMode(c)
	if err != nil {
		s.kafkaSendFail(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	body, charge, err := s.readBody(ctx, c)
	if err != nil {
		s.kafkaSendFail(c, err)
		return
	}
	defer charge.Release()
	topic, msg, delayText, err := decodeKafkaSend(body)
	if err == nil && delayText == "" {
		delayText = c.GetHeader(delayHeader)
	}
	if err == nil {
		op := acl.Produce
		if delayText != "" {
			op = acl.ProduceDelayed
		}
		err = s.authorize(c, op, topic, "")
	}
	if err == nil && delayText != "" {
		if s.opts.Delayer != nil {
			s.kafkaSendDelayed(ctx, c, now, topic, msg, delayText)
			return
		}
		err = sdk.Errorf(sdk.CodeIllegal, "%s: delay messages are not enabled", delayHeader)
	}
	if err == nil {
		err = s.checkLimits([]produce.Message{msg})
	}
	if err == nil {
		err = s.opts.Quotas.Produce(ctx, 1, int64(msg.Size()))
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
	c.PureJSON(http.StatusOK, kafkaSendReply{Code: sdk.CodeOK, Msg: "ok"})
}

// kafkaSendDelayed adds msg as a delay message due delayText (x-delay)
// seconds after now, and answers as kafkaSend does.
func (s *Server) kafkaSendDelayed(ctx context.Context, c *gin.Context, now time.Time, topic string, msg produce.Message, delayText string) {
	dl := s.opts.Delayer
	wait, err := parseDelaySeconds(delayText)
	if err == nil && wait > dl.Max() {
		err = illegalf("%s: %s seconds is beyond delay.max (%s)", delayHeader, truncate(delayText), dl.Max())
	}
	if err == nil {
		err = s.checkLimits([]produce.Message{msg})
	}
	m := delay.Message{Topic: topic, Msg: msg, DueAt: now.Add(wait)}
	if err == nil {
		err = m.Validate(now, dl.Max())
	}
	if err == nil {
		err = s.opts.Quotas.Produce(ctx, 1, int64(msg.Size()))
	}
	if err != nil {
		s.kafkaSendFail(c, err)
		return
	}
	res, err := dl.Add(ctx, []delay.Message{m})
	switch {
	case err != nil:
	case len(res) != 1:
		err = fmt.Errorf("%d results for 1 message", len(res))
	default:
		err = res[0].Err
	}
	if err != nil {
		s.kafkaSendFail(c, fmt.Errorf("adding a delay message to %s: %w", topic, err))
		return
	}
	c.PureJSON(http.StatusOK, kafkaSendReply{Code: sdk.CodeOK, Msg: "ok"})
}

// parseDelaySeconds parses x-delay: a decimal number of seconds >= 0, like
// 10 or 1.5, rounded to the millisecond. A delay too long for a
// time.Duration comes out as the longest one, beyond any delay.max.
func parseDelaySeconds(text string) (time.Duration, error) {
	t := strings.TrimSpace(text)
	if rest, ok := strings.CutPrefix(t, "-"); ok && isDecimal(rest) {
		return 0, illegalf("%s: must not be negative; got %q", delayHeader, truncate(text))
	}
	if !isDecimal(t) {
		return 0, illegalf("%s: must be a number of seconds, like 10 or 1.5; got %q", delayHeader, truncate(text))
	}
	secs, err := strconv.ParseFloat(t, 64)
	ms := math.Round(secs * 1000)
	if err != nil || ms > float64(maxDurationMs) {
		return time.Duration(math.MaxInt64), nil
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// isDecimal reports whether s is digits with at most one decimal point
// among them: "10", "1.5", ".5", "5.".
func isDecimal(s string) bool {
	digits, points := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			points++
		default:
			return false
		}
	}
	return digits > 0 && points <= 1
}

func (s *Server) kafkaSendFail(c *gin.Context, err error) {
	code, msg := s.clientError(err)
	setRetryAfter(c, err)
	abortJSON(c, statusOf(code), kafkaSendReply{Code: code, Msg: msg, Error: &errorDetail{Code: code, Message: msg}})
}

// decodeKafkaSend decodes mqproxy's body strictly: unknown fields, a
// missing payload or an illegal topic are code 11 naming the field. The
// body's headers become message headers in name order, except x-delay,
// which it returns apart.
func decodeKafkaSend(body []byte) (topic string, msg produce.Message, delayText string, err error) {
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
			delayText = req.Headers[k]
			continue
		}
		msg.Headers = append(msg.Headers, sdk.Header{Key: k, Value: []byte(req.Headers[k])})
	}
	return req.Topic, msg, delayText, nil
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
