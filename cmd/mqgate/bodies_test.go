package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
)

// rssBytes is the resident memory of process pid, from /proc.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("reading the gateway's resident memory needs /proc: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}

// declareBody opens a connection to the gateway and sends a produce
// request's head declaring length bytes of body, then first.
func (g *gateway) declareBody(length int64, first string) net.Conn {
	g.t.Helper()
	conn, err := net.Dial("tcp", g.httpAddr)
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { conn.Close() })
	head := fmt.Sprintf("POST /v1/topics/orders/messages HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", length)
	if _, err := io.WriteString(conn, head+first); err != nil {
		g.t.Fatal(err)
	}
	return conn
}

// The gateway's memory follows the body bytes clients send, not the
// lengths they declare, and http.max_body_bytes_in_flight (from the
// config) bounds what they send; the memory limit comes from
// runtime.memory_limit.
func TestDeclaredBodiesDoNotGrowTheGateway(t *testing.T) {
	const (
		conns    = 50
		declared = 64 << 20
		// Resident memory per connection, the race detector's shadow
		// included: far below what each declares.
		perConnBound = 2 << 20
	)
	dir := t.TempDir()
	g := startGateway(t, writeConfig(t, dir, embeddedKafka(t, dir), options{
		requestTimeout: "60s",
		httpExtra:      "max_body_bytes: 64MiB, max_body_bytes_in_flight: 64MiB",
		extra:          "runtime: {memory_limit: 1GiB}\n",
	}))
	if from := g.logged("memory limit", "from"); from != "runtime.memory_limit" {
		t.Errorf("memory limit from %q; want runtime.memory_limit", from)
	}
	g.produceOK("orders", `{"value": "warm"}`)
	before := rssBytes(t, g.cmd.Process.Pid)

	open := make([]net.Conn, conns)
	for i := range open {
		open[i] = g.declareBody(declared, `{"value": "`)
	}
	waitFor(t, "every body to be read", func() bool {
		return g.metric("mqgate_http_request_body_bytes_in_flight") >= conns*256<<10
	})
	grown := rssBytes(t, g.cmd.Process.Pid) - before
	t.Logf("gateway resident memory grew %.1f MiB for %d connections declaring %d MiB each", float64(grown)/(1<<20), conns, declared>>20)
	if grown > conns*perConnBound {
		t.Errorf("gateway resident memory grew %d MiB for %d connections declaring %d MiB each; want under %d MiB",
			grown>>20, conns, declared>>20, conns*perConnBound>>20)
	}
	for _, c := range open {
		c.Close()
	}
	waitFor(t, "the bodies to be released", func() bool {
		return g.metric("mqgate_http_request_body_bytes_in_flight") == 0
	})

	// One body of the largest size, all but its last byte sent, holds
	// the whole budget: others are refused with code 17 naming it.
	holder := g.declareBody(declared, `{"value": "`+strings.Repeat("x", declared-len(`{"value": "`)-3))
	waitFor(t, "the large body to be read", func() bool {
		return g.metric("mqgate_http_request_body_bytes_in_flight") == declared
	})
	status, body := g.produce("orders", `{"value": "small"}`)
	checkAPIError(t, "a body past http.max_body_bytes_in_flight", status, body, http.StatusServiceUnavailable, 17,
		"http.max_body_bytes_in_flight (67108864 bytes)")
	if got := g.metric(`mqgate_http_request_bodies_refused_total{limit="max_body_bytes_in_flight"}`); got != 1 {
		t.Errorf("refusals counted: %v; want 1", got)
	}
	if _, err := io.WriteString(holder, `x"}`); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(holder), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// 413: one message of 64 MiB is over http.max_message_bytes; what
	// matters is that the body was read whole and answered.
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("the large body: %d; want 413 for its message", resp.StatusCode)
	}
	g.produceOK("orders", `{"value": "after"}`)
}
