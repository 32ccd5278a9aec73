// Package kafka is mqgate's Kafka backend. It speaks to a Kafka cluster with
// franz-go, or, with `brokers: embedded`, runs an in-process kfake broker
// that persists to a data directory.
//
// A record's qid is its partition number in decimal ("0", "1", ...), the
// same number as Record.Partition.
package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mqgate/mqgate/internal/dirlock"
	"github.com/mqgate/mqgate/internal/nofile"
	"github.com/mqgate/mqgate/sdk"
)

var (
	_ sdk.Backend         = (*Backend)(nil)
	_ sdk.ConfigValidator = (*Backend)(nil)
)

// Backend is an sdk.Backend over Kafka. It is safe for concurrent use.
// Configure must be called once before anything else; Close releases the
// clients, the retention ticker and the embedded broker.
type Backend struct {
	logger *slog.Logger

	// mu guards every field below. It is never held while calling the
	// broker, except in Configure and Close, and never together with a
	// consumer's mu.
	mu        sync.Mutex
	cfg       config
	cluster   *kfake.Cluster // nil unless embedded
	dataLock  *dirlock.Lock  // the embedded broker's data_dir, while it runs
	producer  *kgo.Client    // shared by all Produce calls; creates topics
	admin     *kgo.Client    // admin requests and Fetch; never creates topics
	adm       *kadm.Client   // over admin
	fetches   *fetchPool     // a client per Fetch call
	consumers map[*consumer]struct{}
	// known holds topics CreateTopics found or made; with the embedded
	// broker, Produce creates the others first.
	known  map[string]bool
	closed bool

	// reach tracks whether the brokers can be dialed at all.
	reach reachability
	// auth tracks whether they accept the SASL credentials.
	auth authWatch
	// repeats holds back the clients' repeated log lines.
	repeats repeats
	// fds tracks whether the process is out of file descriptors.
	fds *fdWatch
	// creating makes counting the embedded broker's topics and creating
	// new ones one step, so that max_topics holds under concurrent calls:
	// a one-slot semaphore, which a caller stops waiting for when its
	// context ends.
	creating chan struct{}
	// answerReserve is kept back from a call's deadline for its answer
	// to travel back to the gateway (see answerContext): none when the
	// backend runs in the gateway's process.
	answerReserve time.Duration
	// fdShare divides the descriptor limit the default of max_topics is
	// planned from: 2 in the gateway's process, whose listeners plan for
	// the other half.
	fdShare uint64

	// stop ends the retention ticker. wg counts it and the goroutines
	// Produce leaves behind when its caller gives up, which closing
	// producer ends.
	stop chan struct{}
	wg   sync.WaitGroup
}

// New returns an unconfigured backend that logs to logger (slog.Default()
// when nil).
func New(logger *slog.Logger) *Backend {
	if logger == nil {
		logger = slog.Default()
	}
	return &Backend{
		logger:    logger, // the gateway tags each line with the plugin and cluster
		auth:      authWatch{logger: logger},
		consumers: make(map[*consumer]struct{}),
		known:     make(map[string]bool),
		fds:       newFDWatch(),
		stop:      make(chan struct{}),
		creating:  make(chan struct{}, 1),

		answerReserve: maxAnswerReserve,
		fdShare:       1,
	}
}

// NewInProcess returns New(logger) for a gateway that calls it directly
// rather than over gRPC (in_process: true): its answers need no time
// kept back to travel, and it shares the process's descriptors with the
// gateway's listeners, half each.
func NewInProcess(logger *slog.Logger) *Backend {
	b := New(logger)
	b.answerReserve = 0
	b.fdShare = 2
	return b
}

// ValidateConfig reports every problem of a config Configure would refuse
// before connecting: unknown keys, values of the wrong type or form, keys
// that do not apply to the brokers chosen. It starts no broker and checks
// neither that the listen port is free nor that the brokers answer.
func (b *Backend) ValidateConfig(data []byte) sdk.ConfigErrors {
	_, errs := parseConfig(data)
	return errs
}

