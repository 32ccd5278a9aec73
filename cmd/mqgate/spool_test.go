package main

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The crash test: async messages flow; the gateway is killed with
// SIGKILL mid-stream; after a restart every message that was answered 202
// is in the broker. Duplicates are possible (a message forwarded but not yet
// deleted from the spool when the gateway died) and are counted; loss is
// not allowed.
func TestAsyncSurvivesKill9(t *testing.T) {
	forEachBroker(t, testAsyncSurvivesKill9)
}

func testAsyncSurvivesKill9(t *testing.T, kind brokerKind) {
	dir := t.TempDir()
	s := writeConfig(t, dir, kind.local(t, dir), options{})
	g := startGateway(t, s)
	httpAddr := g.httpAddr

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
	g.kill9()
	close(stop)
	<-done

	g2 := startGateway(t, s) // its forwarder drains what the first left
	seen := consumeUntil(t, g2, "spooled", accepted)
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	t.Logf("%d messages answered 202 before the kill: all delivered, %d duplicates", len(accepted), dups)
}

// consumeUntil reads topic with the broker's own client until every value
// in want has been seen; it returns how often each value came.
func consumeUntil(t *testing.T, g *gateway, topic string, want []string) map[string]int {
	t.Helper()
	var seen map[string]int
	g.broker.readUntil(t, topic, func(rs []brokerRecord) bool {
		seen = map[string]int{}
		for _, r := range rs {
			seen[r.Value]++
		}
		for _, v := range want {
			if seen[v] == 0 {
				return false
			}
		}
		return true
	})
	return seen
}

// A second gateway on the spool directory of a running one stops at once
// and names the process that holds it, before starting any plugin.
func TestSecondGatewayOnOneSpool(t *testing.T) {
	dir := t.TempDir()
	s := writeConfig(t, dir, embeddedKafka(t, dir), options{})
	g := startGateway(t, s)
	out, err := exec.Command(mqgateBin, "serve", "-c", s.cfgPath).CombinedOutput()
	if err == nil {
		t.Fatalf("a second gateway started on the same spool:\n%s", out)
	}
	want := fmt.Sprintf("producer.spool_dir: another mqgate process holds %s (pid %d)", filepath.Join(dir, "spool"), g.cmd.Process.Pid)
	if !strings.Contains(string(out), want) {
		t.Fatalf("the second gateway said:\n%s\nwant it to say %q", out, want)
	}
	if strings.Contains(string(out), "starting plugin") {
		t.Errorf("the second gateway started a plugin before refusing:\n%s", out)
	}
}
