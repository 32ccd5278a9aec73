package httpapi

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mqgate/mqgate/core/admin"
	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/sdk"
)

// maxResetOffsets bounds the qids one reset names.
const maxResetOffsets = 10000

// resetBody is the body of POST /v1/admin/groups/{g}/topics/{t}/offsets.
type resetBody struct {
	target admin.ResetTarget
	dryRun bool
	force  bool
}

// decodeResetBody decodes {"to": earliest|latest|timestamp|offsets,
// "timestamp_ms": T, "offsets": {qid: offset}, "dry_run": B, "force": B}
// as strictly as the consume bodies.
func decodeResetBody(body []byte) (resetBody, error) {
	var out resetBody
	if len(bytes.TrimSpace(body)) == 0 {
		return out, illegalf(`request body is empty; want {"to": "earliest", "latest", "timestamp" or "offsets", ...}`)
	}
	var ts *int64
	err := decodeObjectBody(body, []string{"to", "timestamp_ms", "offsets", "dry_run", "force"}, func(d *bodyDecoder, name string, k jsontext.Kind) error {
		var err error
		switch name {
		case "to":
			out.target.To, err = d.text(name, k)
		case "timestamp_ms":
			ts, err = d.nonNegativeInt(name)
		case "offsets":
			out.target.Offsets, err = d.qidOffsets(name, k)
		case "dry_run":
			out.dryRun, err = d.boolean(name, k)
		case "force":
			out.force, err = d.boolean(name, k)
		}
		return err
	})
	if err != nil {
		return out, err
	}
	to := out.target.To
	switch {
	case to == "":
		err = illegalf("to: required: %s, %s, %s or %s", admin.ToEarliest, admin.ToLatest, admin.ToTimestamp, admin.ToOffsets)
	case to != admin.ToEarliest && to != admin.ToLatest && to != admin.ToTimestamp && to != admin.ToOffsets:
		err = illegalf("to: must be %s, %s, %s or %s, got %s", admin.ToEarliest, admin.ToLatest, admin.ToTimestamp, admin.ToOffsets, strconv.Quote(truncate(to)))
	case to == admin.ToTimestamp && ts == nil:
		err = illegalf("timestamp_ms: required with to %q: milliseconds since the epoch", to)
	case to != admin.ToTimestamp && ts != nil:
		err = illegalf("timestamp_ms: only with to %q", admin.ToTimestamp)
	case to == admin.ToOffsets && len(out.target.Offsets) == 0:
		err = illegalf("offsets: required with to %q: {qid: offset}", to)
	case to != admin.ToOffsets && out.target.Offsets != nil:
		err = illegalf("offsets: only with to %q", admin.ToOffsets)
	}
	if ts != nil {
		out.target.Time = time.UnixMilli(*ts)
	}
	return out, err
}

// qidOffsets reads {qid: offset}: non-empty qids, offsets >= 0, at most
// maxResetOffsets.
func (d *bodyDecoder) qidOffsets(field string, k jsontext.Kind) (map[string]int64, error) {
	if k != '{' {
		return nil, d.wrongType("%s: must be an object {qid: offset}", field)
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for {
		qid, ok, err := d.name()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		at := joinField(field, qid)
		switch {
		case qid == "":
			return nil, illegalf("%s: the qid must not be empty", at)
		case len(out) == maxResetOffsets:
			return nil, sdk.Errorf(sdk.CodeTooLarge, "%s: at most %d qids", field, maxResetOffsets)
		}
		if _, dup := out[qid]; dup {
			return nil, illegalf("%s: given twice", at)
		}
		o, err := d.nonNegativeInt(at)
		if err != nil {
			return nil, err
		}
		out[qid] = *o
	}
}

// boolean reads true or false.
func (d *bodyDecoder) boolean(field string, k jsontext.Kind) (bool, error) {
	if k != 't' && k != 'f' {
		return false, d.wrongType("%s: must be true or false", field)
	}
	tok, err := d.dec.ReadToken()
	if err != nil {
		return false, err
	}
	return tok.Bool(), nil
}

// resetOffsets serves POST /v1/admin/groups/{group}/topics/{topic}/offsets:
// the group's offsets on the topic moved (or, with dry_run, what would
// move), per qid.
func (s *Server) resetOffsets(c *gin.Context) {
	ctx, cancel := s.adminContext(c)
	defer cancel()
	req, ok := decodedBody(s, ctx, c, decodeResetBody)
	if !ok {
		return
	}
	group, topic := c.Param("group"), c.Param("topic")
	r, err := s.opts.Admin.ResetOffsets(ctx, group, topic, req.target, req.dryRun, req.force)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	if !r.DryRun {
		var moves strings.Builder
		for i, q := range r.Qids {
			if i == 20 {
				fmt.Fprintf(&moves, " and %d more", len(r.Qids)-i)
				break
			}
			fmt.Fprintf(&moves, " %s:%d->%d", q.Qid, q.From, q.To)
		}
		s.audit(c, "group offsets reset", acl.Admin, fmt.Sprintf("group %q topic %q to %s force %t moves%s", group, topic, r.To, req.force, moves.String()))
	}
	c.PureJSON(http.StatusOK, r)
}
