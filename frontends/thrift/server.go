// Package thriftapi serves DDMQ's Thrift ProducerService (producer.thrift,
// seed 001's IDL) and ConsumerService (consumer.thrift, seed 000's IDL) so
// that DDMQ's SDKs and any client generated from that IDL work against
// mqgate unchanged. docs/thrift.md describes the wire behaviour:
// transports, methods, result codes and the message mapping.
//
// The generated code lives in gen-go/producer and gen-go/consumer;
// regenerate it with `go generate` (generate.go).
package thriftapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/auth"
	"github.com/mqgate/mqgate/core/delay"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/quota"
	"github.com/mqgate/mqgate/core/router"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/internal/bytebudget"
	"github.com/mqgate/mqgate/sdk"
)

// Producer produces messages to a topic: the router, or a fake in tests.
type Producer interface {
	// Produce sends msgs to topic and returns one result per message, in
	// order, or a call error that applies to all of them. It must return
	// once ctx is done.
	Produce(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error)
	// ProduceAsync returns nil once msgs are durable in the local spool.
	ProduceAsync(ctx context.Context, topic string, msgs []produce.Message) error
}

// The router is the Producer mqgate serves with.
var (
	_ Producer          = (*router.Router)(nil)
	_ releasingProducer = (*router.Router)(nil)
)

// Transports and protocols of Options.
const (
	TransportFramed   = "framed"
	TransportBuffered = "buffered"
	ProtocolCompact   = "compact"
	ProtocolBinary    = "binary"
)

// Defaults of Options.
const (
	DefaultListen           = "127.0.0.1:9613"
	DefaultConsumerListen   = "127.0.0.1:9713"
	DefaultMaxMessageBytes  = 1 << 20
	DefaultMaxRequestBytes  = 64 << 20
	DefaultMaxBatchMessages = 10000
	DefaultTimeout          = 10 * time.Second
	DefaultMaxTimeout       = time.Minute
	DefaultStopTimeout      = 15 * time.Second
	DefaultMaxConnections   = 10000
	DefaultIdleTimeout      = 10 * time.Minute
)

// requestOverhead is what a request needs on the wire besides one
// message's Size: the method name, the topic, the Thrift field headers.
// MaxRequestBytes is raised to at least MaxMessageBytes plus this, so that
// a message over MaxMessageBytes gets an answer with code 16 rather than a
// closed connection.
const requestOverhead = 64 << 10

// Options configure a ProducerServer or a ConsumerServer. Zero fields take
// the Default* values; fields that concern one service only say so.
type Options struct {
	// Listen is the address ListenAndServe listens on
	// (thrift.producer_listen, default DefaultListen, or
	// thrift.consumer_listen, default DefaultConsumerListen).
	Listen string
	// Transport is TransportFramed (the default, what DDMQ's SDKs use) or
	// TransportBuffered.
	Transport string
	// Protocol is ProtocolCompact (the default, what DDMQ's SDKs use) or
	// ProtocolBinary.
	Protocol string
	// MaxMessageBytes bounds one message's produce.Message.Size; a larger
	// one is answered with code 16.
	MaxMessageBytes int
	// MaxRequestBytes bounds one request on the wire: a frame, or a string
	// or binary field. A larger request is a protocol error: the connection
	// is closed without an answer. It is raised to MaxMessageBytes plus
	// 64 KiB when smaller.
	MaxRequestBytes int
	// MaxRequestBytesInFlight bounds the bytes of all requests the server
	// has read and not yet answered (thrift.max_request_bytes_in_flight);
	// a connection whose request finds no room within a second is closed.
	// Zero means 4 times MaxRequestBytes; it is raised to MaxRequestBytes
	// plus 64 KiB when smaller, room for one request of the largest size.
	MaxRequestBytesInFlight int64
	// MaxBatchMessages bounds the messages of one sendBatchSync; more are
	// answered with code 16.
	MaxBatchMessages int
	// DefaultTimeout bounds a sendSync whose timeout is <= 0, and every
	// sendBatchSync and sendAsync (which carry no timeout). On
	// ConsumerService it bounds every call, after the linger of a pull or
	// fetch, and caps that linger.
	DefaultTimeout time.Duration
	// ReadTimeout bounds the time one request may take to arrive, from
	// its first byte to its last (thrift.limits.read_timeout): a client
	// trickling a request in cannot hold a connection longer. Zero means
	// DefaultTimeout.
	ReadTimeout time.Duration
	// IdleTimeout closes a connection that sends nothing for this long
	// after its last answer (thrift.limits.idle_timeout).
	IdleTimeout time.Duration
	// MaxTimeout caps the timeout a sendSync asks for.
	MaxTimeout time.Duration
	// StopTimeout bounds how long Stop waits for in-flight calls.
	StopTimeout time.Duration
	// MaxConnections bounds open client connections; past it, new
	// connections wait in the listen backlog.
	MaxConnections int
	// Logger receives request and error logs. Nil means slog.Default().
	Logger *slog.Logger
	// Registry receives the Thrift metrics. Nil means a registry of the
	// server's own.
	Registry *prometheus.Registry
	// Gate authenticates each connection as it opens and authorizes each
	// call. Nil: no auth, no ACL.
	Gate *auth.Gate
	// Token, when set, lets each call carry a token of its own
	// (auth.thrift_token), and keeps open the connections that have no
	// principal: their calls must carry one. Nil: no call carries a token.
	Token *CallToken
	// Quotas hold each call's principal to its produce rates (quotas:);
	// a refusal is code 15 in the call's Result. Nil: no principal is
	// limited. The consume sessions they bound are the consumer's to
	// count.
	Quotas *quota.Ledger
	// Delayer adds and cancels the delay messages of sendDelaySync. Nil
	// means delay messages are not enabled: sendDelaySync answers code 11.
	Delayer delay.Delayer
	// Answers is AnswersStrict (the default: as DDMQ's proxies answer) or
	// AnswersInformative (mqgate's own answers where DDMQ's lose
	// information); thrift.ddmq_answers.
	Answers string
}

