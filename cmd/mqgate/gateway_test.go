package main

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mqgateBin is the gateway binary the tests run, built once with the race
// detector; rmqreadBin is RocketMQ's own Go client reading a topic, built
// without it (see internal/brokertest/rmqread).
var mqgateBin, rmqreadBin string

func TestMain(m *testing.M) {
	if os.Getenv(unvalidatedPluginEnv) != "" {
		serveUnvalidatedPlugin()
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "mqgate-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mqgateBin = filepath.Join(dir, "mqgate")
	rmqreadBin = filepath.Join(dir, "rmqread")
	fileSinkBin = filepath.Join(dir, "filesink")
	for _, args := range [][]string{
		{"build", "-race", "-o", mqgateBin, "."},
		{"build", "-o", rmqreadBin, "../../internal/brokertest/rmqread"},
		{"build", "-o", fileSinkBin, "../../examples/filesink/cmd/filesink"},
	} {
		build := exec.Command("go", args...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "go %v: %v\n", args, err)
			os.Exit(1)
		}
	}
	// check runs in the test process: its bundled plugins must come from
	// the mqgate binary, not from the test binary it would exec otherwise.
	selfPath = mqgateBin
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// anyPort is the listen address the tests give every listener: the OS picks
// a free port as the process binds it, and the test reads the port back
// from the gateway's log, so no port changes hands through a window in
// which another process could take it.
const anyPort = "127.0.0.1:0"

// gateway is one mqgate process under test, with the addresses its
// listeners got.
type gateway struct {
	t *testing.T
	*setup
	cmd    *exec.Cmd
	log    *processLog
	exited chan error
	gone   chan struct{} // closed when the process has exited
	// httpAddr, thriftAddr and consumerAddr are where the HTTP API and
	// the Thrift ProducerService and ConsumerService listen.
	httpAddr, thriftAddr, consumerAddr string
}

// setup is a written plugins.yaml and what it names.
type setup struct {
	cfgPath string
	broker  *testBroker
	// nofile, when set, is the RLIMIT_NOFILE (soft and hard) the gateway,
	// and so its plugins, start with.
	nofile int
	// https, when set, is the client of a gateway whose HTTP API speaks
	// TLS (http.tls); status, metric and produce go through it.
	https *http.Client
}

// httpURL returns the URL of path on the gateway's HTTP API, and the
// client to ask it with.
func (g *gateway) httpURL(path string) (*http.Client, string) {
	if g.https != nil {
		return g.https, "https://" + g.httpAddr + path
	}
	return http.DefaultClient, "http://" + g.httpAddr + path
}

// options shape the plugins.yaml writeConfig writes.
type options struct {
	// plugin replaces the plugins: entry ({builtin: NAME} by default).
	plugin string
	// morePlugins are entries added under plugins:, each "NAME: VALUE".
	morePlugins []string
	// thrift adds keys to the thrift: map ("transport: buffered").
	thrift string
	// extra is YAML appended to the file.
	extra string
	// requestTimeout is http.request_timeout (5s by default).
	requestTimeout string
	// httpExtra adds keys to the http: map.
	httpExtra string
	// producer adds keys to the producer: map ("linger: 0s").
	producer string
	// delay runs the delay service, with one level of tiers. Off by
	// default: a gateway's tier consumer groups cost seconds of CPU to
	// join, which tests that do not delay messages need not pay.
	delay bool
}

// writeConfig writes a plugins.yaml whose one cluster, "local", is b, with
// the spool under dir. Every listener takes a port the OS picks.
func writeConfig(t *testing.T, dir string, b *testBroker, o options) *setup {
	t.Helper()
	s := &setup{broker: b}
	if o.plugin == "" {
		o.plugin = "{builtin: " + b.plugin + "}"
	}
	if o.requestTimeout == "" {
		o.requestTimeout = "5s"
	}
	thrift := fmt.Sprintf("producer_listen: %q, consumer_listen: %q", anyPort, anyPort)
	httpExtra := ""
	if o.httpExtra != "" {
		httpExtra = ", " + o.httpExtra
	}
	if o.thrift != "" {
		thrift += ", " + o.thrift
	}
	producer := ""
	if o.producer != "" {
		producer = ", " + o.producer
	}
	more := ""
	for _, p := range o.morePlugins {
		more += "  " + p + "\n"
	}
	cfg := fmt.Sprintf(`version: 1
plugins:
  %s: %s
%sclusters:
  local:
    plugin: %s
    config: %s
default_cluster: local
http: {listen: %q, request_timeout: %s%s}
thrift: {%s}
plugin_host: {health_interval: 200ms, restart_backoff_max: 500ms}
producer: {spool_dir: %q%s}
%s`, b.plugin, o.plugin, more, b.plugin, b.config, anyPort, o.requestTimeout, httpExtra, thrift, filepath.Join(dir, "spool"), producer, o.extra)
	if o.delay {
		// Tiers of 1 to 9 s: 9 groups to join rather than 36; the tests'
		// delays are all shorter, and longer ones would cycle the 9 s tier.
		cfg += "\ndelay: {levels: 1}\n"
	} else {
		cfg += "\ndelay: {enabled: false}\n"
	}
	s.cfgPath = filepath.Join(dir, "plugins.yaml")
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// startLocal runs a gateway on a local broker of kind, with the defaults of
// writeConfig.
func startLocal(t *testing.T, kind brokerKind) *gateway {
	dir := t.TempDir()
	return startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{}))
}

