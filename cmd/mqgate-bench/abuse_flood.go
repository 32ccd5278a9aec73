package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
)

// floodEnv, when set, makes the bench process a flood child: it opens the
// connections its JSON value (a floodSpec) describes, says so on stdout,
// and holds them until its stdin closes. The flood takes more descriptors
// than one process may hold (RLIMIT_NOFILE's hard limit), so it is split
// over children.
const floodEnv = "MQGATE_BENCH_FLOOD"

// floodSpec is one child's share of the flood.
type floodSpec struct {
	Addr    string   `json:"addr"`
	HTTP    bool     `json:"http"` // send one keep-alive request on each, then idle
	Count   int      `json:"count"`
	Sources []string `json:"sources"` // local addresses, round-robin
}

// floodReport is a child's one line on stdout once its connections are
// open.
type floodReport struct {
	Dialed, DialErrors, Answered200, Answered503, Other int
}

// raiseOwnNoFileLimit raises this process's soft RLIMIT_NOFILE to its
// hard limit and returns it.
func raiseOwnNoFileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l) // the figure below says what we got
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	return l.Cur
}

func runFloodChild(specJSON string) error {
	var spec floodSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fmt.Errorf("%s: %w", floodEnv, err)
	}
	raiseOwnNoFileLimit()
	var (
		mu    sync.Mutex
		rep   floodReport
		conns []net.Conn
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= spec.Count {
					return
				}
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(spec.Sources[i%len(spec.Sources)])}, Timeout: 10 * time.Second}
				c, err := d.Dial("tcp", spec.Addr)
				mu.Lock()
				if err != nil {
					rep.DialErrors++
					mu.Unlock()
					continue
				}
				rep.Dialed++
				conns = append(conns, c)
				mu.Unlock()
				if !spec.HTTP {
					continue
				}
				status := 0
				if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"); err == nil {
					_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
					if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
						status = resp.StatusCode
						resp.Body.Close()
					}
					_ = c.SetReadDeadline(time.Time{})
				}
				mu.Lock()
				switch status {
				case 200:
					rep.Answered200++
				case 503:
					rep.Answered503++
				default:
					rep.Other++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	line, _ := json.Marshal(rep)
	fmt.Println(string(line))
	_, _ = io.Copy(io.Discard, os.Stdin) // hold the connections until the parent closes stdin
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// floodChild is a running flood child.
type floodChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	report floodReport
}

func startFloodChild(spec floodSpec) (*floodChild, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	js, _ := json.Marshal(spec)
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), floodEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := &floodChild{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &ch.report)
	}
	if err != nil {
		ch.stop()
		return nil, fmt.Errorf("flood child on %s: %w", spec.Addr, err)
	}
	return ch, nil
}

func (c *floodChild) stop() {
	c.stdin.Close()
	_ = c.cmd.Wait()
}

// slowloris sends the first bytes of a request on a new connection from
// source and one more byte every 500 ms until stop closes or the server
// closes the connection; closed reports which.
type slowloris struct {
	conn   net.Conn
	closed chan struct{}
}

func startSlowloris(addr, source string, first []byte, more string, stop <-chan struct{}) (*slowloris, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(first); err != nil {
		c.Close()
		return nil, err
	}
	s := &slowloris{conn: c, closed: make(chan struct{})}
	go func() {
		defer close(s.closed)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := io.WriteString(c, more); err != nil {
				return
			}
		}
	}()
	// The reader notices the server's close before the writer does.
	go func() {
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	}()
	return s, nil
}

