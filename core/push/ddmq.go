package push

// Envelope ddmq sends what DDMQ's consumer proxy (CProxy) sends to its
// HTTP push subscribers, so that their webhooks keep working unchanged.
// It is reimplemented from carrera-consumer's source (didi/DDMQ), the
// files named below under carrera-consumer/src/main/java/com/xiaojukeji/
// carrera/cproxy/:
//
//   - actions/FormParamsExtractAction.java: the field params (the value),
//     then the append-context fields carrera_topic, carrera_group,
//     carrera_offset, carrera_source, carrera_qid, carrera_token (which
//     falls through to carrera_msg_key), carrera_msg_key and
//     carrera_properties, in the subscription's order.
//   - actions/FormParamsExtractAction2.java: the members of a JSON object
//     value as fields (strings as they are, numbers as written, anything
//     else as JSON), then the same context; a value that is not JSON goes
//     in params, without context.
//   - actions/QueryParamsExtractAction.java: query parameters taken from
//     JSON paths; a path that finds nothing fails the message.
//   - actions/OrderAction.java: the order key, QID, KEY or a JSON path.
//   - actions/http/CarreraAsyncRequest.java: the request (POST or GET,
//     the form in the body either way, carrera_req_cnt last), the
//     carrera_http_callback_url property, carrera_headers, and the reply's
//     errno (ddmq_reply.go).
//   - consumer/UpstreamJob.java: retries, canDoErrorRetry and
//     nextRetryDelay.
//
// The wire format: application/x-www-form-urlencoded, UTF-8, fields in
// the order above, names and values encoded as async-http-client 2.0's
// Utf8UrlEncoder does for forms (letters, digits and -._* as they are,
// space as +, every other byte %XX); a field whose value Java holds as
// null (carrera_msg_key of a message without a key) is its name alone,
// without '='.

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/transform"
)

// Form field names and the properties CProxy reads, as DDMQ spells them.
const (
	FieldParams     = "params"
	FieldTopic      = "carrera_topic"
	FieldGroup      = "carrera_group"
	FieldOffset     = "carrera_offset"
	FieldSource     = "carrera_source"
	FieldQid        = "carrera_qid"
	FieldToken      = "carrera_token"
	FieldMsgKey     = "carrera_msg_key"
	FieldProperties = "carrera_properties"
	FieldReqCnt     = "carrera_req_cnt"

	// PropCallbackURL holds URLs, separated by "<>", that replace the
	// subscription's targets for the message.
	PropCallbackURL = "carrera_http_callback_url"
	// PropHeaders holds a JSON object of HTTP headers sent with the
	// message when carrera_properties is sent.
	PropHeaders = "carrera_headers"
	// PropPressureTraffic marks a load-test message, skipped unless the
	// subscription takes pressure traffic.
	PropPressureTraffic = "isPressureTraffic"

	callbackURLSeparator = "<>"
	formContentType      = "application/x-www-form-urlencoded"
)

// Bounds on what one message makes of a ddmq request. A message over one
// of them is refused (dead-lettered), never cut short.
const (
	maxDDMQFormBytes   = 16 << 20 // the form body
	maxDDMQURLBytes    = 8 << 10  // a target with its query string
	maxCallbackURLs    = 16
	maxPropHeaders     = 32
	maxPropHeaderBytes = 8 << 10 // carrera_headers' names and values together
)

const (
	ddmqOrderKeyQid    = "QID"
	ddmqOrderKeyMsgKey = "KEY"
	javaNull           = "null" // what Java's string concatenation makes of a null key
)

// Origin names where a topic's messages come from, for carrera_qid
// (DDMQ's qid is the cluster's name, "_", and the queue:
// CProxy's utils/QidUtils.java) and carrera_source (KAFKA or RMQ:
// consumer/ConsumeContext.java's MessageSource).
type Origin struct {
	Cluster string
	Source  string
}

// ddmqEnvelope is a subscription's envelope ddmq, compiled.
type ddmqEnvelope struct {
	cfg         *config.PushDDMQ
	group       string
	query       []ddmqQuery
	orderBy     string          // "", QID, KEY, or "path"
	order       *transform.Path // when orderBy is "path"
	needJSON    bool            // query parameters read the body as a JSON object
	appendProps bool
}

type ddmqQuery struct {
	name string
	path *transform.Path
}