func startGateway(t *testing.T, s *setup) *gateway {
	t.Helper()
	g := startGatewayUnready(t, s)
	waitFor(t, "the gateway to be ready", func() bool { return g.status("/readyz") == 200 })
	return g
}

// startGatewayUnready starts a gateway and waits until its listeners are
// up and it answers /readyz, ready or not. An embedded broker's address is
// known from then on too.
func startGatewayUnready(t *testing.T, s *setup) *gateway {
	t.Helper()
	g := &gateway{t: t, setup: s, log: newProcessLog(), exited: make(chan error, 1), gone: make(chan struct{})}
	// The log printed when a test fails; debug adds the Kafka client's
	// group joins and assignments (CONTRIBUTING.md, Tests).
	level := cmp.Or(os.Getenv("MQGATE_TEST_LOG_LEVEL"), "info")
	g.cmd = exec.Command(mqgateBin, "serve", "-c", s.cfgPath, "-log-level", level)
	if s.nofile > 0 {
		g.cmd = exec.Command("/bin/sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" serve -c "$1" -log-level "$2"`, s.nofile), mqgateBin, s.cfgPath, level)
	}
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := g.cmd.Wait()
		close(g.gone)
		g.exited <- err
	}()
	t.Cleanup(func() {
		// A clean stop, so the plugin has closed its broker before the
		// test's TempDir, which holds the broker's data, is removed.
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(30 * time.Second):
			_ = g.cmd.Process.Kill()
			<-g.exited
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.log.String())
		}
	})
	// The frontends listen last, after the plugins are configured.
	g.consumerAddr = g.logged("thrift ConsumerService listening", "addr")
	g.httpAddr = g.logged("http listening", "addr")
	g.thriftAddr = g.logged("thrift ProducerService listening", "addr")
	if s.broker != nil && s.broker.embedded {
		s.broker.addr = g.logged("embedded broker listening", "addr")
		// A restarted plugin restarts its broker on a new port.
		s.broker.latest = func() string { return g.log.last("embedded broker listening", "addr") }
	}
	waitFor(t, "the gateway to answer", func() bool { return g.status("/readyz") != 0 })
	return g
}

// logged waits for the gateway to log a line with message msg and returns
// the value of its attribute key. It fails the test if the gateway exits
// first.
func (g *gateway) logged(msg, key string) string {
	g.t.Helper()
	v, err := g.log.wait(msg, key, g.gone, 60*time.Second)
	if err != nil {
		g.t.Fatalf("%v; gateway log:\n%s", err, g.log.String())
	}
	return v
}

// eventuallyLogged reports whether the gateway logs text within a minute.
// The log reaches the test through a pipe, so a line written while a
// request was answered may arrive just after the answer.
func (g *gateway) eventuallyLogged(text string) bool {
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(g.log.String(), text) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// kill9 kills the gateway with SIGKILL and waits until its orphaned
// plugins have stopped too (so the embedded broker's port is free again).
func (g *gateway) kill9() {
	g.t.Helper()
	var pids []int
	for _, p := range g.plugins() {
		pids = append(pids, p.PID)
	}
	if err := g.cmd.Process.Kill(); err != nil {
		g.t.Fatal(err)
	}
	<-g.exited
	g.exited <- nil // for the cleanup
	waitFor(g.t, "the orphaned plugins to exit", func() bool {
		// A plugin was the gateway's child; once orphaned it is reaped by
		// init, so signal 0 fails when it is gone.
		for _, pid := range pids {
			if pid > 0 && syscall.Kill(pid, 0) == nil {
				return false
			}
		}
		return true
	})
}

// processLog is a process's output, written by the process while the test
// reads it.
type processLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newProcessLog() *processLog { return &processLog{changed: make(chan struct{})} }

func (l *processLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.changed)
	l.changed = make(chan struct{})
	return l.buf.Write(p)
}

func (l *processLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// wait returns the value of attribute key on the first line logged with
// message msg (slog's text format), waiting for it until timeout or until
// gone is closed (the process exited: its output is complete).
func (l *processLog) wait(msg, key string, gone <-chan struct{}, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for exited := false; ; {
		l.mu.Lock()
		v, ok := loggedValue(l.buf.String(), msg, key)
		changed := l.changed
		l.mu.Unlock()
		switch {
		case ok:
			return v, nil
		case exited:
			return "", fmt.Errorf("the process exited without logging %q with %s", msg, key)
		}
		select {
		case <-changed:
		case <-gone:
			exited = true
		case <-deadline:
			return "", fmt.Errorf("no %q with %s logged in %v", msg, key, timeout)
		}
	}
}

// last returns the value of attribute key on the last line logged so far
// with message msg, "" when there is none.
func (l *processLog) last(msg, key string) string {
	l.mu.Lock()
	text := l.buf.String()
	l.mu.Unlock()
	v := ""
	for line := range strings.Lines(text) {
		if lv, ok := loggedValue(line, msg, key); ok {
			v = lv
		}
	}
	return v
}

// loggedValue finds the first line of log whose message is msg and returns
// its attribute key.
func loggedValue(log, msg, key string) (string, bool) {
	quoted := strconv.Quote(msg)
	for line := range strings.Lines(log) {
		if !strings.Contains(line, " msg="+quoted+" ") && !strings.Contains(line, " msg="+msg+" ") {
			continue
		}
		_, rest, ok := strings.Cut(line, " "+key+"=")
		if !ok {
			continue
		}
		v, _, _ := strings.Cut(strings.TrimRight(rest, "\n"), " ")
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		}
		return v, true
	}
	return "", false
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// read reads want records of topic back with the broker's own client.
func (g *gateway) read(topic string, want int) []brokerRecord {
	g.t.Helper()
	return g.broker.read(g.t, topic, want)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *gateway) status(path string) int {
	client, url := g.httpURL(path)
	resp, err := client.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// metric returns the sum of every series of the named metric that the
// gateway's /metrics shows, 0 when there is none.
func (g *gateway) metric(name string) float64 {
	g.t.Helper()
	client, url := g.httpURL("/metrics")
	resp, err := client.Get(url)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Fatal(err)
	}
	sum := 0.0
	for line := range strings.Lines(string(text)) {
		line = strings.TrimSpace(line)
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		series, value := line[:i], line[i+1:]
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			g.t.Fatalf("/metrics: %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

type produceResult struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Code      int    `json:"code"`
	Message   string `json:"message"`
}

type apiError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (g *gateway) produce(topic, body string) (int, []byte) {
	g.t.Helper()
	client, url := g.httpURL("/v1/topics/" + topic + "/messages")
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (g *gateway) produceOK(topic, body string) []produceResult {
	g.t.Helper()
	code, b := g.produce(topic, body)
	var out struct{ Results []produceResult }
	if code != 200 || json.Unmarshal(b, &out) != nil {
		g.t.Fatalf("produce to %s: %d %s", topic, code, b)
	}
	return out.Results
}

type pluginStatus struct {
	Name        string `json:"name"`
	State       string `json:"state"`
	PID         int    `json:"pid"`
	InProcess   bool   `json:"in_process"`
	Restarts    int    `json:"restarts"`
	BrokerError string `json:"broker_error"`
}

func (g *gateway) plugins() []pluginStatus {
	g.t.Helper()
	resp, err := http.Get("http://" + g.httpAddr + "/v1/plugins")
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []pluginStatus
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		g.t.Fatal(err)
	}
	return out
}

func valuesOf(rs []brokerRecord) map[string]bool {
	m := map[string]bool{}
	for _, r := range rs {
		m[r.Value] = true
	}
	return m
}

func TestServeProduceAndReadBack(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		g := startLocal(t, kind)
		res := g.produceOK("orders", `{"key":"k1","value":"hello","headers":{"h":"v"}}`)
		if len(res) != 1 || res[0].Code != 0 || res[0].Offset != 0 || res[0].Partition < 0 {
			t.Fatalf("results = %+v", res)
		}
		r := g.read("orders", 1)[0]
		if r.Key != "k1" || r.Value != "hello" || r.Partition != res[0].Partition || r.Headers["h"] != "v" {
			t.Fatalf("the broker's own client read %+v", r)
		}

		resp, err := http.Get("http://" + g.httpAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`mqgate_plugin_calls_total{code="0",instance="local",method="Produce"} 1`,
			`mqgate_plugin_up{instance="local"} 1`,
			`mqgate_http_requests_total{code="200",method="POST",route="/v1/topics/:topic/messages"} 1`,
			`mqgate_plugin_call_duration_seconds_count{instance="local",method="Produce"} 1`,
			`mqgate_produce_batch_records_count{cluster="local"} 1`,
			`mqgate_spool_depth_messages 0`,
			`mqgate_spool_oldest_age_seconds 0`,
			`mqgate_spool_forwarded_total 0`,
		} {
			if !strings.Contains(string(metrics), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if kind.name == "kafka" {
			readWithKcat(t, g.broker.addr, "orders", "hello")
		}
	})
}

// readWithKcat checks with kcat, a Kafka client written in C, that topic
// holds the one value want.
func readWithKcat(t *testing.T, addr, topic, want string) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kcat is not installed; .ci/run installs it (apt-get install kcat)")
		}
		t.Skip("kcat is not installed (apt-get install kcat); skipping the kcat read-back")
	}
	out, err := exec.Command(kcat, "-b", addr, "-C", "-t", topic, "-e", "-q").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != want {
		t.Fatalf("kcat printed %q (err %v), want %s", out, err, want)
	}
}

func TestKilledPluginComesBackWithoutLosingMessages(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		g := startLocal(t, kind)
		before := g.produceOK("orders", `{"key":"k1","value":"before"}`)

		old := g.plugins()[0]
		if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the plugin to be restarted", func() bool {
			p := g.plugins()[0]
			return p.Restarts == 1 && p.State == "up" && p.PID != old.PID && g.status("/readyz") == 200
		})
		after := g.produceOK("orders", `{"key":"k1","value":"after"}`)
		if after[0].Partition != before[0].Partition || after[0].Offset != before[0].Offset+1 {
			t.Fatalf("after the restart the same key went to %d@%d; before it was %d@%d: the broker lost its log",
				after[0].Partition, after[0].Offset, before[0].Partition, before[0].Offset)
		}
		if got := valuesOf(g.read("orders", 2)); !got["before"] || !got["after"] {
			t.Fatalf("read back %v", got)
		}
	})
}

func TestRestartedGatewayKeepsMessages(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		s := writeConfig(t, dir, kind.local(t, dir), options{})
		g := startGateway(t, s)
		g.produceOK("orders", `{"messages":[{"key":"a","value":"one"},{"key":"b","value":"two"}]}`)
		pluginPID := g.plugins()[0].PID

		if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := <-g.exited; err != nil {
			t.Fatalf("gateway exited with %v after SIGTERM, want a clean exit", err)
		}
		g.exited <- nil // for the cleanup
		if syscall.Kill(pluginPID, 0) == nil {
			t.Fatalf("plugin process %d outlived the gateway", pluginPID)
		}

		g2 := startGateway(t, s)
		g2.produceOK("orders", `{"key":"c","value":"three"}`)
		got := valuesOf(g2.read("orders", 3))
		for _, v := range []string{"one", "two", "three"} {
			if !got[v] {
				t.Fatalf("after a restart the topic holds %v, missing %q", got, v)
			}
		}
	})
}

// A backend whose plugin cannot come back answers 503 with code 17 within
// the request timeout, and /readyz says which plugin is down.
func TestBackendDownIs503(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		wrapper := filepath.Join(dir, kind.name+"-plugin")
		if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nexec "+mqgateBin+" plugin "+kind.name+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{plugin: fmt.Sprintf("{path: %q}", wrapper)}))
		g.produceOK("orders", `{"value":"x"}`)

		// From now on every restart attempt fails.
		if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(g.plugins()[0].PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "/readyz to report the plugin down", func() bool { return g.status("/readyz") == 503 })
		code, body := g.produce("orders", `{"value":"y"}`)
		var e apiError
		if code != 503 || json.Unmarshal(body, &e) != nil || e.Error.Code != 17 || !strings.Contains(e.Error.Message, kind.name) {
			t.Fatalf("produce with the backend down: %d %s; want 503 with code 17 naming the plugin", code, body)
		}
	})
}

// A plugin binary replaced under a running gateway no longer matches its
// sha256: once the plugin process dies, every restart fails. Produce must
// then answer at once, 503 with code 17 naming the plugin and the checksum
// problem, not ride the outage out into a timeout.
func TestReplacedPluginBinaryAnswers503AtOnce(t *testing.T) {
	kind := brokerKinds[0] // the host's behaviour, not the broker's
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "acme")
	script := []byte("#!/bin/sh\nexec " + mqgateBin + " plugin " + kind.name + "\n")
	if err := os.WriteFile(wrapper, script, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(script)
	// A request timeout far beyond the client's: an answer that waits for
	// it is no answer at all.
	g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{
		plugin:         fmt.Sprintf("{path: %q, sha256: %q}", wrapper, hex.EncodeToString(sum[:])),
		requestTimeout: "10m",
	}))
	g.produceOK("orders", `{"value":"x"}`)

	// Still a working plugin, but not the binary plugins.yaml vouches for.
	if err := os.WriteFile(wrapper, append(script, "# upgraded\n"...), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(g.plugins()[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz to report the plugin down", func() bool { return g.status("/readyz") == 503 })

	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Post("http://"+g.httpAddr+"/v1/topics/orders/messages", "application/json", strings.NewReader(`{"value":"y"}`))
	if err != nil {
		t.Fatalf("produce while the plugin's restarts fail got no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e apiError
	if resp.StatusCode != 503 || json.Unmarshal(body, &e) != nil || e.Error.Code != 17 ||
		!strings.Contains(e.Error.Message, "plugin "+kind.name) || !strings.Contains(e.Error.Message, "does not match its sha256") {
		t.Fatalf("produce while the plugin's restarts fail: %d %s; want 503, code 17, naming the plugin and the sha256 mismatch", resp.StatusCode, body)
	}
	if p := g.plugins()[0]; p.State != "restarting" {
		t.Fatalf("plugin state %q, want restarting", p.State)
	}
}

func TestCheckReportsFileLineAndKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(path, []byte("version: 1\nplugins:\n  kafka: {builtin: kafka}\nclusters:\n  local: {plugin: nope}\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "-c", path}, &stdout, &stderr); code != 1 {
		t.Fatalf("check exit code %d, want 1; stderr:\n%s", code, stderr.String())
	}
	out := stderr.String()
	for _, want := range []string{path + ":5: clusters.local.plugin:", path + ":6: bogus:"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

// A gateway killed outright must not leave its plugin behind (holding the
// embedded broker's port, or a connection to the broker): the plugin
// exits, and a new gateway starts on the same ports and data.
func TestKilledGatewayLeavesNoPluginBehind(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		s := writeConfig(t, dir, kind.local(t, dir), options{})
		g := startGateway(t, s)
		g.produceOK("orders", `{"key":"a","value":"before the crash"}`)
		g.kill9()

		g2 := startGateway(t, s)
		g2.produceOK("orders", `{"key":"b","value":"after the crash"}`)
		if got := valuesOf(g2.read("orders", 2)); !got["before the crash"] || !got["after the crash"] {
			t.Fatalf("after a gateway crash the topic holds %v", got)
		}
	})
}
