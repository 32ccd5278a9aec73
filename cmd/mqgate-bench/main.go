// Command mqgate-bench measures the gateway against a direct client on the
// same broker, in one run, and prints both rates and their ratio.
//
//	go run ./cmd/mqgate-bench -scenario produce-http -n 200000 -size 1024 -batch 100 -concurrency 8
//
// -rounds N runs each repeatable scenario N times, gateway and direct
// alternating, and prints the medians (the ratio swings by a tenth or more
// between rounds on a shared machine):
//
//	go run ./cmd/mqgate-bench -scenario consume-pull-http -n 100000 -rounds 3
//
// -scenario idle instead measures the CPU the gateway and its plugins use
// with no traffic (docs/BENCHMARKS.md, Idle CPU):
//
//	go run ./cmd/mqgate-bench -scenario idle [-idle-settle 10s] [-idle-for 60s]
//
// -scenario abuse replays what hostile or buggy clients try and says, per
// probe, whether the gateway held (docs/BENCHMARKS.md, Abuse):
//
//	go run ./cmd/mqgate-bench -scenario abuse
//
// It builds (or takes, with -mqgate) the mqgate binary, starts it with an
// embedded Kafka broker in a temporary directory, and runs each scenario
// against the gateway and then against the broker directly.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/mqgate/mqgate/plugins/rocketmq/rmqfake"
)

type params struct {
	n           int
	size        int
	batch       int
	concurrency int
	partitions  int
	// push only
	delivery        int
	envelope        string
	endpointProcess bool
	// produce-http and consume-pull-http: the body format, json, ndjson, protobuf or raw
	format string
	// produce-http and the peer's produce: the load's HTTP client,
	// net/http or raw (rawHTTP)
	httpClient string
	// admin only: how many passes the admin client makes beside the
	// producer; 0 for as many as fit in its run
	adminPasses int
	// round counts the rounds of a scenario run with -rounds, from 0.
	round int
}

// named is base for the first round, and base with the round after it
// for later ones: a round's topics and groups are its own, so a group
// does not start where the previous round's committed.
func (p params) named(base string) string {
	if p.round == 0 {
		return base
	}
	return fmt.Sprintf("%s-r%d", base, p.round)
}

// result is one side of a scenario.
type result struct {
	msgs     int
	bytes    int64
	elapsed  time.Duration
	latency  []time.Duration // per call
	failures int
	note     string // what a scenario's report adds about this side
	cpu      serverCPU
}

func (r result) rate() float64 { return float64(r.msgs) / r.elapsed.Seconds() }
func (r result) mibps() float64 {
	return float64(r.bytes) / r.elapsed.Seconds() / (1 << 20)
}
func (r result) pct(p float64) time.Duration {
	if len(r.latency) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), r.latency...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// scenario runs the gateway side and the direct side of one measurement.
type scenario struct {
	name    string
	about   string
	gateway func(ctx context.Context, env *env, p params) (result, error)
	direct  func(ctx context.Context, env *env, p params) (result, error)
	// adjust, when set, fixes the parameters the scenario is defined by.
	adjust func(p params) params
	// latency, when set, reports added latency rather than only rates.
	latency bool
	// report, when set, prints what the scenario measures beyond rates.
	report func(gateway, direct result)
	// kafkaOnly scenarios are skipped, with a line saying so, on other
	// backends.
	kafkaOnly bool
	// repeatable scenarios may run several rounds (-rounds): they name
	// their topics and groups with params.named, or reuse them safely.
	repeatable bool
	// ownCPU scenarios run gateways of their own and report those
	// processes' CPU themselves; the main gateway's, which the generic
	// lines would report, is not what they measure.
	ownCPU bool
}

var scenarios = []scenario{produceHTTP, produceHTTPAuth, produceThriftBatch, produceThriftSync, produceAsync, delayAccuracy, delayScale, consumePullHTTP, consumePullThrift, consumePullThriftGroup, pushHTTP, sinkRedis, sinkHDFS, adminLoad}

