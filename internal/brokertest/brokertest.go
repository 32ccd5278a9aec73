// Package brokertest starts each bundled backend in process, on a real
// protocol peer, for integration tests of core features: the Kafka plugin
// with its embedded broker, and the RocketMQ plugin on the RocketMQ
// protocol fake. Tests run over Kinds so that every feature is tested on
// every backend from one table.
package brokertest

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/mqgate/mqgate/plugins/kafka"
	"github.com/mqgate/mqgate/plugins/rocketmq"
	"github.com/mqgate/mqgate/plugins/rocketmq/rmqfake"
	"github.com/mqgate/mqgate/sdk"
)

// Kind is one backend.
type Kind struct {
	Name string
	// Start returns a configured backend the test closes at its end.
	Start func(t testing.TB) sdk.Backend
}

// Kinds are the bundled backends.
var Kinds = []Kind{
	{"kafka", startKafka},
	{"rocketmq", startRocketMQ},
}

// Run runs test once per backend, as subtests.
func Run(t *testing.T, test func(t *testing.T, b sdk.Backend)) {
	for _, k := range Kinds {
		t.Run(k.Name, func(t *testing.T) { test(t, k.Start(t)) })
	}
}

func startKafka(t testing.TB) sdk.Backend {
	t.Helper()
	b := kafka.New(slog.New(slog.DiscardHandler))
	cfg := fmt.Sprintf(`{"brokers":"embedded","listen":"127.0.0.1:0","data_dir":%q}`, filepath.Join(t.TempDir(), "data"))
	if err := b.Configure(context.Background(), []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func startRocketMQ(t testing.TB) sdk.Backend {
	t.Helper()
	f, err := rmqfake.Start(rmqfake.Options{AutoCreateTopics: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	b := rocketmq.New(slog.New(slog.DiscardHandler))
	if err := b.Configure(context.Background(), fmt.Appendf(nil, `{"nameservers":[%q]}`, f.Addr())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
