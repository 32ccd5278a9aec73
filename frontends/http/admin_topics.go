package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mqgate/mqgate/core/admin"
	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// The value formats of the browse routes (format=).
const (
	browseText = "text" // as consumed messages: text when valid UTF-8, else base64
	browseHex  = "hex"  // key_hex and value_hex
	browseJSON = "json" // value_json when the value is JSON, else as text
)

// browseQuery is what GET /v1/admin/topics/{t}/messages asks.
type browseQuery struct {
	qid    string
	offset int64
	// from is set (ms since the epoch) to browse from the first message
	// written at or after it instead of from offset.
	from   *int64
	limit  int
	format string
}

// parseBrowseQuery reads the browse routes' query: qid (required when
// needQid), offset (default 0) or timestamp_ms, limit (default
// admin.DefaultBrowse) and format. Any other parameter is refused by name, so that a misspelt one
// does not silently browse from the start.
func parseBrowseQuery(q url.Values, needQid bool) (browseQuery, error) {
	bq := browseQuery{format: browseText}
	allowed := []string{"format"}
	if needQid {
		allowed = append(allowed, "qid", "offset", "timestamp_ms", "limit")
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(allowed, k) {
			return bq, illegalf("%s: unknown query parameter; known: %s", truncate(k), strings.Join(allowed, ", "))
		}
		if len(q[k]) > 1 {
			return bq, illegalf("%s: given %d times; give it once", truncate(k), len(q[k]))
		}
	}
	if f, ok := q["format"]; ok {
		switch f[0] {
		case browseText, browseHex, browseJSON:
			bq.format = f[0]
		default:
			return bq, illegalf("format: must be text, hex or json; got %q", truncate(f[0]))
		}
	}
	if !needQid {
		return bq, nil
	}
	qid, ok := q["qid"]
	if !ok || qid[0] == "" {
		return bq, illegalf("qid: required (GET /v1/admin/topics/{topic} lists the topic's qids)")
	}
	bq.qid = qid[0]
	var err error
	if bq.offset, err = queryInt64(q, "offset", 0); err != nil {
		return bq, err
	}
	if q.Has("timestamp_ms") {
		if q.Has("offset") {
			return bq, illegalf("timestamp_ms: give offset or timestamp_ms, not both")
		}
		ts, err := queryInt64(q, "timestamp_ms", 0)
		if err != nil {
			return bq, err
		}
		if ts < 0 {
			return bq, illegalf("timestamp_ms: must be >= 0 (milliseconds since the epoch); got %d", ts)
		}
		bq.from = &ts
	}
	limit, err := queryInt64(q, "limit", 0)
	if err != nil {
		return bq, err
	}
	if limit < 1 && q.Has("limit") || limit > admin.MaxBrowse {
		return bq, illegalf("limit: must be 1 to %d; got %d", admin.MaxBrowse, limit)
	}
	bq.limit = int(limit)
	return bq, nil
}

// queryInt64 reads the integer query parameter name, def when absent.
func queryInt64(q url.Values, name string, def int64) (int64, error) {
	v, ok := q[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil {
		return 0, illegalf("%s: must be an integer; got %q", name, truncate(v[0]))
	}
	return n, nil
}

// adminContext bounds an admin call by the request timeout.
func (s *Server) adminContext(c *gin.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
}

// describeTopic serves GET /v1/admin/topics/{topic}: the topic's cluster,
// its qids with their retained ranges, and how many messages they retain.
func (s *Server) describeTopic(c *gin.Context) {
	if _, err := parseBrowseQuery(c.Request.URL.Query(), false); err != nil {
		s.abortWithError(c, err)
		return
	}
	ctx, cancel := s.adminContext(c)
	defer cancel()
	t, err := s.opts.Admin.Topic(ctx, c.Param("topic"))
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, t)
}

// browse serves GET /v1/admin/topics/{topic}/messages?qid=Q[&offset=N |
// &timestamp_ms=T][&limit=L][&format=F]: a page of the qid's messages
// from offset on, or from the first written at or after T.
func (s *Server) browse(c *gin.Context) { s.browseTopic(c, c.Param("topic")) }