func main() {
	if spec := os.Getenv(floodEnv); spec != "" { // a flood child of the abuse scenario
		if err := runFloodChild(spec); err != nil {
			log.Fatal(err)
		}
		return
	}
	if n := os.Getenv(sinkEnv); n != "" { // the endpoint of push -endpoint process
		count, err := strconv.Atoi(n)
		if err != nil {
			log.Fatalf("%s=%q: %v", sinkEnv, n, err)
		}
		serveSink(count)
		return
	}
	var (
		names   = flag.String("scenario", "produce-http", "comma-separated scenarios, or all")
		p       params
		binPath = flag.String("mqgate", "", "the mqgate binary (default: build ./cmd/mqgate)")
		keep    = flag.Bool("keep", false, "keep the temporary directory")
		backend = flag.String("backend", "kafka", "kafka (embedded broker) or rocketmq (the RocketMQ protocol fake, in this process)")
		endpt   = flag.String("endpoint", "inprocess", "push: where the HTTP endpoint runs: inprocess (in the bench process) or process (a child process)")
		settle  = flag.Duration("idle-settle", 10*time.Second, "idle: how long to wait after /readyz before measuring")
		idleFor = flag.Duration("idle-for", 60*time.Second, "idle: how long to measure")
		only    = flag.String("probe", "", "abuse: run only the probes whose name contains this")
		rounds  = flag.Int("rounds", 1, "run each repeatable scenario this many times, gateway and direct alternating, and print the medians")
		inProc  = flag.Bool("in-process", false, "run the bundled Kafka backend in the gateways' process (plugins.kafka.in_process: true) instead of a plugin process; kafka only")
		cpuProf = flag.String("cpuprofile", "", "write a CPU profile of the bench's own process (the load and the direct clients) to this file")
		peerCmd = flag.String("peer-cmd", "", "produce-http and consume-pull-http: also run this HTTP gateway speaking kafka-pixy's API against the same broker ({kafka} and {addr} are replaced; see peer.go)")
	)
	flag.IntVar(&p.n, "n", 200000, "messages per side")
	flag.IntVar(&p.size, "size", 1024, "message value size in bytes")
	flag.IntVar(&p.batch, "batch", 100, "messages per request (HTTP) or per ProduceSync (direct)")
	flag.IntVar(&p.concurrency, "concurrency", 8, "requests in flight")
	flag.IntVar(&p.partitions, "partitions", 4, "partitions of the benchmark topics")
	flag.IntVar(&p.delivery, "delivery", 2, "push: the subscription's delivery guarantee (1, 2 or 3)")
	flag.IntVar(&p.adminPasses, "admin-passes", 1, "admin: passes (1,000 browsed, 1,000 searched, the lists, 1,000 redriven) beside the producer (0: back to back for its whole run)")
	flag.StringVar(&p.format, "format", "json", "produce-http: the body format: json, ndjson (one message per line), protobuf (a ProduceRequest of mqgate_http.proto) or raw (one message per request, its value the body); consume-pull-http: json, or protobuf (answers as PullResponse)")
	flag.StringVar(&p.httpClient, "http-client", "net/http", "produce-http (and the peer's produce): the load's HTTP client: net/http, or raw (one keep-alive connection per request in flight, each request one write, as wrk drives a server: on shared cores net/http's client takes about as much CPU as the server it measures)")
	flag.StringVar(&p.envelope, "envelope", "raw", "push: the subscription's envelope (raw, json or ddmq); the direct side posts the raw value whatever it is")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mqgate-bench [flags]\n\nflags:\n")
		flag.PrintDefaults()
		fmt.Fprintf(flag.CommandLine.Output(), "\nscenarios (-scenario NAME,NAME or all):\n%s", scenarioList())
	}
	flag.Parse()
	if *endpt != "inprocess" && *endpt != "process" {
		log.Fatalf("-endpoint must be inprocess or process, not %q", *endpt)
	}
	p.endpointProcess = *endpt == "process"
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if p.envelope != "raw" && p.envelope != "json" && p.envelope != "ddmq" {
		log.Fatalf("-envelope must be raw, json or ddmq, not %q", p.envelope)
	}

	idle := *names == idleScenario
	abuse := *names == abuseScenario
	var run []scenario
	if !idle && !abuse {
		var err error
		if run, err = pick(*names); err != nil {
			fmt.Fprintf(os.Stderr, "mqgate-bench: %v\n", err)
			os.Exit(2)
		}
	}

	dir, err := os.MkdirTemp("", "mqgate-bench")
	if err != nil {
		log.Fatal(err)
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	if *backend != "kafka" && *backend != "rocketmq" {
		log.Fatalf("-backend must be kafka or rocketmq, not %q", *backend)
	}
	if *inProc && *backend != "kafka" {
		log.Fatalf("-in-process is for -backend kafka only: only the Kafka backend can run in the gateway's process")
	}
	e, err := startEnv(dir, *binPath, *backend, p.partitions, *inProc)
	if err != nil {
		log.Fatal(err)
	}
	defer e.stop()

	fmt.Printf("machine: %s/%s, %d CPUs, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())
	fmt.Printf("backend: %s\n", e.about())
	if idle {
		if err := runIdle(e, *settle, *idleFor); err != nil {
			e.stop()
			log.Fatal(err)
		}
		return
	}
	if abuse {
		if err := runAbuse(e, *only); err != nil {
			e.stop()
			log.Fatal(err)
		}
		return
	}
	var pr *peer
	if *peerCmd != "" {
		pr = &peer{cmdline: *peerCmd}
		defer pr.stop()
	}
	fmt.Printf("params: n=%d size=%d batch=%d concurrency=%d partitions=%d\n\n", p.n, p.size, p.batch, p.concurrency, p.partitions)
	fmt.Println("| scenario | side | msgs/s | MiB/s | p50 call | p99 call | failures |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|")
	for _, s := range run {
		if s.kafkaOnly && e.backend != "kafka" {
			fmt.Printf("\n%s scenario: kafka only; skipped with -backend %s\n\n", s.name, e.backend)
			continue
		}
		ctx := context.Background()
		p := p
		if s.adjust != nil {
			p = s.adjust(p)
		}
		n := 1
		if s.repeatable {
			n = max(1, *rounds)
		} else if *rounds > 1 {
			fmt.Printf("%s: one round only (-rounds applies to %s)\n", s.name, repeatableNames())
		}
		var all []roundResult
		for r := range n {
			p.round = r
			all = append(all, runRound(ctx, e, pr, s, p))
		}
		if n > 1 {
			reportRounds(s, all)
		}
		fmt.Println()
	}
}

// runRound runs one round of scenario s, gateway side then direct side,
// and prints both.
func runRound(ctx context.Context, e *env, pr *peer, s scenario, p params) roundResult {
	e.meterSide()
	g, err := s.gateway(ctx, e, p)
	if err != nil {
		log.Fatalf("%s via gateway: %v", s.name, err)
	}
	g.cpu = e.sideCPU()
	e.meterSide()
	d, err := s.direct(ctx, e, p)
	if err != nil {
		log.Fatalf("%s direct: %v", s.name, err)
	}
	d.cpu = e.sideCPU()
	for _, row := range []struct {
		side string
		r    result
	}{{"mqgate", g}, {"direct", d}} {
		fmt.Printf("| %s | %s | %.0f | %.1f | %s | %s | %d |\n", s.name, row.side, row.r.rate(), row.r.mibps(),
			row.r.pct(0.5).Round(10*time.Microsecond), row.r.pct(0.99).Round(10*time.Microsecond), row.r.failures)
	}
	fmt.Printf("\n%s (n=%d size=%d batch=%d concurrency=%d): gateway/direct = %.2f\n", s.name, p.n, p.size, p.batch, p.concurrency, g.rate()/d.rate())
	if !s.ownCPU {
		reportCPU(s.name, g, d)
	}
	if err := runPeer(ctx, e, pr, s, p, g); err != nil {
		fmt.Printf("%s: the peer side failed: %v\n", s.name, err)
	}
	if s.report != nil {
		s.report(g, d)
	}
	if s.latency {
		fmt.Printf("%s: added latency p50 %s, p99 %s\n", s.name,
			(g.pct(0.5) - d.pct(0.5)).Round(10*time.Microsecond), (g.pct(0.99) - d.pct(0.99)).Round(10*time.Microsecond))
	}
	fmt.Println()
	return roundResult{g: g, d: d}
}

// pick returns the scenarios names lists (comma-separated, or "all"), in
// the order given; an unknown name is an error listing the valid ones.
func pick(names string) ([]scenario, error) {
	if names == "all" {
		return scenarios, nil
	}
	var run []scenario
	for _, name := range strings.Split(names, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == name })
		if i < 0 {
			return nil, fmt.Errorf("no scenario %q; the scenarios are (-scenario NAME,NAME or all):\n%s", name, scenarioList())
		}
		run = append(run, scenarios[i])
	}
	return run, nil
}

