package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
)

// configured is what a config says of one listener kind's caps.
type configured struct{ Max, PerSource int }

// The listeners' caps come from the config or from the descriptor limit,
// and a config whose caps leave no room for the gateway's own descriptors
// is refused naming the keys.
func TestResolveConnectionLimits(t *testing.T) {
	for _, tc := range []struct {
		name             string
		nofile           int
		http, thrift     configured
		wantHTTP, wantTh listenerCap
		wantErr          string
	}{
		{name: "derived from a large limit", nofile: 1 << 20,
			wantHTTP: listenerCap{10000, 1000}, wantTh: listenerCap{10000, 1000}},
		{name: "derived from 1024", nofile: 1024,
			wantHTTP: listenerCap{298, 149}, wantTh: listenerCap{298, 149}},
		{name: "configured", nofile: 1 << 20, http: configured{Max: 50, PerSource: 50}, thrift: configured{Max: 7},
			wantHTTP: listenerCap{50, 50}, wantTh: listenerCap{7, 3}},
		{name: "unknown limit", nofile: 0,
			wantHTTP: listenerCap{10000, 1000}, wantTh: listenerCap{10000, 1000}},
		{name: "too many for the limit", nofile: 1024, thrift: configured{Max: 400},
			wantErr: "thrift.limits.max_connections"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{}
			cfg.HTTP.Limits.MaxConnections, cfg.HTTP.Limits.MaxConnectionsPerSource = tc.http.Max, tc.http.PerSource
			cfg.Thrift.Limits.MaxConnections, cfg.Thrift.Limits.MaxConnectionsPerSource = tc.thrift.Max, tc.thrift.PerSource
			got, err := resolveConnectionLimits(cfg, tc.nofile)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || got.http != tc.wantHTTP || got.thrift != tc.wantTh {
				t.Fatalf("got http %+v thrift %+v, %v; want %+v, %+v", got.http, got.thrift, err, tc.wantHTTP, tc.wantTh)
			}
		})
	}
}

// dialFrom connects to addr from the loopback address from: 127.0.0.0/8 is
// all loopback on Linux, so one machine can be several clients.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closes c, reading (and
// dropping) whatever it sends first; false when c stays open for 30 s.
func closedByServer(c net.Conn) ([]byte, bool) {
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return b, false
	}
	return b, true // EOF, or a reset: closed either way
}

