package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Shape of the push scenario's messages and work.
const (
	pushKeys        = 1000 // distinct message keys, spread over the messages
	pushPartitions  = 8    // partitions of the push topics, unless -partitions says otherwise
	pushSize        = 100  // value bytes, unless -size says otherwise
	pushConcurrency = 16   // requests in flight, unless -concurrency says otherwise
	pushBatch       = 1024 // records per direct poll: the gateway's push buffer default
)

// pushHTTP: N messages (values of 100 bytes, 1000 distinct keys, 8
// partitions) are produced first, not timed. The gateway side starts a
// second gateway whose config has one push subscription of the topic
// (concurrency 16, order: key, delivery 2 or -delivery, envelope raw or
// -envelope) and times its
// delivery to an HTTP endpoint that answers 200 at once, in this process
// (or, with -endpoint process, in a child process). The direct side is a franz-go group consumer doing the same posts to
// its own such endpoint: each polled batch of up to 1024 records is split
// over 16 workers by hash(key) % 16 (which keeps per-key order), and its
// offsets are committed once every post of the batch is answered
// (at-least-once, as delivery 2). Both are timed from the endpoint's first
// request to its N-th; the sides run one after the other.
var pushHTTP = scenario{
	name:      "push",
	about:     "HTTP push to a local endpoint (concurrency 16, order key) vs a franz-go consumer posting the same way",
	kafkaOnly: true,
	ownCPU:    true,
	adjust: func(p params) params {
		// The defaults of -size, -concurrency and -partitions are the
		// produce scenarios'; the push scenario has its own.
		if p.size == 1024 {
			p.size = pushSize
		}
		if p.concurrency == 8 {
			p.concurrency = pushConcurrency
		}
		if p.partitions == 4 {
			p.partitions = pushPartitions
		}
		return p
	},
	gateway: pushGateway,
	direct:  pushDirect,
	report: func(g, d result) {
		fmt.Printf("push: %s\npush: %s\n", g.note, d.note)
	},
}

func pushGateway(ctx context.Context, e *env, p params) (result, error) {
	topic := "bench-push-gateway-" + strconv.Itoa(p.delivery) + "-" + p.envelope
	sk, err := fillAndListen(ctx, e, topic, p)
	if err != nil {
		return result{}, err
	}
	defer sk.close()

	// A gateway of its own, started after the fill, so the subscription
	// finds every message waiting; it uses the broker of the main one.
	dir := filepath.Join(e.dir, "push-"+strconv.Itoa(p.delivery)+"-"+p.envelope)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return result{}, err
	}
	httpAddr := freeAddr()
	cfg := peerConfig(e, dir, httpAddr) + fmt.Sprintf(`push:
  - name: bench
    topics: [%s]
    targets: [%q]
    concurrency: %d
    order: key
    delivery: %d
    envelope: %s
    state_dir: %q
`, topic, sk.url, p.concurrency, p.delivery, p.envelope, filepath.Join(dir, "state"))
	// A CPU profile of this gateway goes to MQGATE_CPUPROFILE.push (and
	// .push.plugin-kafka), apart from the main gateway's.
	var extra []string
	if prof := os.Getenv("MQGATE_CPUPROFILE"); prof != "" {
		extra = append(extra, "MQGATE_CPUPROFILE="+prof+".push")
	}
	cmd, err := launch(e.bin, filepath.Join(dir, "plugins.yaml"), cfg, filepath.Join(dir, "mqgate.log"), httpAddr, extra)
	if err != nil {
		return result{}, err
	}
	defer stopCmd(cmd)
	brokerName, brokerPID := e.broker()
	cpu := meter(sk, "endpoint", sk.pid(), "push gateway", cmd.Process.Pid,
		"its kafka plugin", pluginPID(httpAddr, "kafka"), brokerName, brokerPID)

	r, err := sk.wait(p)
	if err != nil {
		return r, fmt.Errorf("%w (see %s)", err, filepath.Join(dir, "mqgate.log"))
	}
	cpuReport := cpu.report(p.n)
	// The gateway's own count: delivered is counted once the reply is
	// read, a moment after the endpoint answered the N-th request.
	var st pushStatus
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err = getPushStatus(httpAddr)
		if err == nil && st.Delivered >= int64(p.n) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return r, fmt.Errorf("GET /v1/push: %w", err)
	}
	if st.Delivered < int64(p.n) {
		return r, fmt.Errorf("GET /v1/push: delivered %d of %d (state %s, last error %q)", st.Delivered, p.n, st.State, st.LastError)
	}
	r.failures = int(st.Failures)
	r.note = fmt.Sprintf("mqgate: delivery %d, envelope %s, %d partitions, %d keys; GET /v1/push: delivered %d, retried %d, failures %d; endpoint got %d requests\npush: mqgate: %s",
		p.delivery, p.envelope, p.partitions, min(pushKeys, p.n), st.Delivered, st.Retried, st.Failures, sk.count.Load(), cpuReport)
	return r, nil
}

