package rocketmq

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/mqgate/mqgate/plugins/rocketmq/rmqfake"
	"github.com/mqgate/mqgate/sdk"
	"github.com/mqgate/mqgate/sdk/plugintest"
)

// startFake runs a RocketMQ protocol fake for the test.
func startFake(t *testing.T, opts rmqfake.Options) *rmqfake.Fake {
	t.Helper()
	f, err := rmqfake.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// newBackend returns a backend configured against nameserver; the test
// closes it.
func newBackend(t *testing.T, config string) *Backend {
	t.Helper()
	b := New(slog.New(slog.DiscardHandler))
	if err := b.Configure(context.Background(), []byte(config)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	f := startFake(t, rmqfake.Options{})
	plugintest.RunBackend(t, func(t *testing.T) sdk.Backend {
		b := New(slog.New(slog.DiscardHandler))
		if err := b.Configure(context.Background(), fmt.Appendf(nil, `{"nameservers": [%q]}`, f.Addr())); err != nil {
			t.Fatal(err)
		}
		return b
	}, plugintest.HeadersAsProperties())
}
