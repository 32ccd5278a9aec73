package hbase

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/mqgate/mqgate/internal/hbasefake"
	"github.com/mqgate/mqgate/sdk"
)

// TestDocExample runs the worked example of docs/sink-hbase.md as written
// there: its table creation, its sink config and its events, against the
// fake gateway, and checks the cells the doc says land.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/sink-hbase.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```(yaml|json)\n(.*?)```").FindAllSubmatch(doc, -1)
	var plugins, events []byte
	for _, b := range blocks {
		switch {
		case string(b[1]) == "yaml" && bytes.Contains(b[2], []byte("sinks:")):
			plugins = b[2]
		case string(b[1]) == "json" && events == nil:
			events = b[2]
		}
	}
	schema := regexp.MustCompile(`-d '(\{"name":"users"[^']*)'`).FindSubmatch(doc)
	if plugins == nil || events == nil || schema == nil {
		t.Fatal("the doc's example blocks are not where this test looks for them")
	}

	f, err := hbasefake.Start(hbasefake.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	resp, err := http.Post(f.URL()+"/users/schema", "application/json", bytes.NewReader(schema[1]))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the doc's table creation: %s", resp.Status)
	}

	var y struct {
		Sinks []struct {
			Name   string         `yaml:"name"`
			Plugin string         `yaml:"plugin"`
			Config map[string]any `yaml:"config"`
		} `yaml:"sinks"`
	}
	if err := yaml.Unmarshal(plugins, &y); err != nil {
		t.Fatal(err)
	}
	if len(y.Sinks) != 1 {
		t.Fatalf("the doc's sinks: %+v", y.Sinks)
	}
	entry := y.Sinks[0]
	if entry.Name != "users-to-hbase" || entry.Plugin != "hbase" {
		t.Fatalf("the doc's sink entry: %+v", entry)
	}
	entry.Config["urls"] = []string{f.URL()}
	config, err := json.Marshal(entry.Config)
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(t, config)

	var recs []sdk.Record
	for i, line := range strings.Split(strings.TrimSpace(string(events)), "\n") {
		recs = append(recs, record("user-events", int64(i), []byte(line)))
	}
	for i, err := range write(t, s, recs...) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	u1 := f.Row("users", "u1")
	if string(u1["info:name"]) != "Ann" || string(u1["info:email"]) != "ann@example.com" ||
		string(u1["events:last_seen"]) != strconv.FormatInt(recs[0].Timestamp.UnixMilli(), 10) {
		t.Errorf("u1 = %q; not what the doc says", u1)
	}
	if u2 := f.Row("users", "u2"); string(u2["info:name"]) != "Bo" || u2["info:email"] != nil {
		t.Errorf("u2 = %q; want a name and no email", u2)
	}
}
