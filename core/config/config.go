// Package config loads and validates plugins.yaml, the one file that selects
// a deployment's plugins and configures everything else.
//
// Every problem is reported with its file, line and dotted key, and a file is
// checked whole: Load and Parse return all problems at once as Errors. A
// Config they return has every default applied and every cross-reference
// (cluster to plugin, topic to cluster, default cluster) resolved.
//
// To add a key, add a field to the struct of its section with a `yaml` tag
// and, as needed, a `default` and a `check` tag (see schema.go), then
// document it in docs/configuration.md.
package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mqgate/mqgate/sdk"
)

// Plugin kinds.
const (
	KindBackend = "backend" // a message broker: Kafka, RocketMQ
	KindSink    = "sink"    // a store consumed messages are written to: Redis, HBase, HDFS
)

// Builtins maps the name of each plugin bundled into the mqgate binary to
// its kind (KindBackend or KindSink). A plugin with `builtin: NAME` must name
// a key of Builtins. The binary adds its plugins here before loading a
// config; it is not safe to change while Load or Parse runs.
var Builtins = map[string]string{"kafka": KindBackend}

// InProcessBuiltins names the bundled plugins that may run inside the
// gateway's process (`in_process: true`). The binary adds them here, as it
// does Builtins.
var InProcessBuiltins = map[string]bool{"kafka": true}

// Config is a parsed, valid plugins.yaml with all defaults applied.
type Config struct {
	Version        int                 `yaml:"version" check:"required"`
	Plugins        map[string]*Plugin  `yaml:"plugins" check:"required"`
	Clusters       map[string]*Cluster `yaml:"clusters" check:"required"`
	DefaultCluster string              `yaml:"default_cluster"`
	Topics         map[string]*Topic   `yaml:"topics"`
	HTTP           HTTP                `yaml:"http"`
	Thrift         Thrift              `yaml:"thrift"`
	PluginHost     PluginHost          `yaml:"plugin_host"`
	Runtime        Runtime             `yaml:"runtime"`
	Producer       Producer            `yaml:"producer"`
	Delay          Delay               `yaml:"delay"`
	Consume        Consume             `yaml:"consume"`
	// Groups override consume: settings per consumer group, and name the
	// topics each group is subscribed to.
	Groups map[string]*Group `yaml:"groups"`
	// Subscriptions bounds the groups' server-side subscriptions.
	Subscriptions Subscriptions `yaml:"subscriptions"`
	// Push lists the HTTP push subscriptions.
	Push []*Push `yaml:"push"`
	// Sinks lists the sink pipelines: topics consumed into a store (Redis,
	// HBase, HDFS, ...) through a sink plugin.
	Sinks []*Sink `yaml:"sinks"`
	// Auth, when set, makes every client request prove who sends it.
	Auth *Auth `yaml:"auth"`
	// ACL lists what each principal may do; absent, anyone may do
	// anything (but touch the gateway's own names).
	ACL []*ACLRule `yaml:"acl"`
	// Quotas limit what each principal may do on this gateway; the first
	// rule whose principal matches applies. Absent, no principal is
	// limited beyond the gateway's own limits.
	Quotas []*Quota `yaml:"quotas"`

	// AutoCreateTopics is topics.auto_create, the one key under topics:
	// that is not a topic: when false, clients may produce only to the
	// topics with an entry under topics:, as DDMQ's producer proxy
	// produces only to the topics of its white list. True when absent.
	AutoCreateTopics bool `yaml:"-"`

	// File is the path the config was read from, as given to Load or Parse.
	File string `yaml:"-"`
	// Dir is the directory of File; absolute when the config came from
	// Load. Relative paths inside the config are left as written; callers
	// resolve them against Dir where that is what they mean.
	Dir string `yaml:"-"`

	// secrets are the values read through references, which PluginError
	// keeps out of its messages.
	secrets []secret
	// raw is the file's text, for Shown.
	raw []byte
}

// Plugin is one entry of `plugins:`: exactly one of Builtin or Path is set.
type Plugin struct {
	Name    string `yaml:"-"`       // its key under plugins:
	Builtin string `yaml:"builtin"` // a key of Builtins
	Path    string `yaml:"path"`    // an executable, as written in the file
	SHA256  string `yaml:"sha256"`  // lower-case hex; empty when not pinned
	// Kind is KindBackend or KindSink: a builtin's kind from Builtins, a
	// path plugin's from the file (default backend).
	Kind string `yaml:"kind" check:"oneof=backend|sink"`
	// InProcess runs a bundled plugin inside the gateway's process rather
	// than as a child process: only for builtins in InProcessBuiltins.
	InProcess bool `yaml:"in_process"`

	line int // of its key under plugins:
}

// Cluster is one broker cluster served through a backend plugin.
type Cluster struct {
	Name   string `yaml:"-"`                       // its key under clusters:
	Plugin string `yaml:"plugin" check:"required"` // names a Plugin of kind backend
	// Config is passed to the plugin as written; never nil. Its keys are
	// the plugin's to check.
	Config map[string]any `yaml:"config"`

	config     *yaml.Node // the value of config:, nil when absent
	configLine int        // the line of the config: key, else of the cluster's key
}

