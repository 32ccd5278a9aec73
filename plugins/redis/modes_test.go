package redis

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mqgate/mqgate/internal/testcert"
	"github.com/mqgate/mqgate/internal/testredis"
	"github.com/mqgate/mqgate/sdk"
)

// pipelines counts the pipelines go-redis sends of the sink's commands,
// per node address, and the commands it sends outside pipelines, apart
// from its own: logging in and learning the cluster.
type pipelines struct {
	mu      sync.Mutex
	perNode map[string]int
	single  []string
}

// own reports whether cmd is one go-redis sends of its own accord.
func own(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client", "auth", "select", "cluster", "command", "ping":
		return true
	}
	return false
}

// hook returns a go-redis hook that counts for the node at addr.
func (p *pipelines) hook(addr string) redis.Hook { return &pipelineHook{p, addr} }

type pipelineHook struct {
	p    *pipelines
	addr string
}

func (h *pipelineHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *pipelineHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !own(cmd) {
			h.p.mu.Lock()
			h.p.single = append(h.p.single, cmd.Name())
			h.p.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}

func (h *pipelineHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !own(cmds[0]) {
			h.p.mu.Lock()
			h.p.perNode[h.addr]++
			h.p.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

// In a Cluster, a Write of keys across slots sends one pipeline per node,
// keeps the order of a key's records, and maps each reply to its record:
// a WRONGTYPE on one node and a CROSSSLOT MSET fail alone.
func TestClusterKeysAcrossSlots(t *testing.T) {
	addrs := testredis.StartCluster(t, 3)
	ctx := context.Background()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Set(ctx, "wrong:7", "a string", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s := configure(t, fmt.Sprintf(`{"mode": "cluster", "addrs": [%q], "commands": [
		{"cmd": "SET", "key": "'k:' + string(offset)", "value": "value", "when": "json?.kind == 'set'"},
		{"cmd": "RPUSH", "key": "'seq:' + string(offset %% 5)", "value": "offset", "when": "json?.kind == 'set'"},
		{"cmd": "HSET", "key": "'wrong:' + string(offset)", "fields": {"a": "1"}, "when": "json?.kind == 'hash'"},
		{"cmd": "MSET", "pairs": [{"key": "'a:' + key", "value": "1"}, {"key": "'b:' + key", "value": "2"}], "when": "json?.kind == 'mset'"}
	]}`, addrs[0]))
	counts := &pipelines{perNode: map[string]int{}}
	s.client.(*redis.ClusterClient).OnNewNode(func(node *redis.Client) { node.AddHook(counts.hook(node.Options().Addr)) })

	const n = 300
	var rs []sdk.Record
	for i := range n {
		rs = append(rs, record(int64(i), fmt.Sprintf(`{"kind": "set", "i": %d}`, i)))
	}
	rs[7] = record(7, `{"kind": "hash"}`)
	rs[8] = record(8, `{"kind": "mset"}`) // keys a:k8 and b:k8 hash to different slots
	res := write(t, s, rs...)
	for i, err := range res {
		switch i {
		case 7:
			wantCode(t, "HSET of a string", err, sdk.CodeIllegal, "WRONGTYPE", "offset 7")
		case 8:
			wantCode(t, "MSET across slots", err, sdk.CodeIllegal, "CROSSSLOT", "offset 8")
		default:
			if err != nil {
				t.Errorf("record %d: %v", i, err)
			}
		}
	}
	for i, r := range rs {
		if i == 7 || i == 8 {
			continue
		}
		if got, err := rdb.Get(ctx, fmt.Sprint("k:", i)).Result(); err != nil || got != string(r.Value) {
			t.Fatalf("GET k:%d = %q, %v", i, got, err)
		}
	}
	for q := range 5 {
		var want []string
		for i := q; i < n; i += 5 {
			if i != 7 && i != 8 {
				want = append(want, fmt.Sprint(i))
			}
		}
		equal(t, fmt.Sprint("LRANGE seq:", q), get(t, rdb.LRange(ctx, fmt.Sprint("seq:", q), 0, -1)), want)
	}
	var mu sync.Mutex
	keys := map[string]int64{}
	if err := rdb.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		size, err := c.DBSize(ctx).Result()
		mu.Lock()
		keys[c.Options().Addr] = size
		mu.Unlock()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	counts.mu.Lock()
	for _, a := range addrs {
		if keys[a] == 0 {
			t.Errorf("node %s holds no key: %v", a, keys)
		}
		if counts.perNode[a] != 1 {
			t.Errorf("node %s got %d pipelines for one Write, want 1 (all: %v)", a, counts.perNode[a], counts.perNode)
		}
	}
	if len(counts.single) > 0 {
		t.Errorf("commands sent outside the pipeline: %v", counts.single)
	}
	counts.mu.Unlock()
	hctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := s.Health(hctx); err != nil {
		t.Errorf("Health: %v", err)
	}
}

// A standalone server gets one pipeline per Write, however many records
// and commands.
func TestOnePipelinePerWrite(t *testing.T) {
	addr := testredis.Start(t)
	s := configure(t, standalone(addr, orderCommands))
	counts := &pipelines{perNode: map[string]int{}}
	s.client.AddHook(counts.hook(addr))
	var rs []sdk.Record
	for i := range 100 {
		rs = append(rs, record(int64(i), fmt.Sprintf(`{"id": %d, "status": "paid", "total": 1}`, i)))
	}
	writeOK(t, s, rs...)
	writeOK(t, s, rs...)
	counts.mu.Lock()
	defer counts.mu.Unlock()
	if counts.perNode[addr] != 2 || len(counts.single) > 0 {
		t.Errorf("two Writes sent %d pipelines and %v outside them; want 2 and none", counts.perNode[addr], counts.single)
	}
}

// Through Sentinel the sink writes to the master Sentinel names.
func TestSentinel(t *testing.T) {
	master := testredis.Start(t)
	sentinel := testredis.StartSentinel(t, "orders-master", master)
	s := configure(t, fmt.Sprintf(`{"mode": "sentinel", "master_name": "orders-master", "addrs": [%q], "db": 2,
		"commands": [{"cmd": "SET", "key": "'s:' + key", "value": "value"}]}`, sentinel))
	writeOK(t, s, record(1, "via sentinel"))
	rdb := redis.NewClient(&redis.Options{Addr: master, DB: 2})
	t.Cleanup(func() { _ = rdb.Close() })
	equal(t, "GET s:k1 on the master", get(t, rdb.Get(context.Background(), "s:k1")), "via sentinel")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.Health(ctx); err != nil {
		t.Errorf("Health: %v", err)
	}
}

// Over TLS the sink checks the server's certificate against ca_file and
// shows its own; without the CA, or without a client certificate the
// server asks for, records fail with code 17.
func TestTLS(t *testing.T) {
	ca := testcert.NewCA(t, "redis")
	dir := t.TempDir()
	srv := ca.Server(dir, "server")
	cli := ca.Client(dir, "client")
	addr := testredis.StartTLS(t, testredis.TLS{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CAFile: ca.CertFile, ClientCerts: true})
	commands := `[{"cmd": "SET", "key": "'tls:' + key", "value": "value"}]`
	for _, tc := range []struct {
		name, tls string
		ok        bool
		msg       string
	}{
		{"CA and client certificate", fmt.Sprintf(`{"ca_file": %q, "cert_file": %q, "key_file": %q}`, ca.CertFile, cli.CertFile, cli.KeyFile), true, ""},
		{"server name checked", fmt.Sprintf(`{"ca_file": %q, "cert_file": %q, "key_file": %q, "server_name": "localhost"}`, ca.CertFile, cli.CertFile, cli.KeyFile), true, ""},
		{"wrong server name", fmt.Sprintf(`{"ca_file": %q, "cert_file": %q, "key_file": %q, "server_name": "redis.example"}`, ca.CertFile, cli.CertFile, cli.KeyFile), false, "certificate"},
		{"unknown CA", fmt.Sprintf(`{"cert_file": %q, "key_file": %q}`, cli.CertFile, cli.KeyFile), false, "certificate"},
		{"no client certificate", fmt.Sprintf(`{"ca_file": %q}`, ca.CertFile), false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := configure(t, fmt.Sprintf(`{"addrs": [%q], "tls": %s, "commands": %s}`, addr, tc.tls, commands))
			res := write(t, s, record(5, "secret value"))
			if !tc.ok {
				wantCode(t, tc.name, res[0], sdk.CodeUnavailable, tc.msg)
				return
			}
			if res[0] != nil {
				t.Fatalf("Write: %v", res[0])
			}
			rdb := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: &tls.Config{
				RootCAs: ca.Pool, Certificates: []tls.Certificate{cli.TLS}, MinVersion: tls.VersionTLS12}})
			t.Cleanup(func() { _ = rdb.Close() })
			equal(t, "GET tls:k5", get(t, rdb.Get(context.Background(), "tls:k5")), "secret value")
		})
	}
	// A plaintext sink cannot talk to a TLS port.
	s := configure(t, standalone(addr, commands))
	wantCode(t, "plaintext against TLS", write(t, s, record(5, "v"))[0], sdk.CodeUnavailable)
}
