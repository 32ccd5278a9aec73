package kafka

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// Defaults of the plugin's config keys.
const (
	defaultListen           = "127.0.0.1:9092"
	defaultDataDir          = "./data/kafka"
	defaultPartitions       = 4
	defaultRetention        = 7 * 24 * time.Hour
	defaultProduceTimeout   = 30 * time.Second
	embeddedBrokers         = "embedded"
	embeddedMaxMessageBytes = 16 << 20
	// kafkaMaxMessageBytes is Kafka's default message.max.bytes, the
	// producer's batch limit against external brokers.
	kafkaMaxMessageBytes     = 1000012
	maxRetentionTickInterval = 5 * time.Minute
	// defaultGroupHeartbeat is franz-go's; embeddedGroupHeartbeat the
	// default with the embedded broker (see config.groupHeartbeat), and
	// also the most allowed: a third of franz-go's 45 s session timeout.
	defaultGroupHeartbeat  = 3 * time.Second
	embeddedGroupHeartbeat = 15 * time.Second
	maxGroupHeartbeat      = 15 * time.Second
	// consumerFetchWait is how long a consumer's fetch waits at the broker
	// for records: franz-go's default, with every broker. A record ends
	// the wait at once only in a partition the fetch names, and franz-go
	// has one fetch in flight per broker: a partition that becomes
	// fetchable meanwhile (its start offset listed after the others', or
	// added by a rebalance) waits for that fetch to end. So this bounds
	// how late the first records of a newly assigned partition can come.
	// A minute here once saved idle CPU (0.2 ms/s for the delay service's
	// 36 tier groups) and held a new partition's records for up to a
	// minute.
	consumerFetchWait = 5 * time.Second
)

// rawConfig is the plugin's `config:` map as JSON carries it. Durations and
// brokers are decoded in a second step so that a bad value names its key.
type rawConfig struct {
	Brokers           json.RawMessage `json:"brokers"`
	Listen            *string         `json:"listen"`
	DataDir           *string         `json:"data_dir"`
	DefaultPartitions *int32          `json:"default_partitions"`
	Retention         *string         `json:"retention"`
	ClientID          string          `json:"client_id"`
	ProduceTimeout    *string         `json:"produce_timeout"`
	GroupHeartbeat    *string         `json:"group_heartbeat"`
	MaxTopics         *int            `json:"max_topics"`
	TLS               json.RawMessage `json:"tls"`
	SASL              json.RawMessage `json:"sasl"`
}

// config is the validated plugin config with defaults applied.
type config struct {
	// embedded runs an in-process kfake broker; brokers is then empty.
	embedded bool
	brokers  []string
	// listen, dataDir and retention apply to the embedded broker only.
	listen            string
	dataDir           string
	retention         time.Duration
	defaultPartitions int32
	clientID          string
	produceTimeout    time.Duration
	// groupHeartbeat is how often a consumer group member heartbeats. A
	// rebalance waits for each member's next heartbeat, so it bounds how
	// long joining a group with other members takes. Against the embedded
	// broker it is longer by default: the delay service keeps 36 tier
	// groups joined, each heartbeating for nothing on a broker only this
	// gateway uses, and that was most of an idle plugin's CPU.
	groupHeartbeat time.Duration
	// maxTopics bounds the embedded broker's topics: past it, no topic is
	// created (see Backend.admitTopics). 0 means the default, derived at
	// Configure from the process's descriptor limit (defaultMaxTopics).
	maxTopics int
	// creds are the TLS and SASL settings of an external cluster, applied
	// to every client the backend makes.
	creds credentials
}