// scenarioList is one line per scenario: its name and what it measures.
func scenarioList() string {
	var b strings.Builder
	for _, s := range scenarios {
		fmt.Fprintf(&b, "  %-20s %s\n", s.name, s.about)
	}
	fmt.Fprintf(&b, "  %-20s %s\n", idleScenario, "CPU ms/s of the gateway and each plugin with no traffic (runs alone)")
	fmt.Fprintf(&b, "  %-20s %s\n", abuseScenario, "what hostile or buggy clients try, each probe held or failed with its figures (runs alone)")
	return b.String()
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			if i := strings.Index(line, ":"); i >= 0 {
				return strings.TrimSpace(line[i+1:])
			}
		}
	}
	return "unknown CPU"
}

// env is a running gateway with its broker: an embedded Kafka broker, or
// the RocketMQ protocol fake running in this process.
type env struct {
	httpAddr     string
	thriftAddr   string
	consumerAddr string
	kafkaAddr    string
	cmd          *exec.Cmd

	backend string
	// inProcess runs the gateways' Kafka backend in their own process
	// (in_process: true).
	inProcess  bool
	rocketmq   *rmqfake.Fake
	partitions int

	bin, dir string // the mqgate binary and the temporary directory

	cpu *cpuMeter // the side being run, from meterSide
}

