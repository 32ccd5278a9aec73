package hdfs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/internal/webhdfsfake"
	"github.com/mqgate/mqgate/sdk"
	"github.com/mqgate/mqgate/sdk/plugintest"
)

// formats are the two file formats, as config overrides.
var formats = []struct {
	name string
	over map[string]any
}{
	{"text", map[string]any{"format": "text"}},
	{"avro", map[string]any{"format": "avro", "codec": "snappy"}},
}

// sinkCase is the conformance suite's view of a sink writing to fake.
// Stored reads the fake's files directly, in-progress ones included: a
// record is durable once Write reports it, whether or not its file has
// rolled yet.
func sinkCase(t *testing.T, fake *webhdfsfake.Server, format string, valid []byte, unconfigured func(*testing.T) sdk.Sink) plugintest.SinkCase {
	base := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	return plugintest.SinkCase{
		Record: func(i, size int) sdk.Record {
			r := record("orders", i, base.Add(time.Duration(i)*time.Second))
			r.Value = []byte(fmt.Sprintf("conformance-%d-", i))
			if pad := size - len(r.Value); pad > 0 {
				r.Value = append(r.Value, strings.Repeat("x", pad)...)
			}
			return r
		},
		Poison: func(i int) sdk.Record {
			r := record("orders", 1_000_000+i, base)
			if format == "text" && i%2 == 0 {
				r.Value = []byte("two\nlines") // text cannot hold it
			} else {
				r.Topic = "orders/../etc" // cannot name a directory
			}
			return r
		},
		Stored: func(t *testing.T, r sdk.Record) bool {
			for _, s := range readStore(t, fake, "/data") {
				if s.value == string(r.Value) {
					return true
				}
			}
			return false
		},
		BadConfigs:      badConfigs(t, fake, valid),
		NewUnconfigured: unconfigured,
	}
}

// badConfigs are configs, each refused naming its key.
func badConfigs(t *testing.T, fake *webhdfsfake.Server, valid []byte) map[string][]byte {
	over := func(kv ...any) []byte {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return testConfig(t, fake, "conf", "gw-1", m)
	}
	return map[string][]byte{
		"namenodes":        over("namenodes", []string{}),
		"namenodes.1":      over("namenodes", []string{fake.URL(), "ftp://nn2:21"}),
		"path":             over("path", "data/${topic}"),
		"format":           over("format", "parquet"),
		"codec":            over("format", "avro", "codec", "lz4"),
		"time_source":      over("time_source", "now"),
		"time_zone":        over("time_zone", "Mars/Olympus"),
		"roll.max_bytes":   over("roll", map[string]any{"max_bytes": 0}),
		"roll.idle":        over("roll", map[string]any{"idle": "soon"}),
		"roll.max_agee":    over("roll", map[string]any{"max_agee": "1h"}),
		"recover_after":    over("roll", map[string]any{"idle": "10m"}, "recover_after", "15m"),
		"delegation_token": over("user", "etl", "delegation_token", "tok"),
		"state_dir":        over("state_dir", "relative/dir"),
		"max_open_files":   over("max_open_files", 0),
		"ca_file":          over("ca_file", "/nonexistent/ca.pem"),
		"request_timeout":  over("request_timeout", "-1s"),
	}
}

// The conformance suite, in-process, for each format.
func TestConformance(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			fake := startFake(t, webhdfsfake.Options{})
			valid := testConfig(t, fake, "conf-"+f.name, "gw-1", f.over)
			unconfigured := func(*testing.T) sdk.Sink { return New(nil) }
			plugintest.RunSink(t, func(t *testing.T) sdk.Sink {
				s := New(nil)
				if err := s.Configure(context.Background(), valid); err != nil {
					t.Fatal(err)
				}
				return s
			}, sinkCase(t, fake, f.name, valid, unconfigured))
			t.Run("ConfigValidation", func(t *testing.T) {
				plugintest.RunConfigValidation(t, func(*testing.T) plugintest.Plugin { return New(nil) }, valid)
			})
		})
	}
}

// pluginCommand starts this test binary as the sink's plugin process.
func pluginCommand() *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), pluginEnv+"=1")
	return cmd
}

// The conformance suite through a real plugin process, as the gateway
// runs it: every call crosses gRPC.
func TestPluginProcess(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			fake := startFake(t, webhdfsfake.Options{})
			valid := testConfig(t, fake, "proc-"+f.name, "gw-2", f.over)
			// Registered before the process starts, so it runs after the
			// process was stopped: the plugin closes its sink on its way
			// out (the gateway's end of Close leaves that to the process).
			t.Cleanup(func() {
				names := fileNames(fake, "/data")
				if len(names) == 0 || slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, inProgressSuffix) }) {
					t.Errorf("files after the plugin stopped: %v; want only final names", names)
				}
			})
			s := plugintest.StartSinkProcess(t, pluginCommand())
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			if err := s.Configure(ctx, valid); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			// One process serves every bad config: a refused Configure
			// leaves the plugin unconfigured, and the gateway's end of
			// Close leaves the process running.
			spare := plugintest.StartSinkProcess(t, pluginCommand())
			unconfigured := func(*testing.T) sdk.Sink { return spare }
			plugintest.RunSink(t, func(*testing.T) sdk.Sink { return s }, sinkCase(t, fake, f.name, valid, unconfigured))
			t.Run("ConfigValidation", func(t *testing.T) {
				plugintest.RunConfigValidation(t, func(t *testing.T) plugintest.Plugin {
					return plugintest.StartSinkProcess(t, pluginCommand())
				}, valid)
			})
		})
	}
}