// Topic is per-topic routing and tuning under `topics:`.
type Topic struct {
	Name    string `yaml:"-"`       // its key under topics:
	Cluster string `yaml:"cluster"` // the cluster serving the topic; the default cluster when not set
	// RateLimit is the most messages per second accepted for the topic,
	// sync and async together, on this gateway; 0 is unlimited.
	RateLimit int `yaml:"rate_limit"`
	// Burst is how many messages may come at once above the steady rate;
	// 0 means RateLimit (one second's worth).
	Burst int `yaml:"burst"`
}

// Producer tunes the produce pipeline: auto-batching, retries, the spool.
type Producer struct {
	// Linger is the longest a sync request waits for others to share its
	// plugin call; a request to an idle cluster goes at once.
	Linger           time.Duration `yaml:"linger" default:"1ms"`
	MaxBatchMessages int           `yaml:"max_batch_messages" default:"1000" check:"positive"`
	MaxBatchBytes    int64         `yaml:"max_batch_bytes" default:"8MiB" check:"size,positive"`
	// RetryBackoff is the first wait before retrying a retriable failure;
	// it doubles up to RetryBackoffMax, within the request's deadline.
	RetryBackoff    time.Duration `yaml:"retry_backoff" default:"20ms" check:"positive"`
	RetryBackoffMax time.Duration `yaml:"retry_backoff_max" default:"1s" check:"positive"`
	// SpoolDir holds async messages until the broker has them.
	SpoolDir      string `yaml:"spool_dir" default:"./data/spool"`
	SpoolMaxBytes int64  `yaml:"spool_max_bytes" default:"1GiB" check:"size,positive"`
}

// Delay configures delay messages: tier topics on one cluster.
type Delay struct {
	// Enabled runs the delay service: it creates the tier topics at
	// start-up and every gateway works the tiers.
	Enabled bool `yaml:"enabled" default:"true"`
	// Cluster holds the tier and cancel topics; default: default_cluster.
	Cluster string `yaml:"cluster"`
	// Base and Levels give tiers of d*base^k seconds, d = 1..base-1,
	// k = 0..levels-1.
	Base       int `yaml:"base" default:"10" check:"positive"`
	Levels     int `yaml:"levels" default:"4" check:"positive"`
	Partitions int `yaml:"partitions" default:"4" check:"positive"`
	// Max is the longest delay accepted. The default is DDMQ's limit, 62
	// days (MAX_DELAY_SECONDS in its producer proxy's DelayRequest.java).
	Max time.Duration `yaml:"max" default:"1488h" check:"positive"`
	// TopicPrefix starts the names of the tier and cancel topics and of
	// the tiers' consumer groups.
	TopicPrefix string `yaml:"topic_prefix" default:"mqgate_delay_"`
	// Window bounds the records each tier worker holds in memory.
	Window int `yaml:"window" default:"2000" check:"positive"`
}

// Consume configures consumption with per-message acks (group sessions).
type Consume struct {
	SessionIdle     time.Duration `yaml:"session_idle" default:"5m" check:"positive"`
	MaxInFlight     int           `yaml:"max_in_flight" default:"1024" check:"positive"`
	AckTimeout      time.Duration `yaml:"ack_timeout" default:"30s" check:"positive"`
	MaxRetries      int           `yaml:"max_retries" default:"3"`
	RetryBackoff    time.Duration `yaml:"retry_backoff" default:"1s" check:"positive"`
	RetryBackoffMax time.Duration `yaml:"retry_backoff_max" default:"1m" check:"positive"`
	DeadLetterTopic string        `yaml:"dead_letter_topic" default:"'{group}-dlq'"`
	Buffer          int           `yaml:"buffer" default:"1024" check:"positive"`
	// Start is where a new group starts on a qid it never committed.
	Start    string `yaml:"start" default:"earliest" check:"oneof=earliest|latest"`
	MaxBatch int    `yaml:"max_batch" default:"1000" check:"positive"`
	// MaxSessions bounds the group sessions a gateway holds; a pull that
	// would open one more is refused.
	MaxSessions int `yaml:"max_sessions" default:"1000" check:"positive"`
}

// Group overrides consume: settings for one group; keys left out take
// consume:'s values.
type Group struct {
	Name            string         `yaml:"-"`
	SessionIdle     *time.Duration `yaml:"session_idle" check:"positive"`
	MaxInFlight     *int           `yaml:"max_in_flight" check:"positive"`
	AckTimeout      *time.Duration `yaml:"ack_timeout" check:"positive"`
	MaxRetries      *int           `yaml:"max_retries"`
	RetryBackoff    *time.Duration `yaml:"retry_backoff" check:"positive"`
	RetryBackoffMax *time.Duration `yaml:"retry_backoff_max" check:"positive"`
	DeadLetterTopic *string        `yaml:"dead_letter_topic"`
	// Topics are the topics the group is subscribed to, as a DDMQ group's
	// topics live on its server: a pull or fetch without a topic serves
	// them. The admin routes add more at run time.
	Topics []string `yaml:"topics"`
}

