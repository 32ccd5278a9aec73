package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The first Ctrl-C ends long polls at once, answered empty, and the gateway
// exits cleanly; it does not wait out their linger (here ten minutes).
func TestInterruptEndsLongPolls(t *testing.T) {
	dir := t.TempDir()
	g := startGateway(t, writeConfig(t, dir, embeddedKafka(t, dir), options{requestTimeout: "10m"}))
	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Post("http://"+g.httpAddr+"/v1/groups/g/topics/quiet/pull", "application/json",
			strings.NewReader(`{"max_messages": 10, "max_wait_ms": 600000}`))
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		answered <- answer{status: resp.StatusCode, body: string(body), err: err}
	}()
	// The pull is waiting once its session has joined the group.
	waitFor(t, "the long poll's session", func() bool { return g.metric("mqgate_consume_sessions") >= 1 })
	if err := g.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-answered:
		if a.err != nil || a.status != 200 || !strings.Contains(a.body, `"messages":[]`) {
			t.Fatalf("the long poll got %d %s (%v); want 200 with no messages", a.status, a.body, a.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the long poll still waits after Ctrl-C")
	}
	select {
	case err := <-g.exited:
		g.exited <- nil // for the cleanup
		if err != nil {
			t.Fatalf("gateway exited with %v after one Ctrl-C, want a clean exit", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the gateway did not exit after Ctrl-C")
	}
}

// A second Ctrl-C ends the gateway at once, while a request it would
// otherwise wait for (a produce to a broker that stopped answering, with a
// ten-minute timeout) is still in flight.
func TestSecondInterruptExitsAtOnce(t *testing.T) {
	broker := externalKafka(t, "orders")
	g := startGateway(t, writeConfig(t, t.TempDir(), broker, options{requestTimeout: "10m", httpExtra: "shutdown_timeout: 10m"}))
	g.produceOK("orders", `{"value": "before"}`)
	broker.pause(true)
	defer broker.pause(false)
	inFlight := make(chan error, 1)
	go func() {
		resp, err := http.Post("http://"+g.httpAddr+"/v1/topics/orders/messages", "application/json", strings.NewReader(`{"value": "held"}`))
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("answered %d", resp.StatusCode)
		}
		inFlight <- err
	}()
	// In flight: the produce and the scrape that counts it.
	waitFor(t, "the produce to be in flight", func() bool { return g.metric("mqgate_http_requests_in_flight") >= 2 })
	if err := g.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	g.logged("shutting down; a second signal exits at once", "signal")
	if err := g.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-g.exited:
		g.exited <- nil // for the cleanup
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("gateway exited with %v after a second Ctrl-C, want exit status 1", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the gateway did not exit after a second Ctrl-C")
	}
	if !strings.Contains(g.log.String(), "second signal: exiting without waiting") {
		t.Errorf("the log does not say why the gateway stopped:\n%s", g.log.String())
	}
	if err := <-inFlight; err == nil || strings.Contains(err.Error(), "answered") {
		t.Errorf("the held produce: %v; want the connection to end with the process", err)
	}
}