func newDDMQEnvelope(cfg *config.Push) (*ddmqEnvelope, error) {
	c := &cfg.DDMQ
	e := &ddmqEnvelope{cfg: c, group: cfg.Group, appendProps: slices.Contains(c.AppendContext, "PROPERTIES")}
	// CProxy runs its query parameters in its map's order; these go in
	// name order, the same every time.
	for _, name := range slices.Sorted(maps.Keys(c.QueryParams)) {
		p, err := transform.CompilePath(c.QueryParams[name])
		if err != nil {
			return nil, fmt.Errorf("ddmq.query_params.%s: %w", name, err)
		}
		e.query = append(e.query, ddmqQuery{name, p})
	}
	switch c.OrderKey {
	case "":
	case ddmqOrderKeyQid, ddmqOrderKeyMsgKey:
		e.orderBy = c.OrderKey
	default:
		p, err := transform.CompilePath(c.OrderKey)
		if err != nil {
			return nil, fmt.Errorf("ddmq.order_key: %w", err)
		}
		e.orderBy, e.order = "path", p
	}
	// DDMQ's console puts its Json action first when one of these needs
	// the value parsed; a value that is not a JSON object then fails.
	e.needJSON = len(e.query) > 0
	return e, nil
}

// laneKey is the lane of m under ddmq.order_key, and whether order_key
// decides it. A JSON path that finds nothing (or null), or a value that
// is not JSON, leaves m unordered, as CProxy's OrderAction does with a
// null order value.
func (e *ddmqEnvelope) laneKey(m *consume.Message) (string, bool) {
	switch e.orderBy {
	case "":
		return "", false
	case ddmqOrderKeyQid:
		return m.Topic + "\x00" + m.Qid, true
	case ddmqOrderKeyMsgKey:
		if m.Key != nil {
			return m.Topic + "\x01" + string(m.Key), true
		}
	default:
		if v, ok := e.orderValue(m.Value); ok {
			return m.Topic + "\x03" + v, true
		}
	}
	return unorderedKey(m), true
}

