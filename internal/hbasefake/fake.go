// Package hbasefake is a fake of the HBase REST gateway written from the
// Apache HBase REST reference: the REST chapter of the HBase Reference
// Guide and the gateway's documented resources. Tests and benchmarks run
// it on loopback in place of `hbase rest start`.
//
// It stores cells (table -> row -> column -> versions with timestamps,
// newest first) and answers what the HBase sink uses, with the status
// codes and bodies the gateway gives:
//
//   - PUT or POST /TABLE/ROW with a CellSet body (application/x-protobuf,
//     application/protobuf or application/json): the multi-row put; each
//     row of the body names its own key, and ROW is used only for rows that
//     leave it out. A family the table lacks is 404, as the gateway reports
//     NoSuchColumnFamilyException.
//   - PUT /TABLE/ROW?check=put: check-and-put. One row; its last cell is the
//     check (column and expected value, empty for "absent or empty"), the
//     others are put, and the check column must be among them. A failed
//     check is 304 Not Modified.
//   - GET /TABLE/ROW[/COLUMNS][?v=N]: the row as a CellSet, protobuf or
//     JSON after the Accept header (JSON when it names neither); 404 when
//     nothing is there.
//   - DELETE /TABLE/ROW[/COLUMNS[/TIMESTAMP]]: deletes the row, families or
//     columns, all versions or those at or before TIMESTAMP.
//   - PUT, POST, GET and DELETE /TABLE/schema with a JSON TableSchema:
//     create (201), change, read and drop a table. Families honour
//     VERSIONS and NEW_VERSION_BEHAVIOR.
//
// Any request to a table that does not exist is 404. Where the gateway
// would answer XML, or would take a single cell as application/octet-stream,
// the fake answers 406 or 415 instead; scans, multi-gets and check=delete,
// append and increment are not there (400). Request bodies over
// Config.MaxBodyBytes are refused with 413.
//
// Tests can make it fail: FailNext answers the next requests with a status
// of their choice, Down stops it listening (connections are refused) until
// Up.
package hbasefake

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// DefaultMaxBodyBytes is Config.MaxBodyBytes when it is 0.
const DefaultMaxBodyBytes = 64 << 20

// Config configures a fake gateway.
type Config struct {
	// Addr is where it listens; "127.0.0.1:0" when empty.
	Addr string
	// MaxBodyBytes bounds a request body; a larger one is answered 413.
	// DefaultMaxBodyBytes when 0.
	MaxBodyBytes int64
	// Username and Password, when Username is set, make every request
	// need HTTP basic authentication with them (401 otherwise).
	Username, Password string
	// TLS, when set, makes the fake serve HTTPS with it.
	TLS *tls.Config
}

// Request is one request the fake answered.
type Request struct {
	Method string
	// Path is the escaped path; Query the raw query.
	Path, Query string
	// ContentType is the request's Content-Type header.
	ContentType string
	// Status is the status the fake answered.
	Status int
}

// Server is a running fake gateway. Its methods are safe for concurrent
// use.
type Server struct {
	cfg  Config
	addr string // the address it listens on, kept across Down and Up

	mu       sync.Mutex // guards everything below
	srv      *http.Server
	served   chan struct{} // closed when srv's Serve returns
	store    *store
	failures []int // statuses to answer the next requests with
	requests []Request
	lastTS   int64 // the last timestamp the server's clock gave
}

// Start starts a fake gateway. Close it when done.
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	s := &Server{cfg: cfg, store: newStore()}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("hbasefake: listening on %s: %w", cfg.Addr, err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	return s, nil
}

// serve starts an HTTP server on ln. s.mu must be held or s unshared.
func (s *Server) serve(ln net.Listener) {
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second,
		// Clients that hang up or distrust the certificate are what
		// tests do on purpose; their noise is not the fake's to print.
		ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // returns ErrServerClosed on Close; nothing else is expected
	}()
	s.srv, s.served = srv, done
}

// URL is the fake's base URL, such as "http://127.0.0.1:41234".
func (s *Server) URL() string {
	if s.cfg.TLS != nil {
		return "https://" + s.addr
	}
	return "http://" + s.addr
}

// Addr is the address the fake listens on.
func (s *Server) Addr() string { return s.addr }

// Close stops the fake and waits for its server to finish.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stop()
}

// stop closes the running HTTP server, if any. s.mu must be held.
func (s *Server) stop() error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Close()
	<-s.served
	s.srv, s.served = nil, nil
	return err
}

// Down stops the fake listening and drops its connections, as a gateway
// that died: requests are refused until Up. The stored cells stay.
func (s *Server) Down() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stop()
}

// Up listens again at the same address after Down.
func (s *Server) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("hbasefake: listening again on %s: %w", s.addr, err)
	}
	s.serve(ln)
	return nil
}

// FailNext answers the next n requests, whatever they ask, with status
// (500 and 503 are what a gateway whose cluster is in trouble gives).
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, status)
	}
}

// Requests returns the requests answered so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ErrTableExists is CreateTable's error for a table the fake has.
var ErrTableExists = errors.New("hbasefake: table exists")

// CreateTable creates a table with families, as PUT /TABLE/schema does.
func (s *Server) CreateTable(name string, families ...Family) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.store.tables[name]; ok {
		return fmt.Errorf("%w: %s", ErrTableExists, name)
	}
	t := &table{families: map[string]Family{}, rows: map[string]*row{}}
	for _, f := range families {
		t.families[f.Name] = f
	}
	s.store.tables[name] = t
	return nil
}

// Families returns families of the given names with default settings.
func Families(names ...string) []Family {
	fs := make([]Family, len(names))
	for i, n := range names {
		fs[i] = Family{Name: n}
	}
	return fs
}

// Row returns the newest value of each column of a row; nil when the
// table or row does not exist.
func (s *Server) Row(tableName, key string) map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.store.tables[tableName]
	if t == nil {
		return nil
	}
	cells := t.read(key, nil, 1)
	if len(cells) == 0 {
		return nil
	}
	out := make(map[string][]byte, len(cells))
	for _, c := range cells {
		out[c.Column] = c.Value
	}
	return out
}

// Versions returns the stored versions of one column, newest first.
func (s *Server) Versions(tableName, key, column string) []Cell {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.store.tables[tableName]
	if t == nil {
		return nil
	}
	return t.read(key, []string{column}, int(^uint(0)>>1))
}

// now is the server clock's time for a cell without its own timestamp, in
// milliseconds. s.mu must be held.
func (s *Server) now() int64 {
	ts := time.Now().UnixMilli()
	s.lastTS = max(s.lastTS, ts)
	return s.lastTS
}
