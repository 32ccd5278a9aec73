// Package httpapi serves mqgate's HTTP API (docs/http.md): produce, delay
// messages, consumption (pull and ack, stats, fetch and commit, seed 004's
// batch-id cursor), and the admin routes /healthz, /readyz, /metrics and
// /v1/plugins.
//
// Every non-2xx answer, unknown routes included, has the body
// {"error": {"code": N, "message": "..."}} with the status statusOf maps N to.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/admin"
	"github.com/mqgate/mqgate/core/auth"
	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/delay"
	"github.com/mqgate/mqgate/core/pluginhost"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/push"
	"github.com/mqgate/mqgate/core/quota"
	"github.com/mqgate/mqgate/core/sink"
	"github.com/mqgate/mqgate/internal/bytebudget"
	"github.com/mqgate/mqgate/sdk"
)

// Producer produces messages to a topic. It returns one result per message,
// in order, or a call error that applies to all of them. It must return
// once ctx is done.
type Producer interface {
	Produce(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error)
	// ProduceAsync returns once msgs are durable in the spool.
	ProduceAsync(ctx context.Context, topic string, msgs []produce.Message) error
}

// Plugins reports the plugins of the deployment, for /readyz and
// /v1/plugins: each one's state and, for those up, whether they reach
// their brokers (*pluginhost.Host implements it).
type Plugins interface {
	Health(ctx context.Context) []pluginhost.Status
}

// Defaults of Options.
const (
	DefaultListen           = "127.0.0.1:8080"
	DefaultMaxMessageBytes  = 1 << 20
	DefaultMaxBodyBytes     = 64 << 20
	DefaultRequestTimeout   = 10 * time.Second
	DefaultMaxBatchMessages = 10000
	DefaultIdleTimeout      = 2 * time.Minute
	DefaultHeaderTimeout    = 10 * time.Second
	// DefaultBodyBytesInFlightFactor times MaxBodyBytes is the default of
	// MaxBodyBytesInFlight: room for a few bodies of the largest size
	// while many small ones are served.
	DefaultBodyBytesInFlightFactor = 4
)

// Options configure a Server. Zero fields take the Default* values.
type Options struct {
	// Listen is the address ListenAndServe listens on (http.listen).
	Listen string
	// MaxMessageBytes bounds one message's produce.Message.Size
	// (http.max_message_bytes); a larger one is refused with code 16.
	MaxMessageBytes int
	// MaxBodyBytes bounds a whole request body (http.max_body_bytes); a
	// larger one is refused with code 16.
	MaxBodyBytes int64
	// MaxBodyBytesInFlight bounds the bytes of all request bodies held in
	// memory at once (http.max_body_bytes_in_flight): a request that finds
	// no room within a second is refused with code 17. Zero means
	// DefaultBodyBytesInFlightFactor times MaxBodyBytes; it is raised to
	// MaxBodyBytes when smaller, so that every allowed body can be read.
	MaxBodyBytesInFlight int64
	// RequestTimeout bounds reading a request's body and producing it
	// (http.request_timeout); past it the answer is code 12.
	RequestTimeout time.Duration
	// MaxBatchMessages bounds the messages of one request
	// (http.max_batch_messages); more are refused with code 16.
	MaxBatchMessages int
	// IdleTimeout closes a keep-alive connection idle this long
	// (http.limits.idle_timeout).
	IdleTimeout time.Duration
	// HeaderTimeout bounds the time a request's headers may take to
	// arrive (http.limits.header_timeout): a client trickling them in
	// cannot hold a connection longer.
	HeaderTimeout time.Duration
	// Registry receives the HTTP metrics, and /metrics serves everything
	// registered in it. Nil means a registry of the server's own.
	Registry *prometheus.Registry
	// Logger receives request and error logs. Nil means slog.Default().
	Logger *slog.Logger
	// Delayer adds and cancels delay messages (the delay routes and
	// x-delay on /v1/kafka/send). Nil means delay messages are not
	// enabled: those requests are refused with code 11.
	Delayer delay.Delayer
	// Consumer serves the consume routes: pull, ack, stats, fetch,
	// commit and the batch-id cursor. Nil means consumption is not
	// enabled: those routes answer 400 with code 11.
	Consumer consume.Consumer
	// BatchDefault, when set, makes GET /info, GET /fetch_new,
	// GET /fetch_old and POST /ack serve the batch-id cursor of this
	// subscription at the root, as ape_dts does (http.batch_default).
	// Nil: those routes do not exist.
	BatchDefault *BatchSubscription
	// Push reports the push subscriptions for GET /v1/push. Nil: the
	// route lists none.
	Push PushStatus
	// Sinks reports the sink pipelines for GET /v1/sinks. Nil: the route
	// lists none.
	Sinks SinkStatus
	// Gate authenticates and authorizes every request but the probes.
	// Nil: no auth, no ACL.
	Gate *auth.Gate
	// Quotas hold each principal to its produce rates (quotas:); a
	// refusal is 429 with code 15 and Retry-After. Nil: no principal is
	// limited. The consume sessions they bound are Consumer's to count.
	Quotas *quota.Ledger
	// Subscriptions serves the admin routes of the groups' server-side
	// subscriptions. Nil: those routes answer code 11.
	Subscriptions SubscriptionAdmin
	// Admin serves the admin routes of topics and their messages. Nil:
	// those routes do not exist.
	Admin *admin.Service
	// Console serves the web console's files (frontends/console) under
	// ConsolePrefix. Its files hold no data and need no credentials: the
	// console asks the routes above for everything it shows, as the
	// browser's user. Nil: no console (http.console: false).
	Console http.Handler
	// Config shows the config file the gateway runs, secrets redacted
	// (GET /v1/admin/config; config.Config.Shown). Nil: not shown.
	Config func() (file string, shown any, redacted []string, err error)
	// LagHistory keeps the last hour of the lag of the groups consuming
	// through this gateway (GET /v1/admin/lag). Nil: not kept.
	LagHistory *admin.LagHistory
}

