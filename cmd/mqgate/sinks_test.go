package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mqgate/mqgate/examples/filesink"
	"github.com/mqgate/mqgate/internal/hbasefake"
	"github.com/mqgate/mqgate/internal/testredis"
	"github.com/mqgate/mqgate/internal/webhdfsfake"
)

// sinkKind is a store a sink plugin writes to, started for a test.
type sinkKind struct {
	name  string
	start func(t *testing.T, dir string) *testStore
}

// testStore is a running store and how the gateway's sink reaches it.
type testStore struct {
	// plugin is the value of the sink's plugins: entry; config the
	// sink's config: map, both as YAML flow mappings. The config maps a
	// message's JSON value {"id": ID, ...} so that stored can count IDs.
	plugin, config string
	// stored counts how many times each message ID is in the store, as
	// the config maps it (mappedRight).
	stored func(t *testing.T) map[string]int
	// down makes the store refuse writes until up; nil when it cannot.
	down, up func(t *testing.T)
	// poison is a message value the sink's mapping refuses.
	poison string
}

// fileSinkBin is the example third-party sink, built by TestMain.
var fileSinkBin string

// fileSink is the example third-party sink, run by path as a third party's
// plugin is: a file of JSON lines per topic.
func fileSink(t *testing.T, dir string) *testStore {
	out := filepath.Join(dir, "files")
	return &testStore{
		plugin: fmt.Sprintf("{path: %q, kind: sink}", fileSinkBin),
		config: fmt.Sprintf("{dir: %q, value: json}", out),
		poison: "not json",
		stored: func(t *testing.T) map[string]int {
			counts := map[string]int{}
			f, err := os.Open(filesink.Path(out, "orders"))
			if errors.Is(err, os.ErrNotExist) {
				return counts
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 4<<20)
			for sc.Scan() {
				var l struct {
					Value struct {
						ID    string
						Total *int
					} `json:"value"`
				}
				if json.Unmarshal(sc.Bytes(), &l) == nil && mappedRight(l.Value.ID, l.Value.Total) {
					counts[l.Value.ID]++
				}
			}
			return counts
		},
	}
}