// pushStatus is the part of GET /v1/push's entry the bench reads.
type pushStatus struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	Delivered int64  `json:"delivered"`
	Retried   int64  `json:"retried"`
	Failures  int64  `json:"failures"`
	LastError string `json:"last_error"`
}

func getPushStatus(httpAddr string) (pushStatus, error) {
	resp, err := http.Get("http://" + httpAddr + "/v1/push")
	if err != nil {
		return pushStatus{}, err
	}
	defer resp.Body.Close()
	var out struct {
		Push []pushStatus `json:"push"`
	}
	if resp.StatusCode != 200 {
		return pushStatus{}, fmt.Errorf("status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return pushStatus{}, err
	}
	for _, st := range out.Push {
		if st.Name == "bench" {
			return st, nil
		}
	}
	return pushStatus{}, errors.New("no subscription named bench")
}

func pushDirect(ctx context.Context, e *env, p params) (result, error) {
	topic := "bench-push-direct"
	sk, err := fillAndListen(ctx, e, topic, p)
	if err != nil {
		return result{}, err
	}
	defer sk.close()

	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafkaAddr), kgo.ConsumerGroup("bench-push-direct"), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: p.concurrency}}
	procs := []any{"bench (consumer and endpoint)", os.Getpid()}
	if sk.child != nil {
		procs = []any{"bench (consumer)", os.Getpid(), "endpoint", sk.pid()}
	}
	brokerName, brokerPID := e.broker()
	cpu := meter(sk, append(procs, brokerName, brokerPID)...)

	var failures, commits atomic.Int64
	post := func(r *kgo.Record) {
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, sk.url, bytes.NewReader(r.Value))
			if err != nil {
				panic(err)
			}
			h := req.Header
			h.Set("Content-Type", "application/octet-stream")
			h.Set("User-Agent", "mqgate-bench")
			h.Set("X-Mqgate-Topic", r.Topic)
			h.Set("X-Mqgate-Key", string(r.Key))
			h.Set("X-Mqgate-Qid", strconv.Itoa(int(r.Partition)))
			h.Set("X-Mqgate-Offset", strconv.FormatInt(r.Offset, 10))
			h.Set("X-Mqgate-Attempt", "1")
			h.Set("X-Mqgate-Timestamp-Ms", strconv.FormatInt(r.Timestamp.UnixMilli(), 10))
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					return
				}
			}
			if failures.Add(1) == 1 {
				fmt.Println("push direct: first failure:", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	var loopErr error
	go func() {
		defer close(done)
		lanes := make([][]*kgo.Record, p.concurrency)
		for posted := 0; posted < p.n && ctx.Err() == nil; {
			fs := cl.PollRecords(ctx, pushBatch)
			fs.EachError(func(t string, part int32, err error) {
				if loopErr == nil && ctx.Err() == nil {
					loopErr = fmt.Errorf("polling %s/%d: %w", t, part, err)
				}
			})
			recs := fs.Records()
			posted += len(recs)
			for i := range lanes {
				lanes[i] = lanes[i][:0]
			}
			for _, r := range recs {
				h := fnv.New32a()
				h.Write(r.Key)
				w := h.Sum32() % uint32(p.concurrency)
				lanes[w] = append(lanes[w], r)
			}
			var wg sync.WaitGroup
			for _, lane := range lanes {
				if len(lane) > 0 {
					wg.Go(func() {
						for _, r := range lane {
							post(r)
						}
					})
				}
			}
			wg.Wait()
			if len(recs) > 0 {
				if err := cl.CommitRecords(ctx, recs...); err != nil {
					failures.Add(1)
				}
				commits.Add(1)
			}
			cl.AllowRebalance()
			if loopErr != nil {
				return
			}
		}
	}()
	r, err := sk.wait(p)
	if err != nil {
		return r, err
	}
	cpuReport := cpu.report(p.n)
	<-done
	if loopErr != nil {
		return r, loopErr
	}
	r.failures = int(failures.Load())
	r.note = fmt.Sprintf("direct: franz-go group consumer, polls of up to %d records split over %d workers by key hash, committed after each poll's posts (%d commits); endpoint got %d requests\npush: direct: %s",
		pushBatch, p.concurrency, commits.Load(), sk.count.Load(), cpuReport)
	return r, nil
}

// fillKeyed produces N messages of S bytes to a new topic of P partitions,
// keyed round-robin over pushKeys keys.
func (e *env) fillKeyed(ctx context.Context, topic string, p params) error {
	defer e.restartMeter() // the fill is not timed
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafkaAddr), kgo.ProducerBatchMaxBytes(16<<20), kgo.MaxBufferedRecords(4000))
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, int32(p.partitions), -1, nil, topic); err != nil {
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("topic %s exists already: each run needs a fresh one", topic)
		}
		return err
	}
	value := randomValue(p.size)
	for i := 0; i < p.n; i += 1000 {
		var rs []*kgo.Record
		for j := i; j < min(i+1000, p.n); j++ {
			rs = append(rs, &kgo.Record{Topic: topic, Key: []byte("key-" + strconv.Itoa(j%pushKeys)), Value: value})
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			return err
		}
	}
	return nil
}