// ConsolePrefix is where Options.Console is served.
const ConsolePrefix = "/ui/"

// PushStatus is what GET /v1/push reads; *push.Service implements it.
type PushStatus interface {
	Status() []push.Status
}

// SinkStatus is what GET /v1/sinks reads; *sink.Service implements it.
type SinkStatus interface {
	Status() []sink.Status
	StatusOf(name string) (sink.Status, bool)
}

func (o Options) withDefaults() Options {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxBodyBytesInFlight <= 0 {
		o.MaxBodyBytesInFlight = DefaultBodyBytesInFlightFactor * o.MaxBodyBytes
	}
	o.MaxBodyBytesInFlight = max(o.MaxBodyBytesInFlight, o.MaxBodyBytes)
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.MaxBatchMessages <= 0 {
		o.MaxBatchMessages = DefaultMaxBatchMessages
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.HeaderTimeout <= 0 {
		o.HeaderTimeout = DefaultHeaderTimeout
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BatchDefault != nil {
		b := *o.BatchDefault // the caller's copy may change; the routes' may not
		o.BatchDefault = &b
	}
	return o
}

// Server is mqgate's HTTP frontend. It is safe for concurrent use.
type Server struct {
	opts     Options
	producer Producer
	plugins  Plugins
	log      *slog.Logger
	metrics  *httpMetrics
	bodies   *bytebudget.Budget
	engine   *gin.Engine
	gate     *auth.Gate
	srv      *http.Server
}

// New returns a Server producing through p and reporting plugins (which may
// be nil: no plugins, always ready). It panics only if opts.Registry holds a
// different collector under the HTTP metrics' names.
func New(opts Options, p Producer, plugins Plugins) *Server {
	opts = opts.withDefaults()
	s := &Server{
		opts:     opts,
		producer: p,
		plugins:  plugins,
		log:      opts.Logger,
		metrics:  newHTTPMetrics(opts.Registry),
		gate:     opts.Gate,
	}
	if s.gate == nil {
		s.gate = auth.Open(opts.Logger)
	}
	s.bodies = bytebudget.New(opts.MaxBodyBytesInFlight, bodyBudgetWait, s.metrics.bodyBytesInFlight, s.metrics.bodiesRefused.WithLabelValues(refusedInFlight))

	// Release mode silences gin's debug route printing; gin keeps the mode
	// in a process-wide atomic.
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	// Clients get JSON errors for unknown paths, never redirects.
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = true
	// No proxy is trusted: a nil list cannot fail to parse.
	_ = e.SetTrustedProxies(nil)
	e.Use(s.observe, s.recoverPanic)
	e.NoRoute(s.noRoute)
	e.NoMethod(s.noMethod)

	// Every route but the probes is guarded: authenticated, and authorized
	// for its operation on the topic and group it names (routes whose
	// resources are in the body authorize in the handler).
	path, gw := pathResource, noResource
	e.POST("/v1/topics/:topic/messages", s.guarded(acl.Produce, path, s.produce))
	e.POST("/v1/topics/:topic/delayed", s.guarded(acl.ProduceDelayed, path, s.addDelayed))
	cancel := s.guarded(acl.CancelDelay, path, s.cancelDelayed)
	e.DELETE("/v1/topics/:topic/delayed/:id", cancel)
	// Without an id: answered code 11 naming id rather than "no route".
	e.DELETE("/v1/topics/:topic/delayed/", cancel)
	e.DELETE("/v1/topics/:topic/delayed", cancel)
	e.POST("/v1/kafka/send", s.guard("", gw, s.kafkaSendFail, s.kafkaSend))

	e.POST("/v1/groups/:group/topics/:topic/pull", s.guarded(acl.Consume, path, s.pull))
	e.POST("/v1/groups/:group/topics/:topic/ack", s.guarded(acl.Consume, path, s.ack))
	e.GET("/v1/groups/:group/stats", s.guarded(acl.ReadStats, func(c *gin.Context) (string, string) {
		return c.Query("topic"), c.Param("group")
	}, s.stats))
	e.POST("/v1/fetch", s.guarded("", gw, s.fetch))
	e.POST("/v1/commit", s.guarded("", gw, s.commit))
	const batches = "/v1/groups/:group/topics/:topic/batches/"
	e.GET(batches+"info", s.guarded(acl.Consume, path, s.batchInfo(pathSubscription)))
	e.GET(batches+"fetch_new", s.guarded(acl.Consume, path, s.batchFetchNew(pathSubscription)))
	e.GET(batches+"fetch_old", s.guarded(acl.Consume, path, s.batchFetchOld(pathSubscription)))
	e.POST(batches+"ack", s.guarded(acl.Consume, path, s.batchAck(pathSubscription)))
	e.GET("/v1/schemas/message.avsc", s.guarded("", gw, s.messageSchemaJSON))
	if bd := opts.BatchDefault; bd != nil {
		sub := func(*gin.Context) (string, string) { return bd.Topic, bd.Group }
		e.GET("/info", s.guarded(acl.Consume, sub, s.batchInfo(s.defaultSubscription)))
		e.GET("/fetch_new", s.guarded(acl.Consume, sub, s.batchFetchNew(s.defaultSubscription)))
		e.GET("/fetch_old", s.guarded(acl.Consume, sub, s.batchFetchOld(s.defaultSubscription)))
		e.POST("/ack", s.guarded(acl.Consume, sub, s.batchAck(s.defaultSubscription)))
	}
	// HEAD too, for load balancers that probe with it. The probes answer
	// anyone: they say nothing but up or not.
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		e.Handle(method, "/healthz", s.healthz)
		e.Handle(method, "/readyz", s.readyz)
	}
	// A group's subscriptions: admin, on the group (and topic) named.
	const subs = "/v1/admin/groups/:group/subscriptions"
	e.GET(subs, s.guarded(acl.Admin, path, s.subscriptionRoute(s.listSubscriptions)))
	e.PUT(subs+"/:topic", s.guarded(acl.Admin, path, s.subscriptionRoute(s.subscribe)))
	e.DELETE(subs+"/:topic", s.guarded(acl.Admin, path, s.subscriptionRoute(s.unsubscribe)))
	if opts.Admin != nil {
		// A topic's ranges are stats; its messages read outside any
		// group are browse, on the topic named.
		const topics = "/v1/admin/topics/:topic"
		e.GET(topics, s.guarded(acl.ReadStats, path, s.describeTopic))
		e.POST(topics, s.guarded(acl.Admin, path, s.createTopic))
		e.GET(topics+"/messages", s.guarded(acl.Browse, path, s.browse))
		e.GET(topics+"/messages/:qid/:offset", s.guarded(acl.Browse, path, s.showMessage))
		// A topic's delayed messages are its messages to be: browse.
		e.GET(topics+"/delayed", s.guarded(acl.Browse, path, s.pendingDelayed))
		e.GET(topics+"/search", s.guarded(acl.Browse, path, s.searchTopic))
		// The lists show what the principal may read the stats of.
		e.GET("/v1/admin/topics", s.guarded("", gw, s.listTopics))
		e.GET("/v1/admin/groups", s.guarded("", gw, s.listGroups))
		e.DELETE("/v1/admin/groups/:group", s.guarded(acl.Admin, path, s.deleteGroup))
	}
	e.GET("/v1/admin/groups/:group", s.guarded(acl.ReadStats, func(c *gin.Context) (string, string) {
		return c.Query("topic"), c.Param("group")
	}, s.describeGroup))
	if opts.Admin != nil {
		// A group's dead letters: reading them is browse, sending them
		// back admin, on the group.
		// The resource is the group and its dead-letter topic: a rule
		// restricted to some topics does not reach every group's.
		const dlq = "/v1/admin/groups/:group/dead-letters"
		dlqOf := func(c *gin.Context) (string, string) {
			if opts.Consumer == nil {
				return "", c.Param("group")
			}
			return opts.Consumer.DeadLetterTopic(c.Param("group")), c.Param("group")
		}
		e.GET(dlq, s.guarded(acl.Browse, dlqOf, s.describeDeadLetters))
		e.GET(dlq+"/messages", s.guarded(acl.Browse, dlqOf, s.browseDeadLetters))
		e.POST(dlq+"/redrive", s.guarded(acl.Admin, dlqOf, s.redriveDeadLetters))
		e.POST(dlq+"/discard", s.guarded(acl.Admin, dlqOf, s.discardDeadLetters))
		// Moving a group's offsets is admin, on the group and topic.
		e.POST("/v1/admin/groups/:group/topics/:topic/offsets", s.guarded(acl.Admin, path, s.resetOffsets))
	}
	if opts.Console != nil {
		files := gin.WrapH(opts.Console)
		e.GET(ConsolePrefix+"*file", files)
		e.HEAD(ConsolePrefix+"*file", files)
		e.GET(strings.TrimSuffix(ConsolePrefix, "/"), func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, ConsolePrefix) })
	}
	e.GET("/metrics", s.guarded(acl.Metrics, gw, s.serveMetrics()))
	e.GET("/v1/plugins", s.guarded(acl.Metrics, gw, s.listPlugins))
	e.GET("/v1/admin/delays", s.guarded(acl.Metrics, gw, s.delayTiers))
	e.GET("/v1/admin/config", s.guarded(acl.Admin, gw, s.showConfig))
	e.GET("/v1/admin/lag", s.guarded("", gw, s.lagHistory))
	e.GET("/v1/push", s.guarded(acl.Metrics, gw, s.listPush))
	e.GET("/v1/push/:name", s.guarded(acl.Metrics, gw, s.pushStatus))
	e.GET("/v1/sinks", s.guarded(acl.Metrics, gw, s.listSinks))
	e.GET("/v1/sinks/:name", s.guarded(acl.Metrics, gw, s.sinkStatus))
	s.engine = e

	s.srv = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: opts.HeaderTimeout,
		// Each produce request sets its own body read deadline from
		// RequestTimeout, so no server-wide ReadTimeout.
		IdleTimeout:    opts.IdleTimeout,
		MaxHeaderBytes: 1 << 20,
		ErrorLog:       slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return s
}