// parseConfig decodes and validates the plugin's JSON config, without
// connecting to anything. It reports every problem at once, each a
// *sdk.ConfigError naming the offending key; the config is valid only when
// there is none.
func parseConfig(data []byte) (config, sdk.ConfigErrors) {
	var raw rawConfig
	var errs sdk.ConfigErrors
	errs.Add(sdk.DecodeConfig(data, &raw))
	if len(errs) == 1 && errs[0].Key == "" {
		return config{}, errs // not a JSON object: there are no keys to check
	}

	cfg := config{
		listen:            defaultListen,
		dataDir:           defaultDataDir,
		retention:         defaultRetention,
		defaultPartitions: defaultPartitions,
		clientID:          raw.ClientID,
		produceTimeout:    defaultProduceTimeout,
		groupHeartbeat:    defaultGroupHeartbeat,
	}
	errs.Add(cfg.parseBrokers(raw.Brokers))
	if cfg.embedded {
		cfg.groupHeartbeat = embeddedGroupHeartbeat
	}
	// embeddedOnly reports key when the brokers are external. When brokers
	// is not even a list it is not known which they are, so the key's value
	// is checked as for an embedded broker.
	embeddedOnly := func(key string) bool {
		if len(cfg.brokers) > 0 {
			errs.Addf(key, "applies only with brokers: embedded")
			return true
		}
		return false
	}
	if raw.Listen != nil && !embeddedOnly("listen") {
		if err := sdk.CheckHostPort(*raw.Listen, true); err != nil {
			errs.Addf("listen", "%v", err)
		} else {
			cfg.listen = *raw.Listen
		}
	}
	if raw.DataDir != nil && !embeddedOnly("data_dir") {
		if *raw.DataDir == "" {
			errs.Addf("data_dir", "must not be empty")
		} else {
			cfg.dataDir = *raw.DataDir
		}
	}
	// An external cluster keeps its own retention settings; mqgate does not
	// rewrite them behind the operator's back.
	if raw.Retention != nil && !embeddedOnly("retention") {
		d, err := sdk.ConfigDuration("retention", *raw.Retention)
		errs.Add(err)
		cfg.retention = d
	}
	if raw.ProduceTimeout != nil {
		d, err := sdk.ConfigDuration("produce_timeout", *raw.ProduceTimeout)
		errs.Add(err)
		cfg.produceTimeout = d
	}
	if raw.GroupHeartbeat != nil {
		d, err := sdk.ConfigDuration("group_heartbeat", *raw.GroupHeartbeat)
		switch {
		case err != nil:
			errs.Add(err)
		case d > maxGroupHeartbeat:
			errs.Addf("group_heartbeat", "must be at most %s (a third of the group session timeout), got %s", maxGroupHeartbeat, d)
		default:
			cfg.groupHeartbeat = d
		}
	}
	if raw.MaxTopics != nil && !embeddedOnly("max_topics") {
		if *raw.MaxTopics < 1 {
			errs.Addf("max_topics", "must be at least 1, got %d", *raw.MaxTopics)
		} else {
			cfg.maxTopics = *raw.MaxTopics
		}
	}
	// The embedded broker listens in plaintext without SASL; its
	// clients need neither.
	if present(raw.TLS) && !externalOnly("tls", &errs, cfg) {
		c, tlsErrs := sdk.ParseClientTLS("tls", raw.TLS)
		errs = append(errs, tlsErrs...)
		cfg.creds.tls = c
	}
	if present(raw.SASL) && !externalOnly("sasl", &errs, cfg) {
		c, saslErrs := parseSASL(raw.SASL)
		errs = append(errs, saslErrs...)
		c.tls = cfg.creds.tls
		cfg.creds = c
	}
	if raw.DefaultPartitions != nil {
		if *raw.DefaultPartitions < 1 {
			errs.Addf("default_partitions", "must be at least 1, got %d", *raw.DefaultPartitions)
		} else {
			cfg.defaultPartitions = *raw.DefaultPartitions
		}
	}
	if len(errs) > 0 {
		return config{}, errs
	}
	return cfg, nil
}

// present reports whether a block was given a value other than null.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// externalOnly reports key, a block that applies only to external
// brokers, when the brokers are embedded, and then returns true.
func externalOnly(key string, errs *sdk.ConfigErrors, cfg config) bool {
	if cfg.embedded {
		errs.Addf(key, "applies only to external brokers, not brokers: embedded")
		return true
	}
	return false
}

// parseBrokers accepts "embedded" or a non-empty list of host:port. Every
// element that is not a host:port is a problem of its own; cfg.brokers is
// set for any non-empty list, so that the keys for an embedded broker are
// known not to apply.
func (cfg *config) parseBrokers(raw json.RawMessage) error {
	const want = `want "embedded" or a list of "host:port"`
	if len(raw) == 0 || string(raw) == "null" {
		return &sdk.ConfigError{Key: "brokers", Msg: "required; " + want}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s != embeddedBrokers {
			return &sdk.ConfigError{Key: "brokers", Msg: fmt.Sprintf("%s, got %q", want, s)}
		}
		cfg.embedded = true
		return nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return &sdk.ConfigError{Key: "brokers", Msg: want}
	}
	if len(list) == 0 {
		return &sdk.ConfigError{Key: "brokers", Msg: "empty list; " + want}
	}
	var errs sdk.ConfigErrors
	for i, hp := range list {
		if err := sdk.CheckHostPort(hp, false); err != nil {
			errs.Addf("brokers."+strconv.Itoa(i), "%v", err)
		}
	}
	cfg.brokers = list
	return errs.Err()
}

// retentionTick is how often the embedded broker applies retention:
// a tenth of the retention, at most five minutes, at least a second.
func retentionTick(retention time.Duration) time.Duration {
	return max(min(retention/10, maxRetentionTickInterval), time.Second)
}

// maxBatchBytes is the producer's batch limit and so the largest record it
// sends: the embedded broker's message.max.bytes, or Kafka's default for an
// external cluster.
func (cfg config) maxBatchBytes() int32 {
	if cfg.embedded {
		return embeddedMaxMessageBytes
	}
	return kafkaMaxMessageBytes
}
