package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/mqgate/mqgate/core/delay"
)

// DelayInspector shows what waits in the delay tiers; *delay.Service
// implements it. The admin delay routes ask Options.Delayer for it.
type DelayInspector interface {
	Tiers(ctx context.Context) ([]delay.TierCount, error)
	Pending(ctx context.Context, q delay.PendingQuery) (delay.PendingPage, error)
}

// delayInspector is the Delayer as a DelayInspector, answering the
// request itself when there is none.
func (s *Server) delayInspector(c *gin.Context) (DelayInspector, bool) {
	d, ok := s.opts.Delayer.(DelayInspector)
	if !ok || s.opts.Delayer == nil {
		s.abortWithError(c, errDelayNotEnabled)
		return nil, false
	}
	return d, true
}

// delayTiers serves GET /v1/admin/delays: what waits in each tier.
func (s *Server) delayTiers(c *gin.Context) {
	if len(c.Request.URL.RawQuery) > 0 {
		s.abortWithError(c, illegalf("this route takes no query parameters"))
		return
	}
	d, ok := s.delayInspector(c)
	if !ok {
		return
	}
	ctx, cancel := s.adminContext(c)
	defer cancel()
	tiers, err := d.Tiers(ctx)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	var total int64
	for _, t := range tiers {
		total += t.Pending
	}
	c.PureJSON(http.StatusOK, struct {
		Pending int64             `json:"pending"`
		Tiers   []delay.TierCount `json:"tiers"`
	}{total, tiers})
}

// parsePendingQuery reads GET /v1/admin/topics/{t}/delayed's query: id,
// limit and format, each at most once.
func parsePendingQuery(q url.Values) (id string, limit int, format string, err error) {
	format = browseText
	for k, v := range q {
		switch {
		case k != "id" && k != "limit" && k != "format":
			return "", 0, "", illegalf("%s: unknown query parameter; known: id, limit, format", truncate(k))
		case len(v) > 1:
			return "", 0, "", illegalf("%s: given %d times; give it once", truncate(k), len(v))
		}
	}
	if f, ok := q["format"]; ok {
		switch f[0] {
		case browseText, browseHex, browseJSON:
			format = f[0]
		default:
			return "", 0, "", illegalf("format: must be text, hex or json; got %q", truncate(f[0]))
		}
	}
	n, err := queryInt64(q, "limit", 0)
	if err != nil {
		return "", 0, "", err
	}
	if q.Has("limit") && (n < 1 || n > delay.MaxPendingShown) {
		return "", 0, "", illegalf("limit: must be 1 to %d; got %d", delay.MaxPendingShown, n)
	}
	if v, ok := q["id"]; ok && v[0] == "" {
		return "", 0, "", illegalf("id: must not be empty (leave it out for every id)")
	}
	return q.Get("id"), int(n), format, nil
}

// pendingDelayed serves GET /v1/admin/topics/{topic}/delayed[?id=I]
// [&limit=L][&format=F]: the topic's delayed messages waiting in the
// tiers, by due time.
func (s *Server) pendingDelayed(c *gin.Context) {
	id, limit, format, err := parsePendingQuery(c.Request.URL.Query())
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	d, ok := s.delayInspector(c)
	if !ok {
		return
	}
	ctx, cancel := s.adminContext(c)
	defer cancel()
	topic := c.Param("topic")
	p, err := d.Pending(ctx, delay.PendingQuery{Topic: topic, ID: id, Limit: limit})
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	sendAppended(c, func(b []byte) []byte { return appendPendingPage(b, topic, &p, format) })
}

// appendPendingPage appends a pending answer.
func appendPendingPage(b []byte, topic string, p *delay.PendingPage, format string) []byte {
	b = append(b, `{"topic":`...)
	b = appendJSONString(b, topic, false)
	b = append(b, `,"scanned":`...)
	b = strconv.AppendInt(b, int64(p.Scanned), 10)
	b = append(b, `,"complete":`...)
	b = strconv.AppendBool(b, p.Complete)
	b = append(b, `,"messages":[`...)
	for i := range p.Messages {
		m := &p.Messages[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendJSONString(b, m.ID, false)
		b = append(b, `,"due_ms":`...)
		b = strconv.AppendInt(b, m.Due.UnixMilli(), 10)
		b = append(b, `,"hop_ms":`...)
		b = strconv.AppendInt(b, m.Hop.UnixMilli(), 10)
		b = append(b, `,"tier_topic":`...)
		b = appendJSONString(b, m.TierTopic, false)
		b = append(b, `,"cancelled":`...)
		b = strconv.AppendBool(b, m.Cancelled)
		if l := m.Loop; l != nil {
			b = append(b, `,"loop":{"interval_ms":`...)
			b = strconv.AppendInt(b, l.Interval.Milliseconds(), 10)
			b = append(b, `,"times":`...)
			b = strconv.AppendInt(b, l.Times, 10)
			b = append(b, `,"fired":`...)
			b = strconv.AppendInt(b, m.Fired, 10)
			if !l.Expire.IsZero() {
				b = append(b, `,"expire_ms":`...)
				b = strconv.AppendInt(b, l.Expire.UnixMilli(), 10)
			}
			if l.Base != 0 {
				b = append(b, `,"base":`...)
				b = strconv.AppendInt(b, l.Base, 10)
			}
			b = append(b, '}')
		}
		b = append(b, `,"message":`...)
		b = appendBrowsedMessage(b, &m.Message, format)
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}