// browseTopic answers a browse of topic.
func (s *Server) browseTopic(c *gin.Context, topic string) {
	q, err := parseBrowseQuery(c.Request.URL.Query(), true)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	ctx, cancel := s.adminContext(c)
	defer cancel()
	if q.from != nil {
		if q.offset, err = s.opts.Admin.OffsetAt(ctx, topic, q.qid, time.UnixMilli(*q.from)); err != nil {
			s.abortWithError(c, err)
			return
		}
	}
	p, err := s.opts.Admin.Browse(ctx, topic, q.qid, q.offset, q.limit)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	sendAppended(c, func(b []byte) []byte { return appendBrowsePage(b, &p, q.format) })
}

// showMessage serves GET /v1/admin/topics/{topic}/messages/{qid}/{offset}
// [?format=F]: one message.
func (s *Server) showMessage(c *gin.Context) {
	q, err := parseBrowseQuery(c.Request.URL.Query(), false)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	offset, err := strconv.ParseInt(c.Param("offset"), 10, 64)
	if err != nil {
		s.abortWithError(c, illegalf("offset: must be an integer; got %q", truncate(c.Param("offset"))))
		return
	}
	ctx, cancel := s.adminContext(c)
	defer cancel()
	r, err := s.opts.Admin.Message(ctx, c.Param("topic"), c.Param("qid"), offset)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	sendAppended(c, func(b []byte) []byte { return append(appendBrowsedMessage(b, &r, q.format), '\n') })
}

// appendBrowsePage appends a browse answer: the qid's range, where the
// next page starts and the messages.
func appendBrowsePage(b []byte, p *admin.Page, format string) []byte {
	b = append(b, `{"topic":`...)
	b = appendJSONString(b, p.Topic, false)
	b = append(b, `,"cluster":`...)
	b = appendJSONString(b, p.Cluster, false)
	b = append(b, `,"qid":`...)
	b = appendJSONString(b, p.Qid.Qid, false)
	b = append(b, `,"start":`...)
	b = strconv.AppendInt(b, p.Qid.Start, 10)
	b = append(b, `,"end":`...)
	b = strconv.AppendInt(b, p.Qid.End, 10)
	b = append(b, `,"next_offset":`...)
	b = strconv.AppendInt(b, p.Next, 10)
	b = append(b, `,"messages":[`...)
	for i := range p.Records {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendBrowsedMessage(b, &p.Records[i], format)
	}
	return append(b, "]}\n"...)
}

// appendBrowsedMessage appends one message as the consume routes answer
// it (without attempt: browsing delivers nothing), its key and value in
// format.
func appendBrowsedMessage(b []byte, r *sdk.Record, format string) []byte {
	b = append(b, '{')
	switch format {
	case browseHex:
		if r.Key != nil {
			b = fmt.Appendf(append(b, `"key_hex":"`...), "%x", r.Key)
			b = append(b, `",`...)
		}
		b = fmt.Appendf(append(b, `"value_hex":"`...), "%x", r.Value)
		b = append(b, '"')
	default:
		if r.Key != nil {
			b = appendBytesField(b, `"key":`, `"key_base64":`, r.Key)
			b = append(b, ',')
		}
		if format == browseJSON && utf8.Valid(r.Value) && json.Valid(r.Value) {
			b = append(b, `"value_json":`...)
			b = appendCompactJSON(b, r.Value)
		} else {
			b = appendBytesField(b, `"value":`, `"value_base64":`, r.Value)
		}
	}
	b = appendReadFrom(b, r.Headers, r.Tags, r.Offset, r.Qid, r.Timestamp)
	return append(b, '}')
}

// appendCompactJSON appends v, valid JSON, without its insignificant
// whitespace, so that a value's newlines cannot break the answer's lines.
func appendCompactJSON(b []byte, v []byte) []byte {
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, v); err != nil {
		return append(b, "null"...) // cannot happen: v is valid
	}
	return buf.Bytes()
}