// sink is the local endpoint both sides post to: it answers 200 with an
// empty body at once and notes when the first and the N-th requests came.
// It runs in the bench process, or with -endpoint process in a child
// process of its own (the bench binary again, with sinkEnv set), which
// the bench asks for its counts every 10 ms.
type sink struct {
	url   string
	srv   *http.Server // in process
	child *exec.Cmd    // in a process of its own
	n     int64
	count atomic.Int64
	first atomic.Int64 // unix ns
	last  atomic.Int64
	// started is closed at the first request, done at the N-th.
	started, done chan struct{}
	stop          chan struct{}
}

// sinkEnv, in the environment of the bench binary, makes it an endpoint
// for that many requests (see serveSink).
const sinkEnv = "MQGATE_BENCH_SINK"

// fillAndListen produces the scenario's messages to topic, then starts
// the endpoint that side posts to.
func fillAndListen(ctx context.Context, e *env, topic string, p params) (*sink, error) {
	if err := e.fillKeyed(ctx, topic, p); err != nil {
		return nil, err
	}
	return newSink(p.n, p.endpointProcess)
}

func newSink(n int, ownProcess bool) (*sink, error) {
	s := &sink{n: int64(n), started: make(chan struct{}), done: make(chan struct{}), stop: make(chan struct{})}
	if ownProcess {
		return s, s.startChild()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.url = "http://" + ln.Addr().String() + "/push"
	s.srv = &http.Server{Handler: s.handler()}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// handler answers POST /push with 200 and an empty body, counting, and
// GET /stats with the counts.
func (s *sink) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/push", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		c := s.count.Add(1)
		now := time.Now().UnixNano()
		if c == 1 {
			s.first.Store(now)
			close(s.started)
		}
		if c == s.n {
			s.last.Store(now)
			close(s.done)
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(sinkStats{Count: s.count.Load(), First: s.first.Load(), Last: s.last.Load()})
	})
	return mux
}

type sinkStats struct {
	Count int64 `json:"count"`
	First int64 `json:"first"`
	Last  int64 `json:"last"`
}

// serveSink is the child process of -endpoint process: it serves an
// endpoint for n requests and prints its URL, until killed.
func serveSink(n int) {
	s, err := newSink(n, false)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.url)
	select {}
}

func (s *sink) startChild() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	s.child = exec.Command(self)
	s.child.Env = append(os.Environ(), sinkEnv+"="+strconv.FormatInt(s.n, 10))
	s.child.Stderr = os.Stderr
	out, err := s.child.StdoutPipe()
	if err != nil {
		return err
	}
	if err := s.child.Start(); err != nil {
		return err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		s.close()
		return fmt.Errorf("starting the endpoint process: %w", err)
	}
	s.url = strings.TrimSpace(line)
	stats := strings.TrimSuffix(s.url, "/push") + "/stats"
	go func() {
		var started bool
		for {
			select {
			case <-s.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			resp, err := http.Get(stats)
			if err != nil {
				continue
			}
			var st sinkStats
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err != nil {
				continue
			}
			s.count.Store(st.Count)
			if st.Count > 0 && !started {
				started = true
				s.first.Store(st.First)
				close(s.started)
			}
			if st.Count >= s.n {
				s.last.Store(st.Last)
				close(s.done)
				return
			}
		}
	}()
	return nil
}