// strict is whether the services answer as DDMQ's proxies do where
// DDMQ's answers lose information: anything but AnswersInformative.
func (o Options) strict() bool { return o.Answers != AnswersInformative }

func (o Options) withDefaults() Options {
	if o.Transport == "" {
		o.Transport = TransportFramed
	}
	if o.Protocol == "" {
		o.Protocol = ProtocolCompact
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	// Thrift sizes are int32; leave room for the overhead below.
	const maxInt32 = 1<<31 - 1
	o.MaxMessageBytes = min(o.MaxMessageBytes, maxInt32-requestOverhead)
	o.MaxRequestBytes = min(max(o.MaxRequestBytes, o.MaxMessageBytes+requestOverhead), maxInt32)
	if o.MaxRequestBytesInFlight <= 0 {
		o.MaxRequestBytesInFlight = 4 * int64(o.MaxRequestBytes)
	}
	// A read may come in bytes beyond the request's own (the next
	// request's, read ahead by the transport's buffer): leave room.
	o.MaxRequestBytesInFlight = max(o.MaxRequestBytesInFlight, int64(o.MaxRequestBytes)+requestOverhead)
	if o.MaxBatchMessages <= 0 {
		o.MaxBatchMessages = DefaultMaxBatchMessages
	}
	if o.DefaultTimeout <= 0 {
		o.DefaultTimeout = DefaultTimeout
	}
	if o.MaxTimeout <= 0 {
		o.MaxTimeout = DefaultMaxTimeout
	}
	o.DefaultTimeout = min(o.DefaultTimeout, o.MaxTimeout)
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = o.DefaultTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	return o
}

// stopGrace is how long Stop waits, after StopTimeout, for calls whose
// context it has cancelled to write their answers.
const stopGrace = time.Second

// connectivityCheckInterval replaces thrift's 5 ms: generated processors
// poll each in-flight call's connection this often, and cancel the call's
// context when the client has gone.
const connectivityCheckInterval = 100 * time.Millisecond

var setConnectivityCheck sync.Once

// errStopping is the cause of the calls Stop cancels.
var errStopping = sdk.Errorf(sdk.CodeUnavailable, "mqgate is stopping; send again")

// ProducerServer serves DDMQ's ProducerService. It is safe for concurrent
// use.
//
// Each connection is served by one goroutine, requests one after the other
// as Thrift clients send them. Stop closes idle connections at once and
// waits for in-flight calls to be answered.
type ProducerServer struct {
	*server
}

// server is the accept loop, connection tracking and shutdown that the
// ProducerService and ConsumerService servers share.
type server struct {
	// service names the service in errors: "producer" or "consumer".
	service string
	// listenKey is the configuration key of Options.Listen, for errors.
	listenKey string
	opts      Options
	log       *slog.Logger
	metrics   *thriftMetrics
	budget    *bytebudget.Budget
	processor thrift.TProcessor
	transport thrift.TTransportFactory
	protocol  thrift.TProtocolFactory
	cfg       *thrift.TConfiguration
	// configErr is a bad Transport or Protocol, returned by Serve.
	configErr error

	// base is the parent context of every call; cancelled when Stop runs
	// out of time.
	base       context.Context
	gate       *auth.Gate
	cancelBase context.CancelCauseFunc
	slots      chan struct{} // one per open connection, up to MaxConnections
	stopped    chan struct{} // closed by Stop

	mu        sync.Mutex
	stopping  bool
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	wg        sync.WaitGroup // connection goroutines
}

// NewProducerServer returns a server answering ProducerService calls by
// producing through p. It panics only if opts.Registry holds a different
// collector under the Thrift metrics' names.
func NewProducerServer(opts Options, p Producer) *ProducerServer {
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	s := newServer("producer", "thrift.producer_listen", opts)
	svc := &producerService{
		opts:     s.opts,
		producer: p,
		log:      s.log,
		metrics:  s.metrics,
	}
	proc := producer.NewProducerServiceProcessor(svc)
	gen, _ := proc.GetProcessorFunction(methodSendBatchSync)
	proc.AddToProcessorMap(methodSendBatchSync, &batchProcessor{gen: gen, h: svc})
	s.processor = proc
	return &ProducerServer{s}
}

// newServer returns a server without its processor, which the caller
// sets.
func newServer(service, listenKey string, opts Options) *server {
	opts = opts.withDefaults()
	setConnectivityCheck.Do(func() {
		thrift.ServerConnectivityCheckInterval = connectivityCheckInterval
	})
	s := &server{
		service:   service,
		listenKey: listenKey,
		opts:      opts,
		log:       opts.Logger,
		metrics:   newThriftMetrics(opts.Registry),
		slots:     make(chan struct{}, opts.MaxConnections),
		stopped:   make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*serverConn]struct{}),
	}
	s.budget = bytebudget.New(opts.MaxRequestBytesInFlight, requestBudgetWait, s.metrics.requestBytesInFlight, s.metrics.requestsRefused)
	s.base, s.cancelBase = context.WithCancelCause(context.Background())
	s.gate = opts.Gate
	if s.gate == nil {
		s.gate = auth.Open(opts.Logger)
	}
	s.cfg = &thrift.TConfiguration{
		MaxMessageSize: int32(opts.MaxRequestBytes),
		MaxFrameSize:   int32(opts.MaxRequestBytes),
	}
	switch opts.Transport {
	case TransportFramed:
		// The buffer under the frames makes a frame's length and body
		// one write.
		s.transport = thrift.NewTFramedTransportFactoryConf(thrift.NewTBufferedTransportFactory(4<<10), s.cfg)
	case TransportBuffered:
		s.transport = thrift.NewTBufferedTransportFactory(8 << 10)
	default:
		s.configErr = fmt.Errorf("thrift transport: must be %s or %s; got %q", TransportFramed, TransportBuffered, opts.Transport)
	}
	switch opts.Protocol {
	case ProtocolCompact:
		s.protocol = thrift.NewTCompactProtocolFactoryConf(s.cfg)
	case ProtocolBinary:
		s.protocol = thrift.NewTBinaryProtocolFactoryConf(s.cfg)
	default:
		s.configErr = errors.Join(s.configErr, fmt.Errorf("thrift protocol: must be %s or %s; got %q", ProtocolCompact, ProtocolBinary, opts.Protocol))
	}
	return s
}

