package redis

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mqgate/mqgate/internal/testredis"
	"github.com/mqgate/mqgate/sdk"
)

// TestDocExample runs the worked example of docs/sink-redis.md as written
// there: its sink config and its order, then its variant that deletes
// cancelled orders, against a redis-server, and checks what the doc says
// Redis holds.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/sink-redis.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```(yaml|json)\n(.*?)```").FindAllSubmatch(doc, -1)
	var plugins, variant, order []byte
	for _, b := range blocks {
		switch {
		case string(b[1]) == "yaml" && strings.Contains(string(b[2]), "sinks:") && plugins == nil:
			plugins = b[2]
		case string(b[1]) == "yaml" && strings.HasPrefix(string(b[2]), "      commands:") && variant == nil:
			variant = b[2]
		case string(b[1]) == "json" && order == nil:
			order = b[2]
		}
	}
	if plugins == nil || variant == nil || order == nil {
		t.Fatal("the doc's example blocks are not where this test looks for them")
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
	if len(y.Sinks) != 1 || y.Sinks[0].Plugin != "redis" {
		t.Fatalf("the doc's sinks: %+v", y.Sinks)
	}
	addr := testredis.Start(t)
	rdb := client(t, addr)
	ctx := context.Background()
	run := func(t *testing.T, config map[string]any, values ...string) {
		t.Helper()
		config["addrs"] = []string{addr}
		b, err := json.Marshal(config)
		if err != nil {
			t.Fatal(err)
		}
		s := configure(t, string(b))
		var rs []sdk.Record
		for i, v := range values {
			rs = append(rs, record(int64(i), v))
		}
		writeOK(t, s, rs...)
	}

	t.Run("hash with a ttl", func(t *testing.T) {
		run(t, y.Sinks[0].Config, string(order))
		equal(t, "HGETALL order:42", get(t, rdb.HGetAll(ctx, "order:42")), map[string]string{"status": "paid", "total": "99.5"})
		if ttl := get(t, rdb.TTL(ctx, "order:42")); ttl <= 3590*time.Second || ttl > 3600*time.Second {
			t.Errorf("TTL order:42 = %v, want the doc's 3600 s", ttl)
		}
	})
	t.Run("cancelled orders deleted", func(t *testing.T) {
		var v map[string]any
		if err := yaml.Unmarshal(variant, &v); err != nil {
			t.Fatal(err)
		}
		run(t, v, `{"id": 7, "status": "paid", "total": 1}`, `{"id": 42, "status": "cancelled", "total": 99.5}`)
		missing(t, rdb, "order:42")
		equal(t, "HGETALL order:7", get(t, rdb.HGetAll(ctx, "order:7")), map[string]string{"status": "paid", "total": "1"})
		ttlWithin(t, rdb, "order:7", time.Hour)
	})
}
