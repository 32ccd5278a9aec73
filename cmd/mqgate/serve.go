package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mqgate/mqgate/core/admin"
	"github.com/mqgate/mqgate/core/auth"
	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/delay"
	"github.com/mqgate/mqgate/core/pluginhost"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/push"
	"github.com/mqgate/mqgate/core/quota"
	"github.com/mqgate/mqgate/core/router"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/frontends/console"
	httpapi "github.com/mqgate/mqgate/frontends/http"
	thriftapi "github.com/mqgate/mqgate/frontends/thrift"
	"github.com/mqgate/mqgate/internal/connlimit"
	"github.com/mqgate/mqgate/internal/nofile"
	"github.com/mqgate/mqgate/sdk"
)

// serve runs the gateway until SIGINT or SIGTERM, then lets in-flight
// requests finish and stops the plugins. It returns the exit code.
func serve(file string, log *slog.Logger) int {
	cfg, err := config.Load(file)
	if err != nil {
		if !logConfigErrors(log, err) {
			log.Error("loading config", "error", err)
		}
		return 1
	}
	if os.Getenv("GOGC") == "" {
		tuneGatewayGC()
	}
	setMemoryLimit(cfg.Runtime, os.DirFS("/"), log)
	before, limit, err := nofile.Raise()
	if err != nil {
		log.Warn("reading or raising the descriptor limit (RLIMIT_NOFILE); connection limits take their caps", "error", err)
		limit = 0
	} else if before != limit {
		log.Info("raised the descriptor limit (RLIMIT_NOFILE)", "from", before, "to", limit)
	}
	listenerFDs := int(min(limit, math.MaxInt32))
	if inProcessBackends(cfg) {
		// A backend in this process takes its broker connections (and an
		// embedded broker its segment files) from the same table, and
		// plans for half of it (kafka.NewInProcess): the listeners get
		// the other half.
		listenerFDs /= 2
	}
	conns, err := resolveConnectionLimits(cfg, listenerFDs)
	if err != nil {
		log.Error("connection limits do not fit the descriptor limit", "error", err)
		return 1
	}
	limits := []any{"nofile", conns.nofile, "reserve", connlimit.Reserve(conns.nofile),
		"http_max", conns.http.max, "http_per_source", conns.http.perSource,
		"thrift_max", conns.thrift.max, "thrift_per_source", conns.thrift.perSource}
	if listenerFDs != int(min(limit, math.MaxInt32)) {
		limits = append(limits, "process_nofile", limit, "other_half", "in_process_backend")
	}
	log.Info("connection limits", limits...)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	served := make(chan struct{})
	defer close(served)
	go func() {
		// The first signal starts the drain; a second one ends the
		// process at once, as an operator pressing Ctrl-C twice expects.
		select {
		case sig := <-signals:
			log.Info("shutting down; a second signal exits at once", "signal", sig.String())
			stop()
		case <-served:
			return
		}
		select {
		case sig := <-signals:
			log.Warn("second signal: exiting without waiting for in-flight work; the spool keeps what async requests left", "signal", sig.String())
			os.Exit(1)
		case <-served:
		}
	}()
	if err := runGateway(ctx, cfg, conns, log); err != nil {
		if !logConfigErrors(log, err) {
			log.Error("gateway stopped", "error", err)
		}
		return 1
	}
	return 0
}

// logConfigErrors logs each problem of a config.Errors in err, one line
// each as FILE:LINE: key: problem, and reports whether there was one.
func logConfigErrors(log *slog.Logger, err error) bool {
	var errs config.Errors
	if !errors.As(err, &errs) {
		return false
	}
	for _, e := range errs {
		log.Error("invalid config", "error", e.String())
	}
	return true
}

