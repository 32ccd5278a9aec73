// Package connlimit bounds the connections a listener holds open: in all,
// and per client address, so that no client can take the file descriptors
// every other client and the gateway's own admin routes need. A connection
// past a limit is accepted and closed at once (after a short answer, when
// the listener's protocol has one) rather than left in the kernel's
// backlog, where it would wait unseen and time out.
//
// Accept errors such as "too many open files" are waited out with a
// backoff inside Accept, logged once per episode, and never returned to
// the server, which would otherwise spin or log each one.
package connlimit

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/metrics"
)

// Reasons a connection is refused, the reason label of
// mqgate_listener_refused_connections_total.
const (
	ReasonMaxConnections = "max_connections"
	ReasonPerSource      = "max_connections_per_source"
)

// Refusal says why a connection was refused.
type Refusal struct {
	// Reason is ReasonMaxConnections or ReasonPerSource.
	Reason string
	// Key is the configuration key of the limit, e.g.
	// http.limits.max_connections.
	Key string
	// Limit is the limit's value.
	Limit int
}

func (r Refusal) String() string {
	if r.Reason == ReasonPerSource {
		return fmt.Sprintf("too many connections from this address: %s is %d", r.Key, r.Limit)
	}
	return fmt.Sprintf("too many connections: %s is %d", r.Key, r.Limit)
}

// Options configure Wrap.
type Options struct {
	// Listener names the listener in metrics and logs ("http",
	// "thrift_producer", "thrift_consumer").
	Listener string
	// KeyPrefix is the configuration block of the limits, used in
	// refusals and logs ("http.limits").
	KeyPrefix string
	// MaxConnections bounds the connections open at once; <= 0 is no bound.
	MaxConnections int
	// MaxConnectionsPerSource bounds the connections open at once from one
	// client IP address; <= 0 is no bound.
	MaxConnectionsPerSource int
	// Refuse, when set, writes an answer on a refused connection before it
	// is closed (an HTTP 503). It runs in a goroutine of its own, with a
	// deadline of RefuseTimeout on the connection; at most
	// maxRefusing of them run at once, and past that refused connections
	// are closed without an answer. It sees the raw connection: leave it
	// nil when a TLS layer wraps the listener.
	Refuse func(c net.Conn, r Refusal) error
	// Logger receives the accept-error episodes. Nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the listener metrics. Nil means none.
	Registerer prometheus.Registerer
}

// RefuseTimeout bounds the time a refused connection is kept to write its
// answer and let the client read it.
const RefuseTimeout = 500 * time.Millisecond

// maxRefusing bounds the refused connections answered at once per
// listener: the descriptors they hold count against the process's
// reserve, not against MaxConnections.
const maxRefusing = 16

// Accept backoff after an error, as net/http's.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Listener is a net.Listener enforcing Options' limits. Its connections
// give back their slot when closed.
type Listener struct {
	net.Listener
	opts     Options
	log      *slog.Logger
	open     prometheus.Gauge
	refused  map[string]prometheus.Counter
	refusing chan struct{}
	done     chan struct{}
	close    sync.Once

	mu       sync.Mutex
	total    int
	bySource map[string]int
}

var _ net.Listener = (*Listener)(nil)

// Wrap returns l bounded by opts. Closing the result closes l.
func Wrap(l net.Listener, opts Options) *Listener {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	open := metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mqgate_listener_connections",
		Help: "Client connections open, by listener; bounded by its limits.max_connections.",
	}, []string{"listener"}))
	refused := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mqgate_listener_refused_connections_total",
		Help: "Client connections closed at once because a limit of their listener was reached, by listener and limit.",
	}, []string{"listener", "reason"}))
	return &Listener{
		Listener: l,
		opts:     opts,
		log:      opts.Logger,
		open:     open.WithLabelValues(opts.Listener),
		refused: map[string]prometheus.Counter{
			ReasonMaxConnections: refused.WithLabelValues(opts.Listener, ReasonMaxConnections),
			ReasonPerSource:      refused.WithLabelValues(opts.Listener, ReasonPerSource),
		},
		refusing: make(chan struct{}, maxRefusing),
		done:     make(chan struct{}),
		bySource: map[string]int{},
	}
}

