package testredis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// Require skips t when redis-server is not installed, or fails it under
// CI=true, where .ci/run installs it.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is not installed; .ci/run installs it (apt-get install redis-server)")
		}
		t.Skip("redis-server is not installed (apt-get install redis-server); skipping")
	}
}

// Start starts a redis-server for t and returns its address, 127.0.0.1:PORT.
// args are more redis-server arguments, such as "--requirepass", "secret".
// The server is stopped when t ends; its log is shown if t failed.
func Start(t testing.TB, args ...string) string {
	t.Helper()
	Require(t)
	p, err := launch(t.TempDir(), "redis", serverSpec{args: args})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, p)
	return p.addr
}

// TLS are the files of a server that speaks only TLS.
type TLS struct {
	CertFile, KeyFile string
	// CAFile holds the CAs a client certificate must be signed by.
	CAFile string
	// ClientCerts makes the server require a client certificate.
	ClientCerts bool
}

// StartTLS starts a redis-server for t that speaks only TLS, as Start does a
// plain one. It skips t when redis-server was built without TLS (and fails
// it under CI=true).
func StartTLS(t testing.TB, files TLS, args ...string) string {
	t.Helper()
	Require(t)
	auth := "no"
	if files.ClientCerts {
		auth = "yes"
	}
	args = append([]string{"--tls-cert-file", files.CertFile, "--tls-key-file", files.KeyFile,
		"--tls-ca-cert-file", files.CAFile, "--tls-auth-clients", auth}, args...)
	p, err := launch(t.TempDir(), "redis-tls", serverSpec{args: args, tls: true})
	if err != nil && strings.Contains(err.Error(), "tls-port") && os.Getenv("CI") != "true" {
		t.Skipf("redis-server was built without TLS: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, p)
	return p.addr
}

// StartCluster starts a Redis Cluster of n masters without replicas for t,
// the hash slots split evenly among them, and returns their addresses once
// every node says the cluster is ok.
func StartCluster(t testing.TB, n int) []string {
	t.Helper()
	Require(t)
	addrs, stop, err := StartClusterProcess(t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return addrs
}

// StartSentinel starts a Redis Sentinel for t that monitors the master at
// masterAddr under name, with a quorum of one, and returns its address once
// it answers for the master.
func StartSentinel(t testing.TB, name, masterAddr string) string {
	t.Helper()
	Require(t)
	host, port, ok := strings.Cut(masterAddr, ":")
	if !ok {
		t.Fatalf("master address %q is not host:port", masterAddr)
	}
	p, err := launch(t.TempDir(), "sentinel", serverSpec{
		sentinel: []string{fmt.Sprintf("sentinel monitor %s %s %s 1", name, host, port)},
		ready:    answersPing,
	})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, p)
	return p.addr
}

// cleanup stops p when t ends and shows its log if t failed.
func cleanup(t testing.TB, p *process) {
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("redis-server log %s:\n%s", p.log, tail(p.log))
		}
	})
}

// StartProcess starts a redis-server in dir, which must exist, and returns
// its address and a function that stops it. args are more redis-server
// arguments. The error is ErrNotInstalled without redis-server.
func StartProcess(dir string, args ...string) (addr string, stop func(), err error) {
	p, err := launch(dir, "redis", serverSpec{args: args})
	if err != nil {
		return "", nil, err
	}
	return p.addr, p.stop, nil
}

// StartClusterProcess starts a Redis Cluster of n masters in dir, which
// must exist, as StartCluster does, and returns their addresses and a
// function that stops them all.
func StartClusterProcess(dir string, n int) (addrs []string, stop func(), err error) {
	if n < 1 {
		return nil, nil, fmt.Errorf("a cluster needs at least one node, not %d", n)
	}
	var procs []*process
	stop = func() {
		for _, p := range procs {
			p.stop()
		}
	}
	for i := range n {
		p, err := launch(dir, fmt.Sprintf("cluster%d", i), serverSpec{cluster: true})
		if err != nil {
			stop()
			return nil, nil, err
		}
		procs = append(procs, p)
		addrs = append(addrs, p.addr)
	}
	if err := formCluster(procs); err != nil {
		stop()
		return nil, nil, err
	}
	return addrs, stop, nil
}

// formCluster gives each node its share of the slots, introduces the nodes
// to the first, and waits until every node sees all of them and all slots.
func formCluster(procs []*process) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	clients := make([]*redis.Client, len(procs))
	for i, p := range procs {
		clients[i] = redis.NewClient(&redis.Options{Addr: p.addr, Protocol: 2})
		defer clients[i].Close()
	}
	for i, c := range clients {
		first, last := i*clusterSlots/len(procs), (i+1)*clusterSlots/len(procs)
		args := []any{"cluster", "addslots"}
		for s := first; s < last; s++ {
			args = append(args, s)
		}
		if err := c.Do(ctx, args...).Err(); err != nil {
			return fmt.Errorf("assigning slots %d-%d to %s: %w", first, last-1, procs[i].addr, err)
		}
	}
	for _, p := range procs[1:] {
		if err := clients[0].Do(ctx, "cluster", "meet", "127.0.0.1", p.port, p.busPort).Err(); err != nil {
			return fmt.Errorf("introducing %s to %s: %w", p.addr, procs[0].addr, err)
		}
	}
	want := []string{"cluster_state:ok", "cluster_slots_ok:" + strconv.Itoa(clusterSlots),
		"cluster_known_nodes:" + strconv.Itoa(len(procs))}
	for i, c := range clients {
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && hasAll(info, want) {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("cluster node %s not ok: %q (%v)", procs[i].addr, info, errors.Join(err, ctx.Err()))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// hasAll reports whether CLUSTER INFO output holds every line of want.
func hasAll(info string, want []string) bool {
	lines := strings.Split(strings.ReplaceAll(info, "\r", ""), "\n")
	for _, w := range want {
		if !slices.Contains(lines, w) {
			return false
		}
	}
	return true
}

// Server is a redis-server a test can kill and start again at the same
// address with its data: it appends every write to its log and fsyncs it
// before it answers, so that what it acknowledged survives a kill -9, as a
// store that loses nothing acknowledged must.
type Server struct {
	t    testing.TB
	dir  string
	spec serverSpec
	// mu guards p, which Stop and Start replace.
	mu sync.Mutex
	p  *process
	// Addr is the server's address, 127.0.0.1:PORT, the same after Start.
	Addr string
}

// StartServer starts a Server for t, as Start does a server; it is stopped
// when t ends.
func StartServer(t testing.TB, args ...string) *Server {
	t.Helper()
	Require(t)
	s := &Server{t: t, dir: t.TempDir(), spec: serverSpec{
		args: append([]string{"--appendonly", "yes", "--appendfsync", "always"}, args...)}}
	p, err := launch(s.dir, "redis", s.spec)
	if err != nil {
		t.Fatal(err)
	}
	s.p, s.Addr, s.spec.port = p, p.addr, p.port
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.p != nil {
			s.p.stop()
			if t.Failed() {
				t.Logf("redis-server log %s:\n%s", s.p.log, tail(s.p.log))
			}
		}
	})
	return s
}

// Stop kills the server (kill -9) and returns once it is gone; connections
// to Addr are refused until Start. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil {
		s.p.stop()
		s.p = nil
	}
}

// Start starts the server again at Addr, with the data it acknowledged,
// and returns once it accepts connections. Starting a running server does
// nothing.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil {
		return
	}
	p, err := launch(s.dir, "redis", s.spec)
	if err != nil {
		s.t.Fatalf("starting redis-server again at %s: %v", s.Addr, err)
	}
	s.p = p
}