// Handler returns the server's routes as an http.Handler, for httptest or
// for mounting in another server.
func (s *Server) Handler() http.Handler { return s.engine }

// Serve answers HTTP requests on l until Shutdown. It returns nil after
// Shutdown and any other error that stopped it.
func (s *Server) Serve(l net.Listener) error {
	err := s.srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ListenAndServe listens on Options.Listen and calls Serve.
func (s *Server) ListenAndServe() error {
	l, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s (http.listen): %w", s.opts.Listen, err)
	}
	return s.Serve(l)
}

// Shutdown stops accepting connections and waits until every in-flight
// request has been answered, or ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.srv.Shutdown(ctx)
}

// noRoute answers a path no route matches.
func (s *Server) noRoute(c *gin.Context) {
	abortWithCode(c, sdk.CodeNotFound, fmt.Sprintf("no such route: %s %s", c.Request.Method, c.Request.URL.Path))
}

// noMethod answers a path that exists for other methods. 405 is the one
// status statusOf does not produce: HTTP requires it here, with the Allow
// header gin has already set.
func (s *Server) noMethod(c *gin.Context) {
	allowed := c.Writer.Header().Get("Allow")
	abortJSON(c, http.StatusMethodNotAllowed, errorBody{Error: errorDetail{
		Code:    sdk.CodeIllegal,
		Message: fmt.Sprintf("method %s is not allowed on %s; allowed: %s", c.Request.Method, c.Request.URL.Path, allowed),
	}})
}

// recoverPanic turns a handler's panic into a logged internal error, so a
// bug answers 500 instead of dropping the connection.
func (s *Server) recoverPanic(c *gin.Context) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if r == http.ErrAbortHandler {
			panic(r)
		}
		s.log.Error("panic serving HTTP request", "method", c.Request.Method, "path", c.Request.URL.Path,
			"panic", r, "stack", string(debug.Stack()))
		if !c.Writer.Written() {
			abortWithCode(c, sdk.CodeInternal, "internal error")
		} else {
			c.Abort()
		}
	}()
	c.Next()
}
