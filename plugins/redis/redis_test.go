package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqgate/mqgate/internal/testredis"
	"github.com/mqgate/mqgate/sdk"
	"github.com/mqgate/mqgate/sdk/plugintest"
)

// pluginVar makes the test binary serve the sink as a plugin process.
const pluginVar = "MQGATE_REDIS_SINK_TEST_PLUGIN"

// TestMain serves the sink when started as a plugin process by
// TestConformanceInPluginProcess.
func TestMain(m *testing.M) {
	if os.Getenv(pluginVar) == "1" {
		sdk.ServeSink(New(sdk.Logger()))
		return
	}
	os.Exit(m.Run())
}

// opTimeout bounds one call to the sink or to Redis in a test.
const opTimeout = 30 * time.Second

var testInfo = sdk.SinkInfo{Sink: "orders to redis", Group: "g", Gateway: "host-1"}

// configure returns a configured sink, closed when t ends.
func configure(t *testing.T, config string) *Sink {
	t.Helper()
	s := New(slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.Configure(ctx, plugintest.WithSinkInfo(t, []byte(config), testInfo)); err != nil {
		t.Fatalf("Configure(%s): %v", config, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// standalone is a config for the server at addr with the commands, a
// JSON list.
func standalone(addr, commands string) string {
	return fmt.Sprintf(`{"addrs": [%q], "commands": %s}`, addr, commands)
}

// client returns a go-redis client of the server at addr, to read what the
// sink wrote.
func client(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// write writes records and fails t if the call as a whole fails.
func write(t *testing.T, s sdk.Sink, records ...sdk.Record) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	res, err := s.Write(ctx, records)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if len(res) != len(records) {
		t.Fatalf("Write of %d records gave %d results", len(records), len(res))
	}
	return res
}

// writeOK writes records and fails t unless every one succeeds.
func writeOK(t *testing.T, s sdk.Sink, records ...sdk.Record) {
	t.Helper()
	for i, err := range write(t, s, records...) {
		if err != nil {
			t.Fatalf("record %d: %v (code %d)", i, err, sdk.CodeOf(err))
		}
	}
}

// record is a consumed record of topic "orders", qid "2" with value.
func record(offset int64, value string) sdk.Record {
	return sdk.Record{Topic: "orders", Qid: "2", Offset: offset, Key: []byte(fmt.Sprint("k", offset)),
		Value: []byte(value), Timestamp: time.UnixMilli(1_700_000_000_000 + offset)}
}

// wantCode fails t unless err is an *sdk.Error of code whose message holds
// every one of parts.
func wantCode(t *testing.T, what string, err error, code sdk.Code, parts ...string) {
	t.Helper()
	var e *sdk.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Errorf("%s: %v (code %d); want code %d", what, err, sdk.CodeOf(err), code)
		return
	}
	for _, p := range parts {
		if !strings.Contains(e.Msg, p) {
			t.Errorf("%s: %q does not say %q", what, e.Msg, p)
		}
	}
}

// conformanceCommands store each record's value under a key from its JSON
// id; a value that is not JSON has no id and is refused.
const conformanceCommands = `[{"cmd": "SET", "key": "'conformance:' + string(json.id)", "value": "value"}]`

// sinkCase is the conformance suite's view of the sink writing to addr.
func sinkCase(addr string, newUnconfigured func(t *testing.T) sdk.Sink) plugintest.SinkCase {
	return plugintest.SinkCase{
		Record: func(i, size int) sdk.Record {
			v, _ := json.Marshal(map[string]any{"id": i, "pad": strings.Repeat("x", size)})
			return record(int64(i), string(v))
		},
		Poison: func(i int) sdk.Record { return record(int64(1_000_000+i), "not JSON") },
		Stored: func(t *testing.T, r sdk.Record) bool {
			var v struct{ ID int }
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			got, err := client(t, addr).Get(ctx, fmt.Sprint("conformance:", v.ID)).Result()
			return err == nil && got == string(r.Value)
		},
		BadConfigs: map[string][]byte{
			"mode":            []byte(`{"mode": "ring", "addrs": ["127.0.0.1:1"], "commands": [{"cmd": "DEL", "key": "key"}]}`),
			"addrs":           []byte(`{"commands": [{"cmd": "DEL", "key": "key"}]}`),
			"commands":        []byte(`{"addrs": ["127.0.0.1:1"]}`),
			"commands[0].cmd": []byte(`{"addrs": ["127.0.0.1:1"], "commands": [{"cmd": "GET", "key": "key"}]}`),
			"commands[0].key": []byte(`{"addrs": ["127.0.0.1:1"], "commands": [{"cmd": "DEL", "key": "key +"}]}`),
			"no_such_key":     []byte(`{"addrs": ["127.0.0.1:1"], "no_such_key": 1, "commands": [{"cmd": "DEL", "key": "key"}]}`),
		},
		NewUnconfigured: newUnconfigured,
	}
}

func TestConformance(t *testing.T) {
	addr := testredis.Start(t)
	config := standalone(addr, conformanceCommands)
	plugintest.RunSink(t, func(t *testing.T) sdk.Sink {
		s := New(slog.New(slog.DiscardHandler))
		if err := s.Configure(context.Background(), plugintest.WithSinkInfo(t, []byte(config), testInfo)); err != nil {
			t.Fatal(err)
		}
		return s
	}, sinkCase(addr, func(*testing.T) sdk.Sink { return New(slog.New(slog.DiscardHandler)) }))
	t.Run("ConfigValidation", func(t *testing.T) {
		plugintest.RunConfigValidation(t, func(*testing.T) plugintest.Plugin {
			return New(slog.New(slog.DiscardHandler))
		}, []byte(config), []byte(fmt.Sprintf(`{"mode": "cluster", "addrs": [%q], "commands": %s}`, addr, conformanceCommands)))
	})
}

// The suite again through a real plugin process, as the gateway runs the
// sink: every call crosses gRPC, batches over 4 MiB included.
func TestConformanceInPluginProcess(t *testing.T) {
	addr := testredis.Start(t)
	config := standalone(addr, conformanceCommands)
	start := func(t *testing.T) sdk.Sink {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), pluginVar+"=1")
		return plugintest.StartSinkProcess(t, cmd)
	}
	s := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.Configure(ctx, plugintest.WithSinkInfo(t, []byte(config), testInfo)); err != nil {
		t.Fatal(err)
	}
	if err := sdk.Health(ctx, s); err != nil {
		t.Errorf("Health through the process: %v", err)
	}
	plugintest.RunSink(t, func(*testing.T) sdk.Sink { return s }, sinkCase(addr, start))
	t.Run("ConfigValidation", func(t *testing.T) {
		plugintest.RunConfigValidation(t, func(t *testing.T) plugintest.Plugin { return start(t) }, []byte(config))
	})
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func nopLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
