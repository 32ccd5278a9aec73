// Package redis is mqgate's Redis sink: it writes consumed records into
// Redis (a standalone server, a master found through Sentinel, or a Redis
// Cluster) as the commands its config maps each record to. Keys and values
// are expressions over the record (core/transform), evaluated once per
// record; each Write sends all its records' commands as one pipeline per
// node and maps every reply back to its record. docs/sink-redis.md
// documents the config.
package redis

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/mqgate/mqgate/core/transform"
	"github.com/mqgate/mqgate/sdk"
)

// Sink writes records into Redis. It is safe for concurrent use.
type Sink struct {
	log *slog.Logger
	// mu guards client and cfg, which Configure replaces.
	mu     sync.RWMutex
	client redis.UniversalClient
	cfg    *config
	// batches holds the scratch memory of Writes (*batch).
	batches sync.Pool
}

var (
	_ sdk.Sink            = (*Sink)(nil)
	_ sdk.ConfigValidator = (*Sink)(nil)
	_ sdk.HealthChecker   = (*Sink)(nil)
)

// New returns a Sink to be configured.
func New(logger *slog.Logger) *Sink {
	routeGoRedisLog(logger)
	return &Sink{log: logger, batches: sync.Pool{New: func() any { return &batch{} }}}
}

// ValidateConfig returns every problem of config; it connects to nothing.
func (s *Sink) ValidateConfig(config []byte) sdk.ConfigErrors {
	_, errs := parseConfig(config)
	return errs
}

// Configure applies config. It does not wait for Redis: a Redis that is
// down makes Write fail with code 17 and Health report it until it is up.
func (s *Sink) Configure(_ context.Context, config []byte) error {
	c, errs := parseConfig(config)
	if len(errs) > 0 {
		return errs
	}
	if c.tls != nil && c.tls.InsecureSkipVerify {
		s.log.Warn("tls.insecure_skip_verify is set: the Redis server's certificate is not checked, so anyone on the path can pose as it")
	}
	client := newClient(c)
	s.mu.Lock()
	old := s.client
	s.client, s.cfg = client, c
	s.mu.Unlock()
	if old != nil {
		if err := old.Close(); err != nil {
			s.log.Warn("closing the client of the previous config", "error", err)
		}
	}
	s.log.Info("redis sink configured", "mode", c.mode, "addrs", c.addrs, "commands", len(c.commands))
	return nil
}

// newClient makes the go-redis client of c's mode.
func newClient(c *config) redis.UniversalClient {
	name := clientName(c.info)
	switch c.mode {
	case modeCluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: c.addrs, ClientName: name, Username: c.username, Password: c.password,
			TLSConfig: c.tls, DialTimeout: c.dialTimeout, ReadTimeout: c.readTimeout,
			WriteTimeout: c.writeTimeout, PoolSize: c.poolSize, ContextTimeoutEnabled: true,
		})
	case modeSentinel:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: c.masterName, SentinelAddrs: c.addrs, ClientName: name,
			SentinelUsername: c.sentinelUsername, SentinelPassword: c.sentinelPassword,
			Username: c.username, Password: c.password, DB: c.db,
			TLSConfig: c.tls, DialTimeout: c.dialTimeout, ReadTimeout: c.readTimeout,
			WriteTimeout: c.writeTimeout, PoolSize: c.poolSize, ContextTimeoutEnabled: true,
		})
	}
	return redis.NewClient(&redis.Options{
		Addr: c.addrs[0], ClientName: name, Username: c.username, Password: c.password, DB: c.db,
		TLSConfig: c.tls, DialTimeout: c.dialTimeout, ReadTimeout: c.readTimeout,
		WriteTimeout: c.writeTimeout, PoolSize: c.poolSize, ContextTimeoutEnabled: true,
	})
}

