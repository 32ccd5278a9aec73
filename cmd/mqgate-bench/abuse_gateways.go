package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The probes in this file each need a gateway configured for them (a
// small max_topics, a descriptor limit, a plugin run by path), so each
// starts its own next to the scenario's, on an embedded broker of its own.

// abuseGateway is a gateway started for one probe.
type abuseGateway struct {
	http, dir string
	// thrift and consumer are the ProducerService's and the
	// ConsumerService's addresses.
	thrift, consumer string
	cmd              *exec.Cmd
}

// gatewaySetup is what a probe's gateway differs in.
type gatewaySetup struct {
	plugin string // the kafka plugin's entry under plugins: ({builtin: kafka} when empty)
	kafka  string // extra keys of the Kafka plugin's config, "k: v, k: v"
	extra  string // extra top-level YAML
	nofile int    // when set, the RLIMIT_NOFILE (soft and hard) of the gateway and its plugins
	// requestTimeout is http.request_timeout (5s when empty).
	requestTimeout string
	// httpExtra and thriftExtra add keys to http: and thrift:
	// (", k: v").
	httpExtra, thriftExtra string
}

// startAbuseGateway starts a gateway for the probe name, in a directory
// of its own under the scenario's.
func startAbuseGateway(e *env, name string, s gatewaySetup) (*abuseGateway, error) {
	dir := filepath.Join(e.dir, "abuse-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if s.plugin == "" {
		s.plugin = "{builtin: kafka}"
	}
	if s.requestTimeout == "" {
		s.requestTimeout = "5s"
	}
	kafka := fmt.Sprintf("brokers: embedded, listen: %q, data_dir: %q, default_partitions: 1", freeAddr(), filepath.Join(dir, "data"))
	if s.kafka != "" {
		kafka += ", " + s.kafka
	}
	g := &abuseGateway{http: freeAddr(), thrift: freeAddr(), consumer: freeAddr(), dir: dir}
	cfg := fmt.Sprintf(`version: 1
plugins: {kafka: %s}
clusters:
  local: {plugin: kafka, config: {%s}}
default_cluster: local
http: {listen: %q, request_timeout: %s%s}
thrift: {producer_listen: %q, consumer_listen: %q%s}
producer: {spool_dir: %q}
delay: {enabled: false}
%s`, s.plugin, kafka, g.http, s.requestTimeout, s.httpExtra, g.thrift, g.consumer, s.thriftExtra, filepath.Join(dir, "spool"), s.extra)
	cfgPath := filepath.Join(dir, "plugins.yaml")
	cmd := exec.Command(e.bin, "serve", "-c", cfgPath, "-log-level", "warn")
	if s.nofile > 0 {
		cmd = exec.Command("/bin/sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" serve -c "$1" -log-level warn`, s.nofile), e.bin, cfgPath)
	}
	var err error
	if g.cmd, err = launchCmd(cmd, cfgPath, cfg, filepath.Join(dir, "mqgate.log"), g.http, nil); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *abuseGateway) stop() { stopCmd(g.cmd) }

func (g *abuseGateway) url(path string) string { return "http://" + g.http + path }

// plugin is the gateway's one plugin as GET /v1/plugins shows it.
func (g *abuseGateway) plugin() (pid, restarts int, state string) {
	resp, err := http.Get(g.url("/v1/plugins"))
	if err != nil {
		return 0, 0, "unreachable: " + err.Error()
	}
	defer resp.Body.Close()
	var ps []struct {
		PID      int    `json:"pid"`
		Restarts int    `json:"restarts"`
		State    string `json:"state"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ps); err != nil || len(ps) != 1 {
		return 0, 0, fmt.Sprintf("GET /v1/plugins: %d plugins, %v", len(ps), err)
	}
	return ps[0].PID, ps[0].Restarts, ps[0].State
}

// metric is the sum of a metric's samples on the gateway's /metrics.
func (g *abuseGateway) metric(name string) float64 {
	resp, err := http.Get(g.url("/metrics"))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest == "" || rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) > 0 {
			v, _ := strconv.ParseFloat(f[0], 64)
			sum += v
		}
	}
	return sum
}