// Subscriptions bounds the server-side subscriptions of consumer groups,
// those of groups.<g>.topics and those added at run time, which the
// gateway keeps in a topic of the default cluster.
type Subscriptions struct {
	// MaxTopicsPerGroup bounds the topics one group is subscribed to.
	MaxTopicsPerGroup int `yaml:"max_topics_per_group" default:"100" check:"positive"`
	// MaxGroups bounds the groups that have a subscription.
	MaxGroups int `yaml:"max_groups" default:"10000" check:"positive"`
	// MaxRecordBytes bounds one record of the subscriptions topic, key
	// and value together.
	MaxRecordBytes int64 `yaml:"max_record_bytes" default:"4KiB" check:"size,positive"`
	// Refresh is how often, on a broker that does not compact the
	// subscriptions topic (RocketMQ), each change is written again so that
	// retention never takes the latest one.
	Refresh time.Duration `yaml:"refresh" default:"24h" check:"positive"`
}

// Push is one HTTP push subscription: it consumes Topics as Group on
// Cluster and delivers each message to one of Targets.
type Push struct {
	// Name names the subscription in /v1/push, metrics, logs and its
	// state file: letters, digits, '.', '_' and '-'.
	Name string `yaml:"name" check:"required"`
	// Cluster the topics are consumed from; default: the cluster each
	// topic is routed to (topics:, default_cluster).
	Cluster string `yaml:"cluster"`
	// Group is the consumer group; default: mqgate-push-NAME.
	Group  string   `yaml:"group"`
	Topics []string `yaml:"topics" check:"required"`
	// Targets are http(s) URLs the requests go to, spread round-robin.
	Targets []string `yaml:"targets" check:"required"`
	// Method is POST, PUT or PATCH; GET too with envelope ddmq, which
	// sends its form in the body whatever the method, as DDMQ does.
	Method string `yaml:"method" default:"POST" check:"oneof=POST|PUT|PATCH|GET"`
	// Headers are added to every request.
	Headers map[string]string `yaml:"headers"`
	// HostHeader, when set, is the Host header of every request.
	HostHeader     string        `yaml:"host_header"`
	ConnectTimeout time.Duration `yaml:"connect_timeout" default:"5s" check:"positive"`
	// Timeout bounds one attempt, from connecting to reading the reply.
	Timeout time.Duration `yaml:"timeout" default:"30s" check:"positive"`
	// Concurrency bounds the requests in flight.
	Concurrency int       `yaml:"concurrency" default:"16" check:"positive"`
	Order       string    `yaml:"order" default:"key" check:"oneof=partition|key|none"`
	Retry       PushRetry `yaml:"retry"`
	// CanSkip sends a message whose retries are spent to the dead-letter
	// topic; when false it is retried until it succeeds.
	CanSkip bool `yaml:"can_skip" default:"false"`
	// RateLimit bounds requests per second on this gateway; 0 is unlimited.
	RateLimit int `yaml:"rate_limit"`
	// SlowMs logs deliveries slower than this many milliseconds; 0 never.
	SlowMs int `yaml:"slow_ms"`
	// Delivery is the delivery guarantee, 1, 2 or 3, as kafka-consumer-proxy's
	// message_delivery_guarantees.
	Delivery int `yaml:"delivery" default:"2"`
	// CommitInterval is how often delivery 1 commits.
	CommitInterval time.Duration `yaml:"commit_interval" default:"1s" check:"positive"`
	// Envelope is raw (the value is the body), json (one JSON object) or
	// ddmq (DDMQ consumer proxy's form POST, with its errno replies).
	Envelope string `yaml:"envelope" default:"raw" check:"oneof=raw|json|ddmq"`
	// DDMQ configures envelope ddmq.
	DDMQ PushDDMQ `yaml:"ddmq"`
	// Filter is an expression; messages it rejects are not sent.
	Filter    string         `yaml:"filter"`
	Transform *PushTransform `yaml:"transform"`
	// TargetCooldown is how long a target that failed to answer is skipped.
	TargetCooldown time.Duration `yaml:"target_cooldown" default:"10s" check:"positive"`
	// Buffer bounds the messages taken from the broker and not yet sent.
	Buffer int `yaml:"buffer" default:"1024" check:"positive"`
	// StateDir holds the subscription's record of delivered offsets
	// (delivery 2 and 3).
	StateDir string `yaml:"state_dir" default:"./data/push"`
}