// orderValue is what the order path finds in value, as JSON, so that the
// string "1" and the number 1 are different keys, as they are in Java.
func (e *ddmqEnvelope) orderValue(value []byte) (string, bool) {
	doc, err := transform.DecodeJSON(value)
	if err != nil {
		return "", false
	}
	v, ok := e.order.Get(doc)
	if !ok || v == nil {
		return "", false
	}
	b, err := transform.EncodeJSON(v)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// ddmqRequest is what envelope ddmq sends for one attempt of a message.
type ddmqRequest struct {
	form  []byte // the form, without carrera_req_cnt
	query string // encoded query parameters; "" when none
	// urls replace the targets when the message names callback URLs.
	urls []string
	// headers come from the carrera_headers property.
	headers [][2]string
}

// body is the form of one request: carrera_req_cnt, the number of
// requests sent for the message before this one, goes last.
func (r *ddmqRequest) body(requests int) []byte {
	b := make([]byte, 0, len(r.form)+len(FieldReqCnt)+12)
	b = append(b, r.form...)
	if len(b) > 0 {
		b = append(b, '&')
	}
	b = appendFormField(b, FieldReqCnt, strconv.Itoa(requests), true)
	return b
}

// target is rawURL with the query parameters added after any it has.
func (r *ddmqRequest) target(rawURL string) string {
	if r.query == "" {
		return rawURL
	}
	sep := "?"
	if strings.Contains(rawURL, "?") {
		sep = "&"
		if strings.HasSuffix(rawURL, "?") || strings.HasSuffix(rawURL, "&") {
			sep = ""
		}
	}
	return rawURL + sep + r.query
}

// errNotObject is the message's fault: a setting needs its value as a
// JSON object.
var errNotObject = errors.New("the value is not a JSON object, which ddmq.query_params and ddmq.order_key read")

// isJSONObject reports whether v is one JSON object.
func isJSONObject(v []byte) bool {
	doc, err := transform.DecodeJSON(v)
	_, ok := doc.(map[string]any)
	return err == nil && ok
}

// build makes the request of m, whose body (the value, or what the
// transform made of it) is body. An error is the message's fault: it
// goes to the dead-letter topic.
func (e *ddmqEnvelope) build(m *consume.Message, origin Origin, body []byte) (*ddmqRequest, error) {
	r := &ddmqRequest{}
	props := properties(m)

	var obj map[string]any
	if e.needJSON || e.cfg.FormParams2 {
		if doc, err := transform.DecodeJSON(body); err == nil {
			obj, _ = doc.(map[string]any)
		}
	}
	// The order key reads the value itself, before any transform, as
	// CProxy's OrderAction runs before its Transit.
	if (e.needJSON && obj == nil) || (e.order != nil && !isJSONObject(m.Value)) {
		return nil, errNotObject
	}

	var q []byte
	for i, p := range e.query {
		v, ok := p.path.Get(obj)
		if !ok || v == nil {
			return nil, fmt.Errorf("ddmq.query_params.%s: %s finds nothing in the value", p.name, p.path)
		}
		if i > 0 {
			q = append(q, '&')
		}
		q = appendFormField(q, p.name, fieldString(v), false)
	}
	r.query = string(q)

	var f []byte
	withContext := true
	switch {
	case e.cfg.FormParams2 && obj != nil:
		for _, name := range slices.Sorted(maps.Keys(obj)) {
			f = appendField(f, name, fieldString(obj[name]))
		}
	case e.cfg.FormParams2:
		// FormParamsExtractAction2.act(job, byte[]): the value as it is,
		// and no context.
		f = appendField(f, FieldParams, javaString(body))
		withContext = false
	default:
		f = appendField(f, FieldParams, javaString(body))
	}
	if withContext {
		f = e.appendContext(f, m, origin, props)
	}
	if len(f) > maxDDMQFormBytes {
		return nil, fmt.Errorf("the form is %d bytes, over the limit of %d", len(f), maxDDMQFormBytes)
	}
	r.form = f

	if e.cfg.HTTPCallbackURL {
		if v, ok := props[PropCallbackURL]; ok {
			urls, err := callbackURLs(v)
			if err != nil {
				return nil, err
			}
			r.urls = urls
		}
	}
	if e.appendProps && withContext {
		hs, err := propHeaders(props[PropHeaders])
		if err != nil {
			return nil, err
		}
		r.headers = hs
	}
	return r, nil
}

// appendContext adds the append_context fields in their configured order.
func (e *ddmqEnvelope) appendContext(f []byte, m *consume.Message, origin Origin, props map[string]string) []byte {
	key, hasKey := "", m.Key != nil
	if hasKey {
		key = javaString(m.Key)
	}
	msgKeyAdded := false
	msgKey := func(f []byte) []byte {
		if msgKeyAdded {
			return f
		}
		msgKeyAdded = true
		if !hasKey {
			return appendNullField(f, FieldMsgKey)
		}
		return appendField(f, FieldMsgKey, key)
	}
	for _, c := range e.cfg.AppendContext {
		switch c {
		case "TOPIC":
			f = appendField(f, FieldTopic, m.Topic)
		case "GROUP":
			f = appendField(f, FieldGroup, e.group)
		case "OFFSET":
			f = appendField(f, FieldOffset, strconv.FormatInt(m.Offset, 10))
		case "SOURCE":
			f = appendField(f, FieldSource, origin.Source)
		case "QID":
			f = appendField(f, FieldQid, ddmqQid(origin.Cluster, m.Qid))
		case "TOKEN":
			// md5Hex(msgKey + tokenKey): a message without a key is "null"
			// to Java's string concatenation. The case has no break in
			// CProxy: the key follows.
			k := javaNull
			if hasKey {
				k = key
			}
			sum := md5.Sum([]byte(k + e.cfg.TokenKey))
			f = appendField(f, FieldToken, hex.EncodeToString(sum[:]))
			f = msgKey(f)
		case "MSG_KEY":
			f = msgKey(f)
		case "PROPERTIES":
			f = appendField(f, FieldProperties, propertiesJSON(props))
		}
	}
	return f
}

// ddmqQid is DDMQ's qid: the cluster's name and the queue joined by "_"
// (Kafka: cluster_partition; RocketMQ: cluster_broker_queue, where mqgate
// writes broker:queue).
func ddmqQid(cluster, qid string) string {
	if cluster == "" {
		return qid
	}
	return cluster + "_" + strings.ReplaceAll(qid, ":", "_")
}

// properties are m's headers by name, the last of a repeated name
// winning, as in the Map DDMQ holds them in.
func properties(m *consume.Message) map[string]string {
	props := make(map[string]string, len(m.Headers))
	for _, h := range m.Headers {
		props[h.Key] = string(h.Value)
	}
	return props
}

// propertiesJSON is carrera_properties: the properties as a JSON object,
// in name order ({} when there are none; DDMQ sends null for Kafka, whose
// messages had no properties there).
func propertiesJSON(props map[string]string) string {
	out := make(map[string]string, len(props))
	for k, v := range props {
		out[strings.ToValidUTF8(k, "\uFFFD")] = strings.ToValidUTF8(v, "\uFFFD")
	}
	b, err := transform.EncodeJSON(out)
	if err != nil {
		return "{}" // a map of strings always encodes
	}
	return string(b)
}

// callbackURLs splits the carrera_http_callback_url property. Every URL
// must be an absolute http or https URL with a host: CProxy would fail
// the request on anything else, and retry it until it gave up.
func callbackURLs(v string) ([]string, error) {
	parts := strings.Split(v, callbackURLSeparator)
	if len(parts) > maxCallbackURLs {
		return nil, fmt.Errorf("%s names %d URLs; at most %d", PropCallbackURL, len(parts), maxCallbackURLs)
	}
	for _, p := range parts {
		u, err := url.Parse(p)
		switch {
		case len(p) > maxDDMQURLBytes:
			return nil, fmt.Errorf("%s: a URL of %d bytes; at most %d", PropCallbackURL, len(p), maxDDMQURLBytes)
		case err != nil:
			return nil, fmt.Errorf("%s: %w", PropCallbackURL, err)
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			return nil, fmt.Errorf("%s: %q is not an http(s) URL with a host", PropCallbackURL, p)
		}
	}
	return parts, nil
}

// headersOwned are headers a message may not set through carrera_headers:
// the request's framing and the gateway's own.
var headersOwned = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true, "trailer": true,
	"connection": true, "content-type": true, "te": true, "upgrade": true,
}