// runGateway starts every plugin and frontend of cfg and serves until ctx
// ends.
func runGateway(ctx context.Context, cfg *config.Config, conns connectionLimits, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Certificates first, like the config: files changed since it was
	// checked stop the start before any plugin runs. HTTP offers only
	// HTTP/1.1 over TLS, what it serves in plaintext.
	httpCerts, err := loadTLS("http.tls", cfg.HTTP.TLS, []string{"http/1.1"}, log)
	if err != nil {
		return err
	}
	thriftCerts, err := loadTLS("thrift.tls", cfg.Thrift.TLS, nil, log)
	if err != nil {
		return err
	}

	// The spool first: a second gateway on the same directory stops here,
	// naming the first, before it starts any plugin.
	spool, err := produce.OpenSpool(produce.SpoolOptions{
		Dir: cfg.Producer.SpoolDir, MaxBytes: cfg.Producer.SpoolMaxBytes, Logger: log, Registerer: reg,
	})
	if err != nil {
		return fmt.Errorf("producer.spool_dir: %w", err)
	}
	defer func() {
		if err := spool.Close(); err != nil {
			log.Error("closing the spool", "error", err)
		}
	}()

	host, err := pluginhost.New(pluginhost.Options{
		HealthInterval:    cfg.PluginHost.HealthInterval,
		RestartBackoffMax: cfg.PluginHost.RestartBackoffMax,
		CallTimeout:       cfg.PluginHost.CallTimeout,
		Logger:            log,
		Registerer:        reg,
	})
	if err != nil {
		return err
	}
	defer func() {
		log.Info("stopping plugins")
		_ = host.Close() // Close reports nothing today; every plugin is stopped either way
	}()

	backends, err := startClusters(ctx, cfg, host, log)
	if err != nil {
		return err
	}
	routes := map[string]string{}
	limits := map[string]produce.RateLimit{}
	var listed []string
	for name, t := range cfg.Topics {
		listed = append(listed, name)
		if t.Cluster != "" {
			routes[name] = t.Cluster
		}
		if t.RateLimit > 0 {
			limits[name] = produce.RateLimit{PerSecond: t.RateLimit, Burst: t.Burst}
		}
	}
	reserved := reservedNames(cfg)
	producer := produce.NewProducer(backends, produce.Options{
		Linger:           cfg.Producer.Linger,
		MaxBatchMessages: cfg.Producer.MaxBatchMessages,
		MaxBatchBytes:    int(cfg.Producer.MaxBatchBytes),
		RetryBackoff:     cfg.Producer.RetryBackoff,
		RetryBackoffMax:  cfg.Producer.RetryBackoffMax,
		Limits:           limits,
		Logger:           log,
		Registerer:       reg,
	})
	var allow *router.Allowlist
	if !cfg.AutoCreateTopics {
		allow = router.NewAllowlist(listed...)
	}
	rt, err := router.New(backends, routes, cfg.DefaultCluster, producer, reserved, allow)
	if err != nil {
		return err
	}

	producer.AttachSpool(spool)
	forwardCtx, stopForwarding := context.WithCancel(context.Background())
	forwarded := make(chan struct{})
	go func() {
		spool.Run(forwardCtx, producer.SendRecords)
		close(forwarded)
	}()
	defer func() {
		stopForwarding()
		<-forwarded
	}()

	var delayer delay.Delayer
	if cfg.Delay.Enabled {
		svc, err := startDelay(cfg, backends, producer, rt, reserved, log, reg)
		if err != nil {
			return err
		}
		// Stopped after the frontends (deferred before them): the workers
		// finish their moves; what they held is moved again on restart.
		defer svc.Close()
		delayer = svc
	}

	quotas, err := newQuotas(cfg, reg)
	if err != nil {
		return err
	}
	consumer, subscriptions := startConsume(cfg, backends, producer, rt, reserved, quotas, log, reg)
	// Closed after the frontends stop: sessions commit what was acked and
	// leave their groups before the plugins close.
	defer consumer.Close()
	defer subscriptions.Close()
	pusher, err := push.New(push.Options{Subscriptions: cfg.Push, Consumer: consumer, Origin: pushOrigin(cfg),
		Logger: log.With("component", "push"), Registerer: reg})
	if err != nil {
		return err
	}
	pusher.Start()
	// Stopped before the consume sessions close (deferred after them):
	// requests in flight finish and are acked, then the sessions commit.
	defer pusher.Close()
	sinks, err := startSinks(ctx, cfg, host, consumer, log, reg)
	if err != nil {
		return err
	}
	// Stopped before the consume sessions close, as push: writes in
	// flight finish and are acked, then the sessions commit.
	defer sinks.Close()
	var batchDefault *httpapi.BatchSubscription
	if bd := cfg.HTTP.BatchDefault; bd != nil {
		batchDefault = &httpapi.BatchSubscription{Group: bd.Group, Topic: bd.Topic}
	}

	// The gate refreshes a JWKS URL for as long as the gateway runs.
	gate, err := auth.New(ctx, cfg, log.With("component", "auth"))
	if err != nil {
		return err
	}
	// The last hour of the lag of the groups consuming here, for the
	// console; stopped with the gateway.
	lagHistory := admin.NewLagHistory(admin.LagHistoryOptions{
		Groups: consumer.SessionGroups,
		Lag: func(ctx context.Context, group string) (int64, error) {
			stats, err := consumer.Stats(ctx, group, "")
			var total int64
			for _, st := range stats {
				total += st.Lag
			}
			return total, err
		},
	})
	lagCtx, stopLag := context.WithCancel(ctx)
	defer stopLag()
	go lagHistory.Run(lagCtx)
	srv := httpapi.New(httpapi.Options{
		Gate:                 gate,
		Quotas:               quotas,
		Listen:               cfg.HTTP.Listen,
		MaxMessageBytes:      int(cfg.HTTP.MaxMessageBytes),
		MaxBodyBytes:         cfg.HTTP.MaxBodyBytes,
		MaxBodyBytesInFlight: cfg.HTTP.MaxBodyBytesInFlight,
		MaxBatchMessages:     cfg.HTTP.MaxBatchMessages,
		RequestTimeout:       cfg.HTTP.RequestTimeout,
		IdleTimeout:          cfg.HTTP.Limits.IdleTimeout,
		HeaderTimeout:        cfg.HTTP.Limits.HeaderTimeout,
		Registry:             reg,
		Logger:               log,
		Delayer:              delayer,
		Consumer:             consumer,
		BatchDefault:         batchDefault,
		Push:                 pusher,
		Sinks:                sinks,
		Subscriptions:        subscriptions,
		Console:              consoleOf(cfg),
		LagHistory:           lagHistory,
		Config: func() (string, any, []string, error) {
			shown, redacted, err := cfg.Shown()
			return cfg.File, shown, redacted, err
		},
		Admin: admin.New(admin.Options{Cluster: rt.Cluster, Reserved: reserved.Topic,
			Active: func(group, topic string) int { return consume.Reading(consumer.Sessions(group), topic) },
			End: func(ctx context.Context, group, topic string) int {
				_, readers := consumer.EndSessions(ctx, group, topic)
				return readers
			},
			Clusters:      backends,
			ReservedGroup: reserved.Group,
			Sessions:      func(group string) int { return len(consumer.Sessions(group)) },
		}),
	}, rt, host)
	lis, err := listen("http.listen", cfg.HTTP.Listen, httpCerts, "http.tls", func(l net.Listener, plaintext bool) net.Listener {
		return limitListener(l, plaintext, "http", "http", conns.http, log, reg)
	}, log)
	if err != nil {
		return err
	}
	log.Info("http listening", "addr", lis.Addr().String(), "tls", httpCerts != nil)
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(lis) }()

	// Both Thrift services share every setting but the producer's Delayer.
	thriftOpts := thriftapi.Options{
		Transport:               cfg.Thrift.Transport,
		Protocol:                cfg.Thrift.Protocol,
		MaxMessageBytes:         int(cfg.HTTP.MaxMessageBytes),
		MaxBatchMessages:        cfg.HTTP.MaxBatchMessages,
		DefaultTimeout:          cfg.HTTP.RequestTimeout,
		MaxRequestBytesInFlight: cfg.Thrift.MaxRequestBytesInFlight,
		ReadTimeout:             cfg.Thrift.Limits.ReadTimeout,
		IdleTimeout:             cfg.Thrift.Limits.IdleTimeout,
		// The listener refuses connections past the limit at once. The
		// server's own bound stops accepting, which would leave them
		// waiting unseen in the backlog: one more keeps its accept loop
		// calling the listener's Accept, which refuses them.
		MaxConnections: conns.thrift.max + 1,
		// Half the shutdown budget: calls in flight get it, and the spool
		// drain after them gets the rest.
		StopTimeout: cfg.HTTP.ShutdownTimeout / 2,
		Logger:      log,
		Registry:    reg,
		Gate:        gate,
		Quotas:      quotas,
		Answers:     cfg.Thrift.DDMQAnswers,
	}
	if cfg.Auth != nil && cfg.Auth.ThriftToken != nil {
		thriftOpts.Token = &thriftapi.CallToken{Property: cfg.Auth.ThriftToken.Property, GroupSeparator: cfg.Auth.ThriftToken.GroupSeparator}
	}
	producerOpts := thriftOpts
	producerOpts.Delayer = delayer
	tsrv := thriftapi.NewProducerServer(producerOpts, rt)
	tlis, err := listen("thrift.producer_listen", cfg.Thrift.ProducerListen, thriftCerts, "thrift.tls", func(l net.Listener, plaintext bool) net.Listener {
		return limitListener(l, plaintext, "thrift", "thrift_producer", conns.thrift, log, reg)
	}, log)
	if err != nil {
		_ = srv.Shutdown(context.Background()) // startup failed; the error says why
		return err
	}
	log.Info("thrift ProducerService listening", "addr", tlis.Addr().String(), "transport", cfg.Thrift.Transport, "protocol", cfg.Thrift.Protocol, "tls", thriftCerts != nil)
	go func() { serveErr <- tsrv.Serve(tlis) }()

	csrv := thriftapi.NewConsumerServer(thriftOpts, consumer)
	clis, err := listen("thrift.consumer_listen", cfg.Thrift.ConsumerListen, thriftCerts, "thrift.tls", func(l net.Listener, plaintext bool) net.Listener {
		return limitListener(l, plaintext, "thrift", "thrift_consumer", conns.thrift, log, reg)
	}, log)
	if err != nil {
		_ = tsrv.Stop()
		_ = srv.Shutdown(context.Background()) // startup failed; the error says why
		return err
	}
	log.Info("thrift ConsumerService listening", "addr", clis.Addr().String(), "tls", thriftCerts != nil)
	go func() { serveErr <- csrv.Serve(clis) }()

	select {
	case <-ctx.Done():
		log.Info("shutting down: finishing in-flight requests", "timeout", cfg.HTTP.ShutdownTimeout)
		// Long polls answer now, with what they have, rather than hold the
		// shutdown for their linger.
		consumer.StopWaiting()
	case err := <-serveErr:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = tsrv.Stop()                        // stopping on an error already reported
			_ = csrv.Stop()                        // likewise
			_ = srv.Shutdown(context.Background()) // likewise
			return fmt.Errorf("serving: %w", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("http shutdown did not finish every request", "error", err)
		}
	})
	wg.Go(func() {
		if err := tsrv.Stop(); err != nil {
			log.Warn("thrift shutdown did not finish every call", "error", err)
		}
	})
	wg.Go(func() {
		if err := csrv.Stop(); err != nil {
			log.Warn("thrift consumer shutdown did not finish every call", "error", err)
		}
	})
	wg.Wait()
	drainSpool(sctx, spool, log)
	return nil
}

