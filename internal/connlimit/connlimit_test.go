package connlimit

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mqgate/mqgate/internal/syncbuf"
)

// server is a wrapped loopback listener whose accepted connections arrive
// on accepted.
type server struct {
	l        *Listener
	reg      *prometheus.Registry
	accepted chan net.Conn
}

func newServer(t *testing.T, opts Options) *server {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{reg: prometheus.NewRegistry(), accepted: make(chan net.Conn, 100)}
	opts.Registerer = s.reg
	if opts.Listener == "" {
		opts.Listener = "test"
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "test.limits"
	}
	s.l = Wrap(inner, opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := s.l.Accept()
			if err != nil {
				return
			}
			s.accepted <- c
		}
	}()
	t.Cleanup(func() {
		s.l.Close()
		<-done
		close(s.accepted)
		for c := range s.accepted {
			c.Close()
		}
	})
	return s
}

// dial connects from the loopback address from (127.0.0.0/8 is all
// loopback on Linux).
func (s *server) dial(t *testing.T, from string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", s.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// admitted reports whether the server accepted c (true) or closed it at
// once (false): it reads from c, which a refused connection ends with EOF,
// and otherwise waits for the server's side to arrive.
func (s *server) admitted(t *testing.T, c net.Conn) (bool, []byte) {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c) // ends when the server closes c
		got <- b
	}()
	select {
	case sc := <-s.accepted:
		if sc.RemoteAddr().String() != c.LocalAddr().String() {
			t.Fatalf("accepted %s, want %s", sc.RemoteAddr(), c.LocalAddr())
		}
		t.Cleanup(func() { sc.Close() })
		return true, nil
	case b := <-got:
		return false, b
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was neither accepted nor closed")
		return false, nil
	}
}

func (s *server) refusedCount(reason string) float64 {
	return testutil.ToFloat64(s.l.refused[reason])
}

// Connections past either limit are closed at once and counted by reason;
// other sources keep their own room until the total is reached.
func TestLimits(t *testing.T) {
	for _, tc := range []struct {
		name         string
		max, per     int
		from         []string // in dialling order
		wantAdmitted []bool
		wantReason   map[string]float64
	}{
		{
			name: "per source", max: 10, per: 2,
			from:         []string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2", "127.0.0.2"},
			wantAdmitted: []bool{true, true, false, true, true, false},
			wantReason:   map[string]float64{ReasonPerSource: 2},
		},
		{
			name: "total", max: 3, per: 2,
			from:         []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.1"},
			wantAdmitted: []bool{true, true, true, false, false},
			wantReason:   map[string]float64{ReasonMaxConnections: 2},
		},
		{
			name: "no limits", max: 0, per: 0,
			from:         []string{"127.0.0.1", "127.0.0.1", "127.0.0.1"},
			wantAdmitted: []bool{true, true, true},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, Options{MaxConnections: tc.max, MaxConnectionsPerSource: tc.per})
			for i, from := range tc.from {
				if got, _ := s.admitted(t, s.dial(t, from)); got != tc.wantAdmitted[i] {
					t.Fatalf("connection %d from %s admitted = %v, want %v", i, from, got, tc.wantAdmitted[i])
				}
			}
			for _, reason := range []string{ReasonMaxConnections, ReasonPerSource} {
				if got := s.refusedCount(reason); got != tc.wantReason[reason] {
					t.Errorf("refused for %s = %v, want %v", reason, got, tc.wantReason[reason])
				}
			}
			admitted := 0
			for _, a := range tc.wantAdmitted {
				if a {
					admitted++
				}
			}
			if got := testutil.ToFloat64(s.l.open); got != float64(admitted) {
				t.Errorf("open connections gauge = %v, want %d", got, admitted)
			}
		})
	}
}

