package redis

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mqgate/mqgate/core/transform"
	"github.com/mqgate/mqgate/sdk"
)

// The modes of `mode:`, how the plugin finds the Redis it writes to.
const (
	modeStandalone = "standalone"
	modeSentinel   = "sentinel"
	modeCluster    = "cluster"
)

// modes lists the modes in the order errors name them.
var modes = []string{modeStandalone, modeSentinel, modeCluster}

// Defaults of the plugin's config keys.
const (
	defaultDialTimeout  = 5 * time.Second
	defaultReadTimeout  = 3 * time.Second
	defaultWriteTimeout = 3 * time.Second
	// maxCommands bounds `commands:`; every entry runs on every record.
	maxCommands = 64
)

// rawConfig is the plugin's `config:` map as JSON carries it. Durations,
// TLS and the commands are decoded in a second step, so that a bad value
// names its key.
type rawConfig struct {
	Mode             string            `json:"mode"`
	Addrs            []string          `json:"addrs"`
	MasterName       string            `json:"master_name"`
	Username         string            `json:"username"`
	Password         string            `json:"password"`
	SentinelUsername string            `json:"sentinel_username"`
	SentinelPassword string            `json:"sentinel_password"`
	DB               int               `json:"db"`
	TLS              json.RawMessage   `json:"tls"`
	DialTimeout      *string           `json:"dial_timeout"`
	ReadTimeout      *string           `json:"read_timeout"`
	WriteTimeout     *string           `json:"write_timeout"`
	PoolSize         int               `json:"pool_size"`
	Commands         []json.RawMessage `json:"commands"`
	Gateway          sdk.SinkInfo      `json:"mqgate"`
}

// config is the validated plugin config with defaults applied. Password
// and sentinelPassword are secrets: no message or log line carries them.
type config struct {
	mode             string
	addrs            []string
	masterName       string
	username         string
	password         string
	sentinelUsername string
	sentinelPassword string
	db               int
	// tls is nil for plaintext connections.
	tls          *tls.Config
	dialTimeout  time.Duration
	readTimeout  time.Duration
	writeTimeout time.Duration
	// poolSize is connections per node; 0 leaves go-redis's default.
	poolSize int
	commands []*command
	// plan is what the commands' expressions read of a record's JSON
	// value, so that each record's is parsed once, and only that.
	plan *transform.Plan
	info sdk.SinkInfo
}

// parseConfig decodes and checks a config, reporting every problem, each
// naming its key.
func parseConfig(data []byte) (*config, sdk.ConfigErrors) {
	var raw rawConfig
	errs := sdk.ConfigErrorsOf(sdk.DecodeConfig(data, &raw))
	if len(errs) == 1 && errs[0].Key == "" {
		return nil, errs // not a JSON object
	}
	c := &config{
		mode: raw.Mode, masterName: raw.MasterName, username: raw.Username, password: raw.Password,
		sentinelUsername: raw.SentinelUsername, sentinelPassword: raw.SentinelPassword,
		db: raw.DB, poolSize: raw.PoolSize, info: raw.Gateway,
	}
	if c.mode == "" {
		c.mode = modeStandalone
	}
	if !slices.Contains(modes, c.mode) && !errs.Has("mode") {
		errs.Addf("mode", "want one of %s, got %q", strings.Join(modes, ", "), raw.Mode)
	}
	c.addrs = checkAddrs(raw.Addrs, c.mode, &errs)
	checkModeKeys(c, &errs)
	if c.db < 0 && !errs.Has("db") {
		errs.Addf("db", "must be 0 or more, got %d", c.db)
	}
	if c.poolSize < 0 && !errs.Has("pool_size") {
		errs.Addf("pool_size", "must be 0 (the default: ten per CPU) or more, got %d", c.poolSize)
	}
	c.dialTimeout = duration("dial_timeout", raw.DialTimeout, defaultDialTimeout, &errs)
	c.readTimeout = duration("read_timeout", raw.ReadTimeout, defaultReadTimeout, &errs)
	c.writeTimeout = duration("write_timeout", raw.WriteTimeout, defaultWriteTimeout, &errs)
	if raw.TLS != nil {
		cfg, tlsErrs := sdk.ParseClientTLS("tls", raw.TLS)
		errs = append(errs, tlsErrs...)
		c.tls = cfg
	}
	c.commands = parseCommands(raw.Commands, &errs)
	var exprs []*transform.Expr
	for _, cmd := range c.commands {
		exprs = append(exprs, cmd.exprs()...)
	}
	c.plan = transform.PlanOf(exprs...)
	return c, errs
}

// checkAddrs checks `addrs:` for the mode: host:port each, one for a
// standalone server, at least one otherwise.
func checkAddrs(addrs []string, mode string, errs *sdk.ConfigErrors) []string {
	if errs.Has("addrs") {
		return nil
	}
	switch {
	case len(addrs) == 0:
		what := map[string]string{modeStandalone: "the server's host:port", modeSentinel: "the sentinels' host:port",
			modeCluster: "host:port of one or more cluster nodes"}[mode]
		if what == "" {
			what = "host:port"
		}
		errs.Addf("addrs", "required: %s", what)
	case mode == modeStandalone && len(addrs) > 1:
		errs.Addf("addrs", "mode standalone takes one address, got %d; for a Redis Cluster set mode: cluster", len(addrs))
	}
	for i, a := range addrs {
		if err := sdk.CheckHostPort(a, false); err != nil {
			errs.Addf(fmt.Sprintf("addrs[%d]", i), "%v", err)
		}
	}
	return addrs
}

// checkModeKeys reports keys that the mode requires or does not use.
func checkModeKeys(c *config, errs *sdk.ConfigErrors) {
	if c.mode == modeSentinel {
		if c.masterName == "" && !errs.Has("master_name") {
			errs.Addf("master_name", "required with mode sentinel: the name the sentinels monitor the master under")
		}
	} else {
		for _, k := range []struct {
			key string
			set bool
		}{{"master_name", c.masterName != ""}, {"sentinel_username", c.sentinelUsername != ""},
			{"sentinel_password", c.sentinelPassword != ""}} {
			if k.set {
				errs.Addf(k.key, "applies only to mode sentinel, not %s", c.mode)
			}
		}
	}
	if c.mode == modeCluster && c.db != 0 {
		errs.Addf("db", "a Redis Cluster has only database 0, got %d", c.db)
	}
}

// duration parses an optional duration key.
func duration(key string, v *string, def time.Duration, errs *sdk.ConfigErrors) time.Duration {
	if v == nil {
		return def
	}
	d, err := sdk.ConfigDuration(key, *v)
	if err != nil {
		errs.Add(err)
		return def
	}
	return d
}
