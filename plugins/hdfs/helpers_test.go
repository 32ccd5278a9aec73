package hdfs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hamba/avro/v2/ocf"

	"github.com/mqgate/mqgate/internal/syncbuf"
	"github.com/mqgate/mqgate/internal/webhdfsfake"
	"github.com/mqgate/mqgate/sdk"
)

// pluginEnv makes the test binary serve the sink as a plugin process
// (see TestMain), so the suite crosses a real process boundary without
// building anything.
const pluginEnv = "MQGATE_HDFS_TEST_PLUGIN"

func TestMain(m *testing.M) {
	if os.Getenv(pluginEnv) == "1" {
		sdk.ServeSink(New(sdk.Logger()))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// waitLimit turns a hang into a failure; nothing asserts how long a call
// takes.
const waitLimit = 30 * time.Second

// clock is a test's clock, shared by the fake (modification times) and
// the sinks (rolls, arrival times, recovery). It moves only when the test
// moves it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 6, 10, 30, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// startFake starts a fake WebHDFS, stopped when t ends.
func startFake(t testing.TB, opts webhdfsfake.Options) *webhdfsfake.Server {
	t.Helper()
	s, err := webhdfsfake.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// testConfig is a sink config against fake: namenodes and a path under /data,
// with over's keys added or replaced, and the SinkInfo of sink on gateway.
func testConfig(t testing.TB, fake *webhdfsfake.Server, sink, gateway string, over map[string]any) []byte {
	t.Helper()
	c := map[string]any{
		"namenodes":     fake.NamenodeURLs(),
		"path":          "/data/${group}/${topic}/${yyyy}${MM}${dd}/${HH}",
		sdk.SinkInfoKey: sdk.SinkInfo{Sink: sink, Group: "g1", Gateway: gateway},
	}
	maps.Copy(c, over)
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newSink returns a sink configured with cfg whose clock is c and that
// runs no loop: the test sweeps and recovers. It is not closed when t
// ends: a test that abandons it plays a gateway that died.
func newSink(t testing.TB, c *clock, cfg []byte) *Sink {
	t.Helper()
	logs := &syncbuf.Buffer{}
	s := New(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	s.now, s.background = c.Now, false
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sink log:\n%s", logs)
		}
	})
	if err := s.Configure(context.Background(), cfg); err != nil {
		t.Fatalf("Configure(%s): %v", cfg, err)
	}
	return s
}

// write writes rs and fails t on a whole-call error.
func write(t testing.TB, s sdk.Sink, rs []sdk.Record) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	res, err := s.Write(ctx, rs)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if len(res) != len(rs) {
		t.Fatalf("Write of %d records gave %d results", len(rs), len(res))
	}
	return res
}

// writeOK writes rs and fails t unless every record succeeded.
func writeOK(t testing.TB, s sdk.Sink, rs []sdk.Record) {
	t.Helper()
	for i, err := range write(t, s, rs) {
		if err != nil {
			t.Fatalf("record %d: %v (code %d)", i, err, sdk.CodeOf(err))
		}
	}
}

// record is a test record of topic at time ts.
func record(topic string, i int, ts time.Time) sdk.Record {
	return sdk.Record{
		Topic: topic, Qid: "0", Partition: 0, Offset: int64(i),
		Key: []byte(fmt.Sprintf("k-%d", i)), Value: []byte(fmt.Sprintf("value-%d", i)),
		Headers: []sdk.Header{{Key: "trace", Value: []byte(fmt.Sprintf("t-%d", i))}}, Timestamp: ts,
	}
}

// stored is a record as a file holds it.
type stored struct {
	path      string
	topic     string
	qid       string
	offset    int64
	key       []byte // nil when absent
	value     string
	timestamp int64
	headers   map[string]string
}

// readStore reads the records of every file under root, in-progress ones
// included, decoding each by its extension.
func readStore(t testing.TB, fake *webhdfsfake.Server, root string) []stored {
	t.Helper()
	var out []stored
	for _, f := range fake.Files(root) {
		if strings.Contains(f.Path, "/"+stateDirName+"/") {
			continue
		}
		data, err := fake.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, decodeFile(t, f.Path, data)...)
	}
	return out
}

// decodeFile decodes a text or Avro file the sink wrote.
func decodeFile(t testing.TB, p string, data []byte) []stored {
	t.Helper()
	var out []stored
	switch ext := strings.TrimSuffix(p, inProgressSuffix); path.Ext(ext) {
	case ".txt":
		if len(data) > 0 && data[len(data)-1] != '\n' {
			t.Fatalf("%s does not end with a newline: %q", p, data[max(0, len(data)-20):])
		}
		for _, line := range strings.SplitAfter(string(data), "\n") {
			if line != "" {
				out = append(out, stored{path: p, value: strings.TrimSuffix(line, "\n")})
			}
		}
	case ".avro":
		dec, err := ocf.NewDecoder(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s is not an Avro container: %v", p, err)
		}
		for dec.HasNext() {
			var r avroRecord
			if err := dec.Decode(&r); err != nil {
				t.Fatalf("decoding %s: %v", p, err)
			}
			s := stored{path: p, topic: r.Topic, qid: r.Qid, offset: r.Offset, value: string(r.Value), timestamp: r.TimestampMs, headers: map[string]string{}}
			if r.Key != nil {
				s.key = *r.Key
			}
			for k, v := range r.Headers {
				s.headers[k] = string(v)
			}
			out = append(out, s)
		}
		if err := dec.Error(); err != nil {
			t.Fatalf("decoding %s: %v", p, err)
		}
	default:
		t.Fatalf("unexpected file %s", p)
	}
	return out
}

// values lists the values of rs.
func values(rs []stored) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.value
	}
	return out
}

// fileNames lists the base names of the files under root, markers aside.
func fileNames(fake *webhdfsfake.Server, root string) []string {
	var out []string
	for _, f := range fake.Files(root) {
		if !strings.Contains(f.Path, "/"+stateDirName+"/") {
			out = append(out, strings.TrimPrefix(f.Path, root+"/"))
		}
	}
	return out
}

// markers lists the marker files in any state directory.
func markers(fake *webhdfsfake.Server) []string {
	var out []string
	for _, f := range fake.Files("/") {
		if strings.Contains(f.Path, "/"+stateDirName+"/") {
			out = append(out, f.Path)
		}
	}
	return out
}
