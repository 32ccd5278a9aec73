package hdfs

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2/ocf"

	"github.com/mqgate/mqgate/sdk"
)

// base is a valid config the cases below change.
const base = `"namenodes": ["http://nn1:9870"], "path": "/data/${topic}/${yyyy}${MM}${dd}/${HH}"`

// Every problem of a config is reported at once, each naming its key.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		keys   []string
		says   string // in the first problem's message
	}{
		{"not an object", `[1]`, []string{""}, "JSON object"},
		{"nothing", `{}`, []string{"namenodes", "path"}, "required"},
		{"misspelt key", `{` + base + `, "formt": "avro"}`, []string{"formt"}, "did you mean format?"},
		{"wrong type", `{` + base + `, "max_open_files": "many"}`, []string{"max_open_files"}, "want a int"},
		{"namenodes not a list", `{"namenodes": "http://nn1:9870", "path": "/x"}`, []string{"namenodes"}, "want a []string"},
		{"namenode scheme", `{"namenodes": ["nn1:9870"], "path": "/x"}`, []string{"namenodes.0"}, "http://"},
		{"namenode host", `{"namenodes": ["http:///x"], "path": "/x"}`, []string{"namenodes.0"}, "host"},
		{"namenode query", `{"namenodes": ["http://nn1:9870?op=x"], "path": "/x"}`, []string{"namenodes.0"}, "query"},
		{"relative path", `{"namenodes": ["http://nn1:9870"], "path": "data/x"}`, []string{"path"}, "absolute"},
		{"unknown variable", `{"namenodes": ["http://nn1:9870"], "path": "/data/${day}"}`, []string{"path"}, "${day}"},
		{"unclosed variable", `{"namenodes": ["http://nn1:9870"], "path": "/data/${topic"}`, []string{"path"}, "unclosed"},
		{"dot-dot in path", `{"namenodes": ["http://nn1:9870"], "path": "/data/../${topic}"}`, []string{"path"}, `".."`},
		{"colon in path", `{"namenodes": ["http://nn1:9870"], "path": "/data/a:b"}`, []string{"path"}, ":"},
		{"format", `{` + base + `, "format": "orc"}`, []string{"format"}, "orc"},
		{"codec with text", `{` + base + `, "codec": "snappy"}`, []string{"codec"}, "format avro"},
		{"codec", `{` + base + `, "format": "avro", "codec": "zstd"}`, []string{"codec"}, "deflate"},
		{"time source", `{` + base + `, "time_source": "broker"}`, []string{"time_source"}, "arrival"},
		{"time zone", `{` + base + `, "time_zone": "Nowhere/Town"}`, []string{"time_zone"}, "IANA"},
		{"roll not an object", `{` + base + `, "roll": 5}`, []string{"roll"}, "must be a JSON object"},
		{"roll keys", `{` + base + `, "roll": {"max_bytes": -1, "max_age": "0s", "idle": "x", "size": 1}}`,
			[]string{"roll.size", "roll.max_bytes", "roll.max_age", "roll.idle"}, "unknown key"},
		{"recover_after under twice idle", `{` + base + `, "roll": {"idle": "10m"}, "recover_after": "19m"}`, []string{"recover_after"}, "twice roll.idle"},
		{"user and token", `{` + base + `, "user": "etl", "delegation_token": "t"}`, []string{"delegation_token"}, "not both"},
		{"state_dir", `{` + base + `, "state_dir": "/x/${topic}"}`, []string{"state_dir"}, "without ${...}"},
		{"state_dir dot-dot", `{` + base + `, "state_dir": "/x/../y"}`, []string{"state_dir"}, ".."},
		{"ca_file", `{` + base + `, "ca_file": "/nonexistent/ca.pem"}`, []string{"ca_file"}, "reading"},
		{"request_timeout", `{` + base + `, "request_timeout": "soon"}`, []string{"request_timeout"}, "duration"},
		{"max_open_files", `{` + base + `, "max_open_files": 0}`, []string{"max_open_files"}, "at least 1"},
		{"group", `{` + base + `, "mqgate": {"sink": "s", "group": "a/b", "gateway": "g"}}`, []string{"mqgate.group"}, "directory"},
		{"several at once", `{"namenodes": [], "path": "x", "format": "csv", "roll": {"idle": "-1m"}}`,
			[]string{"namenodes", "path", "format", "roll.idle"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := parseConfig([]byte(tc.config))
			var keys []string
			for _, e := range errs {
				keys = append(keys, e.Key)
			}
			slices.Sort(keys)
			want := slices.Sorted(slices.Values(tc.keys))
			if !slices.Equal(keys, want) {
				t.Fatalf("problems %v (keys %q); want keys %q", errs, keys, want)
			}
			if !strings.Contains(errs[0].Msg, tc.says) {
				t.Fatalf("first problem %q; want it to say %q", errs[0].Msg, tc.says)
			}
			if v := New(nil).ValidateConfig([]byte(tc.config)); len(v) != len(errs) {
				t.Fatalf("ValidateConfig found %v; Configure's check %v", v, errs)
			}
		})
	}
}

