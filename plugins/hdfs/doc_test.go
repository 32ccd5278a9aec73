package hdfs

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mqgate/mqgate/internal/webhdfsfake"
	"github.com/mqgate/mqgate/sdk"
)

// docExample returns the sink entry of the worked example in
// docs/sink-hdfs.md: the yaml block after the comment naming this test.
func docExample(t *testing.T) (name, group string, topics []string, config map[string]any) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/sink-hdfs.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "The test TestDocExample")
	if !ok {
		t.Fatal("docs/sink-hdfs.md no longer names TestDocExample above its example")
	}
	_, after, _ = strings.Cut(after, "```yaml\n")
	block, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatal("no yaml block after the comment naming TestDocExample")
	}
	var file struct {
		Sinks []struct {
			Name   string
			Plugin string
			Group  string
			Topics []string
			Config map[string]any
		}
	}
	if err := yaml.Unmarshal([]byte(block), &file); err != nil {
		t.Fatalf("the example is not YAML: %v", err)
	}
	for _, e := range file.Sinks {
		if e.Plugin != "hdfs" {
			t.Fatalf("the example's sink uses plugin %q", e.Plugin)
		}
		return e.Name, e.Group, e.Topics, e.Config
	}
	t.Fatal("the example has no sink")
	return
}

// The worked example of docs/sink-hdfs.md, run as written against the
// fake: only the namenode URL is the fake's.
func TestDocExample(t *testing.T) {
	name, group, topics, cfg := docExample(t)
	c := newClock() // 2026-12-06 10:30 UTC
	fake := startFake(t, webhdfsfake.Options{Now: c.Now, User: "etl"})
	cfg["namenodes"] = fake.NamenodeURLs()
	cfg[sdk.SinkInfoKey] = sdk.SinkInfo{Sink: name, Group: group, Gateway: "gw1-4242"}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if errs := New(nil).ValidateConfig(data); errs != nil {
		t.Fatalf("the example's config: %v", errs)
	}
	s := newSink(t, c, data)

	topic := topics[0]
	h10 := time.Date(2026, 12, 6, 10, 59, 0, 0, time.UTC)
	writeOK(t, s, []sdk.Record{record(topic, 0, h10), record(topic, 1, h10.Add(time.Minute)), record(topic, 2, h10)})
	const dir10, dir11 = "/logs/access-log/2026-12-06/10", "/logs/access-log/2026-12-06/11"
	if got := inProgress(fake, "/logs/access-log"); len(got) != 2 || !strings.HasPrefix(got[0], dir10+"/_part-access-log-hdfs-gw1-4242-20261206103000-") {
		t.Fatalf("in-progress files %v; want one in each hour's directory", got)
	}
	if m := markers(fake); len(m) != 2 || !strings.HasPrefix(m[0], "/logs/_mqgate_hdfs/access-log-hdfs/_part-") {
		t.Fatalf("markers %v", m)
	}
	c.Advance(10 * time.Minute) // roll.max_age
	s.sweep(t.Context())
	for dir, want := range map[string][]string{dir10: {"value-0", "value-2"}, dir11: {"value-1"}} {
		names := fileNames(fake, dir)
		if len(names) != 1 || !strings.HasPrefix(names[0], "part-") || !strings.HasSuffix(names[0], ".avro") {
			t.Fatalf("%s holds %v; want one final Avro file", dir, names)
		}
		got := readStore(t, fake, dir)
		if !slices.Equal(values(got), want) || got[0].topic != topic || got[0].timestamp == 0 {
			t.Fatalf("%s holds %+v; want values %q", dir, got, want)
		}
	}
}