// redriveBody is the body of POST /v1/admin/groups/{g}/dead-letters/redrive.
type redriveBody struct {
	qid     string
	offsets []int64
	// filter, instead of offsets, picks the dead letters from from on.
	filter *admin.DeadLetterFilter
	from   int64
}

// decodeRedriveBody decodes {"qid": Q, "offsets": [offsets]} or {"qid": Q,
// "filter": {"origin_topic": T, "error_contains": S}, "from_offset": N} as
// strictly as the consume bodies: exact names, no unknown or repeated
// field.
func decodeRedriveBody(body []byte) (redriveBody, error) {
	var out redriveBody
	if len(bytes.TrimSpace(body)) == 0 {
		return out, illegalf(`request body is empty; want {"qid": Q, "offsets": [offsets]} or {"qid": Q, "filter": {...}}`)
	}
	fromGiven := false
	err := decodeObjectBody(body, []string{"qid", "offsets", "filter", "from_offset"}, func(d *bodyDecoder, name string, k jsontext.Kind) error {
		var err error
		switch name {
		case "qid":
			out.qid, err = d.qid(name, k)
		case "offsets":
			out.offsets, err = d.offsets(name, k)
		case "filter":
			out.filter = &admin.DeadLetterFilter{}
			err = d.members(name, k, []string{"origin_topic", "error_contains"}, func(field string, k jsontext.Kind) error {
				v, err := d.text(field, k) // field is the member's path
				if field == joinField(name, "origin_topic") {
					out.filter.OriginTopic = v
				} else {
					out.filter.ErrorContains = v
				}
				return err
			})
		case "from_offset":
			var n *int64
			n, err = d.nonNegativeInt(name)
			if n != nil {
				out.from, fromGiven = *n, true
			}
		}
		return err
	})
	switch {
	case err != nil:
	case out.qid == "":
		err = illegalf("qid: required")
	case out.filter != nil && out.offsets != nil:
		err = illegalf("offsets: give offsets or a filter, not both")
	case out.filter == nil && fromGiven:
		err = illegalf("from_offset: only with a filter")
	case out.filter != nil:
	case len(out.offsets) == 0:
		err = illegalf("offsets: required: the dead letters' offsets in the dead-letter topic (or a filter)")
	case len(out.offsets) > admin.MaxRedrive:
		err = sdk.Errorf(sdk.CodeTooLarge, "offsets: at most %d dead letters per redrive, got %d", admin.MaxRedrive, len(out.offsets))
	}
	return out, err
}

// deadLetterTopic is the dead-letter topic of the path's group.
func (s *Server) deadLetterTopic(c *gin.Context) (string, bool) {
	cons, ok := s.consumer(c)
	if !ok {
		return "", false
	}
	group := c.Param("group")
	if err := topicname.ValidateGroup(group); err != nil {
		s.abortWithError(c, err)
		return "", false
	}
	return cons.DeadLetterTopic(group), true
}

// describeDeadLetters serves GET /v1/admin/groups/{group}/dead-letters:
// the group's dead-letter topic as GET /v1/admin/topics/{t} describes a
// topic, with no qids while nothing was dead-lettered.
func (s *Server) describeDeadLetters(c *gin.Context) {
	if _, err := parseBrowseQuery(c.Request.URL.Query(), false); err != nil {
		s.abortWithError(c, err)
		return
	}
	dlq, ok := s.deadLetterTopic(c)
	if !ok {
		return
	}
	ctx, cancel := s.adminContext(c)
	defer cancel()
	t, err := s.opts.Admin.DeadLetterTopic(ctx, dlq)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, t)
}

// browseDeadLetters serves GET /v1/admin/groups/{group}/dead-letters/
// messages: a browse of the group's dead-letter topic.
func (s *Server) browseDeadLetters(c *gin.Context) {
	if dlq, ok := s.deadLetterTopic(c); ok {
		s.browseTopic(c, dlq)
	}
}