// Closing an admitted connection gives its slot back, in the total and
// in its source's count, once however often it is closed.
func TestCloseReleasesSlot(t *testing.T) {
	s := newServer(t, Options{MaxConnections: 1, MaxConnectionsPerSource: 1})
	first := s.dial(t, "127.0.0.1")
	var sc net.Conn
	select {
	case sc = <-s.accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("first connection not accepted")
	}
	if ok, _ := s.admitted(t, s.dial(t, "127.0.0.1")); ok {
		t.Fatal("second connection admitted past max_connections 1")
	}
	sc.Close()
	sc.Close()
	first.Close()
	if total, src := s.l.Open("127.0.0.1"); total != 0 || src != 0 {
		t.Fatalf("after close: open = %d, from source = %d; want 0, 0", total, src)
	}
	if ok, _ := s.admitted(t, s.dial(t, "127.0.0.1")); !ok {
		t.Fatal("a connection after the first closed was refused")
	}
	if total, _ := s.l.Open("127.0.0.1"); total != 1 {
		t.Fatalf("open = %d, want 1 (a double close must not free two slots)", total)
	}
}

// A refused connection gets Refuse's answer, naming the limit's key,
// before it is closed.
func TestRefusedConnectionIsAnswered(t *testing.T) {
	s := newServer(t, Options{
		KeyPrefix:      "http.limits",
		MaxConnections: 1,
		Refuse: func(c net.Conn, r Refusal) error {
			_, err := io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n"+r.String())
			return err
		},
	})
	if ok, _ := s.admitted(t, s.dial(t, "127.0.0.1")); !ok {
		t.Fatal("first connection refused")
	}
	c := s.dial(t, "127.0.0.1")
	// What a client sends first must not cost it the answer.
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	ok, answer := s.admitted(t, c)
	if ok {
		t.Fatal("second connection admitted past max_connections 1")
	}
	line, _, _ := bufio.NewReader(bytes.NewReader(answer)).ReadLine()
	if string(line) != "HTTP/1.1 503 Service Unavailable" || !strings.Contains(string(answer), "http.limits.max_connections is 1") {
		t.Fatalf("answer = %q; want a 503 naming http.limits.max_connections is 1", answer)
	}
}

// failingListener fails Accept with err fails times, then accepts from
// the real listener it wraps.
type failingListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
	err   error
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, l.err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// Accept errors such as EMFILE are waited out inside Accept and logged
// once per episode, not returned to the server.
func TestAcceptErrorsAreWaitedOut(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	fl := &failingListener{Listener: inner, fails: 5, err: &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}}
	l := Wrap(fl, Options{Listener: "test", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer l.Close()
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept = %v; want the connection after the errors pass", err)
	}
	sc.Close()
	text := logs.String()
	if n := strings.Count(text, "accepting connections failed"); n != 1 {
		t.Errorf("logged the failure %d times, want once per episode:\n%s", n, text)
	}
	if !strings.Contains(text, "too many open files") || !strings.Contains(text, "failed_accepts=5") {
		t.Errorf("log does not name the error and the count:\n%s", text)
	}
}

// Close ends an Accept that is backing off.
func TestCloseEndsBackoff(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: inner, fails: 1 << 30, err: &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}}
	l := Wrap(fl, Options{Listener: "test", Logger: slog.New(slog.DiscardHandler)})
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}

func TestDefaults(t *testing.T) {
	for _, tc := range []struct {
		nofile, wantMax, wantPer int
	}{
		{nofile: 256, wantMax: 42, wantPer: 21},
		{nofile: 1024, wantMax: 298, wantPer: 149},
		{nofile: 8192, wantMax: 2389, wantPer: 1000},
		{nofile: 1 << 20, wantMax: 10000, wantPer: 1000},
	} {
		max := DefaultMaxConnections(tc.nofile, 3)
		per := DefaultMaxConnectionsPerSource(max)
		if max != tc.wantMax || per != tc.wantPer {
			t.Errorf("nofile %d: max %d, per source %d; want %d, %d", tc.nofile, max, per, tc.wantMax, tc.wantPer)
		}
		if err := CheckBudget(tc.nofile, []string{"a", "b", "c"}, []int{max, max, max}); err != nil {
			t.Errorf("nofile %d: the defaults do not fit: %v", tc.nofile, err)
		}
	}
	err := CheckBudget(1024, []string{"http.limits.max_connections"}, []int{1000})
	if err == nil || !strings.Contains(err.Error(), "http.limits.max_connections") {
		t.Errorf("CheckBudget(1024, 1000) = %v; want an error naming the key", err)
	}
}
