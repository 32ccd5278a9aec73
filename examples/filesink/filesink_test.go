package filesink_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/examples/filesink"
	"github.com/mqgate/mqgate/sdk"
	"github.com/mqgate/mqgate/sdk/plugintest"
)

// sinkCase is the conformance suite's view of a file sink writing in dir.
func sinkCase(t *testing.T, dir string, newUnconfigured func(t *testing.T) sdk.Sink) plugintest.SinkCase {
	return plugintest.SinkCase{
		Record: func(i, size int) sdk.Record {
			v := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", size))
			return sdk.Record{Topic: "orders", Qid: "0", Offset: int64(i), Key: []byte(fmt.Sprint(i)), Value: []byte(v), Timestamp: time.UnixMilli(1700000000000)}
		},
		Poison: func(i int) sdk.Record {
			return sdk.Record{Topic: "orders", Qid: "1", Offset: int64(i), Value: []byte("not json")}
		},
		Stored: func(t *testing.T, r sdk.Record) bool {
			for _, l := range readLines(t, filesink.Path(dir, r.Topic)) {
				if l.Qid == r.Qid && l.Offset == r.Offset && string(l.Value) == string(r.Value) {
					return true
				}
			}
			return false
		},
		BadConfigs: map[string][]byte{
			"dir":   []byte(`{"value": "json"}`),
			"value": []byte(`{"dir": "/tmp", "value": "xml"}`),
		},
		NewUnconfigured: newUnconfigured,
	}
}

func readLines(t *testing.T, path string) []filesink.Line {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []filesink.Line
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 8<<20)
	for sc.Scan() {
		var l filesink.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

func config(t *testing.T, dir string) []byte {
	return plugintest.WithSinkInfo(t, []byte(fmt.Sprintf(`{"dir": %q, "value": "json"}`, dir)),
		sdk.SinkInfo{Sink: "orders-archive", Group: "archive", Gateway: "test-1"})
}

// The conformance suite, in-process.
func TestConformance(t *testing.T) {
	dir := t.TempDir()
	plugintest.RunSink(t, func(t *testing.T) sdk.Sink {
		s := filesink.New(nil)
		if err := s.Configure(context.Background(), config(t, dir)); err != nil {
			t.Fatal(err)
		}
		return s
	}, sinkCase(t, dir, func(*testing.T) sdk.Sink { return filesink.New(nil) }))
}

// The conformance suite through a real plugin process, started the way the
// gateway starts a third-party plugin, so every call crosses gRPC.
func TestPluginProcess(t *testing.T) {
	bin := plugintest.BuildPlugin(t, "github.com/mqgate/mqgate/examples/filesink/cmd/filesink")
	start := func(t *testing.T) sdk.Sink { return plugintest.StartSinkProcess(t, exec.Command(bin)) }
	t.Run("ConfigValidation", func(t *testing.T) {
		plugintest.RunConfigValidation(t, func(t *testing.T) plugintest.Plugin { return start(t) }, config(t, t.TempDir()))
	})
	dir := t.TempDir()
	s := start(t)
	if err := s.Configure(context.Background(), config(t, dir)); err != nil {
		t.Fatal(err)
	}
	plugintest.RunSink(t, func(*testing.T) sdk.Sink { return s }, sinkCase(t, dir, start))
}

// The point of the example: a sink and its tests build from the SDK
// alone, without the gateway or its bundled plugins.
func TestImportsOnlySDK(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", "github.com/mqgate/mqgate/examples/filesink/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for line := range strings.Lines(string(out)) {
		pkg, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		for _, f := range []string{"core", "plugins", "frontends", "cmd"} {
			if strings.HasPrefix(pkg, "github.com/mqgate/mqgate/"+f+"/") {
				t.Errorf("the example depends on %s", pkg)
			}
		}
	}
}