// Configure applies the plugin config (see parseConfig for the keys). With
// `brokers: embedded` it starts the in-process broker, reloading its data
// directory. A second call is refused: the host configures each plugin
// process once.
func (b *Backend) Configure(ctx context.Context, data []byte) error {
	cfg, errs := parseConfig(data)
	if len(errs) > 0 {
		return errs
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errNotConfigured
	}
	if b.producer != nil {
		return sdk.Errorf(sdk.CodeIllegal, "kafka backend is already configured")
	}

	cfg.maxTopics = b.descriptorLimit(cfg)
	if cfg.creds.auth != nil {
		b.auth.enable(cfg.creds.who())
	}
	b.fds.advise(cfg.embedded)
	seeds := cfg.brokers
	if cfg.embedded {
		cluster, lock, err := startEmbedded(ctx, cfg, b.logger, b.fds)
		if err != nil {
			return err
		}
		b.cluster, b.dataLock = cluster, lock
		seeds = dialable(cluster.ListenAddrs())
		b.logger.Info("embedded broker listening", "addr", seeds[0], "data_dir", cfg.dataDir)
	}

	producer, err := kgo.NewClient(append(b.clientOpts(cfg, seeds),
		// Producing to a topic creates it where the broker allows;
		// reading one must not.
		kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(placementPartitioner{}),
		kgo.RecordDeliveryTimeout(cfg.produceTimeout),
		kgo.ProducerBatchMaxBytes(cfg.maxBatchBytes()),
		// Every Produce call already carries a batch, and the gateway
		// coalesces concurrent requests itself; lingering would only add
		// latency. Records still group while a request is in flight.
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		b.closeEmbeddedLocked()
		return sdk.Errorf(sdk.CodeInternal, "creating kafka producer: %v", err)
	}
	admin, err := kgo.NewClient(b.clientOpts(cfg, seeds)...)
	if err != nil {
		producer.Close()
		b.closeEmbeddedLocked()
		return sdk.Errorf(sdk.CodeInternal, "creating kafka admin client: %v", err)
	}
	b.cfg = cfg
	b.producer = producer
	b.admin = admin
	b.adm = kadm.NewClient(admin)
	b.fetches = &fetchPool{newClient: func() (*kgo.Client, error) { return kgo.NewClient(b.clientOpts(cfg, seeds)...) }}
	if b.cluster != nil {
		b.wg.Add(1)
		go b.applyRetention(b.cluster, retentionTick(cfg.retention))
	}
	b.logger.Info("configured", "embedded", cfg.embedded, "brokers", seeds,
		"tls", cfg.creds.tls != nil, "sasl", cfg.creds.mechanism)
	cfg.creds.warn(b.logger)
	return nil
}

// descriptorLimit raises the process's soft RLIMIT_NOFILE to its hard
// limit and logs both, and returns cfg's max_topics: as configured, or for
// the embedded broker the default the limit allows (0 for external
// brokers, which it does not apply to). A configured max_topics that may
// need more descriptors than the limit has is logged as a warning.
func (b *Backend) descriptorLimit(cfg config) int {
	before, soft, err := nofile.Raise()
	if err != nil {
		b.logger.Warn("raising the file descriptor limit", "error", err)
	} else {
		b.logger.Info("file descriptor limit", "rlimit_nofile", soft, "raised_from", before)
	}
	if !cfg.embedded {
		return 0
	}
	if cfg.maxTopics == 0 {
		if err != nil {
			return maxDefaultMaxTopics
		}
		return defaultMaxTopics(soft/b.fdShare, cfg.defaultPartitions)
	}
	if need := uint64(cfg.maxTopics) * fdsPerPartition * uint64(cfg.defaultPartitions); err == nil && need > soft {
		b.logger.Warn("max_topics may need more file descriptors than the process may open",
			"max_topics", cfg.maxTopics, "descriptors_needed", need, "rlimit_nofile", soft)
	}
	return cfg.maxTopics
}

// dialable turns listen addresses into addresses a client can dial: a
// wildcard host (0.0.0.0, ::) becomes loopback.
func dialable(addrs []string) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err == nil {
			if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
				a = net.JoinHostPort("127.0.0.1", port)
			}
		}
		out = append(out, a)
	}
	return out
}

// clientOpts are the options every kgo client of this backend shares.
func (b *Backend) clientOpts(cfg config, seeds []string) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.WithLogger(kgoLogger{b.logger, &b.repeats}),
		kgo.WithHooks(&b.reach),
		// kgo v1.22 defaults to rewinding one minute on data loss; we
		// never skip what is still retained.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}
	if cfg.clientID != "" {
		opts = append(opts, kgo.ClientID(cfg.clientID))
	}
	opts = append(opts, cfg.creds.opts()...)
	if cfg.creds.auth != nil {
		opts = append(opts, kgo.WithHooks(&b.auth))
	}
	if cfg.embedded {
		// Records up to the embedded broker's message.max.bytes must come
		// back in a fetch without tuning.
		opts = append(opts,
			kgo.FetchMaxPartitionBytes(embeddedMaxMessageBytes),
			// kfake asks every client for KIP-714 metrics, which kgo
			// gzips and pushes every few seconds: with a client per
			// consumer group (the delay tiers have 36) that was a third
			// of an idle plugin's CPU, for metrics nobody reads. A real
			// broker asks only when its operator subscribed to them.
			kgo.DisableClientMetrics(),
		)
	}
	return opts
}

