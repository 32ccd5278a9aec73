// Package hbase is mqgate's HBase sink plugin. It writes consumed records
// into HBase tables through HBase's REST gateway (`hbase rest start`), the
// official HTTP interface: the records of a batch become one multi-row
// CellSet put per table, deletes and check-and-puts become single-row
// requests, and records of the same row keep their order. Which table,
// row, columns and timestamp a record writes are expressions over the
// record (core/transform). docs/sink-hbase.md documents the config.
package hbase

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/mqgate/mqgate/sdk"
)

// Sink writes records into HBase through its REST gateway.
type Sink struct {
	log *slog.Logger
	// state is nil until Configure; Close sets it to nil again.
	state atomic.Pointer[state]
}

// state is what Configure built.
type state struct {
	cfg *config
	gw  *gateway
}

var (
	_ sdk.Sink            = (*Sink)(nil)
	_ sdk.ConfigValidator = (*Sink)(nil)
)

// New returns a sink that is not configured yet; logger may be nil.
func New(logger *slog.Logger) *Sink {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Sink{log: logger}
}

// ValidateConfig returns every problem of config, connecting to nothing.
func (s *Sink) ValidateConfig(config []byte) sdk.ConfigErrors {
	_, errs := parseConfig(config)
	return errs
}

// Configure applies config. It does not contact the gateways: a gateway
// that is down fails the records written to it, retriably, not the sink.
func (s *Sink) Configure(_ context.Context, config []byte) error {
	cfg, errs := parseConfig(config)
	if len(errs) > 0 {
		return errs
	}
	if cfg.tls != nil && cfg.tls.InsecureSkipVerify {
		s.log.Warn("tls.insecure_skip_verify is set: the gateways' certificates are not checked, so anyone on the path can pose as HBase")
	}
	for _, u := range cfg.urls {
		if cfg.username != "" && u.Scheme == "http" {
			s.log.Warn("basic authentication over http: the password crosses the network in clear text", "url", u.Host)
		}
	}
	old := s.state.Swap(&state{cfg: cfg, gw: newGateway(cfg)})
	if old != nil {
		old.gw.close()
	}
	s.log.Info("hbase sink configured", "sink", cfg.info.Sink, "urls", len(cfg.urls), "encoding", cfg.encoding)
	return nil
}

// Close drops the sink's connections. Writes after it fail.
func (s *Sink) Close() error {
	if old := s.state.Swap(nil); old != nil {
		old.gw.close()
	}
	return nil
}

// Write maps every record and writes the batch, returning once what it
// reports as written is stored by HBase (the gateway answers a put only
// after the region servers have it). See plan.go for how records are
// grouped into requests.
func (s *Sink) Write(ctx context.Context, records []sdk.Record) ([]error, error) {
	st := s.state.Load()
	if st == nil {
		return nil, sdk.Errorf(sdk.CodeUnavailable, "hbase sink: not configured, or closed")
	}
	errs := make([]error, len(records))
	muts := make([]*mutation, len(records))
	for i := range records {
		mu, err := st.cfg.mapping.mapRecord(&records[i])
		if err != nil {
			errs[i] = err
			continue
		}
		muts[i] = &mu
	}
	w := &batchWrite{st: st, records: records, muts: muts, errs: errs, held: map[rowID]error{}}
	for _, rd := range plan(muts) {
		w.run(ctx, rd)
	}
	return errs, nil
}

// batchWrite is one Write's progress.
type batchWrite struct {
	st      *state
	records []sdk.Record
	muts    []*mutation
	errs    []error
	// held maps the rows that had a retriable failure to it: their later
	// records are not sent, so a retry cannot land before them.
	held map[rowID]error
}

// task is one request of a round and the records it answers for.
type task struct {
	records []int
	send    func(ctx context.Context) error // the result of all its records
}

// run sends a round: its puts, then its singles, each part's requests
// side by side, up to max_concurrent_requests at once.
func (w *batchWrite) run(ctx context.Context, rd *round) {
	var puts []task
	for _, table := range rd.tables {
		rows := w.unheld(rd.puts[table])
		for _, part := range chunk(rows, w.st.cfg.encoding, w.st.cfg.maxRequestBytes) {
			puts = append(puts, w.putTask(table, part))
		}
	}
	w.runTasks(ctx, puts)
	var singles []task
	for _, sg := range rd.singles {
		id := rowID{sg.mu.table, string(sg.mu.row)}
		if err, ok := w.held[id]; ok {
			w.errs[sg.record] = heldError(err)
			continue
		}
		singles = append(singles, w.singleTask(sg))
	}
	w.runTasks(ctx, singles)
}

