package rocketmq

import (
	"strconv"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// Defaults of the plugin's config keys.
const (
	defaultSendTimeout   = 10 * time.Second
	defaultRetries       = 2
	defaultQueues        = 4
	defaultProducerGroup = "mqgate"
	// maxBatchBytes bounds one batch send: RocketMQ brokers refuse
	// messages, batches included, over maxMessageSize (4 MiB by default).
	// A record alone may still be up to that size.
	maxBatchBytes = 4<<20 - 64<<10
	// maxBatchMessages bounds the records of one batch send.
	maxBatchMessages = 512
)

// rawConfig is the plugin's `config:` map as JSON carries it.
type rawConfig struct {
	Nameservers   []string `json:"nameservers"`
	Namespace     string   `json:"namespace"`
	AccessKey     string   `json:"access_key"`
	SecretKey     string   `json:"secret_key"`
	SendTimeout   *string  `json:"send_timeout"`
	Retries       *int     `json:"retries"`
	DefaultQueues *int32   `json:"default_queues"`
	ProducerGroup *string  `json:"producer_group"`
}

// config is the validated plugin config with defaults applied.
type config struct {
	nameservers   []string
	namespace     string
	accessKey     string
	secretKey     string
	sendTimeout   time.Duration
	retries       int
	defaultQueues int32
	producerGroup string
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
		namespace:     raw.Namespace,
		accessKey:     raw.AccessKey,
		secretKey:     raw.SecretKey,
		sendTimeout:   defaultSendTimeout,
		retries:       defaultRetries,
		defaultQueues: defaultQueues,
		producerGroup: defaultProducerGroup,
	}
	if len(raw.Nameservers) == 0 && !errs.Has("nameservers") {
		errs.Addf("nameservers", `required; want a list of "host:port" (RocketMQ name servers)`)
	}
	for i, hp := range raw.Nameservers {
		if err := sdk.CheckHostPort(hp, false); err != nil {
			errs.Addf("nameservers."+strconv.Itoa(i), "%v", err)
		}
	}
	cfg.nameservers = raw.Nameservers
	if (raw.AccessKey == "") != (raw.SecretKey == "") && !errs.Has("access_key") && !errs.Has("secret_key") {
		key := "secret_key"
		if raw.AccessKey == "" {
			key = "access_key"
		}
		errs.Addf(key, "access_key and secret_key go together; set both or neither")
	}
	if raw.SendTimeout != nil {
		d, err := sdk.ConfigDuration("send_timeout", *raw.SendTimeout)
		errs.Add(err)
		cfg.sendTimeout = d
	}
	if raw.Retries != nil {
		if *raw.Retries < 0 {
			errs.Addf("retries", "must be 0 or more, got %d", *raw.Retries)
		}
		cfg.retries = *raw.Retries
	}
	if raw.DefaultQueues != nil {
		if *raw.DefaultQueues < 1 || *raw.DefaultQueues > 1024 {
			errs.Addf("default_queues", "must be 1..1024, got %d", *raw.DefaultQueues)
		}
		cfg.defaultQueues = *raw.DefaultQueues
	}
	if raw.ProducerGroup != nil {
		if *raw.ProducerGroup == "" {
			errs.Addf("producer_group", "must not be empty")
		}
		cfg.producerGroup = *raw.ProducerGroup
	}
	if len(errs) > 0 {
		return config{}, errs
	}
	return cfg, nil
}

// wrap gives a topic or group name its namespace, as RocketMQ clients do
// ("ns%name"); retry and dead-letter prefixes stay in front.
func (cfg config) wrap(name string) string {
	if cfg.namespace == "" {
		return name
	}
	for _, p := range []string{"%RETRY%", "%DLQ%"} {
		if len(name) > len(p) && name[:len(p)] == p {
			return p + cfg.namespace + "%" + name[len(p):]
		}
	}
	return cfg.namespace + "%" + name
}

// unwrap removes the namespace wrap added.
func (cfg config) unwrap(name string) string {
	if cfg.namespace == "" {
		return name
	}
	pfx := cfg.namespace + "%"
	for _, p := range []string{"%RETRY%", "%DLQ%"} {
		if len(name) > len(p)+len(pfx) && name[:len(p)] == p && name[len(p):len(p)+len(pfx)] == pfx {
			return p + name[len(p)+len(pfx):]
		}
	}
	if len(name) > len(pfx) && name[:len(pfx)] == pfx {
		return name[len(pfx):]
	}
	return name
}