// newQuotas returns the ledger of cfg's quotas:, or nil when there are
// none: then nothing is counted per principal.
func newQuotas(cfg *config.Config, reg prometheus.Registerer) (*quota.Ledger, error) {
	if len(cfg.Quotas) == 0 {
		return nil, nil
	}
	rules, err := quota.Compile(cfg.Quotas)
	if err != nil {
		return nil, err
	}
	return quota.New(quota.Options{Rules: rules, Registerer: reg}), nil
}

// startConsume returns the consumption service, whose sessions are
// created on first use and count against the quotas of the principals
// whose calls open them (nil: none), and the groups' subscriptions, which
// it starts reading from the default cluster.
func startConsume(cfg *config.Config, backends map[string]sdk.Backend, producer *produce.Producer, rt *router.Router,
	reserved *topicname.Reserved, quotas *quota.Ledger, log *slog.Logger, reg prometheus.Registerer) (*consume.Service, *consume.Subscriptions) {
	c := cfg.Consume
	defaults := consume.Settings{
		SessionIdle: c.SessionIdle, MaxInFlight: c.MaxInFlight, AckTimeout: c.AckTimeout, MaxRetries: c.MaxRetries,
		RetryBackoff: c.RetryBackoff, RetryBackoffMax: c.RetryBackoffMax, DeadLetterTopic: c.DeadLetterTopic, Buffer: c.Buffer,
	}
	groups := map[string]consume.Settings{}
	for name, g := range cfg.Groups {
		set := defaults
		setIf(&set.SessionIdle, g.SessionIdle)
		setIf(&set.MaxInFlight, g.MaxInFlight)
		setIf(&set.AckTimeout, g.AckTimeout)
		setIf(&set.MaxRetries, g.MaxRetries)
		setIf(&set.RetryBackoff, g.RetryBackoff)
		setIf(&set.RetryBackoffMax, g.RetryBackoffMax)
		setIf(&set.DeadLetterTopic, g.DeadLetterTopic)
		groups[name] = set
	}
	start := sdk.StartEarliest
	if c.Start == "latest" {
		start = sdk.StartLatest
	}
	var sessionQuota consume.SessionQuota // a nil *quota.Ledger would be a non-nil interface
	if quotas != nil {
		sessionQuota = quotas
	}
	static := map[string][]string{}
	for name, g := range cfg.Groups {
		if len(g.Topics) > 0 {
			static[name] = g.Topics
		}
	}
	subs := consume.NewSubscriptions(consume.SubscriptionOptions{
		Backend:           backends[cfg.DefaultCluster],
		Cluster:           cfg.DefaultCluster,
		Send:              producer.SendRecords,
		Static:            static,
		MaxTopicsPerGroup: cfg.Subscriptions.MaxTopicsPerGroup,
		MaxGroups:         cfg.Subscriptions.MaxGroups,
		MaxRecordBytes:    int(cfg.Subscriptions.MaxRecordBytes),
		Refresh:           cfg.Subscriptions.Refresh,
		Reserved:          reserved,
		DeadLetter: func(group string) string {
			set, ok := groups[group]
			if !ok {
				set = defaults
			}
			return set.DeadLetterTopicOf(group)
		},
		Logger: log.With("component", "subscriptions"),
	})
	subs.Start()
	return consume.New(consume.Options{
		Quota:    sessionQuota,
		Backends: backends,
		// A delay message is produced for a client: to a topic it may
		// produce to, when it is added and when it is delivered.
		Route: func(topic string) (string, error) {
			if err := rt.Permit(topic); err != nil {
				return "", err
			}
			name, _, err := rt.Cluster(topic)
			return name, err
		},
		DefaultCluster: cfg.DefaultCluster,
		Producer:       producer,
		Defaults:       defaults,
		Groups:         groups,
		Start:          start,
		Reserved:       reserved,
		MaxBatch:       c.MaxBatch,
		MaxSessions:    c.MaxSessions,
		Subscriptions:  subs,
		Logger:         log.With("component", "consume"),
		Registerer:     reg,
	}), subs
}

