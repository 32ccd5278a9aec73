package testredis

import (
	"context"
	"crypto/tls"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqgate/mqgate/internal/testcert"
)

func ping(t *testing.T, c redis.UniversalClient) {
	t.Helper()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want v", got, err)
	}
}

func TestStart(t *testing.T) {
	ping(t, redis.NewClient(&redis.Options{Addr: Start(t)}))
}

func TestStartWithArgs(t *testing.T) {
	addr := Start(t, "--requirepass", "secret")
	ping(t, redis.NewClient(&redis.Options{Addr: addr, Password: "secret"}))
}

func TestStartTLS(t *testing.T) {
	ca := testcert.NewCA(t, "redis")
	dir := t.TempDir()
	srv := ca.Server(dir, "server")
	client := ca.Client(dir, "client")
	addr := StartTLS(t, TLS{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CAFile: ca.CertFile, ClientCerts: true})
	ping(t, redis.NewClient(&redis.Options{Addr: addr, TLSConfig: &tls.Config{
		RootCAs: ca.Pool, Certificates: []tls.Certificate{client.TLS}, MinVersion: tls.VersionTLS12}}))
}

// Keys of every slot land: the cluster holds all 16384 slots.
func TestStartCluster(t *testing.T) {
	addrs := StartCluster(t, 3)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		if err := c.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	var masters atomic.Int32 // ForEachMaster calls concurrently
	if err := c.ForEachMaster(ctx, func(context.Context, *redis.Client) error { masters.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	if n := masters.Load(); n != 3 {
		t.Errorf("%d masters, want 3", n)
	}
	ping(t, c)
}

func TestStartSentinel(t *testing.T) {
	master := Start(t)
	sentinel := StartSentinel(t, "mymaster", master)
	ping(t, redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "mymaster", SentinelAddrs: []string{sentinel}}))
}

// A Server killed and started again is at the same address with what it
// acknowledged before the kill.
func TestServerStopStart(t *testing.T) {
	s := StartServer(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "kept", "yes", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING answered with the server stopped")
	}
	s.Start()
	if got, err := c.Get(ctx, "kept").Result(); err != nil || got != "yes" {
		t.Fatalf("GET kept after a restart = %q, %v; want yes", got, err)
	}
}
