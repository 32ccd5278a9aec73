// Package rocketmq is mqgate's RocketMQ backend. It produces with
// rocketmq-client-go and speaks the remoting protocol itself for what the
// client keeps internal or gets wrong for a gateway: explicit offsets
// (Fetch, ListOffsets, Commit), topic creation with its answer checked, and
// group consumption with commits the gateway controls (see consume.go).
//
// A record's qid is "brokerName:queueId" ("broker-a:3"); its partition is
// the queue's index among the topic's queues sorted by broker name, then
// queue id.
package rocketmq

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	rmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/mqgate/mqgate/plugins/rocketmq/internal/remoting"
	"github.com/mqgate/mqgate/sdk"
)

var (
	_ sdk.Backend         = (*Backend)(nil)
	_ sdk.ConfigValidator = (*Backend)(nil)
)

// errNotConfigured is what every call made before Configure (or after
// Close) returns.
var errNotConfigured = &sdk.Error{Code: sdk.CodeUnavailable, Msg: "rocketmq backend is not configured or is closed"}

// instances numbers the rocketmq-client-go clients of this process: the
// library shares one internal client per instance name.
var instances atomic.Int64

// Backend is an sdk.Backend over RocketMQ. It is safe for concurrent use.
type Backend struct {
	logger *slog.Logger

	mu        sync.Mutex
	cfg       config
	pool      *pool // name servers and brokers: offsets, fetch, topic checks
	routes    *routes
	producer  rmq.Producer
	consumers map[*consumer]struct{}
	closed    bool

	// revokeGrace, when not zero, replaces graceWindow for consumers
	// started after it is set; tests shorten it.
	revokeGrace time.Duration
}

// New returns an unconfigured backend that logs to logger (slog.Default()
// when nil).
func New(logger *slog.Logger) *Backend {
	if logger == nil {
		logger = slog.Default()
	}
	setLibraryLogger(logger)
	return &Backend{logger: logger, consumers: map[*consumer]struct{}{}}
}

// ValidateConfig reports every problem of a config Configure would refuse
// before connecting: unknown keys, values of the wrong type or form. It
// does not check that a name server answers.
func (b *Backend) ValidateConfig(data []byte) sdk.ConfigErrors {
	_, errs := parseConfig(data)
	return errs
}

// Configure applies the plugin config and checks that a name server
// answers. An unreachable name server is CodeUnavailable, so the gateway
// keeps the cluster unready and tries again.
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
		return sdk.Errorf(sdk.CodeIllegal, "rocketmq backend is already configured")
	}
	p := newPool(cfg, nil)
	if _, err := p.brokers(ctx); err != nil {
		p.close()
		return err
	}

	instance := "mqgate-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(instances.Add(1), 10)
	opts := []producer.Option{
		producer.WithNsResolver(primitive.NewPassthroughResolver(cfg.nameservers)),
		producer.WithGroupName(cfg.producerGroup),
		producer.WithInstanceName(instance),
		producer.WithRetry(cfg.retries),
		producer.WithSendMsgTimeout(cfg.sendTimeout),
		// Topics a broker creates on first send get as many queues as
		// produceRoute assumed.
		producer.WithDefaultTopicQueueNums(int(cfg.defaultQueues)),
		// Produce picks every record's queue itself (partition choice).
		producer.WithQueueSelector(producer.NewManualQueueSelector()),
	}
	if cfg.accessKey != "" {
		opts = append(opts, producer.WithCredentials(primitive.Credentials{AccessKey: cfg.accessKey, SecretKey: cfg.secretKey}))
	}
	// Topics and groups are namespaced by this plugin, not the library,
	// so that every path (its own requests included) agrees.
	prod, err := rmq.NewProducer(opts...)
	if err != nil {
		p.close()
		return sdk.Errorf(sdk.CodeInternal, "creating rocketmq producer: %v", err)
	}
	if err := prod.Start(); err != nil {
		p.close()
		return sdk.Errorf(sdk.CodeUnavailable, "starting rocketmq producer: %v", err)
	}
	b.cfg, b.pool, b.producer = cfg, p, prod
	b.routes = &routes{pool: p, m: map[string]*route{}}
	return nil
}

// state returns what calls need, or errNotConfigured.
func (b *Backend) state() (config, *pool, *routes, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.producer == nil {
		return config{}, nil, nil, errNotConfigured
	}
	return b.cfg, b.pool, b.routes, nil
}