// probeConnectionFlood opens 20,000 idle connections from ten addresses,
// split over the HTTP listener and both Thrift listeners, plus a
// slowloris on each listener, while a legitimate client keeps producing
// over HTTP and Thrift. The gateway holds each address to
// max_connections_per_source, so the flood is refused before its
// descriptors run out: the legitimate client must not fail, /healthz
// must answer on a new connection, and the slowloris connections must be
// closed.
func probeConnectionFlood(e *env) (bool, string, error) {
	const (
		total     = 20000
		perSource = 500
		maxConns  = 6000
	)
	g, err := startAbuseGateway(e, "flood", gatewaySetup{
		httpExtra:   fmt.Sprintf(", limits: {max_connections: %d, max_connections_per_source: %d, header_timeout: 2s}", maxConns, perSource),
		thriftExtra: fmt.Sprintf(", limits: {max_connections: %d, max_connections_per_source: %d, read_timeout: 2s}", maxConns, perSource),
	})
	if err != nil {
		return false, "", err
	}
	defer g.stop()
	pid := g.cmd.Process.Pid
	own := raiseOwnNoFileLimit()
	if a, err := call("POST", g.url("/v1/topics/abuse-flood/messages"), `{"value":"first"}`); err != nil || a.status != 200 {
		return false, "", fmt.Errorf("producing before the flood: %v %+v", err, a)
	}

	// The legitimate client, from 127.0.0.1: one Thrift connection and
	// an HTTP client, producing in turn until stopped.
	conf := &thrift.TConfiguration{}
	trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(g.thrift, conf), conf)
	if err := trans.Open(); err != nil {
		return false, "", err
	}
	defer trans.Close()
	client := producer.NewProducerServiceClientFactory(trans, thrift.NewTCompactProtocolFactoryConf(conf))
	var ok, failed atomic.Int64
	var lastFailure atomic.Value
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
			m.Topic, m.Value = "abuse-flood", fmt.Sprintf("thrift-%d", i)
			r, err := client.SendSync(ctx, m, 5000)
			cancel()
			if err == nil && r.Code == 0 {
				ok.Add(1)
			} else {
				failed.Add(1)
				lastFailure.Store(fmt.Sprintf("thrift %+v %v", r, err))
			}
			if a, err := call("POST", g.url("/v1/topics/abuse-flood/messages"), `{"value":"http"}`); err == nil && a.status == 200 {
				ok.Add(1)
			} else {
				failed.Add(1)
				lastFailure.Store(fmt.Sprintf("http %+v %v", a, err))
			}
		}
	})
	stopLegit := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLegit()
	until(2*time.Second, func() bool { return ok.Load() >= 10 })
	fdsBefore, rssBefore := countFDs(pid), rssMiB(pid)

	// A slowloris on each listener, from 127.0.0.3.
	frame := binary.BigEndian.AppendUint32(nil, 1000) // announces 1000 bytes, sends a few
	var slow []*slowloris
	for _, s := range []struct {
		addr  string
		first []byte
		more  string
	}{
		{g.http, []byte("GET /healthz HTTP/1.1\r\n"), "X"},
		{g.thrift, append(frame, 0x82, 0x21), "\x00"},
		{g.consumer, append(frame, 0x82, 0x21), "\x00"},
	} {
		sl, err := startSlowloris(s.addr, "127.0.0.3", s.first, s.more, stop)
		if err != nil {
			return false, "", err
		}
		defer sl.conn.Close()
		slow = append(slow, sl)
	}

	// The flood: one child per listener, ten source addresses each.
	var sources []string
	for i := 1; i <= 10; i++ {
		sources = append(sources, fmt.Sprintf("127.0.1.%d", i))
	}
	started := time.Now()
	okAtStart, failedAtStart := ok.Load(), failed.Load()
	var children []*floodChild
	defer func() {
		for _, c := range children {
			c.stop()
		}
	}()
	for i, l := range []struct {
		addr string
		http bool
	}{{g.http, true}, {g.thrift, false}, {g.consumer, false}} {
		n := total / 3
		if i == 0 {
			n += total % 3
		}
		c, err := startFloodChild(floodSpec{Addr: l.addr, HTTP: l.http, Count: n, Sources: sources})
		if err != nil {
			return false, "", err
		}
		children = append(children, c)
	}
	openTime := time.Since(started)
	var rep floodReport
	for _, c := range children {
		rep.Dialed += c.report.Dialed
		rep.DialErrors += c.report.DialErrors
		rep.Answered200 += c.report.Answered200
		rep.Answered503 += c.report.Answered503
		rep.Other += c.report.Other
	}
	// The kernel completes handshakes ahead of the gateway's accepts:
	// wait until the gateway has seen every connection (each listener
	// holds at most ten addresses' worth), then measure.
	refusedPer := 0.0
	until(30*time.Second, func() bool {
		refusedPer = g.metric(`mqgate_listener_refused_connections_total`)
		return refusedPer >= float64(rep.Dialed-3*10*perSource)
	})
	fdsDuring, rssDuring := countFDs(pid), rssMiB(pid)
	healthz, err := call("GET", g.url("/healthz"), "")
	if err != nil {
		healthz = answer{body: err.Error()}
	}
	slowClosed := 0
	for _, s := range slow {
		select {
		case <-s.closed:
			slowClosed++
		case <-time.After(10 * time.Second):
		}
	}
	held := map[string]float64{}
	for _, l := range []string{"http", "thrift_producer", "thrift_consumer"} {
		held[l] = g.metric(fmt.Sprintf(`mqgate_listener_connections{listener=%q}`, l))
	}
	// The legitimate client goes on a little longer under the held flood.
	before := ok.Load()
	until(10*time.Second, func() bool { return ok.Load() >= before+20 })
	stopLegit()

	ok2, failed2 := ok.Load()-okAtStart, failed.Load()-failedAtStart
	figures := fmt.Sprintf("%d idle connections from 10 addresses (opened in %s; %d dial errors; HTTP ones answered 200: %d, 503/17: %d, closed unanswered: %d; bench RLIMIT_NOFILE %d, split over 3 processes); "+
		"held: http %.0f, thrift_producer %.0f, thrift_consumer %.0f; refused %.0f (per_source %d, max %d per listener); "+
		"legitimate requests during: %d ok, %d failed; /healthz on a new connection: %d; slowloris closed: %d of 3; "+
		"gateway descriptors %d before, %d during (limit 20,000, of which 1,024 reserved); RSS %d MiB before, %d MiB during",
		rep.Dialed, openTime.Round(100*time.Millisecond), rep.DialErrors, rep.Answered200, rep.Answered503, rep.Other, own,
		held["http"], held["thrift_producer"], held["thrift_consumer"], refusedPer, perSource, maxConns,
		ok2, failed2, healthz.status, slowClosed, fdsBefore, fdsDuring, rssBefore, rssDuring)
	if v := lastFailure.Load(); v != nil {
		figures += "; last failure: " + v.(string)
	}
	if rep.DialErrors > 0 {
		figures += "; dial errors count as refused by the kernel"
	}
	ok3 := failed2 == 0 && ok2 > 0 && healthz.status == 200 && slowClosed == 3 && refusedPer > 0 && fdsDuring > 0 && fdsDuring < 20000-1024
	return ok3, figures, nil
}