// hbaseSink is the bundled HBase sink writing to a fake REST gateway: a
// row per order in table orders, its versions counting the writes.
func hbaseSink(t *testing.T, _ string) *testStore {
	f, err := hbasefake.Start(hbasefake.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	if err := f.CreateTable("orders", hbasefake.Families("d")...); err != nil {
		t.Fatal(err)
	}
	return &testStore{
		plugin: "{builtin: hbase}",
		config: fmt.Sprintf(`{urls: [%q], table: "'orders'", row: "json.id", columns: {"d:total": "json.total", "d:offset": "offset"}}`, f.URL()),
		poison: `{"no_id": true}`,
		stored: func(t *testing.T) map[string]int {
			counts := map[string]int{}
			for _, id := range orderIDs(3000) {
				vs := f.Versions("orders", id, "d:offset")
				total, err := strconv.Atoi(string(f.Row("orders", id)["d:total"]))
				if len(vs) > 0 && err == nil && mappedRight(id, &total) {
					counts[id] = len(vs) // a version per write, unless two share a millisecond
				}
			}
			if f.Row("orders", "after-poison") != nil {
				counts["after-poison"] = 1
			}
			return counts
		},
		down: func(t *testing.T) {
			if err := f.Down(); err != nil {
				t.Fatal(err)
			}
		},
		up: func(t *testing.T) {
			if err := f.Up(); err != nil {
				t.Fatal(err)
			}
		},
	}
}

// hdfsSink is the bundled HDFS sink writing text lines to a fake WebHDFS:
// the values of the orders topic in files under /orders, in-progress ones
// included (what a write acknowledged is in them).
func hdfsSink(t *testing.T, dir string) *testStore {
	f, err := webhdfsfake.New(webhdfsfake.Options{User: "etl"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return &testStore{
		plugin: "{builtin: hdfs}",
		config: fmt.Sprintf(`{namenodes: [%q], user: etl, path: "/orders/${topic}/${yyyy}${MM}${dd}", format: text, state_dir: %q}`,
			f.URL(), filepath.Join(dir, "hdfs-state")),
		poison: "line one\nline two",
		stored: func(t *testing.T) map[string]int {
			counts := map[string]int{}
			for _, fi := range f.Files("/orders") {
				data, err := f.ReadFile(fi.Path)
				if err != nil {
					continue // renamed meanwhile: read it under its new name next time
				}
				for line := range strings.Lines(string(data)) {
					var v struct {
						ID    string
						Total *int
					}
					if json.Unmarshal([]byte(line), &v) == nil && mappedRight(v.ID, v.Total) {
						counts[v.ID]++
					}
				}
			}
			return counts
		},
		down: func(*testing.T) { f.SetDown(webhdfsfake.Datanode, 0, true) },
		up:   func(*testing.T) { f.SetDown(webhdfsfake.Datanode, 0, false) },
	}
}

// redisSink is the bundled Redis sink writing to a real redis-server: a
// hash per order, and each write's id pushed to a list, which counts
// duplicates.
func redisSink(t *testing.T, _ string) *testStore {
	srv := testredis.StartServer(t)
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return &testStore{
		plugin: "{builtin: redis}",
		config: fmt.Sprintf(`{addrs: [%q], commands: [{cmd: HSET, key: "'order:' + json.id", fields: {total: "json.total"}}, {cmd: RPUSH, key: "'written'", value: "json.id"}]}`, srv.Addr),
		poison: `{"no_id": true}`,
		stored: func(t *testing.T) map[string]int {
			counts := map[string]int{}
			ids, err := c.LRange(context.Background(), "written", 0, -1).Result()
			if err != nil {
				return counts // down: nothing readable now
			}
			for _, id := range ids {
				total, err := c.HGet(context.Background(), "order:"+id, "total").Int()
				if id == "after-poison" || err == nil && mappedRight(id, &total) {
					counts[id]++
				}
			}
			return counts
		},
		down: func(*testing.T) { srv.Stop() },
		up:   func(*testing.T) { srv.Start() },
	}
}

var sinkKinds = []sinkKind{
	{"file", fileSink},
	{"redis", redisSink},
	{"hbase", hbaseSink},
	{"hdfs", hdfsSink},
}

func forEachSink(t *testing.T, test func(t *testing.T, kind sinkKind)) {
	for _, k := range sinkKinds {
		t.Run(k.name, func(t *testing.T) { test(t, k) })
	}
}

// sinkConfig is the sinks: section of one sink, orders, of store.
func sinkConfig(store *testStore, extra string) string {
	return fmt.Sprintf(`sinks:
  - name: orders
    topics: [orders]
    plugin: store
    config: %s
    batch: {max_messages: 100}
    retry: {max: 3, backoff: [50ms, 200ms]}
%s`, store.config, extra)
}

// sinkSetup writes a config with the store's plugin and the orders sink.
func sinkSetup(t *testing.T, dir string, broker *testBroker, store *testStore, extra string) *setup {
	return writeConfig(t, dir, broker, options{morePlugins: []string{"store: " + store.plugin}, extra: sinkConfig(store, extra)})
}

// sinkStatus is what GET /v1/sinks/{name} answers.
type sinkStatus struct {
	Name         string `json:"name"`
	State        string `json:"state"`
	PluginState  string `json:"plugin_state"`
	Written      int64  `json:"written"`
	Failures     int64  `json:"failures"`
	DeadLettered int64  `json:"dead_lettered"`
	Queued       int    `json:"queued"`
	LastError    string `json:"last_error"`
}

func (g *gateway) sink(name string) sinkStatus {
	g.t.Helper()
	code, body := g.do("GET", "/v1/sinks/"+name, "", nil)
	if code != 200 {
		g.t.Fatalf("GET /v1/sinks/%s: %d %s", name, code, body)
	}
	var st sinkStatus
	if err := json.Unmarshal(body, &st); err != nil {
		g.t.Fatal(err)
	}
	return st
}

// produceOrders produces orders from to to-1 as JSON values {"id": ...}.
func (g *gateway) produceOrders(from, to int) {
	g.t.Helper()
	for i := from; i < to; i += 250 {
		var msgs []string
		for j := i; j < min(i+250, to); j++ {
			msgs = append(msgs, fmt.Sprintf(`{"key":"k%d","value":"{\"id\":\"o-%05d\",\"total\":%d}"}`, j%50, j, j))
		}
		if code, body := g.do("POST", "/v1/topics/orders/messages", `{"messages":[`+strings.Join(msgs, ",")+`]}`, nil); code != 200 {
			g.t.Fatalf("produce: %d %s", code, body)
		}
	}
}

// mappedRight reports whether a stored order holds what produceOrders sent
// for its id: total is the order's number ("o-00042" has total 42). The
// message after the poison ("after-poison") has total 0.
func mappedRight(id string, total *int) bool {
	if id == "after-poison" {
		return true
	}
	n, err := strconv.Atoi(strings.TrimPrefix(id, "o-"))
	return err == nil && total != nil && *total == n
}

// orderIDs are the IDs produceOrders(0, n) produces.
func orderIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("o-%05d", i)
	}
	return ids
}

// Every sink, on each backend, loses nothing the gateway acked across a
// kill -9 of the sink's plugin and then of the gateway, both mid-stream:
// every message lands as its mapping says (stored counts only those), and
// the duplicates (what was written but not yet
// acked at a kill) are counted in the log.
func TestSinkLosesNothingUnderKills(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		forEachSink(t, func(t *testing.T, sk sinkKind) {
			if kind.name != brokerKinds[0].name && sk.name != "redis" {
				// What feeds a sink is the consume session, which is the
				// same for every sink: one sink on the second backend
				// keeps the suite's time down.
				t.Skipf("the %s sink runs on %s only; the redis sink covers %s", sk.name, brokerKinds[0].name, kind.name)
			}
			dir := t.TempDir()
			store := sk.start(t, dir)
			s := sinkSetup(t, dir, kind.local(t, dir), store, "")
			g := startGateway(t, s)

			const n = 3000
			g.produceOrders(0, n/2)
			waitFor(t, "a tenth written", func() bool { return len(store.stored(t)) >= n/10 })
			var sinkPID int
			for _, p := range g.plugins() {
				if p.Name == "sink:orders" {
					sinkPID = p.PID
				}
			}
			if sinkPID == 0 {
				t.Fatalf("no plugin sink:orders in %+v", g.plugins())
			}
			if err := syscall.Kill(sinkPID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			g.produceOrders(n/2, n)
			waitFor(t, "two thirds written", func() bool { return len(store.stored(t)) >= 2*n/3 })
			g.kill9()

			g2 := startGateway(t, s)
			waitFor(t, "every message written", func() bool { return len(store.stored(t)) == n })
			// What the killed gateway wrote, the next one may find written:
			// its sink runs once it has pulled, written or not.
			waitFor(t, "the sink running", func() bool { return g2.sink("orders").State == "running" })
			counts := store.stored(t)
			dups := 0
			for _, id := range orderIDs(n) {
				switch c := counts[id]; {
				case c == 0:
					t.Errorf("%s never written", id)
				case c > 1:
					dups += c - 1
				}
			}
			st := g2.sink("orders")
			if st.State != "running" || st.PluginState != "up" || st.DeadLettered != 0 {
				t.Errorf("GET /v1/sinks/orders = %+v", st)
			}
			t.Logf("%s sink on %s: %d messages, the plugin and then the gateway killed mid-stream: lost 0, duplicates %d", sk.name, kind.name, n, dups)
		})
	})
}