// Sink is one sink pipeline: it consumes Topics as Group on Cluster,
// filters and transforms each message, and writes batches through the sink
// plugin Plugin, acking each message once the plugin says it is durable.
type Sink struct {
	// Name names the pipeline in /v1/sinks, metrics, logs and its plugin
	// process: letters, digits, '.', '_' and '-'.
	Name string `yaml:"name" check:"required"`
	// Cluster the topics are consumed from; default: the cluster each
	// topic is routed to.
	Cluster string `yaml:"cluster"`
	// Group is the consumer group; default: mqgate-sink-NAME.
	Group  string   `yaml:"group"`
	Topics []string `yaml:"topics" check:"required"`
	// Plugin names an entry of plugins: of kind sink.
	Plugin string `yaml:"plugin" check:"required"`
	// Config is passed to the plugin as a JSON object, with the key
	// "mqgate" added (sdk.SinkInfo); never nil. Its keys are the
	// plugin's to check.
	Config map[string]any `yaml:"config"`
	// Filter is an expression; messages it rejects are acked, not written.
	Filter string `yaml:"filter"`
	// Transform rebuilds the value and headers before the plugin sees them.
	Transform *PushTransform `yaml:"transform"`
	// Order is what must never be overtaken by a later message: key (a
	// message of a key is written only after the previous one of that key
	// is durable), qid (messages of a queue are written in batches in
	// queue order; a retry resends the rest of its batch's queue after
	// it) or none.
	Order string    `yaml:"order" default:"key" check:"oneof=key|qid|none"`
	Batch SinkBatch `yaml:"batch"`
	// Concurrency bounds the Write calls in flight.
	Concurrency int `yaml:"concurrency" default:"2" check:"positive"`
	// Buffer bounds the messages taken from the broker and not yet written.
	Buffer int `yaml:"buffer" default:"4096" check:"positive"`
	// Timeout bounds one Write call.
	Timeout time.Duration `yaml:"timeout" default:"30s" check:"positive"`
	Retry   PushRetry     `yaml:"retry"`
	// CanSkip sends a message whose retries are spent to the group's
	// dead-letter topic; when false it is retried until it succeeds,
	// holding back only its own lane (see Order).
	CanSkip bool `yaml:"can_skip" default:"false"`

	config     *yaml.Node // the value of config:, nil when absent
	configLine int        // the line of the config: key, else of the entry
}

// SinkBatch bounds one Write call of a sink pipeline.
type SinkBatch struct {
	MaxMessages int   `yaml:"max_messages" default:"500" check:"positive"`
	MaxBytes    int64 `yaml:"max_bytes" default:"4MiB" check:"size,positive"`
	// Linger is how long a Write waits for more messages when fewer than
	// MaxMessages are ready; 0 writes what is ready at once.
	Linger time.Duration `yaml:"linger" default:"5ms"`
}

// PushRetry is when a push delivery is tried again.
type PushRetry struct {
	// Max is the number of attempts before a message that keeps failing
	// is dead-lettered (with can_skip: true).
	Max int `yaml:"max" default:"3" check:"positive"`
	// Backoff is the wait before the 2nd, 3rd, ... attempt; the last
	// entry repeats.
	Backoff []time.Duration `yaml:"backoff" default:"[1s, 5s, 30s, 1m]" check:"positive"`
}

// PushTransform builds the request from expressions (core/transform).
type PushTransform struct {
	Body    string            `yaml:"body"`
	Headers map[string]string `yaml:"headers"`
	// Transit builds the body from JSON paths, target -> source, as a
	// DDMQ subscription's transit; it excludes Body.
	Transit map[string]string `yaml:"transit"`
}

// PushDDMQ is how envelope ddmq builds its requests and reads its
// replies, in the terms of a DDMQ consumer proxy (CProxy) subscription.
type PushDDMQ struct {
	// FormParams2 sends the members of a JSON object value as form
	// fields, CProxy's FormParams2 action; otherwise the value goes in
	// the field params (FormParams).
	FormParams2 bool `yaml:"form_params2" default:"false"`
	// AppendContext lists the carrera_* fields added to the form.
	AppendContext []string `yaml:"append_context" default:"[TOPIC, GROUP, OFFSET, QID, SOURCE, MSG_KEY, TOKEN, PROPERTIES]" check:"oneof=TOPIC|GROUP|OFFSET|QID|SOURCE|MSG_KEY|TOKEN|PROPERTIES"`
	// TokenKey is appended to the message key before carrera_token's MD5.
	TokenKey string `yaml:"token_key"`
	// QueryParams maps a query parameter to a JSON path into the value.
	QueryParams map[string]string `yaml:"query_params"`
	// OrderKey is QID, KEY or a JSON path into the value; when set it
	// replaces order.
	OrderKey string `yaml:"order_key"`
	// RetryIntervals are the waits before retrying a message the target
	// answered with an errno DDMQ does not define.
	RetryIntervals []time.Duration `yaml:"retry_intervals" default:"[100ms, 150ms, 300ms]"`
	// PressureTraffic delivers messages whose isPressureTraffic property
	// is true; otherwise they are skipped, as CProxy does by default.
	PressureTraffic bool `yaml:"pressure_traffic" default:"false"`
	// HTTPCallbackURL lets a message's carrera_http_callback_url property
	// replace the targets.
	HTTPCallbackURL bool `yaml:"http_callback_url" default:"true"`
}