// propHeaders reads the carrera_headers property, a JSON object of
// header names to values. A property that is not a JSON object is
// ignored, as CProxy ignores what it cannot parse; names that are not
// HTTP tokens, values with control characters, and headers the request
// owns are left out. Too many headers, or too large, refuse the message.
func propHeaders(v string) ([][2]string, error) {
	if v == "" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(v), &m) != nil {
		return nil, nil
	}
	if len(m) > maxPropHeaders {
		return nil, fmt.Errorf("%s has %d headers; at most %d", PropHeaders, len(m), maxPropHeaders)
	}
	var out [][2]string
	size := 0
	for _, name := range slices.Sorted(maps.Keys(m)) {
		var val string
		if json.Unmarshal(m[name], &val) != nil {
			val = string(m[name]) // a number or other JSON: its text
		}
		lower := strings.ToLower(name)
		if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(val) ||
			headersOwned[lower] || strings.HasPrefix(lower, "x-mqgate-") {
			continue
		}
		if size += len(name) + len(val); size > maxPropHeaderBytes {
			return nil, fmt.Errorf("%s holds over %d bytes of headers", PropHeaders, maxPropHeaderBytes)
		}
		out = append(out, [2]string{name, val})
	}
	return out, nil
}

// fieldString is a JSON value as CProxy puts it in a form field or query
// parameter: a string as it is, a number as written, anything else as
// JSON (FormParams2 writes it with toJsonString, QueryParams with
// toString, which is JSON for fastjson's objects and arrays).
func fieldString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	}
	b, err := transform.EncodeJSON(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// javaString is b as Java holds bytes decoded as UTF-8: each invalid
// sequence a replacement character.
func javaString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// appendField adds name=value to a form, '&' first unless it is empty.
func appendField(f []byte, name, value string) []byte {
	if len(f) > 0 {
		f = append(f, '&')
	}
	return appendFormField(f, name, value, true)
}

// appendNullField adds a field whose value is Java's null: its name
// alone.
func appendNullField(f []byte, name string) []byte {
	if len(f) > 0 {
		f = append(f, '&')
	}
	return appendEscaped(f, name, true)
}

func appendFormField(f []byte, name, value string, spacePlus bool) []byte {
	f = appendEscaped(f, name, spacePlus)
	f = append(f, '=')
	return appendEscaped(f, value, spacePlus)
}

// appendEscaped encodes s as async-http-client's Utf8UrlEncoder does
// for forms (space as '+') and query elements (space as %20).
func appendEscaped(b []byte, s string, spacePlus bool) []byte {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '*':
			b = append(b, c)
		case c == ' ' && spacePlus:
			b = append(b, '+')
		default:
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return b
}

// pressureTraffic reports whether m is marked as load-test traffic: its
// isPressureTraffic property is "true" in any case, as Java's
// Boolean.valueOf reads it (consumer/UpstreamJob.java).
func pressureTraffic(m *consume.Message) bool {
	v := ""
	for _, h := range m.Headers {
		if h.Key == PropPressureTraffic {
			v = string(h.Value) // the last of a repeated name, as in properties
		}
	}
	return strings.EqualFold(v, "true")
}