// applyRetention makes the embedded broker enforce retention on every
// topic: kfake only runs retention on its own for topics with explicit
// retention or compaction configs.
func (b *Backend) applyRetention(cluster *kfake.Cluster, every time.Duration) {
	defer b.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			cluster.ApplyRetention()
		}
	}
}

// Addrs returns the addresses Kafka clients can bootstrap from: the
// embedded broker's listen address (with the port the OS picked for port 0),
// or the configured brokers. It is empty before Configure.
func (b *Backend) Addrs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cluster != nil {
		return dialable(b.cluster.ListenAddrs())
	}
	return append([]string(nil), b.cfg.brokers...)
}

// clients are the shared clients and config of a configured backend.
type clients struct {
	producer *kgo.Client
	admin    *kgo.Client
	adm      *kadm.Client
	fetches  *fetchPool
	cfg      config
}

// clients returns the shared clients, or errNotConfigured.
func (b *Backend) clients() (clients, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.producer == nil || b.closed {
		return clients{}, errNotConfigured
	}
	return clients{b.producer, b.admin, b.adm, b.fetches, b.cfg}, nil
}

// Close closes every consumer, the shared client, the retention ticker and
// the embedded broker, which saves its data directory. It is idempotent.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	consumers := make([]*consumer, 0, len(b.consumers))
	for c := range b.consumers {
		consumers = append(consumers, c)
	}
	b.mu.Unlock()

	for _, c := range consumers {
		if err := c.Close(); err != nil {
			b.logger.Warn("closing consumer", "group", c.group, "err", err)
		}
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.producer != nil {
		// Fails whatever is still buffered, which ends the goroutines
		// Produce left waiting.
		b.producer.Close()
		b.fetches.close()
		b.admin.Close()
	}
	close(b.stop)
	b.wg.Wait()
	b.closeEmbeddedLocked()
	return nil
}

// closeEmbeddedLocked stops the embedded broker, if any. b.mu is held.
func (b *Backend) closeEmbeddedLocked() {
	if b.cluster != nil {
		b.cluster.Close()
		b.cluster = nil
	}
	_ = b.dataLock.Release() // the process may exit right after; the kernel drops it then anyway
	b.dataLock = nil
}

// forget drops a closed consumer from the set Close closes.
func (b *Backend) forget(c *consumer) {
	b.mu.Lock()
	delete(b.consumers, c)
	b.mu.Unlock()
}

// kgoLogger sends franz-go's client logs to slog. It logs warnings and
// errors only: the client's info logs describe every metadata refresh. A
// line the clients repeat (a broker that cannot be dialed is retried every
// few hundred milliseconds) is logged once a minute, with how many were
// left out.
type kgoLogger struct {
	l       *slog.Logger
	repeats *repeats
}

// Level passes the client's warnings and errors on, and with the logger at
// debug its info too (group joins and assignments, metadata changes), as
// debug lines: what a consumer that never got its records was waiting for.
func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	log, left := k.repeats.admit(fmt.Sprint(level, msg, keyvals), time.Now())
	if !log {
		return
	}
	if left > 0 {
		keyvals = append(keyvals, "repeated", left)
	}
	switch level {
	case kgo.LogLevelError:
		k.l.Error(msg, keyvals...)
	case kgo.LogLevelWarn:
		k.l.Warn(msg, keyvals...)
	default:
		k.l.Debug(msg, keyvals...)
	}
}

// kfakeLogger sends the embedded broker's warnings and errors to slog,
// and the descriptor shortages they report to fds: kfake answers a produce
// it could not write with UNKNOWN_SERVER_ERROR, and only its log says why.
type kfakeLogger struct {
	l   *slog.Logger
	fds *fdWatch
}

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	for _, a := range args {
		if err, ok := a.(error); ok {
			k.fds.observe(err)
		}
	}
	switch level {
	case kfake.LogLevelError:
		k.l.Error(fmt.Sprintf(format, args...))
	case kfake.LogLevelWarn:
		k.l.Warn(fmt.Sprintf(format, args...))
	}
}