// BatchDefault names the subscription the root batch-id routes serve.
type BatchDefault struct {
	Group string `yaml:"group" check:"required"`
	Topic string `yaml:"topic" check:"required"`
}

// HTTP configures the HTTP frontend.
type HTTP struct {
	Listen          string `yaml:"listen" default:"127.0.0.1:8080" check:"hostport"`
	MaxMessageBytes int64  `yaml:"max_message_bytes" default:"1MiB" check:"size,positive"`
	MaxBodyBytes    int64  `yaml:"max_body_bytes" default:"64MiB" check:"size,positive"`
	// MaxBodyBytesInFlight bounds the bytes of every request body held in
	// memory at once. Absent, it is DefaultBodyBytesInFlightFactor times
	// MaxBodyBytes; it is never below MaxBodyBytes.
	MaxBodyBytesInFlight int64 `yaml:"max_body_bytes_in_flight" check:"size,positive"`
	MaxBatchMessages     int   `yaml:"max_batch_messages" default:"10000" check:"positive"`
	// BatchDefault, when set, serves the batch-id routes (ape_dts's HTTP
	// consumer API) at the root (/info, /fetch_new, /fetch_old, /ack) for
	// one subscription.
	BatchDefault    *BatchDefault `yaml:"batch_default"`
	RequestTimeout  time.Duration `yaml:"request_timeout" default:"10s" check:"positive"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" default:"15s" check:"positive"` // how long SIGTERM waits for in-flight requests
	// Limits bound the connections of the HTTP listener.
	Limits HTTPLimits `yaml:"limits"`
	// TLS, when set, makes the listener speak HTTPS only.
	TLS *TLSConfig `yaml:"tls"`
	// Console serves the web console's files at /ui/.
	Console bool `yaml:"console" default:"true"`
}

// HTTPLimits bound what clients may hold of the HTTP listener.
type HTTPLimits struct {
	// MaxConnections bounds the connections open at once; past it a new
	// one is answered 503 (code 17) and closed. Zero (absent) means a
	// share of the descriptor limit (connlimit.DefaultMaxConnections).
	MaxConnections int `yaml:"max_connections" check:"positive"`
	// MaxConnectionsPerSource bounds the connections open at once from
	// one client IP address. Zero (absent) means half of MaxConnections,
	// at most 1000.
	MaxConnectionsPerSource int `yaml:"max_connections_per_source" check:"positive"`
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout time.Duration `yaml:"idle_timeout" default:"2m" check:"positive"`
	// HeaderTimeout bounds the time a request's headers may take to
	// arrive, from the connection's start or the previous answer's end.
	HeaderTimeout time.Duration `yaml:"header_timeout" default:"10s" check:"positive"`
}

// Thrift configures the Thrift frontend.
type Thrift struct {
	ProducerListen string `yaml:"producer_listen" default:"127.0.0.1:9613" check:"hostport"`
	ConsumerListen string `yaml:"consumer_listen" default:"127.0.0.1:9713" check:"hostport"`
	Transport      string `yaml:"transport" default:"framed" check:"oneof=framed|buffered"`
	Protocol       string `yaml:"protocol" default:"compact" check:"oneof=compact|binary"`
	// DDMQAnswers chooses the answers where DDMQ's lose information:
	// "strict" answers as DDMQ's proxies do, "informative" as mqgate
	// would on its own (docs/thrift.md, "DDMQ's answers").
	DDMQAnswers string `yaml:"ddmq_answers" default:"strict" check:"oneof=strict|informative"`
	// MaxRequestBytesInFlight bounds the bytes of the requests each
	// service has read and not yet answered. Zero (absent) means four
	// times the largest request (64 MiB).
	MaxRequestBytesInFlight int64 `yaml:"max_request_bytes_in_flight" check:"size,positive"`
	// Limits bound the connections of each Thrift listener.
	Limits ThriftLimits `yaml:"limits"`
	// TLS, when set, makes both listeners speak Thrift over TLS only.
	TLS *TLSConfig `yaml:"tls"`
}

// ThriftLimits bound what clients may hold of each Thrift listener (the
// producer's and the consumer's alike, each on its own).
type ThriftLimits struct {
	// MaxConnections bounds the connections open at once; past it a new
	// one is closed at once. Zero (absent) means a share of the
	// descriptor limit (connlimit.DefaultMaxConnections).
	MaxConnections int `yaml:"max_connections" check:"positive"`
	// MaxConnectionsPerSource bounds the connections open at once from
	// one client IP address. Zero (absent) means half of MaxConnections,
	// at most 1000.
	MaxConnectionsPerSource int `yaml:"max_connections_per_source" check:"positive"`
	// IdleTimeout closes a connection that has sent nothing for this long
	// since its last answer; long enough for DDMQ's pooled clients.
	IdleTimeout time.Duration `yaml:"idle_timeout" default:"10m" check:"positive"`
	// ReadTimeout bounds the time one request may take to arrive, from
	// its first byte. Zero (absent) means http.request_timeout.
	ReadTimeout time.Duration `yaml:"read_timeout" check:"positive"`
}