func (g *abuseGateway) ready() int {
	resp, err := http.Get(g.url("/readyz"))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// until polls cond every 100 ms for at most limit.
func until(limit time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(limit); ; time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// probeManyGroups pulls once in each of 10,000 groups (one session each)
// from one anonymous client while a producer goes on, and watches the
// plugin that holds the sessions (its memory, its restarts), the
// gateway's memory, and the sessions the gateway holds.
func probeManyGroups(e *env) (bool, string, error) {
	const groups, sessionIdle = 10000, 30 * time.Second
	g, err := startAbuseGateway(e, "groups", gatewaySetup{extra: fmt.Sprintf("consume: {session_idle: %s}\n", sessionIdle)})
	if err != nil {
		return false, "", err
	}
	defer g.stop()
	if a, err := call("POST", g.url("/v1/topics/abuse-groups/messages"), `{"value":"m"}`); err != nil || a.status != 200 {
		return false, "", fmt.Errorf("producing: %v %s", err, a.body)
	}
	pid, _, _ := g.plugin()
	before, gatewayBefore := rssMiB(pid), rssMiB(g.cmd.Process.Pid)

	var (
		wg                       sync.WaitGroup
		stop                     = make(chan struct{})
		produced, produceFailed  atomic.Int64
		opened, refused, other   atomic.Int64
		peakRSS, peakSessions    atomic.Int64
		peakGatewayRSS           atomic.Int64
		firstOther, firstRefusal atomic.Value
	)
	wg.Go(func() { // a producer that must not notice the consumers
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if a, err := call("POST", g.url("/v1/topics/abuse-groups/messages"), `{"value":"m"}`); err != nil || a.status != 200 {
				produceFailed.Add(1)
			} else {
				produced.Add(1)
			}
		}
	})
	wg.Go(func() { // the plugin's memory and the gateway's sessions
		for {
			peakRSS.Store(max(peakRSS.Load(), rssMiB(pid)))
			peakGatewayRSS.Store(max(peakGatewayRSS.Load(), rssMiB(g.cmd.Process.Pid)))
			peakSessions.Store(max(peakSessions.Load(), int64(g.metric("mqgate_consume_sessions"))))
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	})
	jobs := make(chan int)
	var pulls sync.WaitGroup
	for range 16 {
		pulls.Go(func() {
			for i := range jobs {
				a, err := call("POST", g.url(fmt.Sprintf("/v1/groups/abuse-g%d/topics/abuse-groups/pull", i)), `{"max_messages":1,"max_wait_ms":0}`)
				switch {
				case err == nil && a.status == 200:
					opened.Add(1)
				case err == nil && a.status == 429 && a.code == 15 && strings.Contains(a.body, "consume.max_sessions"):
					refused.Add(1)
					firstRefusal.CompareAndSwap(nil, a.body)
				default:
					other.Add(1)
					firstOther.CompareAndSwap(nil, fmt.Sprintf("%d %s %v", a.status, a.body, err))
				}
			}
		})
	}
	start := time.Now()
	for i := range groups {
		jobs <- i
	}
	close(jobs)
	pulls.Wait()
	took := time.Since(start)
	// A session joins its group in the background of the pull that opened
	// it: keep producing and watching until every session has closed.
	closed := until(sessionIdle+2*time.Minute, func() bool { return g.metric("mqgate_consume_sessions") == 0 })
	close(stop)
	wg.Wait()
	_, restarts, state := g.plugin()
	// What the closed sessions held is garbage now, returned to the
	// system after the next collection: with little allocation, the one
	// the runtime forces every two minutes.
	const keep = 100 // MiB over the idle plugin
	closedAt := time.Now()
	returned := until(3*time.Minute, func() bool { return rssMiB(pid)-before < keep })
	after, afterTook := rssMiB(pid), time.Since(closedAt)

	const bound = 1500       // MiB over the idle plugin: 1,000 sessions at about 0.6 MiB, and room
	const gatewayBound = 500 // MiB over the idle gateway
	held := peakSessions.Load() <= 1000 && refused.Load() > 0 && other.Load() == 0 && produceFailed.Load() == 0 &&
		restarts == 0 && state == "up" && peakRSS.Load()-before < bound && closed && returned &&
		peakGatewayRSS.Load()-gatewayBefore < gatewayBound
	figures := fmt.Sprintf("%d pulls answered in %s: %d opened a session, %d refused 429/15, %d otherwise; at most %d sessions at once; "+
		"%d produces until every session closed (%t), %d failed; plugin restarts %d; plugin RSS %d MiB before, peak %d (bound +%d), "+
		"%d MiB %s after the last session closed (bound +%d); gateway RSS %d MiB before, peak %d (bound +%d)",
		groups, took.Round(time.Second), opened.Load(), refused.Load(), other.Load(), peakSessions.Load(),
		produced.Load(), closed, produceFailed.Load(), restarts, before, peakRSS.Load(), bound, after, afterTook.Round(time.Second), keep,
		gatewayBefore, peakGatewayRSS.Load(), gatewayBound)
	if v := firstOther.Load(); v != nil {
		figures += "; first other answer: " + v.(string)
	}
	return held, figures, nil
}

// probeManyTopics produces one message to each of 400 new topics with
// max_topics 300.
func probeManyTopics(e *env) (bool, string, error) {
	const topics, maxTopics = 400, 300
	g, err := startAbuseGateway(e, "topics", gatewaySetup{kafka: fmt.Sprintf("max_topics: %d", maxTopics)})
	if err != nil {
		return false, "", err
	}
	defer g.stop()
	var ok, refused, other int
	var firstOther string
	for i := range topics {
		a, err := call("POST", g.url(fmt.Sprintf("/v1/topics/abuse-t%d/messages", i)), `{"value":"m"}`)
		switch {
		case err == nil && a.status == 200:
			ok++
		case err == nil && a.status == 404 && a.code == 14 && strings.Contains(a.body, "max_topics"):
			refused++
		default:
			other++
			if firstOther == "" {
				firstOther = fmt.Sprintf("%d %s %v", a.status, a.body, err)
			}
		}
	}
	again, err := call("POST", g.url("/v1/topics/abuse-t0/messages"), `{"value":"again"}`)
	if err != nil {
		return false, "", err
	}
	pid, _, _ := g.plugin()
	fds := countFDs(pid)
	ready := g.ready()
	held := ok == maxTopics && refused == topics-maxTopics && other == 0 && again.status == 200 && ready == 200
	figures := fmt.Sprintf("max_topics %d: %d created, %d refused 404/14 naming max_topics, %d otherwise; an existing topic afterwards: %d; "+
		"/readyz %d; plugin descriptors %d", maxTopics, ok, refused, other, again.status, ready, fds)
	if firstOther != "" {
		figures += "; first other answer: " + firstOther
	}
	return held, figures, nil
}

// probeDescriptors runs the plugin out of file descriptors (a limit of
// 256, max_topics far above it) by creating topics, then sends an async
// message to yet another new topic: the gateway must say 503/17 and
// unready, never 100, and the spool must keep the message to retry,
// never reject it.
func probeDescriptors(e *env) (bool, string, error) {
	g, err := startAbuseGateway(e, "descriptors", gatewaySetup{kafka: "max_topics: 1000", nofile: 256})
	if err != nil {
		return false, "", err
	}
	defer g.stop()
	var last answer
	created := 0
	for i := range 256 {
		if last, err = call("POST", g.url(fmt.Sprintf("/v1/topics/abuse-fd%d/messages", i)), `{"value":"m"}`); err != nil {
			return false, "", err
		}
		if last.status != 200 {
			break
		}
		created++
	}
	ready := g.ready()
	async, err := call("POST", g.url("/v1/topics/abuse-fd-async/messages?mode=async"), `{"value":"accepted"}`)
	if err != nil {
		return false, "", err
	}
	// The spool retries what the broker refuses for now; give it a few
	// attempts, which is where it used to reject the message.
	time.Sleep(5 * time.Second)
	rejected := g.metric("mqgate_spool_rejected_total")
	depth := g.metric("mqgate_spool_depth_messages")
	_, statErr := os.Stat(filepath.Join(g.dir, "spool", "rejected.jsonl"))
	held := last.status == 503 && last.code == 17 && strings.Contains(last.body, "too many open files") && ready == 503 &&
		async.status == 202 && rejected == 0 && depth == 1 && os.IsNotExist(statErr)
	return held, fmt.Sprintf("RLIMIT_NOFILE 256: %d topics created, then %d/%d (too many open files named: %t); /readyz %d; "+
		"an async message meanwhile: %d, after 5 s %v rejected and %v waiting in the spool, rejected.jsonl present: %t",
		created, last.status, last.code, strings.Contains(last.body, "too many open files"), ready,
		async.status, rejected, depth, statErr == nil), nil
}

// probeReplacedPlugin runs the Kafka plugin by path with its sha256,
// replaces the file, and kills the plugin: every restart then fails, and
// a produce must be answered at once with 503/17 naming the checksum.
func probeReplacedPlugin(e *env) (bool, string, error) {
	dir := filepath.Join(e.dir, "abuse-replaced")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, "", err
	}
	wrapper := filepath.Join(dir, "kafka-plugin")
	script := []byte("#!/bin/sh\nexec " + e.bin + " plugin kafka\n")
	if err := os.WriteFile(wrapper, script, 0o755); err != nil {
		return false, "", err
	}
	sum := sha256.Sum256(script)
	g, err := startAbuseGateway(e, "replaced", gatewaySetup{
		plugin: fmt.Sprintf("{path: %q, sha256: %q}", wrapper, hex.EncodeToString(sum[:])),
		// An answer that waits for the request timeout is no answer.
		requestTimeout: "10m",
	})
	if err != nil {
		return false, "", err
	}
	defer g.stop()
	if a, err := call("POST", g.url("/v1/topics/abuse-replaced/messages"), `{"value":"m"}`); err != nil || a.status != 200 {
		return false, "", fmt.Errorf("producing: %v %s", err, a.body)
	}
	if err := os.WriteFile(wrapper, append(script, "# upgraded\n"...), 0o755); err != nil {
		return false, "", err
	}
	pid, _, _ := g.plugin()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return false, "", err
	}
	if !until(time.Minute, func() bool { return g.ready() == 503 }) {
		return false, "", fmt.Errorf("/readyz still %d a minute after the plugin was killed", g.ready())
	}
	start := time.Now()
	a, err := call("POST", g.url("/v1/topics/abuse-replaced/messages"), `{"value":"m"}`)
	took := time.Since(start)
	if err != nil {
		return false, "", err
	}
	_, _, state := g.plugin()
	named := strings.Contains(a.body, "sha256")
	held := a.status == 503 && a.code == 17 && named && took < 5*time.Second
	return held, fmt.Sprintf("produce while every restart fails: %d/%d in %s (the sha256 named: %t; request timeout 10m); plugin %s",
		a.status, a.code, took.Round(time.Millisecond), named, state), nil
}

// countFDs is the number of a process's open file descriptors.
func countFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}
