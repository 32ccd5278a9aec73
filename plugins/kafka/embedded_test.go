package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqgate/mqgate/internal/dirlock"
	"github.com/mqgate/mqgate/sdk"
)

// A listen address another process keeps is a config error naming listen,
// once the wait for it to be let go is over.
func TestListenInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b := New(slog.New(slog.DiscardHandler))
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond) // the wait ends sooner
	defer cancel()
	cfg := fmt.Sprintf(`{"brokers": "embedded", "listen": %q, "data_dir": %q}`, ln.Addr().String(), t.TempDir())
	err = b.Configure(ctx, []byte(cfg))
	if ce, ok := errors.AsType[*sdk.ConfigError](err); !ok || ce.Key != "listen" || !strings.Contains(ce.Msg, "address already in use") {
		t.Errorf("Configure on a busy port: %v; want a *sdk.ConfigError for listen saying it is in use", err)
	}
}

// A data directory another mqgate process holds is a config error naming
// data_dir and the holder, not two brokers writing one directory.
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	lock, err := dirlock.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	b := New(slog.New(slog.DiscardHandler))
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err = b.Configure(ctx, []byte(fmt.Sprintf(`{"brokers": "embedded", "listen": "127.0.0.1:0", "data_dir": %q}`, dir)))
	want := fmt.Sprintf("another mqgate process holds %s (pid %d)", dir, os.Getpid())
	if ce, ok := errors.AsType[*sdk.ConfigError](err); !ok || ce.Key != "data_dir" || ce.Msg != want {
		t.Errorf("Configure on a held data_dir: %v; want a *sdk.ConfigError for data_dir saying %q", err, want)
	}
}

// A restarted broker whose predecessor still holds the data directory and
// the port (it is saving its data) waits for both and starts on the same
// port.
func TestTakesOverFromPredecessor(t *testing.T) {
	dir := t.TempDir()
	lock, err := dirlock.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	logs := &lineLog{lines: make(chan string, 100)}
	b := New(slog.New(slog.NewTextHandler(logs, nil)))
	defer b.Close()
	configured := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		configured <- b.Configure(ctx, []byte(fmt.Sprintf(`{"brokers": "embedded", "listen": %q, "data_dir": %q}`, addr, dir)))
	}()
	logs.waitFor(t, "waiting for its data_dir")
	lock.Release()
	logs.waitFor(t, "waiting for its listen")
	ln.Close()
	if err := <-configured; err != nil {
		t.Fatalf("Configure after the predecessor let go: %v", err)
	}
	if got := b.Addrs(); len(got) != 1 || got[0] != addr {
		t.Fatalf("the broker listens on %v, want %s", got, addr)
	}
}

// lineLog is a log destination a test can wait on.
type lineLog struct {
	mu    sync.Mutex
	lines chan string
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.lines <- string(p):
	default: // a test waits for early lines only
	}
	return len(p), nil
}

func (l *lineLog) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line := <-l.lines:
			if strings.Contains(line, s) {
				return
			}
		case <-timeout:
			t.Fatalf("no log line with %q", s)
		}
	}
}