// TLSConfig is the TLS of a client listener (http.tls, thrift.tls). Its
// files are read at start, checked to form a pair, and read again when
// they change. Relative paths are resolved against mqgate's working
// directory.
type TLSConfig struct {
	CertFile string `yaml:"cert_file" check:"required"` // PEM: the certificate, then any intermediates
	KeyFile  string `yaml:"key_file" check:"required"`  // PEM: the certificate's private key
	// ClientCAFile, when set, makes the listener require a client
	// certificate signed by one of the PEM certificates it holds (mTLS).
	ClientCAFile string `yaml:"client_ca_file"`
	// MinVersion is the oldest TLS version accepted: "1.2" or "1.3".
	MinVersion string `yaml:"min_version" default:"1.2" check:"oneof=1.2|1.3"`
}

// DefaultBodyBytesInFlightFactor times http.max_body_bytes is the default
// of http.max_body_bytes_in_flight: room for a few bodies of the largest
// size while many small ones are served.
const DefaultBodyBytesInFlightFactor = 4

// Auth says how clients prove who they are. Each request is tried, in
// order, by client certificate (MTLS), by its Authorization header (an API
// key, or a JWT), by its source address (Networks), and else gets the
// Anonymous principal, if any; a credential that is presented and fails is
// refused, never taken as anonymous.
type Auth struct {
	APIKeys   []*APIKey  `yaml:"api_keys"`
	JWT       *JWT       `yaml:"jwt"`
	MTLS      *MTLS      `yaml:"mtls"`
	Networks  []*Network `yaml:"networks"`
	Anonymous *Anonymous `yaml:"anonymous"`
	// ThriftToken, when set, lets each Thrift call carry a token of its
	// own, for DDMQ clients that can present no certificate.
	ThriftToken *ThriftToken `yaml:"thrift_token"`
}

// ThriftToken is where a Thrift call carries a bearer token (an API key or
// a JWT): a producer message's property, or a consumer call's group name
// "<token><GroupSeparator><group>". The token is removed before the
// broker sees the message or the group.
type ThriftToken struct {
	// Property names the message property that holds the token; it is
	// matched without regard to case.
	Property string `yaml:"property" default:"mqgate-token"`
	// GroupSeparator ends the token in a group name. It holds a character
	// no group name may, so a group is never mistaken for a token.
	GroupSeparator string `yaml:"group_separator" default:"'@'"` // quoted: @ is reserved in YAML
}

// APIKey is a static key, kept as the hex SHA-256 of the key. A client
// sends the key as "Authorization: Bearer KEY", or as the password of HTTP
// Basic with the principal as the user.
type APIKey struct {
	Principal string `yaml:"principal" check:"required"`
	SHA256    string `yaml:"sha256" check:"required"`
}

// JWT accepts bearer tokens signed by a key of a JWKS, from a file or a
// URL (refreshed), with the issuer and audience given and not expired.
type JWT struct {
	JWKSFile string `yaml:"jwks_file"`
	JWKSURL  string `yaml:"jwks_url"`
	Issuer   string `yaml:"issuer" check:"required"`
	Audience string `yaml:"audience" check:"required"`
	// PrincipalClaim names the claim that is the principal.
	PrincipalClaim string `yaml:"principal_claim" default:"sub"`
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration `yaml:"leeway" default:"30s"`
	// JWKSRefresh is how often a JWKS URL is fetched again, so a key the
	// identity provider revoked stops being accepted.
	JWKSRefresh time.Duration `yaml:"jwks_refresh" default:"1h" check:"positive"`
}

// MTLS takes the principal from a verified client certificate (the
// listener's client_ca_file verifies it): its subject's common name, or
// its first DNS or URI subject alternative name.
type MTLS struct {
	Principal string `yaml:"principal" default:"cn" check:"oneof=cn|san_dns|san_uri"`
}

// Network gives a principal to requests from its networks: for
// deployments that rely on network isolation, as DDMQ's proxies do.
type Network struct {
	CIDRs     []string `yaml:"cidrs" check:"required"`
	Principal string   `yaml:"principal" check:"required"`
}

// Anonymous is the principal of requests that present no credential.
type Anonymous struct {
	Principal string `yaml:"principal" check:"required"`
}

// ACLRule allows (or denies) a principal operations on topics and groups.
type ACLRule struct {
	// Principal is a name, a glob ("team-*"), or "*" for every principal.
	Principal  string   `yaml:"principal" check:"required"`
	Effect     string   `yaml:"effect" default:"allow" check:"oneof=allow|deny"`
	Operations []string `yaml:"operations" check:"required"`
	// Topics and Groups are names, prefixes ("orders.*") or globs;
	// absent, any.
	Topics []string `yaml:"topics"`
	Groups []string `yaml:"groups"`
}