// redriveResult is one dead letter's entry in a redrive's answer.
type redriveResult struct {
	Offset    int64    `json:"offset"`
	Topic     string   `json:"topic,omitempty"`
	Qid       string   `json:"qid,omitempty"`
	Partition *int32   `json:"partition,omitempty"`
	NewOffset *int64   `json:"new_offset,omitempty"`
	Code      sdk.Code `json:"code"`
	Message   string   `json:"message,omitempty"`
}

// redriveDeadLetters serves POST /v1/admin/groups/{group}/dead-letters/
// redrive: the dead letters named go back to the topics they came from.
func (s *Server) redriveDeadLetters(c *gin.Context) {
	dlq, ok := s.deadLetterTopic(c)
	if !ok {
		return
	}
	ctx, cancel := s.adminContext(c)
	defer cancel()
	req, ok := decodedBody(s, ctx, c, decodeRedriveBody)
	if !ok {
		return
	}
	// Sending a dead letter back is producing to its topic: the
	// principal must be allowed that too.
	send := func(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
		if err := s.authorize(c, acl.Produce, topic, ""); err != nil {
			return nil, err
		}
		return s.producer.Produce(ctx, topic, msgs)
	}
	var next, end *int64
	var scanned *int
	if f := req.filter; f != nil {
		offsets, n, e, read, err := s.opts.Admin.MatchDeadLetters(ctx, dlq, req.qid, req.from, *f)
		if err != nil {
			s.abortWithError(c, err)
			return
		}
		req.offsets, next, end, scanned = offsets, &n, &e, &read
	}
	var done []admin.Redriven
	if len(req.offsets) > 0 {
		var err error
		if done, err = s.opts.Admin.Redrive(ctx, dlq, req.qid, req.offsets, send); err != nil {
			s.abortWithError(c, err)
			return
		}
	}
	out := struct {
		Redriven int             `json:"redriven"`
		Results  []redriveResult `json:"results"`
		// With a filter: how many dead letters were read, and where
		// the next redrive by the filter starts.
		Scanned *int   `json:"scanned,omitempty"`
		Next    *int64 `json:"next_offset,omitempty"`
		End     *int64 `json:"end,omitempty"`
	}{Results: make([]redriveResult, len(done)), Scanned: scanned, Next: next, End: end}
	for i, d := range done {
		r := redriveResult{Offset: d.Offset, Topic: d.Topic}
		if err := d.Result.Err; err != nil {
			r.Code, r.Message = s.clientError(err)
		} else {
			out.Redriven++
			r.Qid, r.Partition, r.NewOffset = d.Result.Qid, &d.Result.Partition, &d.Result.Offset
		}
		out.Results[i] = r
	}
	if len(done) > 0 {
		s.audit(c, "dead letters redriven", acl.Admin, fmt.Sprintf("group %q dead-letter topic %q qid %q offsets %v: %d redriven", c.Param("group"), dlq, req.qid, req.offsets, out.Redriven))
	}
	c.PureJSON(http.StatusOK, out)
}

// discardBody is the body of POST /v1/admin/groups/{g}/dead-letters/discard.
type discardBody struct {
	qid    string
	before int64
}

// decodeDiscardBody decodes {"qid": Q, "before_offset": N}.
func decodeDiscardBody(body []byte) (discardBody, error) {
	var out discardBody
	if len(bytes.TrimSpace(body)) == 0 {
		return out, illegalf(`request body is empty; want {"qid": Q, "before_offset": N}`)
	}
	given := false
	err := decodeObjectBody(body, []string{"qid", "before_offset"}, func(d *bodyDecoder, name string, k jsontext.Kind) error {
		var err error
		switch name {
		case "qid":
			out.qid, err = d.qid(name, k)
		case "before_offset":
			var n *int64
			if n, err = d.nonNegativeInt(name); n != nil {
				out.before, given = *n, true
			}
		}
		return err
	})
	switch {
	case err != nil:
	case out.qid == "":
		err = illegalf("qid: required")
	case !given:
		err = illegalf("before_offset: required: the dead letters before it are discarded")
	}
	return out, err
}