// Accept returns the next connection within the limits. Connections past
// a limit are refused and counted, and Accept waits for the next one.
// Errors of the underlying Accept other than a closed listener are waited
// out with a backoff; Accept returns an error only once the listener is
// closed.
func (l *Listener) Accept() (net.Conn, error) {
	var backoff time.Duration
	failures := 0
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			if l.isClosed() {
				return nil, net.ErrClosed
			}
			// Out of descriptors, a connection reset before it was
			// accepted, and the like: the condition passes, or the
			// listener is closed. One log line per episode.
			if failures == 0 {
				l.log.Warn("accepting connections failed; retrying with backoff until it passes",
					"listener", l.opts.Listener, "addr", l.Addr().String(), "err", err)
			}
			failures++
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return nil, net.ErrClosed
			}
			continue
		}
		if failures > 0 {
			l.log.Info("accepting connections again", "listener", l.opts.Listener, "failed_accepts", failures)
			failures, backoff = 0, 0
		}
		source := sourceOf(c.RemoteAddr())
		if r, ok := l.admit(source); !ok {
			l.refuse(c, r)
			continue
		}
		l.open.Inc()
		return &conn{Conn: c, l: l, source: source}, nil
	}
}

// admit takes a slot for a connection from source, or says which limit
// leaves none.
func (l *Listener) admit(source string) (Refusal, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if max := l.opts.MaxConnections; max > 0 && l.total >= max {
		return Refusal{Reason: ReasonMaxConnections, Key: l.opts.KeyPrefix + ".max_connections", Limit: max}, false
	}
	if max := l.opts.MaxConnectionsPerSource; max > 0 && l.bySource[source] >= max {
		return Refusal{Reason: ReasonPerSource, Key: l.opts.KeyPrefix + ".max_connections_per_source", Limit: max}, false
	}
	l.total++
	l.bySource[source]++
	return Refusal{}, true
}

// release gives back a slot admit took.
func (l *Listener) release(source string) {
	l.mu.Lock()
	l.total--
	if n := l.bySource[source] - 1; n > 0 {
		l.bySource[source] = n
	} else {
		delete(l.bySource, source)
	}
	l.mu.Unlock()
	l.open.Dec()
}

// Open returns the connections open in all and from source.
func (l *Listener) Open(source string) (total, fromSource int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.bySource[source]
}

// refuse counts c as refused for r and closes it, after Options.Refuse
// has answered when there is room for one more answer in flight.
func (l *Listener) refuse(c net.Conn, r Refusal) {
	l.refused[r.Reason].Inc()
	if l.opts.Refuse == nil {
		c.Close()
		return
	}
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close() // answers in flight are at their bound: a flood needs none
		return
	}
	go func() {
		defer func() { <-l.refusing }()
		answer(c, r, l.opts.Refuse)
	}()
}

// answer writes refuse's answer on c, then half-closes it and reads what
// the client sent until it closes or RefuseTimeout passes: closing with
// unread bytes would reset the connection and could destroy the answer
// before the client reads it.
func answer(c net.Conn, r Refusal, refuse func(net.Conn, Refusal) error) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(RefuseTimeout)) // fails only on a closed conn, which the write reports
	if err := refuse(c, r); err != nil {
		return // the client is gone or too slow: nothing more to say
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite() // best effort: the close below ends it anyway
	}
	var buf [512]byte
	for {
		if _, err := c.Read(buf[:]); err != nil {
			return
		}
	}
}

// Close closes the listener; Accept returns at once, even while backing
// off. Open connections stay open.
func (l *Listener) Close() error {
	l.close.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (l *Listener) isClosed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// sourceOf is the client address a connection counts against: its IP.
func sourceOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// conn is an admitted connection; closing it gives back its slot once.
type conn struct {
	net.Conn
	l       *Listener
	source  string
	release sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.release.Do(func() { c.l.release(c.source) })
	return err
}

// CloseWrite half-closes the connection when the underlying one can, as
// net/http does before closing a connection it answered with an error.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}