// A client holding as many idle connections as it may, opening more, and
// trickling a request in cannot take the gateway from anyone else: its
// excess HTTP connections get 503 code 17 naming the limit, its excess
// Thrift ones are closed, its trickled requests are cut off, and another
// client produces over HTTP and Thrift throughout while /healthz answers.
func TestConnectionFloodsAreRefused(t *testing.T) {
	const perSource = 5
	dir := t.TempDir()
	s := writeConfig(t, dir, embeddedKafka(t, dir), options{
		httpExtra: fmt.Sprintf("limits: {max_connections: 40, max_connections_per_source: %d, header_timeout: 1s}", perSource),
		thrift:    fmt.Sprintf("limits: {max_connections: 40, max_connections_per_source: %d, read_timeout: 1s}", perSource),
	})
	g := startGateway(t, s)
	g.produceOK("flood", `{"value": "before"}`)

	// The legitimate client, from 127.0.0.1, produces over both
	// frontends until the flood is over.
	conf := &thrift.TConfiguration{}
	trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(g.thriftAddr, conf), conf)
	if err := trans.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = trans.Close() })
	client := producer.NewProducerServiceClientFactory(trans, thrift.NewTCompactProtocolFactoryConf(conf))
	var ok, failed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			m := producer.NewMessage()
			m.Topic, m.Value = "flood", fmt.Sprintf("thrift-%d", i)
			r, err := client.SendSync(ctx, m, 5000)
			cancel()
			if err == nil && r.Code == 0 {
				ok.Add(1)
			} else {
				failed.Add(1)
				lastErr.Store(fmt.Sprintf("thrift: %+v %v", r, err))
			}
			resp, err := http.Post("http://"+g.httpAddr+"/v1/topics/flood/messages", "application/json", strings.NewReader(`{"value": "http"}`))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if err == nil && resp.StatusCode == 200 {
				ok.Add(1)
			} else {
				failed.Add(1)
				lastErr.Store(fmt.Sprintf("http: %v %v", resp, err))
			}
		}
	})
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	})

	const flooder = "127.0.0.2"
	// HTTP: perSource keep-alive connections, each idle after one request.
	for range perSource {
		c := dialFrom(t, flooder, g.httpAddr)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("an idle connection's first request: %v, %v", resp, err)
		}
		resp.Body.Close()
	}
	// Every one more is answered 503, code 17, naming the key, and closed.
	for i := range 3 {
		c := dialFrom(t, flooder, g.httpAddr)
		answer, closed := closedByServer(c)
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(answer))), nil)
		if !closed || err != nil {
			t.Fatalf("HTTP connection %d past the limit: closed %v, answer %q (%v); want a 503 then a close", i, closed, answer, err)
		}
		var body apiError
		_ = json.NewDecoder(resp.Body).Decode(&body)
		want := fmt.Sprintf("http.limits.max_connections_per_source is %d", perSource)
		if resp.StatusCode != 503 || body.Error.Code != 17 || !strings.Contains(body.Error.Message, want) {
			t.Fatalf("HTTP connection %d past the limit: %d %+v; want 503, code 17, naming %q", i, resp.StatusCode, body, want)
		}
	}

	// Thrift: perSource idle connections, then more, which are closed.
	for range perSource {
		dialFrom(t, flooder, g.thriftAddr)
	}
	waitFor(t, "the idle Thrift connections to be held", func() bool {
		return g.metric(`mqgate_listener_connections{listener="thrift_producer"}`) >= perSource+1 // the legitimate client's too
	})
	for i := range 3 {
		if _, closed := closedByServer(dialFrom(t, flooder, g.thriftAddr)); !closed {
			t.Fatalf("Thrift connection %d past the limit was kept open", i)
		}
	}
	waitFor(t, "the refused Thrift connections to be counted", func() bool {
		return g.metric(`mqgate_listener_refused_connections_total{listener="thrift_producer",reason="max_connections_per_source"}`) == 3
	})

	// Slowloris, from another address: HTTP headers and a Thrift frame
	// that trickle in are cut off by header_timeout and read_timeout.
	const slow = "127.0.0.3"
	hc := dialFrom(t, slow, g.httpAddr)
	tc := dialFrom(t, slow, g.thriftAddr)
	frame := binary.BigEndian.AppendUint32(nil, 1000) // announces 1000 bytes, sends a few
	for _, step := range []struct {
		c     net.Conn
		first []byte
		more  string
	}{{hc, []byte("GET /healthz HTTP/1.1\r\n"), "X-Slow: 1\r\n"}, {tc, append(frame, 0x82, 0x21), "\x00"}} {
		if _, err := step.c.Write(step.first); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := io.WriteString(step.c, step.more); err != nil {
					return // closed by the server
				}
			}
		})
	}
	if answer, closed := closedByServer(hc); !closed {
		t.Fatal("an HTTP request whose headers trickle in held its connection past http.limits.header_timeout")
	} else if len(answer) > 0 && !strings.HasPrefix(string(answer), "HTTP/1.1 408") {
		t.Errorf("the trickling HTTP request was answered %q", answer)
	}
	if _, closed := closedByServer(tc); !closed {
		t.Fatal("a Thrift request trickling in held its connection past thrift.limits.read_timeout")
	}

	if got := g.status("/healthz"); got != 200 {
		t.Errorf("/healthz during the flood = %d; want 200", got)
	}
	// The legitimate client has produced meanwhile; let it do one more
	// round, then stop it.
	before := ok.Load()
	waitFor(t, "the legitimate client to produce", func() bool { return ok.Load() >= before+2 })
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Errorf("the legitimate client failed %d of %d requests during the flood; last: %v", failed.Load(), failed.Load()+ok.Load(), lastErr.Load())
	}
	t.Logf("legitimate requests during the flood: %d ok, %d failed", ok.Load(), failed.Load())
	if refused := g.metric(`mqgate_listener_refused_connections_total{listener="http",reason="max_connections_per_source"}`); refused != 3 {
		t.Errorf("refused HTTP connections counted = %v, want 3", refused)
	}
}
