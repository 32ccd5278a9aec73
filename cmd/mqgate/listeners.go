package main

import (
	"log/slog"
	"math"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/config"
	httpapi "github.com/mqgate/mqgate/frontends/http"
	"github.com/mqgate/mqgate/internal/connlimit"
)

// connectionLimits are the connection caps of the gateway's three
// listeners, configured or derived from the descriptor limit.
type connectionLimits struct {
	// nofile is the descriptor limit they were sized against; 0 when
	// the system has none to read.
	nofile int
	http   listenerCap
	// thrift applies to the producer's and the consumer's listener each.
	thrift listenerCap
}

type listenerCap struct{ max, perSource int }

// thriftListeners is how many listeners thrift.limits applies to.
const thriftListeners = 2

// resolveConnectionLimits fills in the limits the config leaves out from
// nofile, the process's descriptor limit (0: unknown, the derived defaults
// are the caps), and checks that the listeners' caps together leave
// connlimit.Reserve(nofile) descriptors for the gateway's own use: a flood
// of connections then meets a limit, answered or closed at once, before
// the process runs out of descriptors and /healthz, /readyz and /metrics
// with it.
func resolveConnectionLimits(cfg *config.Config, nofile int) (connectionLimits, error) {
	known := nofile > 0
	if !known {
		nofile = math.MaxInt32
	}
	def := connlimit.DefaultMaxConnections(nofile, 1+thriftListeners)
	pick := func(max, per int) listenerCap {
		if max == 0 {
			max = def
		}
		if per == 0 {
			per = connlimit.DefaultMaxConnectionsPerSource(max)
		}
		return listenerCap{max: max, perSource: per}
	}
	l := connectionLimits{
		http:   pick(cfg.HTTP.Limits.MaxConnections, cfg.HTTP.Limits.MaxConnectionsPerSource),
		thrift: pick(cfg.Thrift.Limits.MaxConnections, cfg.Thrift.Limits.MaxConnectionsPerSource),
	}
	if !known {
		return l, nil
	}
	l.nofile = nofile
	err := connlimit.CheckBudget(nofile,
		[]string{"http.limits.max_connections", "thrift.limits.max_connections (twice: producer and consumer)"},
		[]int{l.http.max, thriftListeners * l.thrift.max})
	return l, err
}

// limitListener bounds the connections of lis, a listener of kind "http"
// or "thrift" named name in metrics, by c. Past a limit, an HTTP
// connection is answered 503 with code 17 naming the limit's key; a
// Thrift connection, whose protocol has no answer without a call, is
// closed. TLS, when configured, wraps the result: the limits count
// connections before their handshake.
func limitListener(lis net.Listener, plaintext bool, kind, name string, c listenerCap, log *slog.Logger, reg prometheus.Registerer) net.Listener {
	opts := connlimit.Options{
		Listener:                name,
		KeyPrefix:               kind + ".limits",
		MaxConnections:          c.max,
		MaxConnectionsPerSource: c.perSource,
		Logger:                  log,
		Registerer:              reg,
	}
	// A refused HTTP connection is told why, in plaintext; over TLS it
	// is only closed: an answer before the handshake would be noise.
	if kind == "http" && plaintext {
		opts.Refuse = func(conn net.Conn, r connlimit.Refusal) error {
			return httpapi.RefuseConnection(conn, r.String()+"; retry later")
		}
	}
	return connlimit.Wrap(lis, opts)
}