// ListenAndServe listens on Options.Listen and calls Serve.
func (s *server) ListenAndServe() error {
	if s.configErr != nil {
		return s.configErr
	}
	l, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s (%s): %w", s.opts.Listen, s.listenKey, err)
	}
	return s.Serve(l)
}

// Serve accepts connections on l and answers their calls until Stop. It
// returns nil after Stop (at once when Stop came first) and any other
// error that stopped it; l is closed either way.
func (s *server) Serve(l net.Listener) error {
	if s.configErr != nil {
		l.Close()
		return s.configErr
	}
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	var backoff time.Duration
	for {
		select {
		case s.slots <- struct{}{}:
		case <-s.stopped:
			return nil
		}
		conn, err := l.Accept()
		if err != nil {
			<-s.slots
			if s.isStopping() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accepting thrift connections on %s: %w", l.Addr(), err)
			}
			// Out of file descriptors, a connection aborted before it was
			// accepted, and the like: wait and go on, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accepting thrift connection; retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.stopped:
				return nil
			}
			continue
		}
		backoff = 0
		c := &serverConn{s: s, conn: conn}
		if !s.track(c) {
			conn.Close()
			<-s.slots
			return nil
		}
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			defer s.forget(c)
			c.serve()
		}()
	}
}

func (s *server) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// track registers c and counts its goroutine, unless the server is
// stopping.
func (s *server) track(c *serverConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *server) forget(c *serverConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Stop stops accepting connections, closes idle ones, and waits until every
// in-flight call has been answered, for at most Options.StopTimeout. Past
// that it cancels the calls' contexts (their answers say the gateway is
// stopping) and closes every connection; the error then says how many calls
// were still running. Stop may be called more than once.
func (s *server) Stop() error {
	s.mu.Lock()
	if !s.stopping {
		s.stopping = true
		close(s.stopped)
		for l := range s.listeners {
			l.Close()
		}
		for c := range s.conns {
			if !c.inFlight {
				c.conn.Close()
			}
		}
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(s.opts.StopTimeout)
	defer timer.Stop()
	select {
	case <-done:
		s.cancelBase(errStopping)
		return nil
	case <-timer.C:
	}

	s.cancelBase(errStopping)
	timer.Reset(stopGrace)
	select {
	case <-done:
		return nil
	case <-timer.C:
	}
	s.mu.Lock()
	n := 0
	for c := range s.conns {
		if c.inFlight {
			n++
		}
		c.conn.Close()
	}
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	return fmt.Errorf("stopping the thrift %s service: %d calls still running after %s", s.service, n, s.opts.StopTimeout+stopGrace)
}