// Quota limits each principal its Principal pattern matches, every one on
// its own: messages and bytes per second produced, and consume sessions
// open. A rate left out is not limited; a rule that sets no limit exempts
// the principals it matches from the rules after it.
type Quota struct {
	// Principal is a name, a glob ("team-*"), or "*" for every principal.
	Principal         string `yaml:"principal" check:"required"`
	MessagesPerSecond int    `yaml:"messages_per_second" check:"positive"`
	// Burst is how many messages may come at once above the steady rate;
	// absent, MessagesPerSecond (one second's worth).
	Burst          int   `yaml:"burst" check:"positive"`
	BytesPerSecond int64 `yaml:"bytes_per_second" check:"size,positive"`
	// BurstBytes is how many bytes may come at once above the steady
	// rate; absent, BytesPerSecond or http.max_message_bytes, whichever
	// is larger, so that a message of the largest size can pass.
	BurstBytes int64 `yaml:"burst_bytes" check:"size,positive"`
	// MaxSessions bounds the consume sessions (pulls, batch-id cursors)
	// the principal holds open at once on this gateway.
	MaxSessions int `yaml:"max_sessions" check:"positive"`
}

// Runtime tunes the Go runtime of the gateway process.
type Runtime struct {
	// MemoryLimit is the Go soft memory limit (debug.SetMemoryLimit). Zero
	// (absent) means 75% of the cgroup's memory limit when there is one,
	// else none. The GOMEMLIMIT environment variable overrides it.
	MemoryLimit int64 `yaml:"memory_limit" check:"size,positive"`
}

// PluginHost tunes how plugin processes are watched and restarted.
type PluginHost struct {
	HealthInterval    time.Duration `yaml:"health_interval" default:"1s" check:"positive"`
	RestartBackoffMax time.Duration `yaml:"restart_backoff_max" default:"2s" check:"positive"`
	CallTimeout       time.Duration `yaml:"call_timeout" default:"10s" check:"positive"`
}

// Load reads and parses the config file at path. A file that cannot be read
// gives a plain error wrapping the os error; an invalid one gives Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(c.Dir); err == nil {
		c.Dir = abs
	} // else keep the relative Dir: Abs fails only when the working directory is gone
	return c, nil
}

// Parse parses config data read from file, which names the file in errors
// and sets Dir. When data is invalid it returns a nil Config and Errors
// holding every problem found, sorted by line.
func Parse(file string, data []byte) (*Config, error) {
	c, errs := parse(file, data)
	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

// Inspect reads and parses the config file at path as Load does, but keeps
// what could be decoded of an invalid file: it returns the Config, valid or
// not, with every problem found (none for a valid file), so that `mqgate
// check` can ask plugins about the parts the problems do not touch (see
// CheckableClusters). Only a file that cannot be read is an error.
//
// The Config of an invalid file is for reading its clusters and plugins:
// values with a problem are left at their zero value or default, and
// references may point nowhere.
func Inspect(path string) (*Config, Errors, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading config: %w", err)
	}
	c, errs := parse(path, data)
	if abs, err := filepath.Abs(c.Dir); err == nil {
		c.Dir = abs
	} // else keep the relative Dir: Abs fails only when the working directory is gone
	return c, errs, nil
}

// parse decodes data read from file into a Config as far as it can and
// returns it with every problem found, sorted by line.
func parse(file string, data []byte) (*Config, Errors) {
	d := newDecoder(file)
	c := &Config{File: file, Dir: filepath.Dir(file), raw: data}
	if root := d.document(data); root != nil {
		d.expandReferences(root)
		d.takeAutoCreate(root, c)
		d.decodeStruct(root, reflect.ValueOf(c).Elem(), "", root.Line)
		d.validate(c)
	}
	c.secrets = d.secrets
	for _, e := range d.errs {
		e.Msg = redact(c.secrets, e.Msg)
	}
	d.errs.SortByLine()
	return c, d.errs
}

// CheckableClusters returns, sorted by name, the clusters of c whose plugin
// can be asked about their config despite errs, the problems Inspect
// found: those with a plugin of kind backend, and no problem in errs at or
// under the cluster's key or its plugin's, nor at a section holding them.
// For a valid Config it returns every cluster.
func (c *Config) CheckableClusters(errs Errors) []*Cluster {
	var out []*Cluster
	for _, name := range slices.Sorted(maps.Keys(c.Clusters)) {
		cl := c.Clusters[name]
		if cl == nil {
			continue
		}
		p, ok := c.Plugins[cl.Plugin]
		if !ok || p == nil || p.Kind != KindBackend {
			continue
		}
		if errs.touch(keyPath("clusters", name)) || errs.touch(keyPath("plugins", cl.Plugin)) {
			continue
		}
		out = append(out, cl)
	}
	return out
}