// EnsureTopics creates the topics the name server does not know, with
// their partition count (default_queues when 0) as read and write queues
// on every broker master. Existing topics are left alone.
func (b *Backend) EnsureTopics(ctx context.Context, topics []sdk.TopicSpec) error {
	cfg, p, rs, err := b.state()
	if err != nil {
		return err
	}
	var brokers map[string]string
	for _, t := range topics {
		if len(t.Configs) > 0 {
			// RocketMQ has no per-topic configs like compaction; refusing
			// beats silently ignoring what the caller relies on.
			return sdk.Errorf(sdk.CodeIllegal, "topic %s: rocketmq topics take no configs, got %v", t.Name, t.Configs)
		}
		if err := checkTopic(t.Name); err != nil {
			return err
		}
		name := cfg.wrap(t.Name)
		if _, err := rs.get(ctx, name, true); err == nil {
			continue
		} else if sdk.CodeOf(err) != sdk.CodeTopicNotExist {
			return err
		}
		if brokers == nil {
			if brokers, err = p.brokers(ctx); err != nil {
				return err
			}
			if len(brokers) == 0 {
				return sdk.Errorf(sdk.CodeUnavailable, "rocketmq name server knows no broker to create topics on")
			}
		}
		n := int(t.Partitions)
		if n == 0 {
			n = int(cfg.defaultQueues)
		}
		for _, addr := range brokers {
			if err := createTopic(ctx, p, addr, name, n); err != nil {
				return err
			}
		}
		// Brokers register new topics with the name server on their next
		// heartbeat; wait for the route so the topic is usable on return.
		if err := waitRoute(ctx, rs, name); err != nil {
			return err
		}
	}
	return nil
}

// createTopic asks the broker at addr for topic with n read and write
// queues (UPDATE_AND_CREATE_TOPIC), and checks the answer, which
// rocketmq-client-go's admin client ignores.
func createTopic(ctx context.Context, p *pool, addr, topic string, n int) error {
	req := remoting.NewRequest(remoting.UpdateAndCreateTopic, fields(
		"topic", topic, "defaultTopic", autoCreateTopic,
		"readQueueNums", strconv.Itoa(n), "writeQueueNums", strconv.Itoa(n),
		"perm", "6", "topicFilterType", "SINGLE_TAG", "topicSysFlag", "0", "order", "false",
	), nil)
	resp, err := p.invoke(ctx, addr, req)
	if err != nil {
		return err
	}
	if resp.Code != remoting.Success {
		return brokerError("creating topic "+topic+" on broker "+addr, resp)
	}
	return nil
}

func waitRoute(ctx context.Context, rs *routes, topic string) error {
	for {
		_, err := rs.get(ctx, topic, true)
		if sdk.CodeOf(err) != sdk.CodeTopicNotExist {
			return err
		}
		select {
		case <-ctx.Done():
			return sdk.Errorf(sdk.CodeTimeout, "topic %s was created but its route did not appear: %v", topic, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close shuts the producer and every consumer down.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	consumers := b.consumers
	b.consumers = nil
	prod, p := b.producer, b.pool
	b.mu.Unlock()
	for c := range consumers {
		c.Close()
	}
	var err error
	if prod != nil {
		if e := prod.Shutdown(); e != nil {
			err = fmt.Errorf("closing rocketmq producer: %w", e)
		}
	}
	if p != nil {
		p.close()
	}
	return err
}

// topicQueues returns a topic's route, refreshed once when a queue asked
// for is missing from the cached one.
func (b *Backend) queueRoute(ctx context.Context, rs *routes, topic string, q queue) (*route, error) {
	r, err := rs.get(ctx, topic, false)
	if err != nil {
		return nil, err
	}
	if r.addrs[q.broker] == "" || r.partition(q) < 0 {
		if r, err = rs.get(ctx, topic, true); err != nil {
			return nil, err
		}
	}
	if r.partition(q) < 0 {
		return nil, sdk.Errorf(sdk.CodeIllegal, "qid %s: topic has no such queue", q.qid())
	}
	return r, nil
}

// remotingFields builds request header fields.
func fields(kv ...string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

var _ sdk.HealthChecker = (*Backend)(nil)

// Health reports whether a name server answers with the cluster's brokers:
// code 17 naming each name server's error when none does.
func (b *Backend) Health(ctx context.Context) error {
	_, p, _, err := b.state()
	if err != nil {
		return err
	}
	_, err = p.brokers(ctx)
	return err
}