// reservedNames is the rule of the names clients may not use: the delay
// topic prefix, and the groups of the push subscriptions and sinks, which
// the gateway consumes with itself.
func reservedNames(cfg *config.Config) *topicname.Reserved {
	r := &topicname.Reserved{DelayPrefix: cfg.Delay.TopicPrefix, Groups: map[string]string{}}
	for i, p := range cfg.Push {
		if p == nil || p.Group == "" {
			continue
		}
		r.Groups[p.Group] = fmt.Sprintf("push[%d].group, push subscription %s", i, p.Name)
	}
	for i, sk := range cfg.Sinks {
		if sk == nil || sk.Group == "" {
			continue
		}
		r.Groups[sk.Group] = fmt.Sprintf("sinks[%d].group, sink %s", i, sk.Name)
	}
	return r
}

// setIf sets *dst to *v when v is not nil.
func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// startDelay starts the delay service on delay.cluster. It creates its
// topics in the background: a cluster that is down at start-up delays
// delay messages (code 17), not the gateway.
func startDelay(cfg *config.Config, backends map[string]sdk.Backend, producer *produce.Producer, rt *router.Router,
	reserved *topicname.Reserved, log *slog.Logger, reg prometheus.Registerer) (*delay.Service, error) {
	plan, err := delay.NewPlan(cfg.Delay.Base, cfg.Delay.Levels)
	if err != nil {
		return nil, err
	}
	svc := delay.New(delay.Options{
		Cluster:  cfg.Delay.Cluster,
		Backend:  backends[cfg.Delay.Cluster],
		Producer: producer,
		// A delay message is produced for a client: to a topic it may
		// produce to, when it is added and when it is delivered.
		Route: func(topic string) (string, error) {
			if err := rt.Permit(topic); err != nil {
				return "", err
			}
			name, _, err := rt.Cluster(topic)
			return name, err
		},
		Plan:        plan,
		Partitions:  int32(cfg.Delay.Partitions),
		Max:         cfg.Delay.Max,
		TopicPrefix: cfg.Delay.TopicPrefix,
		Reserved:    reserved,
		Window:      cfg.Delay.Window,
		Logger:      log.With("component", "delay"),
		Registerer:  reg,
	})
	svc.Start()
	return svc, nil
}