// CheckableSinks returns the indexes of the sinks of c whose plugin can be
// asked about their config despite errs, as CheckableClusters does for
// clusters: those with a plugin of kind sink, and no problem in errs at or
// under the entry or its plugin's.
func (c *Config) CheckableSinks(errs Errors) []int {
	var out []int
	for i, sk := range c.Sinks {
		if sk == nil {
			continue
		}
		p, ok := c.Plugins[sk.Plugin]
		if !ok || p == nil || p.Kind != KindSink {
			continue
		}
		if errs.touch(fmt.Sprintf("sinks[%d]", i)) || errs.touch(keyPath("plugins", sk.Plugin)) {
			continue
		}
		out = append(out, i)
	}
	return out
}

// touch reports whether a problem in es is at key, under it, or at a key
// holding it (a problem of the file as a whole does not count).
func (es Errors) touch(key string) bool {
	for _, e := range es {
		switch {
		case e.Key == "":
		case e.Key == key,
			strings.HasPrefix(e.Key, key+"."), strings.HasPrefix(e.Key, key+"["),
			strings.HasPrefix(key, e.Key+"."):
			return true
		}
	}
	return false
}

// ClusterFor returns the name of the cluster serving topic: its `topics:`
// entry's cluster, else the default cluster.
func (c *Config) ClusterFor(topic string) string {
	if t, ok := c.Topics[topic]; ok && t.Cluster != "" {
		return t.Cluster
	}
	return c.DefaultCluster
}

// PluginError locates a problem a plugin found in the config of cluster,
// such as an *sdk.ConfigError: key is the dotted path inside the cluster's
// `config:` map ("" for the map as a whole) and the line is found with
// LineOf. For a cluster not in c the line is 0.
func (c *Config) PluginError(cluster, key, msg string) *Error {
	path := keyPath(keyPath("clusters", cluster), "config")
	if key != "" {
		path += "." + key
	}
	line := 0
	if cl, ok := c.Clusters[cluster]; ok {
		line = cl.LineOf(key)
	}
	return &Error{File: c.File, Line: line, Key: path, Msg: redact(c.secrets, msg)}
}

// SinkPluginError locates a problem a sink's plugin found in its config,
// as PluginError does a cluster's: sink is the index of the entry under
// sinks:.
func (c *Config) SinkPluginError(sink int, key, msg string) *Error {
	path := fmt.Sprintf("sinks[%d].config", sink)
	if key != "" {
		path += "." + key
	}
	line := 0
	if sink >= 0 && sink < len(c.Sinks) && c.Sinks[sink] != nil {
		line = c.Sinks[sink].LineOf(key)
	}
	return &Error{File: c.File, Line: line, Key: path, Msg: redact(c.secrets, msg)}
}

// PluginEntryError locates a problem with a plugin as a whole, such as one
// that cannot be started, at its key under `plugins:`. For a plugin not in
// c the line is 0.
func (c *Config) PluginEntryError(plugin, msg string) *Error {
	line := 0
	if p, ok := c.Plugins[plugin]; ok && p != nil {
		line = p.line
	}
	return &Error{File: c.File, Line: line, Key: keyPath("plugins", plugin), Msg: msg}
}

// ConfigJSON returns the cluster's Config map as a JSON object, the form it
// is sent to the plugin in.
func (cl *Cluster) ConfigJSON() ([]byte, error) {
	return configJSON(cl.Config, "cluster "+cl.Name)
}

// ConfigJSON returns the sink's Config map as a JSON object, with info
// under sdk.SinkInfoKey: the form it is sent to the plugin in.
func (sk *Sink) ConfigJSON(info sdk.SinkInfo) ([]byte, error) {
	m := make(map[string]any, len(sk.Config)+1)
	maps.Copy(m, sk.Config)
	m[sdk.SinkInfoKey] = info
	return configJSON(m, "sink "+sk.Name)
}

func configJSON(m map[string]any, what string) ([]byte, error) {
	if m == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding config of %s: %w", what, err)
	}
	return b, nil
}

// LineOf returns the line of a dotted key inside the cluster's config map,
// like "listen" or "brokers.1" (or "brokers[1]") for a list element. When
// the key is not in the file it returns the line of the deepest part of the
// key that is, and when no part is, the line of the `config:` key itself (the
// cluster's own line if it has no config:). It returns 0 for a Cluster not
// made by Load or Parse.
func (cl *Cluster) LineOf(key string) int { return lineOf(cl.config, cl.configLine, key) }

// LineOf is Cluster.LineOf for the sink's config map.
func (sk *Sink) LineOf(key string) int { return lineOf(sk.config, sk.configLine, key) }

func lineOf(n *yaml.Node, line int, key string) int {
	for _, seg := range splitKey(key) {
		n = resolve(n)
		if n == nil {
			break
		}
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if k := resolve(n.Content[i]); k != nil && k.Value == seg {
					line, next = n.Content[i].Line, n.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
				line = next.Line
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return line
}

// splitKey splits "a.b[1].c" into a, b, 1, c.
func splitKey(key string) []string {
	key = strings.NewReplacer("[", ".", "]", "").Replace(key)
	if key == "" {
		return nil
	}
	return strings.Split(key, ".")
}