// A message the sink's mapping refuses goes to the dead-letter topic after
// retry.max attempts with can_skip, while the rest is written; without
// can_skip it holds back only its key.
func TestSinkPoisonRecord(t *testing.T) {
	forEachSink(t, func(t *testing.T, sk sinkKind) {
		for _, canSkip := range []bool{true, false} {
			t.Run(fmt.Sprintf("can_skip=%v", canSkip), func(t *testing.T) {
				dir := t.TempDir()
				store := sk.start(t, dir)
				s := sinkSetup(t, dir, brokerKinds[0].local(t, dir), store, fmt.Sprintf("    can_skip: %v\n", canSkip))
				g := startGateway(t, s)
				poison, _ := json.Marshal(store.poison)
				body := fmt.Sprintf(`{"messages":[{"key":"px","value":%s},{"key":"px","value":"{\"id\":\"after-poison\",\"total\":0}"}]}`, poison)
				if code, b := g.do("POST", "/v1/topics/orders/messages", body, nil); code != 200 {
					t.Fatalf("produce: %d %s", code, b)
				}
				g.produceOrders(0, 200)
				if canSkip {
					waitFor(t, "everything else written", func() bool { return len(store.stored(t)) == 201 })
					waitFor(t, "the poison dead-lettered", func() bool { return g.sink("orders").DeadLettered == 1 })
					recs := g.read("mqgate-sink-orders-dlq", 1)
					if string(recs[0].Value) != store.poison {
						t.Errorf("dead letter %q; want the poison %q", recs[0].Value, store.poison)
					}
					return
				}
				waitFor(t, "everything but the poison's key written and the poison retried past retry.max", func() bool {
					return len(store.stored(t)) == 200 && g.sink("orders").Failures > 3
				})
				st := g.sink("orders")
				if st.DeadLettered != 0 || st.Queued != 2 || st.LastError == "" {
					t.Errorf("GET /v1/sinks/orders = %+v; want the poison and the message after it on its key held, with the last error", st)
				}
				if store.stored(t)["after-poison"] != 0 {
					t.Errorf("the message after the poison on its key was written while the poison was failing")
				}
			})
		}
	})
}

// A store that is down is waited out: writes fail with code 17, nothing is
// dead-lettered (even with can_skip and retry.max 1), and everything is
// written once the store is back.
func TestSinkDownIsCaughtUp(t *testing.T) {
	forEachSink(t, func(t *testing.T, sk sinkKind) {
		dir := t.TempDir()
		store := sk.start(t, dir)
		if store.down == nil {
			t.Skipf("the %s store cannot be taken down by the test", sk.name)
		}
		s := sinkSetup(t, dir, brokerKinds[0].local(t, dir), store, "    can_skip: true\n")
		g := startGateway(t, s)
		g.produceOrders(0, 100)
		waitFor(t, "the first written", func() bool { return len(store.stored(t)) == 100 })
		store.down(t)
		g.produceOrders(100, 1000)
		waitFor(t, "writes failing", func() bool { return g.sink("orders").Failures >= 10 })
		if st := g.sink("orders"); st.LastError == "" {
			t.Errorf("GET /v1/sinks/orders = %+v while the store is down; want its last error", st)
		}
		store.up(t)
		waitFor(t, "everything written", func() bool { return len(store.stored(t)) == 1000 })
		if st := g.sink("orders"); st.DeadLettered != 0 {
			t.Errorf("GET /v1/sinks/orders = %+v; an outage dead-lettered messages", st)
		}
	})
}
