package hbase

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mqgate/mqgate/internal/hbasefake"
	"github.com/mqgate/mqgate/sdk"
	"github.com/mqgate/mqgate/sdk/plugintest"
)

// conformanceConfig maps a record's JSON id to the row and its whole
// value to info:v of table "users".
func conformanceConfig(url, encoding string) []byte {
	return fmt.Appendf(nil, `{"urls": [%q], "encoding": %q, "table": "'users'", "row": "json.id",
		"columns": {"info:v": "value"}}`, url, encoding)
}

// sinkCase is the conformance suite's view of the sink against f.
func sinkCase(f *hbasefake.Server, newUnconfigured func(t *testing.T) sdk.Sink) plugintest.SinkCase {
	return plugintest.SinkCase{
		Record: func(i, size int) sdk.Record {
			pad := strings.Repeat("x", max(0, size))
			return sdk.Record{Topic: "conformance", Qid: "0", Offset: int64(i),
				Value: fmt.Appendf(nil, `{"id": "rec-%d", "pad": %q}`, i, pad)}
		},
		Poison: func(i int) sdk.Record {
			return sdk.Record{Topic: "conformance", Qid: "0", Offset: int64(1000000 + i), Value: []byte("not JSON, so no row key")}
		},
		Stored: func(t *testing.T, r sdk.Record) bool {
			id := strings.SplitN(string(r.Value), `"`, 5)[3] // {"id": "rec-N", ...}
			return bytes.Equal(f.Row("users", id)["info:v"], r.Value)
		},
		BadConfigs: map[string][]byte{
			"urls.0":                  []byte(`{"urls": ["ftp://x"], "table": "'t'", "row": "key", "columns": {"f:a": "value"}}`),
			"encoding":                []byte(`{"urls": ["http://x"], "encoding": "avro", "table": "'t'", "row": "key", "columns": {"f:a": "value"}}`),
			"row":                     []byte(`{"urls": ["http://x"], "table": "'t'", "columns": {"f:a": "value"}}`),
			"columns.f":               []byte(`{"urls": ["http://x"], "table": "'t'", "row": "key", "columns": {"f": "value"}}`),
			"check":                   []byte(`{"urls": ["http://x"], "table": "'t'", "row": "key", "op": "check_and_put", "columns": {"f:a": "value"}}`),
			"max_concurrent_requests": []byte(`{"urls": ["http://x"], "table": "'t'", "row": "key", "columns": {"f:a": "value"}, "max_concurrent_requests": 0}`),
		},
		NewUnconfigured: newUnconfigured,
	}
}

func TestConformance(t *testing.T) {
	for _, enc := range []string{"protobuf", "json"} {
		t.Run(enc, func(t *testing.T) {
			f := startFake(t, hbasefake.Config{})
			plugintest.RunSink(t, func(t *testing.T) sdk.Sink {
				return newSink(t, plugintest.WithSinkInfo(t, conformanceConfig(f.URL(), enc),
					sdk.SinkInfo{Sink: "users", Group: "g", Gateway: "test-1"}))
			}, sinkCase(f, func(*testing.T) sdk.Sink { return New(nil) }))
		})
	}
}

func TestConfigValidation(t *testing.T) {
	plugintest.RunConfigValidation(t, func(*testing.T) plugintest.Plugin { return New(nil) },
		conformanceConfig("http://127.0.0.1:1", "protobuf"),
		userConfig([]string{"https://a:1", "http://b:2"}, "encoding", "json", "op", "json.op", "delete_columns", []string{"info"},
			"check", map[string]string{"column": "info:name", "value": "nil"}, "timestamp", "timestamp_ms",
			"tls", map[string]any{"insecure_skip_verify": true}, "username", "u", "password", "p"))
}

// The same suites through a real plugin process: this test binary,
// started the way the gateway starts a plugin (see TestMain).
func TestPluginProcess(t *testing.T) {
	start := func(t *testing.T) sdk.Sink {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		return plugintest.StartSinkProcess(t, exec.Command(exe))
	}
	t.Run("ConfigValidation", func(t *testing.T) {
		plugintest.RunConfigValidation(t, func(t *testing.T) plugintest.Plugin { return start(t) },
			conformanceConfig("http://127.0.0.1:1", "json"))
	})
	f := startFake(t, hbasefake.Config{})
	s := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var ce *sdk.ConfigError
	if err := s.Configure(ctx, []byte(`{"url": ["http://x"]}`)); !errorsAs(err, &ce) {
		t.Fatalf("Configure with a misspelt key through the process: %v; want a *sdk.ConfigError", err)
	}
	if err := s.Configure(ctx, plugintest.WithSinkInfo(t, conformanceConfig(f.URL(), "protobuf"),
		sdk.SinkInfo{Sink: "users", Group: "g", Gateway: "test-1"})); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	plugintest.RunSink(t, func(*testing.T) sdk.Sink { return s }, sinkCase(f, start))
}