func (s *sink) close() {
	close(s.stop)
	if s.srv != nil {
		_ = s.srv.Close()
	}
	if s.child != nil {
		_ = s.child.Process.Kill()
		_ = s.child.Wait()
	}
}

// pid is the process serving the endpoint.
func (s *sink) pid() int {
	if s.child != nil {
		return s.child.Process.Pid
	}
	return os.Getpid()
}

// wait returns once N requests came, timed from the first to the N-th. It
// gives up when a minute passes without a request.
func (s *sink) wait(p params) (result, error) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	seen, since := int64(-1), time.Now()
	for {
		select {
		case <-s.done:
			return result{msgs: p.n, bytes: int64(p.n) * int64(p.size),
				elapsed: time.Duration(s.last.Load() - s.first.Load())}, nil
		case <-tick.C:
			if c := s.count.Load(); c != seen {
				seen, since = c, time.Now()
			} else if time.Since(since) > time.Minute {
				return result{}, fmt.Errorf("the endpoint got %d of %d requests, none in the last minute", c, p.n)
			}
		}
	}
}

// cpuMeter reads the CPU time processes used between a start (begin) and
// report, to show what each side costs in CPU.
type cpuMeter struct {
	names []string
	pids  []int
	start []time.Duration
	ready chan struct{}
	once  sync.Once
}

// newCPUMeter meters processes, given as name and pid pairs, from begin.
func newCPUMeter(procs ...any) *cpuMeter {
	m := &cpuMeter{ready: make(chan struct{})}
	for i := 0; i+1 < len(procs); i += 2 {
		m.names = append(m.names, procs[i].(string))
		m.pids = append(m.pids, procs[i+1].(int))
	}
	return m
}

// begin starts the measurement; a second call starts it again (after a
// scenario's untimed fill).
func (m *cpuMeter) begin() {
	m.start = m.read()
	m.once.Do(func() { close(m.ready) })
}

// used is the CPU each process used since begin.
func (m *cpuMeter) used() []time.Duration {
	end := m.read()
	<-m.ready
	for i := range end {
		end[i] -= m.start[i]
	}
	return end
}

// meter starts reading at sk's first request. Names and pids go in pairs.
func meter(sk *sink, procs ...any) *cpuMeter {
	m := newCPUMeter(procs...)
	go func() {
		<-sk.started
		m.begin()
	}()
	return m
}

func (m *cpuMeter) read() []time.Duration {
	out := make([]time.Duration, len(m.pids))
	for i, pid := range m.pids {
		out[i] = procCPU(pid)
	}
	return out
}

// report gives the CPU each process used since begin, and the total per
// message.
func (m *cpuMeter) report(n int) string {
	used := m.used()
	var total time.Duration
	out := "CPU from the first message to the last:"
	for i, name := range m.names {
		d := used[i]
		total += d
		out += fmt.Sprintf(" %s %.2fs,", name, d.Seconds())
	}
	return out + fmt.Sprintf(" in all %.1f µs per message", float64(total.Microseconds())/float64(n))
}

// procCPU is the user and system time of process pid so far, from
// /proc/PID/stat (in clock ticks of 10 ms); 0 when it cannot be read.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing parenthesis (utime and stime are fields 14
	// and 15 of the whole line).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// pluginPID is the pid of the gateway's process of plugin (its key under
// plugins:), from GET /v1/plugins; 0 when there is none, or when the
// plugin runs in the gateway's own process, whose CPU is counted as the
// gateway's.
func pluginPID(httpAddr, plugin string) int {
	ps, _ := pluginPIDs(httpAddr)
	for _, p := range ps {
		if p.Plugin == plugin {
			return p.PID
		}
	}
	return 0
}

// broker names the process of the main gateway that holds the embedded
// Kafka broker, and its pid: its Kafka plugin, or the gateway itself when
// the backend runs in its process.
func (e *env) broker() (string, int) {
	if e.inProcess {
		return "broker (main gateway, backend in process)", e.cmd.Process.Pid
	}
	return "broker (main gateway's plugin)", pluginPID(e.httpAddr, "kafka")
}
