package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The crash test: async messages flow; the gateway is killed with
// SIGKILL mid-stream; after a restart every message that was answered 202
// is in the broker. Duplicates are possible (a message forwarded but not yet
// deleted from the spool when the gateway died) and are counted; loss is
// not allowed.
func TestAsyncSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	cfg, httpAddr, kafkaAddr := writeConfig(t, dir, filepath.Join(dir, "data"), "")
	g := startGateway(t, cfg, httpAddr, kafkaAddr)

	var count atomic.Int64
	var accepted []string // written by the sender only; read after it stops
	stop, done := make(chan struct{}), make(chan struct{})
	client := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := fmt.Sprintf("m-%06d", i)
			resp, err := client.Post("http://"+httpAddr+"/v1/topics/spooled/messages?mode=async", "application/json",
				strings.NewReader(`{"value": "`+v+`"}`))
			if err != nil {
				continue // no answer: no promise was made
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				accepted = append(accepted, v)
				count.Add(1)
			}
		}
	}()
	waitFor(t, "a flow of accepted messages", func() bool { return count.Load() >= 300 })
	if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-g.exited
	g.exited <- nil // for the cleanup
	close(stop)
	<-done

	startGateway(t, cfg, httpAddr, kafkaAddr) // its forwarder drains what the first left
	seen := consumeUntil(t, kafkaAddr, "spooled", accepted)
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	t.Logf("%d messages answered 202 before the kill: all delivered, %d duplicates", len(accepted), dups)
}

// consumeUntil reads topic from the start until every value in want has
// been seen, failing t after a minute; it returns how often each value came.
func consumeUntil(t *testing.T, kafkaAddr, topic string, want []string) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seen := map[string]int{}
	missing := len(want)
	wanted := map[string]bool{}
	for _, v := range want {
		wanted[v] = true
	}
	for missing > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d accepted messages never reached the broker", missing, len(want))
		}
		for _, r := range fs.Records() {
			v := string(r.Value)
			seen[v]++
			if wanted[v] && seen[v] == 1 {
				missing--
			}
		}
	}
	return seen
}
