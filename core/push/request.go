package push

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/transform"
)

// Request headers, as docs/push.md lists them.
const (
	HeaderTopic       = "X-Mqgate-Topic"
	HeaderKey         = "X-Mqgate-Key"
	HeaderKeyBase64   = "X-Mqgate-Key-Base64"
	HeaderQid         = "X-Mqgate-Qid"
	HeaderOffset      = "X-Mqgate-Offset"
	HeaderTags        = "X-Mqgate-Tags"
	HeaderAttempt     = "X-Mqgate-Attempt"
	HeaderDelayID     = "X-Mqgate-Delay-Id"
	HeaderTimestampMs = "X-Mqgate-Timestamp-Ms"
	// HeaderPropPrefix starts one header per message header (property).
	HeaderPropPrefix = "X-Mqgate-Prop-"
	// HeaderPropEncoded carries, one value each, the message headers that
	// cannot be HTTP headers: base64(name) ":" base64(value).
	HeaderPropEncoded = "X-Mqgate-Prop-Encoded"
)

// delayIDHeader is the message header the delay service sets on what it
// delivers (core/delay).
const delayIDHeader = "mqgate-delay-id"

// envelope is the JSON body of envelope: json.
type envelope struct {
	Topic       string            `json:"topic"`
	Qid         string            `json:"qid"`
	Offset      int64             `json:"offset"`
	Key         *string           `json:"key,omitempty"`
	KeyBase64   []byte            `json:"key_base64,omitempty"`
	Value       *string           `json:"value,omitempty"`
	ValueBase64 []byte            `json:"value_base64,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Tags        string            `json:"tags,omitempty"`
	TimestampMs int64             `json:"timestamp_ms,omitempty"`
	Attempt     int               `json:"attempt"`
	DelayID     string            `json:"delay_id,omitempty"`
}

func delayID(m *consume.Message) string {
	for _, h := range m.Headers {
		if h.Key == delayIDHeader {
			return string(h.Value)
		}
	}
	return ""
}

func input(m *consume.Message) *transform.Input {
	return &transform.Input{Topic: m.Topic, Qid: m.Qid, Offset: m.Offset, Key: m.Key, Value: m.Value,
		Tags: m.Tags, Headers: m.Headers, Timestamp: m.Timestamp}
}

// payload is what one attempt of a message sends.
type payload struct {
	body  []byte
	ctype string
	extra map[string]string // headers the transform set
	ddmq  *ddmqRequest      // envelope ddmq only
}

// payload builds the attempt's request content. An error is the
// message's fault: it is permanent.
func (s *subscription) payload(it *item) (*payload, error) {
	body, ctype, extra, err := s.body(&it.msg, it.attempt)
	if err != nil {
		return nil, err
	}
	p := &payload{body: body, ctype: ctype, extra: extra}
	if s.ddmq != nil {
		if p.ddmq, err = s.ddmq.build(&it.msg, it.tr.origin, body); err != nil {
			return nil, fmt.Errorf("ddmq: %w", err)
		}
		p.ctype = formContentType
	}
	return p, nil
}

// body returns what is sent for m and its content type, with the
// transform applied. A transform that fails is the message's fault: the
// error is permanent.
func (s *subscription) body(m *consume.Message, attempt int) (body []byte, ctype string, extra map[string]string, err error) {
	body, ctype = m.Value, "application/octet-stream"
	if s.transform != nil {
		out, err := s.transform.Apply(input(m))
		if err != nil {
			return nil, "", nil, fmt.Errorf("transform: %w", err)
		}
		if out.HasBody {
			body, ctype = out.Body, "text/plain; charset=utf-8"
			if json.Valid(body) {
				ctype = "application/json"
			}
		}
		extra = out.Headers
	}
	if s.cfg.Envelope != "json" {
		return body, ctype, extra, nil
	}
	e := envelope{Topic: m.Topic, Qid: m.Qid, Offset: m.Offset, Tags: m.Tags, Attempt: attempt, DelayID: delayID(m)}
	if !m.Timestamp.IsZero() {
		e.TimestampMs = m.Timestamp.UnixMilli()
	}
	if m.Key != nil {
		if utf8.Valid(m.Key) {
			k := string(m.Key)
			e.Key = &k
		} else {
			e.KeyBase64 = m.Key
		}
	}
	if utf8.Valid(body) {
		v := string(body)
		e.Value = &v
	} else {
		e.ValueBase64 = body
	}
	if len(m.Headers) > 0 {
		e.Headers = make(map[string]string, len(m.Headers))
		for _, h := range m.Headers {
			e.Headers[h.Key] = string(h.Value)
		}
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, "", nil, fmt.Errorf("encoding the json envelope: %w", err)
	}
	return b, "application/json", extra, nil
}

// newRequest builds the request of an attempt of it to rawURL with p;
// requests counts those sent for it before. A URL that is not one of the
// subscription's own targets (a message's carrera_http_callback_url) gets
// neither the configured headers nor host_header: a producer must not be
// able to send the operator's credentials where it likes.
func (s *subscription) newRequest(ctx context.Context, rawURL string, own bool, it *item, p *payload, requests int) (*http.Request, error) {
	m, body := &it.msg, p.body
	if p.ddmq != nil {
		rawURL, body = p.ddmq.target(rawURL), p.ddmq.body(requests)
		if len(rawURL) > maxDDMQURLBytes {
			return nil, fmt.Errorf("ddmq: the URL with its query is %d bytes, over the limit of %d", len(rawURL), maxDDMQURLBytes)
		}
	}
	req, err := http.NewRequestWithContext(ctx, s.cfg.Method, rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	// A map sized for the headers to come, and the fixed headers' values
	// in one array: a request's headers cost a few allocations, not two
	// or three each.
	h := make(http.Header, fixedHeaders+len(m.Headers)+len(s.cfg.Headers)+len(p.extra))
	req.Header = h
	fixed := headerSetter{h: h, vals: make([]string, 0, fixedHeaders)}
	fixed.set("Content-Type", p.ctype)
	fixed.set("User-Agent", "mqgate-push")
	if s.cfg.Envelope == "raw" {
		fixed.set(HeaderTopic, m.Topic)
		if m.Key != nil {
			if validValue(m.Key) {
				fixed.set(HeaderKey, string(m.Key))
			} else {
				fixed.set(HeaderKeyBase64, base64.StdEncoding.EncodeToString(m.Key))
			}
		}
		if m.Tags != "" && validValue([]byte(m.Tags)) {
			fixed.set(HeaderTags, m.Tags)
		}
		if id := delayID(m); id != "" && validValue([]byte(id)) {
			fixed.set(HeaderDelayID, id)
		}
		if !m.Timestamp.IsZero() {
			fixed.set(HeaderTimestampMs, strconv.FormatInt(m.Timestamp.UnixMilli(), 10))
		}
		for _, p := range m.Headers {
			if httpguts.ValidHeaderFieldName(p.Key) && validValue(p.Value) {
				h.Add(HeaderPropPrefix+p.Key, string(p.Value))
			} else {
				h.Add(HeaderPropEncoded, base64.StdEncoding.EncodeToString([]byte(p.Key))+":"+base64.StdEncoding.EncodeToString(p.Value))
			}
		}
	}
	fixed.set(HeaderQid, m.Qid)
	fixed.set(HeaderOffset, strconv.FormatInt(m.Offset, 10))
	fixed.set(HeaderAttempt, strconv.Itoa(it.attempt))
	if p.ddmq != nil {
		// The message's own headers first: the config's win over them.
		for _, kv := range p.ddmq.headers {
			h.Add(kv[0], kv[1])
		}
	}
	if own {
		for k, v := range s.cfg.Headers {
			h.Set(k, v)
		}
	}
	for k, v := range p.extra {
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, fmt.Errorf("transform header %s: the value is not a valid HTTP header value", k)
		}
		h.Set(k, v)
	}
	if s.cfg.HostHeader != "" && own {
		req.Host = s.cfg.HostHeader
	}
	return req, nil
}

// fixedHeaders is how many headers of a request newRequest sets by name:
// Content-Type, User-Agent and the X-Mqgate- ones.
const fixedHeaders = 10

// headerSetter sets headers whose names are canonical already (constants),
// their values sharing one array.
type headerSetter struct {
	h    http.Header
	vals []string
}

func (f *headerSetter) set(name, v string) {
	f.vals = append(f.vals, v)
	n := len(f.vals)
	f.h[name] = f.vals[n-1 : n : n]
}

// validValue reports whether v can be sent as an HTTP header value as it
// is: no control characters, no leading or trailing space (which HTTP
// strips).
func validValue(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	if v[0] == ' ' || v[0] == '\t' || v[len(v)-1] == ' ' || v[len(v)-1] == '\t' {
		return false
	}
	return httpguts.ValidHeaderFieldValue(string(v)) && utf8.Valid(v)
}

// verdict is what an attempt's outcome means for the message.
type verdict int

const (
	verdictOK     verdict = iota // done
	verdictRetry                 // try again after the backoff
	verdictReject                // the target refused it for good: dead-letter
)

// retryRule is how long a retried attempt waits, and what it counts
// against.
type retryRule int

const (
	// retryBackoff: retry.backoff, counted against retry.max. For
	// envelope ddmq, CProxy's errors: no reply, or a status other than 200.
	retryBackoff retryRule = iota
	// retryErrno: ddmq.retry_intervals (an errno DDMQ does not define).
	retryErrno
	// retrySoon: one second (errno 1000002).
	retrySoon
)

// outcome of one attempt.
type outcome struct {
	verdict verdict
	rule    retryRule // of a verdictRetry
	// slowDown asks the subscription to send slower (errno 1000000).
	slowDown bool
	// why describes a failure for logs, status and the dead-letter header.
	why string
	// unhealthy marks the target down: it did not answer, or answered
	// 502-504.
	unhealthy bool
	// unsent is true when the request never reached the target (the
	// connection was refused), so another target may be tried at once.
	unsent bool
}

// maxReplyBytes bounds the reply read to look for a status object; the
// rest is drained (up to drainBytes) so the connection can be reused.
const (
	maxReplyBytes = 64 << 10
	drainBytes    = 1 << 20
)

// classify maps a reply to a verdict: 2xx is delivered; 408, 429 and 5xx
// are retried; other statuses are rejected. A JSON reply {"status": ...}
// of SUCCESS, RETRY or DROP overrides the status code, as Dapr apps
// answer.
func classify(resp *http.Response) outcome {
	var reply []byte
	if resp.Body != http.NoBody { // net/http's client gives NoBody for an empty answer, the usual one
		reply, _ = io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes)) // a short read leaves the status code to decide
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBytes))
	code := resp.StatusCode
	if st, ok := replyStatus(reply); ok {
		switch st {
		case "SUCCESS":
			return outcome{verdict: verdictOK}
		case "RETRY":
			return outcome{verdict: verdictRetry, why: fmt.Sprintf("HTTP %d with status RETRY", code)}
		case "DROP":
			return outcome{verdict: verdictReject, why: fmt.Sprintf("HTTP %d with status DROP", code)}
		}
	}
	if code >= 200 && code < 300 {
		return outcome{verdict: verdictOK}
	}
	why := replyWhy(code, reply)
	switch {
	case code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout:
		return outcome{verdict: verdictRetry, why: why, unhealthy: true}
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return outcome{verdict: verdictRetry, why: why}
	default:
		return outcome{verdict: verdictReject, why: why}
	}
}

// replyStatus finds the status of a JSON reply {"status": "..."}.
func replyStatus(reply []byte) (string, bool) {
	reply = bytes.TrimSpace(reply)
	if len(reply) == 0 || reply[0] != '{' {
		return "", false
	}
	var r struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(reply, &r) != nil {
		return "", false
	}
	switch st := strings.ToUpper(r.Status); st {
	case "SUCCESS", "RETRY", "DROP":
		return st, true
	}
	return "", false
}

// roundTrip sends req as an http.Client without redirects, cookies or a
// timeout of its own would (the request's context bounds it), but
// straight through t: Client.Do copies every request's headers for
// redirects it would follow, a push never does (a 3xx is an answer, and
// rejects), and that copy was a twentieth of a push gateway's CPU. What
// Client.Do adds that a push needs is kept: credentials in the target's
// URL become Basic authorization unless the request has its own, and
// errors name the method and the URL, its password masked as Client.Do
// masks it.
func roundTrip(t http.RoundTripper, req *http.Request) (*http.Response, error) {
	if u := req.URL.User; u != nil && req.Header.Get("Authorization") == "" {
		password, _ := u.Password()
		req.SetBasicAuth(u.Username(), password)
	}
	resp, err := t.RoundTrip(req)
	if err != nil {
		op := req.Method[:1] + strings.ToLower(req.Method[1:]) // "Post", as Client.Do says
		return nil, &url.Error{Op: op, URL: maskPassword(req.URL), Err: err}
	}
	return resp, nil
}

// maskPassword is u with its password, if any, written as ***, as
// Client.Do writes it in errors.
func maskPassword(u *url.URL) string {
	if _, ok := u.User.Password(); ok {
		return strings.Replace(u.String(), u.User.String()+"@", u.User.Username()+":***@", 1)
	}
	return u.String()
}

// transportOutcome classifies an attempt that got no reply.
func transportOutcome(err error, ctxErr error) outcome {
	var op *net.OpError
	switch {
	case errors.Is(ctxErr, context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return outcome{verdict: verdictRetry, why: "timed out: " + err.Error(), unhealthy: true}
	case errors.As(err, &op) && op.Op == "dial":
		return outcome{verdict: verdictRetry, why: err.Error(), unhealthy: true, unsent: true}
	default:
		return outcome{verdict: verdictRetry, why: err.Error(), unhealthy: true}
	}
}
