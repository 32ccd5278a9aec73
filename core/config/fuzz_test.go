package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqgate/mqgate/core/topicname"
)

// FuzzParse checks that Parse never panics, that every error it returns
// points into the file and prints as one line, and that every Config it
// returns keeps the promises callers rely on.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a, *a]\nb: *a\n"))
	f.Add([]byte("version: 1\nclusters: &c {x: {plugin: k, config: *c}}\n"))
	f.Add([]byte("version: 1\nplugins: {k: {builtin: kafka}}\nclusters: {c: {plugin: k}}\n" +
		"push: [&p {name: a, topics: &t [x, y], targets: [\"http://h/\"], retry: {backoff: [1s]}}, *p]\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err != nil {
			if c != nil {
				t.Errorf("Parse returned a Config with an error")
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("Parse error %T %v, want non-empty Errors", err, err)
			}
			maxLine := lineBreaks(data) + 1
			for i, e := range errs {
				if e.File != "f.yaml" || e.Msg == "" {
					t.Errorf("error %q: want file f.yaml and a message", e)
				}
				if e.Line < 1 || e.Line > maxLine {
					t.Errorf("error %q: line %d outside 1..%d", e, e.Line, maxLine)
				}
				if strings.ContainsAny(e.String(), "\r\n") {
					t.Errorf("error %q spans more than one line", e)
				}
				if i > 0 && e.Line < errs[i-1].Line {
					t.Errorf("errors not sorted by line")
				}
			}
			return
		}
		checkValid(t, c)
	})
}

// checkValid asserts what a valid Config promises.
func checkValid(t *testing.T, c *Config) {
	t.Helper()
	if c.Version != 1 {
		t.Errorf("Version = %d", c.Version)
	}
	if _, ok := c.Clusters[c.DefaultCluster]; !ok {
		t.Errorf("DefaultCluster %q is not a cluster", c.DefaultCluster)
	}
	for name, cl := range c.Clusters {
		p, ok := c.Plugins[cl.Plugin]
		if !ok || p.Kind != KindBackend {
			t.Errorf("cluster %s: plugin %q missing or not a backend", name, cl.Plugin)
		}
		b, err := cl.ConfigJSON()
		var m map[string]any
		if err != nil || json.Unmarshal(b, &m) != nil {
			t.Errorf("cluster %s: ConfigJSON = %s, %v; want a JSON object", name, b, err)
		}
		if cl.LineOf("x.y") < 1 {
			t.Errorf("cluster %s: LineOf gave no line", name)
		}
	}
	for name, tp := range c.Topics {
		if _, ok := c.Clusters[c.ClusterFor(name)]; !ok || tp.Cluster != c.ClusterFor(name) {
			t.Errorf("topic %s routes to %q, not a cluster", name, c.ClusterFor(name))
		}
		if topicname.Problem(name) != "" {
			t.Errorf("topic %q: invalid name accepted", name)
		}
	}
	for _, p := range c.Plugins {
		if (p.Builtin == "") == (p.Path == "") || (p.Kind != KindBackend && p.Kind != KindSink) {
			t.Errorf("plugin %+v: want one of builtin or path and a kind", p)
		}
	}
	for _, addr := range []string{c.HTTP.Listen, c.Thrift.ProducerListen, c.Thrift.ConsumerListen} {
		if checkHostPort(addr) != nil {
			t.Errorf("listen address %q accepted", addr)
		}
	}
	names := map[string]bool{}
	for i, p := range c.Push {
		if p == nil {
			t.Fatalf("push[%d] is nil", i)
		}
		if entryNameProblem("push", p.Name) != "" || p.Name == "" || names[p.Name] {
			t.Errorf("push[%d]: name %q invalid or repeated", i, p.Name)
		}
		names[p.Name] = true
		if topicname.GroupProblem(p.Group) != "" {
			t.Errorf("push[%d]: group %q accepted", i, p.Group)
		}
		if len(p.Topics) == 0 || len(p.Targets) == 0 {
			t.Errorf("push[%d]: no topics or no targets", i)
		}
		for _, tp := range p.Topics {
			if topicname.Problem(tp) != "" {
				t.Errorf("push[%d]: topic %q accepted", i, tp)
			}
		}
		for _, target := range p.Targets {
			if _, msg := checkTarget(target); msg != "" {
				t.Errorf("push[%d]: target %q accepted: %s", i, target, msg)
			}
		}
		if p.Cluster != "" {
			if _, ok := c.Clusters[p.Cluster]; !ok {
				t.Errorf("push[%d]: cluster %q is not a cluster", i, p.Cluster)
			}
		}
		if p.Delivery < 1 || p.Delivery > 3 || p.Retry.Max <= 0 || len(p.Retry.Backoff) == 0 ||
			p.Concurrency <= 0 || p.Buffer <= 0 || p.Timeout <= 0 || p.ConnectTimeout <= 0 {
			t.Errorf("push[%d]: a setting out of range: %+v", i, p)
		}
		for _, b := range p.Retry.Backoff {
			if b <= 0 {
				t.Errorf("push[%d]: backoff %v accepted", i, b)
			}
		}
		if p.Transform != nil && p.Transform.Body == "" && len(p.Transform.Headers) == 0 {
			t.Errorf("push[%d]: an empty transform accepted", i)
		}
	}
	if c.HTTP.MaxMessageBytes <= 0 || c.HTTP.RequestTimeout <= 0 || c.HTTP.ShutdownTimeout <= 0 ||
		c.PluginHost.HealthInterval <= 0 || c.PluginHost.RestartBackoffMax <= 0 || c.PluginHost.CallTimeout <= 0 {
		t.Errorf("a limit or duration is not positive: %+v %+v", c.HTTP, c.PluginHost)
	}
}

// lineBreaks counts line breaks the way YAML does, including \r alone.
func lineBreaks(data []byte) int {
	return bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) - bytes.Count(data, []byte("\r\n")) +
		bytes.Count(data, []byte("\u0085")) + bytes.Count(data, []byte("\u2028")) + bytes.Count(data, []byte("\u2029"))
}