// Configure refuses what ValidateConfig cannot know: a path using
// ${group} when the gateway gave none.
func TestConfigureNeedsGroupForGroupPath(t *testing.T) {
	err := New(nil).Configure(context.Background(), []byte(`{"namenodes": ["http://nn1:9870"], "path": "/d/${group}"}`))
	if errs := sdk.ConfigErrorsOf(err); len(errs) != 1 || errs[0].Key != "path" {
		t.Fatalf("Configure = %v; want a problem naming path", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, errs := parseConfig([]byte(`{"namenodes": ["http://nn1:9870/", "https://nn2:9871/webhdfs/v1"], "path": "/data/logs/${topic}/${HH}", "format": "avro"}`))
	if errs != nil {
		t.Fatal(errs)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"namenodes", strings.Join(cfg.namenodes, " "), "http://nn1:9870 https://nn2:9871"},
		{"codec", cfg.codec, ocf.Deflate},
		{"max_bytes", cfg.maxBytes, int64(128 << 20)},
		{"max_age", cfg.maxAge, time.Hour},
		{"idle", cfg.idle, 5 * time.Minute},
		{"recover_after", cfg.recoverAfter, 15 * time.Minute},
		{"request_timeout", cfg.requestTimeout, time.Minute},
		{"max_open_files", cfg.maxOpenFiles, 64},
		{"state_dir", cfg.stateDir, "/data/logs/_mqgate_hdfs"},
		{"time zone", cfg.loc, time.UTC},
		{"arrival", cfg.arrival, false},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v; want %v", c.name, c.got, c.want)
		}
	}
	// A longer idle moves the default recover_after along.
	cfg, _ = parseConfig([]byte(`{"namenodes": ["http://nn1:9870"], "path": "/${topic}", "roll": {"idle": "1h"}}`))
	if cfg.recoverAfter != 2*time.Hour || cfg.stateDir != "/_mqgate_hdfs" {
		t.Errorf("with idle 1h: recover_after %s, state_dir %s; want 2h and /_mqgate_hdfs", cfg.recoverAfter, cfg.stateDir)
	}
}

func TestPathTemplate(t *testing.T) {
	tm := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tc := range []struct {
		src, want, prefix string
	}{
		{"/data/${group}/${topic}/${yyyy}${MM}${dd}/${HH}", "/data/g/orders/20260304/05", "/data"},
		{"/logs/${topic}/${yyyy}-${MM}-${dd}/${HH}/", "/logs/orders/2026-03-04/05", "/logs"},
		{"/x/pre-${topic}-post/${mm}", "/x/pre-orders-post/06", "/x"},
		{"/fixed/dir", "/fixed/dir", "/fixed/dir"},
		{"/${topic}", "/orders", "/"},
		{"//a//${topic}", "/a/orders", "/a"},
		{"/$topic/${topic}", "/$topic/orders", "/$topic"},
	} {
		p, err := parseTemplate(tc.src)
		if err != nil {
			t.Fatalf("parseTemplate(%q): %v", tc.src, err)
		}
		if got := p.expand("g", "orders", tm); got != tc.want {
			t.Errorf("%q expands to %q; want %q", tc.src, got, tc.want)
		}
		if got := p.fixedPrefix(); got != tc.prefix {
			t.Errorf("%q has fixed prefix %q; want %q", tc.src, got, tc.prefix)
		}
	}
}

// FuzzConfig: no input makes parseConfig panic; every problem names a key
// (or the config as a whole, when it is not an object); an accepted config
// is complete.
func FuzzConfig(f *testing.F) {
	for _, s := range []string{
		`{` + base + `}`,
		`{` + base + `, "format": "avro", "codec": "snappy", "roll": {"max_bytes": 10, "max_age": "1m", "idle": "30s"}}`,
		`{` + base + `, "user": "etl", "time_zone": "Asia/Shanghai", "time_source": "arrival", "state_dir": "/s"}`,
		`{"namenodes": ["https://a:1/webhdfs/v1"], "path": "/${group}", "mqgate": {"group": "g"}}`,
		`{"roll": null, "path": "/${x`, `[]`, `null`, `{"namenodes": [1]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, errs := parseConfig(data)
		for _, e := range errs {
			if e.Key == "" && len(errs) > 1 && !strings.HasPrefix(e.Msg, "unknown key") { // a key may be ""
				t.Fatalf("a problem without a key among others: %v", errs)
			}
			if e.Msg == "" {
				t.Fatalf("a problem that says nothing: %+v", e)
			}
		}
		if len(errs) == 0 && (len(cfg.namenodes) == 0 || cfg.path == nil || cfg.loc == nil || cfg.stateDir == "" ||
			cfg.maxBytes < 1 || cfg.idle <= 0 || cfg.maxAge <= 0 || cfg.recoverAfter < 2*cfg.idle || cfg.maxOpenFiles < 1) {
			t.Fatalf("accepted an incomplete config %s: %+v", data, cfg)
		}
	})
}