// unheld drops the rows held by an earlier failure, failing their
// records.
func (w *batchWrite) unheld(rows []*putRow) []*putRow {
	out := rows[:0:0]
	for _, r := range rows {
		if err, ok := w.held[rowID{r.table, string(r.key)}]; ok {
			for _, i := range r.records {
				w.errs[i] = heldError(err)
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// heldError is the error of a record not sent because an earlier record
// of its row failed retriably.
func heldError(cause error) error {
	return sdk.Errorf(sdk.CodeOf(cause), "hbase sink: not written, to keep the row's order: an earlier record of the same row failed: %v", cause)
}

// runTasks runs tasks side by side and records their results. A row with
// a retriable failure is held for the rest of the batch.
func (w *batchWrite) runTasks(ctx context.Context, tasks []task) {
	results := make([]error, len(tasks))
	sem := make(chan struct{}, w.st.cfg.concurrency)
	var wg sync.WaitGroup
	for i, t := range tasks {
		if ctx.Err() != nil {
			results[i] = ctxError(ctx)
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i] = t.send(ctx)
		})
	}
	wg.Wait()
	for i, t := range tasks {
		err := results[i]
		for _, rec := range t.records {
			w.errs[rec] = err
			if err != nil && sdk.CodeOf(err).Retriable() {
				mu := w.muts[rec]
				w.held[rowID{mu.table, string(mu.row)}] = err
			}
		}
	}
}

// ctxError is the error of records not sent because the Write's context
// ended.
func ctxError(ctx context.Context) error {
	return sdk.Errorf(sdk.CodeOf(ctx.Err()), "hbase sink: not written: %v", ctx.Err())
}

// putTask is one multi-row put of table's rows.
func (w *batchWrite) putTask(table string, rows []*putRow) task {
	var recs []int
	for _, r := range rows {
		recs = append(recs, r.records...)
	}
	return task{records: recs, send: func(ctx context.Context) error {
		body, ctype, err := encodeCellSet(w.st.cfg.encoding, rows)
		if err != nil {
			return sdk.Errorf(sdk.CodeInternal, "hbase sink: encoding a CellSet for table %s: %v", table, err)
		}
		// The reference guide's multi-row put: any row in the path, the
		// rows of the body name their own keys.
		a, err := w.st.gw.do(ctx, call{method: http.MethodPut, path: "/" + table + "/fakerow",
			contentType: ctype, body: body, idempotent: true})
		return resultError(a, err, table)
	}}
}

// singleTask is one delete or check-and-put.
func (w *batchWrite) singleTask(sg single) task {
	mu := sg.mu
	rec := &w.records[sg.record]
	return task{records: []int{sg.record}, send: func(ctx context.Context) error {
		if mu.op == opDelete {
			path := "/" + mu.table + "/" + escapeSegment(string(mu.row), false)
			if len(mu.deleteColumns) > 0 {
				cols := make([]string, len(mu.deleteColumns))
				for i, c := range mu.deleteColumns {
					cols[i] = escapeSegment(c, true)
				}
				path += "/" + strings.Join(cols, ",")
				if mu.ts != 0 {
					path += "/" + strconv.FormatInt(mu.ts, 10)
				}
			}
			a, err := w.st.gw.do(ctx, call{method: http.MethodDelete, path: path, idempotent: true})
			return resultError(a, err, mu.table)
		}
		row := &putRow{table: mu.table, key: mu.row}
		row.add(mu.cells, mu.ts, sg.record)
		checkCol := w.st.cfg.mapping.check.column
		// The gateway's check-and-put: the last cell is the check.
		row.cells = append(row.cells, putCell{column: checkCol, value: mu.checkValue})
		body, ctype, err := encodeCellSet(w.st.cfg.encoding, []*putRow{row})
		if err != nil {
			return sdk.Errorf(sdk.CodeInternal, "hbase sink: encoding a check-and-put for table %s: %v", mu.table, err)
		}
		// The body names the row; the path's row is for logs and proxies,
		// and a placeholder where the gateway's path rules could trip on it.
		path := "/" + mu.table + "/fakerow"
		if plainRow(mu.row) {
			path = "/" + mu.table + "/" + escapeSegment(string(mu.row), false)
		}
		a, err := w.st.gw.do(ctx, call{method: http.MethodPut, path: path, query: "check=put",
			contentType: ctype, body: body})
		if err == nil && a.status == http.StatusNotModified {
			return sdk.Errorf(sdk.CodeIllegal,
				"hbase sink: check_and_put not applied: %s of row %q in table %s does not hold the value check.value gave (record %s qid %s offset %d)",
				checkCol, summaryKey(mu.row), mu.table, rec.Topic, rec.Qid, rec.Offset)
		}
		return resultError(a, err, mu.table)
	}}
}

// resultError is nil for a success, else the records' error.
func resultError(a answer, err error, table string) error {
	if err != nil {
		return transportError(err)
	}
	if a.status == http.StatusOK || a.status == http.StatusCreated {
		return nil
	}
	return statusError(a, table)
}

// summaryKey shortens a row key for a message.
func summaryKey(row []byte) string {
	if len(row) > 64 {
		return string(row[:64]) + "..."
	}
	return string(row)
}

// plainRow reports whether a row key can be named in a gateway's path:
// UTF-8 (the gateway decodes the path as UTF-8), without '*' (a glob to
// it), and not "." or ".." (which HTTP servers resolve).
func plainRow(row []byte) bool {
	s := string(row)
	return utf8.Valid(row) && !strings.Contains(s, "*") && s != "." && s != ".."
}

// escapeSegment percent-encodes s for a path segment the gateway decodes
// with java.net.URLDecoder: every byte but letters, digits and -_.~ (and
// the colon of a column, when column), so '+', ',', '/' and '*' reach it
// as data.
func escapeSegment(s string, column bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', column && c == ':':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}
