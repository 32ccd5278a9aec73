package httpapi

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mqgate/mqgate/core/admin"
)

// searchQueryParams are the parameters GET .../search knows.
var searchQueryParams = []string{"key", "header", "header_value", "value_contains", "timestamp_ms", "scan", "limit", "format"}

// parseSearchQuery reads GET /v1/admin/topics/{t}/search's query.
func parseSearchQuery(q url.Values) (admin.SearchQuery, string, error) {
	var sq admin.SearchQuery
	format := browseText
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(searchQueryParams, k) {
			return sq, "", illegalf("%s: unknown query parameter; known: %s", truncate(k), strings.Join(searchQueryParams, ", "))
		}
		if len(q[k]) > 1 {
			return sq, "", illegalf("%s: given %d times; give it once", truncate(k), len(q[k]))
		}
	}
	if f, ok := q["format"]; ok {
		switch f[0] {
		case browseText, browseHex, browseJSON:
			format = f[0]
		default:
			return sq, "", illegalf("format: must be text, hex or json; got %q", truncate(f[0]))
		}
	}
	if v, ok := q["key"]; ok {
		sq.Key = []byte(v[0])
	}
	if v, ok := q["value_contains"]; ok {
		if v[0] == "" {
			return sq, "", illegalf("value_contains: must not be empty")
		}
		sq.ValueContains = []byte(v[0])
	}
	if v, ok := q["header"]; ok {
		if v[0] == "" {
			return sq, "", illegalf("header: must name a header")
		}
		sq.HeaderKey = v[0]
	}
	if v, ok := q["header_value"]; ok {
		if sq.HeaderKey == "" {
			return sq, "", illegalf("header_value: only with header")
		}
		sq.HeaderValue = v[0]
	}
	if q.Has("timestamp_ms") {
		ts, err := queryInt64(q, "timestamp_ms", 0)
		if err != nil {
			return sq, "", err
		}
		if ts < 0 {
			return sq, "", illegalf("timestamp_ms: must be >= 0 (milliseconds since the epoch); got %d", ts)
		}
		sq.Since = time.UnixMilli(ts)
	}
	scan, err := queryInt64(q, "scan", 0)
	if err != nil {
		return sq, "", err
	}
	if q.Has("scan") && (scan < 1 || scan > admin.MaxSearchScan) {
		return sq, "", illegalf("scan: must be 1 to %d messages; got %d", admin.MaxSearchScan, scan)
	}
	limit, err := queryInt64(q, "limit", 0)
	if err != nil {
		return sq, "", err
	}
	if q.Has("limit") && (limit < 1 || limit > admin.MaxBrowse) {
		return sq, "", illegalf("limit: must be 1 to %d; got %d", admin.MaxBrowse, limit)
	}
	sq.Scan, sq.Limit = int(scan), int(limit)
	if sq.Key == nil && sq.HeaderKey == "" && sq.ValueContains == nil {
		return sq, "", illegalf("give what to search for: key, header (with header_value) or value_contains")
	}
	return sq, format, nil
}

// searchTopic serves GET /v1/admin/topics/{topic}/search: the messages,
// among a bounded number read, whose key, header or value match.
func (s *Server) searchTopic(c *gin.Context) {
	sq, format, err := parseSearchQuery(c.Request.URL.Query())
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	ctx, cancel := s.adminContext(c)
	defer cancel()
	p, err := s.opts.Admin.Search(ctx, c.Param("topic"), sq)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	sendAppended(c, func(b []byte) []byte {
		b = append(b, `{"topic":`...)
		b = appendJSONString(b, p.Topic, false)
		b = append(b, `,"cluster":`...)
		b = appendJSONString(b, p.Cluster, false)
		b = append(b, `,"scanned":`...)
		b = strconv.AppendInt(b, int64(p.Scanned), 10)
		b = append(b, `,"complete":`...)
		b = strconv.AppendBool(b, p.Complete)
		b = append(b, `,"messages":[`...)
		for i := range p.Records {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendBrowsedMessage(b, &p.Records[i], format)
		}
		return append(b, "]}\n"...)
	})
}