// clientName is the name the plugin's connections give themselves (CLIENT
// LIST shows it): mqgate and the sink's name, with what a client name may
// not hold replaced.
func clientName(info sdk.SinkInfo) string {
	if info.Sink == "" {
		return "mqgate"
	}
	return "mqgate:" + strings.Map(func(r rune) rune {
		if r > ' ' && r < 0x7f {
			return r
		}
		return '_'
	}, info.Sink)
}

// Write maps every record to its commands and sends them all as one
// pipeline (per node, in a Cluster), in record order. A record's result is
// its mapping's error, else the error of its first command that failed,
// else nil. A record whose mapping fails sends none of its commands.
func (s *Sink) Write(ctx context.Context, records []sdk.Record) ([]error, error) {
	s.mu.RLock()
	client, cfg := s.client, s.cfg
	s.mu.RUnlock()
	if client == nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "the redis sink got records before its config")
	}
	results := make([]error, len(records))
	if len(records) == 0 {
		return results, nil
	}
	b := s.batches.Get().(*batch)
	defer func() {
		b.reset()
		s.batches.Put(b)
	}()
	b.env.SetPlan(cfg.plan)
	for i := range records {
		if err := b.mapRecord(ctx, cfg.commands, &records[i], i); err != nil {
			results[i] = recordError(&records[i], err)
		}
	}
	if len(b.cmds) == 0 {
		return results, nil
	}
	pipe := client.Pipeline()
	if err := pipe.BatchProcess(ctx, b.cmds...); err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "queueing %d commands: %v", len(b.cmds), err)
	}
	_, execErr := pipe.Exec(ctx)
	// Each command holds its own error, except when a new connection's
	// login or database selection fails: go-redis (v9.23) then returns the
	// reply error from Exec without setting it on the commands, which
	// never ran. An Exec error no command holds is that.
	unsent := execErr != nil && !slices.ContainsFunc(b.cmds, func(c redis.Cmder) bool { return errors.Is(c.Err(), execErr) })
	for j, cmd := range b.cmds {
		i := b.owners[j]
		if results[i] != nil {
			continue // an earlier command of the record failed
		}
		err := cmd.Err()
		if err == nil && unsent {
			err = execErr
		}
		if err != nil && !errors.Is(err, redis.Nil) { // nil: SET NX found the key
			results[i] = commandError(&records[i], b.from[j], err)
		}
	}
	return results, nil
}

// mapRecord appends the commands of record r, the i-th of the batch, or
// none and the error of the first command that could not be mapped.
func (b *batch) mapRecord(ctx context.Context, cmds []*command, r *sdk.Record, i int) error {
	b.in = transform.Input{Topic: r.Topic, Qid: r.Qid, Offset: r.Offset, Key: r.Key, Value: r.Value,
		Tags: r.Tags, Headers: r.Headers, Timestamp: r.Timestamp}
	b.env.Reset(&b.in)
	for _, c := range cmds {
		if err := c.build(&b.env, b); err != nil {
			b.rollback()
			return err
		}
	}
	b.commit(ctx, i)
	return nil
}

// Health reports whether Redis answers PING: the server, the master
// Sentinel names, or every master of a Cluster.
func (s *Sink) Health(ctx context.Context) error {
	s.mu.RLock()
	client, cfg := s.client, s.cfg
	s.mu.RUnlock()
	if client == nil {
		return nil
	}
	var err error
	if cc, ok := client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			if err := c.Ping(ctx).Err(); err != nil {
				return errors.New(c.Options().Addr + ": " + err.Error())
			}
			return nil
		})
	} else {
		err = client.Ping(ctx).Err()
	}
	if err != nil {
		return sdk.Errorf(sdk.CodeUnavailable, "redis (%s %s) does not answer PING: %v", cfg.mode, strings.Join(cfg.addrs, ","), err)
	}
	return nil
}

// Close closes the connections to Redis.
func (s *Sink) Close() error {
	s.mu.Lock()
	client := s.client
	s.client = nil
	s.mu.Unlock()
	if client == nil {
		return nil
	}
	return client.Close()
}
