package pluginhost_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/pluginhost"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/sdk"
)

// These tests run the producer over the host, as the gateway does: a sync
// produce rides out a brief restart by retrying, and answers at once when
// the plugin's restarts keep failing. The plugin is this test binary (its
// TestMain serves the test backend when the child variable is set).

const childVar = "MQGATE_PLUGINHOST_TEST_CHILD"

func newHostAndProducer(t *testing.T, spec pluginhost.Spec) (*pluginhost.Host, *produce.Producer) {
	t.Helper()
	t.Setenv(childVar, "1")
	h, err := pluginhost.New(pluginhost.Options{
		SelfPath:          os.Args[0],
		HealthInterval:    100 * time.Millisecond,
		HealthTimeout:     5 * time.Second,
		RestartBackoffMax: 200 * time.Millisecond,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	b, err := h.StartBackend(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	p := produce.NewProducer(map[string]sdk.Backend{spec.Name: b}, produce.Options{Logger: slog.New(slog.DiscardHandler)})
	return h, p
}

func sendOne(ctx context.Context, p *produce.Producer, cluster string) error {
	res, err := p.SendRecords(ctx, cluster, []sdk.Record{{Topic: "t", Value: []byte("x")}})
	if err == nil {
		err = res[0].Err
	}
	return err
}

func waitState(t *testing.T, h *pluginhost.Host, want pluginhost.State) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for h.Statuses()[0].State != want {
		if time.Now().After(deadline) {
			t.Fatalf("plugin state %q, want %q", h.Statuses()[0].State, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A plugin that dies and comes back is a brief outage: a produce sent while
// it restarts is retried until the new process takes it.
func TestProduceRidesOutABriefRestart(t *testing.T) {
	h, p := newHostAndProducer(t, pluginhost.Spec{Name: "local", Plugin: "mem", Builtin: "mem", Config: []byte(`{}`)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sendOne(ctx, p, "local"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(h.Statuses()[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitState(t, h, pluginhost.StateRestarting)
	if err := sendOne(ctx, p, "local"); err != nil {
		t.Fatalf("produce during a restart: %v (code %d); want it retried until the plugin is back", err, sdk.CodeOf(err))
	}
}

// A path plugin whose binary was replaced fails its checksum at every
// restart. Produce answers with code 17 naming the plugin and the checksum
// problem before its deadline, not a timeout.
func TestProduceAnswersAtOnceWhenRestartsFail(t *testing.T) {
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "acme")
	script := []byte("#!/bin/sh\nexec " + os.Args[0] + "\n")
	if err := os.WriteFile(wrapper, script, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(script)
	h, p := newHostAndProducer(t, pluginhost.Spec{Name: "local", Plugin: "acme", Path: wrapper, SHA256: hex.EncodeToString(sum[:]), Config: []byte(`{}`)})
	if err := sendOne(context.Background(), p, "local"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrapper, append(script, "# replaced\n"...), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(h.Statuses()[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitState(t, h, pluginhost.StateRestarting)

	// A deadline far beyond a brief restart: retrying until it passes is
	// what must not happen.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := sendOne(ctx, p, "local")
	if ctx.Err() != nil {
		t.Fatalf("produce answered only when its deadline passed: %v", err)
	}
	if sdk.CodeOf(err) != sdk.CodeUnavailable || !errors.Is(err, pluginhost.ErrRestartsFailing) ||
		!strings.Contains(err.Error(), "plugin acme for local") || !strings.Contains(err.Error(), "does not match its sha256") {
		t.Fatalf("produce while restarts fail: %v (code %d); want code 17 naming plugin acme and the sha256 mismatch", err, sdk.CodeOf(err))
	}
	if st := h.Statuses()[0]; st.State != pluginhost.StateRestarting || !strings.Contains(st.LastError, "sha256") {
		t.Fatalf("status %+v; want restarting with the checksum error", st)
	}
}