func (e *env) about() string {
	if e.backend == "rocketmq" {
		return "rocketmq: the RocketMQ protocol fake (plugins/rocketmq/rmqfake) in the bench process, NOT a RocketMQ broker; direct side is rocketmq-client-go v2.1.2"
	}
	if e.inProcess {
		return "kafka: the embedded kfake broker, with the Kafka backend in the gateway's process (in_process: true); direct side is franz-go"
	}
	return "kafka: the embedded kfake broker in the plugin process; direct side is franz-go"
}

// kafkaPlugin is the gateways' plugins: entry for the Kafka backend.
func (e *env) kafkaPlugin() string {
	if e.inProcess {
		return "{builtin: kafka, in_process: true}"
	}
	return "{builtin: kafka}"
}

func startEnv(dir, bin, backend string, partitions int, inProcess bool) (*env, error) {
	if bin == "" {
		bin = filepath.Join(dir, "mqgate")
		build := exec.Command("go", "build", "-o", bin, "./cmd/mqgate")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return nil, fmt.Errorf("building mqgate (run from the repository root, or pass -mqgate): %w", err)
		}
	}
	e := &env{httpAddr: freeAddr(), thriftAddr: freeAddr(), consumerAddr: freeAddr(), kafkaAddr: freeAddr(), backend: backend, inProcess: inProcess, partitions: partitions,
		bin: bin, dir: dir}
	cluster := fmt.Sprintf("{plugin: kafka, config: {brokers: embedded, listen: %q, data_dir: %q, default_partitions: %d}}",
		e.kafkaAddr, filepath.Join(dir, "data"), partitions)
	if backend == "rocketmq" {
		rlog.SetLogLevel("error")
		f, err := rmqfake.Start(rmqfake.Options{AutoCreateTopics: true, DefaultQueues: partitions})
		if err != nil {
			return nil, err
		}
		e.rocketmq = f
		cluster = fmt.Sprintf("{plugin: rocketmq, config: {nameservers: [%q], default_queues: %d}}", f.Addr(), partitions)
	}
	cfg := fmt.Sprintf(`version: 1
plugins: {kafka: %s, rocketmq: {builtin: rocketmq}}
clusters:
  local: %s
default_cluster: local
http: {listen: %q}
thrift: {producer_listen: %q, consumer_listen: %q}
producer: {spool_dir: %q}
`, e.kafkaPlugin(), cluster, e.httpAddr, e.thriftAddr, e.consumerAddr, filepath.Join(dir, "spool"))
	cmd, err := launch(bin, filepath.Join(dir, "plugins.yaml"), cfg, filepath.Join(dir, "mqgate.log"), e.httpAddr, nil)
	if err != nil {
		if e.rocketmq != nil {
			e.rocketmq.Close()
		}
		return nil, err
	}
	e.cmd = cmd
	return e, nil
}

// launch writes cfg to cfgPath, starts the gateway on it with its output
// in logPath and extra added to its environment, and waits until
// httpAddr answers /readyz.
func launch(bin, cfgPath, cfg, logPath, httpAddr string, extra []string) (*exec.Cmd, error) {
	return launchCmd(exec.Command(bin, "serve", "-c", cfgPath, "-log-level", "warn"), cfgPath, cfg, logPath, httpAddr, extra)
}

// launchCmd is launch with the command that runs the gateway on cfgPath
// given, for a gateway started under a shell's ulimit.
func launchCmd(cmd *exec.Cmd, cfgPath, cfg, logPath, httpAddr string, extra []string) (*exec.Cmd, error) {
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), extra...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, nil
			}
		}
		if time.Now().After(deadline) {
			stopCmd(cmd)
			return nil, fmt.Errorf("gateway not ready after 60s; see %s", logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) stop() {
	stopCmd(e.cmd)
	if e.rocketmq != nil {
		e.rocketmq.Close()
	}
}

// stopCmd interrupts a gateway and waits for it to exit, killing it after
// 20 s.
func stopCmd(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