// startClusters starts one backend plugin process per cluster. A plugin that
// refuses its config gives config.Errors: every problem it reported, each
// at its key's line in the config file.
func startClusters(ctx context.Context, cfg *config.Config, host *pluginhost.Host, log *slog.Logger) (map[string]sdk.Backend, error) {
	names := make([]string, 0, len(cfg.Clusters))
	for name := range cfg.Clusters {
		names = append(names, name)
	}
	sort.Strings(names)
	backends := make(map[string]sdk.Backend, len(names))
	for _, name := range names {
		cl := cfg.Clusters[name]
		p := cfg.Plugins[cl.Plugin]
		js, err := cl.ConfigJSON()
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", name, err)
		}
		log.Info("starting plugin", "plugin", p.Name, "cluster", name, "in_process", p.InProcess)
		b, err := host.StartBackend(ctx, pluginSpec(p, name, js))
		if err != nil {
			if ces := sdk.ConfigErrorsOf(err); len(ces) > 0 {
				errs := make(config.Errors, len(ces))
				for i, ce := range ces {
					errs[i] = cfg.PluginError(name, ce.Key, ce.Msg)
				}
				errs.SortByLine()
				return nil, errs
			}
			return nil, fmt.Errorf("cluster %s: %w", name, err)
		}
		backends[name] = b
	}
	return backends, nil
}