// discardDeadLetters serves POST /v1/admin/groups/{group}/dead-letters/
// discard: the qid's dead letters before an offset are deleted.
func (s *Server) discardDeadLetters(c *gin.Context) {
	dlq, ok := s.deadLetterTopic(c)
	if !ok {
		return
	}
	ctx, cancel := s.adminContext(c)
	defer cancel()
	req, ok := decodedBody(s, ctx, c, decodeDiscardBody)
	if !ok {
		return
	}
	q, n, err := s.opts.Admin.DiscardDeadLetters(ctx, dlq, req.qid, req.before)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	s.audit(c, "dead letters discarded", acl.Admin, fmt.Sprintf("group %q dead-letter topic %q qid %q before %d: %d discarded", c.Param("group"), dlq, req.qid, req.before, n))
	c.PureJSON(http.StatusOK, struct {
		admin.Qid
		Discarded int64 `json:"discarded"`
	}{q, n})
}

// createTopicBody is the body of POST /v1/admin/topics/{topic}.
type createTopicBody struct {
	partitions int32
	configs    map[string]string
}

// decodeCreateTopicBody decodes {"partitions": N, "configs": {name:
// value}}, both optional; an empty body takes the defaults.
func decodeCreateTopicBody(body []byte) (createTopicBody, error) {
	var out createTopicBody
	if len(bytes.TrimSpace(body)) == 0 {
		return out, nil
	}
	err := decodeObjectBody(body, []string{"partitions", "configs"}, func(d *bodyDecoder, name string, k jsontext.Kind) error {
		switch name {
		case "partitions":
			n, err := d.positiveInt(name)
			if err != nil {
				return err
			}
			if *n > admin.MaxPartitions {
				return illegalf("partitions: must be 1 to %d, got %d", admin.MaxPartitions, *n)
			}
			out.partitions = int32(*n)
		case "configs":
			var err error
			out.configs, err = d.stringMap(name, k, admin.MaxTopicConfigs)
			return err
		}
		return nil
	})
	return out, err
}

// stringMap reads an object of strings named field, of at most max
// members.
func (d *bodyDecoder) stringMap(field string, k jsontext.Kind, max int) (map[string]string, error) {
	if k != '{' {
		return nil, d.wrongType("%s: must be an object of strings", field)
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for {
		name, ok, err := d.name()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		f := joinField(field, name)
		if _, dup := out[name]; dup {
			return nil, illegalf("%s: given twice", f)
		}
		if len(out) == max {
			return nil, sdk.Errorf(sdk.CodeTooLarge, "%s: at most %d settings", field, max)
		}
		k, err := d.peek()
		if err != nil {
			return nil, err
		}
		if out[name], err = d.text(f, k); err != nil {
			return nil, err
		}
	}
}

// createTopic serves POST /v1/admin/topics/{topic}: 201 with the new
// topic's description, or 200 with the existing one's, left as it is.
func (s *Server) createTopic(c *gin.Context) {
	ctx, cancel := s.adminContext(c)
	defer cancel()
	req, ok := decodedBody(s, ctx, c, decodeCreateTopicBody)
	if !ok {
		return
	}
	t, created, err := s.opts.Admin.CreateTopic(ctx, c.Param("topic"), req.partitions, req.configs)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.audit(c, "topic created", acl.Admin, fmt.Sprintf("topic %q partitions %d configs %v", t.Name, len(t.Qids), req.configs))
	}
	c.PureJSON(status, struct {
		admin.Topic
		Created bool `json:"created"`
	}{t, created})
}

// decodedBody reads the request body within ctx and decodes it, answering
// an error itself. The decoded value must not alias the body, whose
// bytes are given back to the in-flight budget once decoded.
func decodedBody[T any](s *Server, ctx context.Context, c *gin.Context, decode func([]byte) (T, error)) (T, bool) {
	var zero T
	body, charge, ok := s.bodyOrAbort(ctx, c)
	if !ok {
		return zero, false
	}
	defer charge.Release()
	v, err := decode(body)
	if err != nil {
		s.abortWithError(c, err)
		return zero, false
	}
	return v, true
}
