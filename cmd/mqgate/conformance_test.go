package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/pluginhost"
	"github.com/mqgate/mqgate/internal/syncbuf"
	"github.com/mqgate/mqgate/plugins/rocketmq/rmqfake"
	"github.com/mqgate/mqgate/sdk"
	"github.com/mqgate/mqgate/sdk/plugintest"
)

// The conformance suite against the Kafka plugin as the gateway runs it: a
// separate `mqgate plugin kafka` process behind the plugin host, so every
// record crosses gRPC and the process boundary.
func TestKafkaPluginProcessConformance(t *testing.T) {
	cfg := kafkaConformanceConfig(t)
	host := startHost(t)
	b, err := host.StartBackend(context.Background(), pluginhost.Spec{Name: "local", Plugin: "kafka", Builtin: "kafka", Config: []byte(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	plugintest.RunBackend(t, func(*testing.T) sdk.Backend { return b })
}

// The same suite against the Kafka plugin in the gateway's process
// (in_process: true): calls go through the plugin host's handles straight
// to the backend, without gRPC.
func TestKafkaPluginInProcessConformance(t *testing.T) {
	cfg := kafkaConformanceConfig(t)
	host := startHost(t)
	p := &config.Plugin{Name: "kafka", Builtin: "kafka", InProcess: true}
	b, err := host.StartBackend(context.Background(), pluginSpec(p, "local", []byte(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	if st := host.Statuses(); len(st) != 1 || !st[0].InProcess {
		t.Fatalf("Statuses = %+v, want the backend in process", st)
	}
	plugintest.RunBackend(t, func(*testing.T) sdk.Backend { return b })
}

// kafkaConformanceConfig is the Kafka plugin's config for a conformance
// run: an embedded broker whose data lives in a temporary directory. Call it
// before startHost: cleanups run last first, so the directory is removed
// after the host has stopped the broker, which writes its snapshots as it
// stops. The other way round, the broker wrote them into the removed
// directory, and left it behind in $TMPDIR on every run.
func kafkaConformanceConfig(t *testing.T) string {
	return fmt.Sprintf(`{"brokers":"embedded","listen":%q,"data_dir":%q}`, anyPort, filepath.Join(t.TempDir(), "data"))
}

// The same suite against the RocketMQ plugin as the gateway runs it, on the
// RocketMQ protocol fake.
func TestRocketMQPluginProcessConformance(t *testing.T) {
	host := startHost(t)
	broker := startRocketMQ(t, rmqfake.Options{})
	cfg := fmt.Sprintf(`{"nameservers":[%q]}`, broker.addr)
	b, err := host.StartBackend(context.Background(), pluginhost.Spec{Name: "rmq", Plugin: "rocketmq", Builtin: "rocketmq", Config: []byte(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	plugintest.RunBackend(t, func(*testing.T) sdk.Backend { return b }, plugintest.HeadersAsProperties())
}

// startHost starts a plugin host for t whose log, the plugin's included,
// is printed when t fails: a consumer that never got its records says
// why there (a rebalance, a metadata refresh, a fetch error).
func startHost(t *testing.T) *pluginhost.Host {
	t.Helper()
	var log syncbuf.Buffer
	host, err := pluginhost.New(pluginhost.Options{SelfPath: mqgateBin, Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = host.Close()
		if t.Failed() {
			t.Logf("plugin host log:\n%s", log.String())
		}
	})
	return host
}