// drainSpool lets the forwarder deliver what async requests left in the
// spool, until it is empty or ctx ends; the rest stays on disk and is
// delivered after the next start.
func drainSpool(ctx context.Context, spool *produce.Spool, log *slog.Logger) {
	if spool.Depth() == 0 {
		return
	}
	log.Info("draining the spool", "records", spool.Depth())
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for spool.Depth() > 0 {
		select {
		case <-ctx.Done():
			log.Warn("spool not drained before the shutdown timeout; the rest is delivered after the next start", "records", spool.Depth())
			return
		case <-tick.C:
		}
	}
}

// pushOrigin names the cluster a push subscription consumes a topic from
// and its broker as DDMQ names it (KAFKA, RMQ; a third-party backend by
// its plugin's name in capitals), for envelope ddmq.
func pushOrigin(cfg *config.Config) func(cluster, topic string) push.Origin {
	return func(cluster, topic string) push.Origin {
		if cluster == "" {
			cluster = cfg.ClusterFor(topic)
		}
		o := push.Origin{Cluster: cluster}
		if c := cfg.Clusters[cluster]; c != nil {
			switch p := cfg.Plugins[c.Plugin]; {
			case p != nil && p.Builtin == "kafka":
				o.Source = "KAFKA"
			case p != nil && p.Builtin == "rocketmq":
				o.Source = "RMQ"
			default:
				o.Source = strings.ToUpper(c.Plugin)
			}
		}
		return o
	}
}

// consoleOf is the web console's files, unless http.console is false.
func consoleOf(cfg *config.Config) http.Handler {
	if !cfg.HTTP.Console {
		return nil
	}
	return console.Handler()
}
