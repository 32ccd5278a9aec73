package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mqgate/mqgate/internal/testredis"
	"github.com/mqgate/mqgate/internal/webhdfsfake"
	"github.com/mqgate/mqgate/plugins/hdfs"
	"github.com/mqgate/mqgate/sdk"
)

// Shape of the sink scenarios' messages and work.
const (
	sinkPartitions = 8   // partitions of the sink topics, unless -partitions says otherwise
	sinkBatch      = 500 // messages per write: the sink's batch.max_messages, and the direct side's poll and pipeline
)

// sinkRedis: N JSON messages of about S bytes ({"id", "status", "total",
// "pad"}, a distinct id and key each, 8 partitions) are produced first,
// not timed. The gateway side starts a second gateway whose config has one
// sink of the topic into a redis-server: HSET order:ID status total pad,
// batches of 500, concurrency 2, order key. The direct side is a franz-go
// group consumer that polls up to 500 records, sends the same HSETs as one
// go-redis pipeline, and commits: the same work without the gateway. Both
// are timed from the first message in Redis to the N-th (the gateway's
// GET /v1/sinks written count, the direct side's own), and each side's
// keys are counted in Redis after.
var sinkRedis = scenario{
	name:      "sink-redis",
	about:     "a sink into Redis hashes (HSET per message, batches of 500) vs a franz-go consumer sending the same HSETs in go-redis pipelines",
	kafkaOnly: true,
	ownCPU:    true,
	adjust:    sinkParams,
	gateway: func(ctx context.Context, e *env, p params) (result, error) {
		rd, err := startBenchRedis(e, "gateway")
		if err != nil {
			return result{}, err
		}
		defer rd.stop()
		topic := "bench-sink-redis-gateway"
		if err := e.fillJSON(ctx, topic, p); err != nil {
			return result{}, err
		}
		r, err := sinkGateway(e, "sink-redis", topic, "redis: {builtin: redis}", fmt.Sprintf(`plugin: redis
    config:
      addrs: [%q]
      commands:
        - {cmd: HSET, key: "'order:' + json.id", fields: {status: "json.status", total: "string(json.total)", pad: "json.pad"}}`, rd.addr), p)
		if err != nil {
			return r, err
		}
		return r, rd.check(ctx, p.n, &r)
	},
	direct: sinkRedisDirect,
	report: func(g, d result) { fmt.Printf("sink-redis: %s\nsink-redis: %s\n", g.note, d.note) },
}

// sinkParams fixes the parameters the sink scenarios are defined by,
// where the flags were left at the produce scenarios' defaults.
func sinkParams(p params) params {
	if p.partitions == 4 {
		p.partitions = sinkPartitions
	}
	if p.batch == 100 {
		p.batch = sinkBatch
	}
	if p.concurrency == 8 {
		p.concurrency = 2
	}
	return p
}

// benchRedis is a redis-server of one side.
type benchRedis struct {
	addr string
	stop func()
}

func startBenchRedis(e *env, side string) (*benchRedis, error) {
	dir := filepath.Join(e.dir, "redis-"+side)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr, stop, err := testredis.StartProcess(dir)
	if err != nil {
		return nil, fmt.Errorf("starting redis-server (apt-get install redis-server): %w", err)
	}
	return &benchRedis{addr: addr, stop: stop}, nil
}

// check counts the order:* keys and notes the count in r.
func (rd *benchRedis) check(ctx context.Context, n int, r *result) error {
	c := goredis.NewClient(&goredis.Options{Addr: rd.addr})
	defer c.Close()
	keys, err := c.DBSize(ctx).Result()
	if err != nil {
		return err
	}
	r.note += fmt.Sprintf("; redis holds %d keys", keys)
	if keys != int64(n) {
		return fmt.Errorf("redis holds %d keys, want %d", keys, n)
	}
	return nil
}

// fillJSON produces N JSON messages of about S bytes to a new topic of P
// partitions, each with its own id and key.
func (e *env) fillJSON(ctx context.Context, topic string, p params) error {
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
	pad := strings.Repeat("x", max(0, p.size-80))
	for i := 0; i < p.n; i += 1000 {
		var rs []*kgo.Record
		for j := i; j < min(i+1000, p.n); j++ {
			id := strconv.Itoa(j)
			v := fmt.Sprintf(`{"id":%q,"status":"paid","total":%d,"pad":%q}`, id, j, pad)
			rs = append(rs, &kgo.Record{Topic: topic, Key: []byte(id), Value: []byte(v)})
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			return err
		}
	}
	return nil
}

// sinkGateway starts a gateway on the main one's broker with one sink,
// bench, of topic (already filled) through the sink plugin declared by
// pluginEntry ("NAME: {...}"), whose sinks: entry continues with entry;
// and times it from its first written message to its N-th.
func sinkGateway(e *env, name, topic, pluginEntry, entry string, p params) (result, error) {
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return result{}, err
	}
	httpAddr := freeAddr()
	cfg := peerConfig(e, dir, httpAddr, pluginEntry) + fmt.Sprintf(`sinks:
  - name: bench
    topics: [%s]
    batch: {max_messages: %d}
    concurrency: %d
    %s
`, topic, p.batch, p.concurrency, entry)
	var extra []string
	if prof := os.Getenv("MQGATE_CPUPROFILE"); prof != "" {
		extra = append(extra, "MQGATE_CPUPROFILE="+prof+"."+name)
	}
	logPath := filepath.Join(dir, "mqgate.log")
	cmd, err := launch(e.bin, filepath.Join(dir, "plugins.yaml"), cfg, logPath, httpAddr, extra)
	if err != nil {
		return result{}, err
	}
	defer stopCmd(cmd)
	plugin, _, _ := strings.Cut(pluginEntry, ":")
	brokerName, brokerPID := e.broker()
	cpu := newCPUMeter("sink gateway", cmd.Process.Pid, "its kafka plugin", pluginPID(httpAddr, "kafka"),
		"its "+plugin+" plugin", pluginPID(httpAddr, plugin), brokerName, brokerPID)

	var start time.Time
	var st sinkStatus
	deadline := time.Now().Add(10 * time.Minute)
	for st.Written < int64(p.n) {
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("sink wrote %d of %d in 10 minutes (state %s, last error %q); see %s", st.Written, p.n, st.State, st.LastError, logPath)
		}
		time.Sleep(5 * time.Millisecond)
		if st, err = getSinkStatus(httpAddr); err != nil {
			return result{}, fmt.Errorf("GET /v1/sinks: %w", err)
		}
		if start.IsZero() && st.Written > 0 {
			start = time.Now()
			cpu.begin()
		}
	}
	elapsed := time.Since(start)
	r := result{msgs: p.n, bytes: int64(p.n * p.size), elapsed: elapsed, failures: int(st.Failures)}
	r.note = fmt.Sprintf("mqgate: batch.max_messages %d, concurrency %d; GET /v1/sinks: written %d in %d writes, failures %d, dead-lettered %d; %s",
		p.batch, p.concurrency, st.Written, st.Batches, st.Failures, st.DeadLettered, cpu.report(p.n))
	return r, nil
}

// sinkStatus is the part of GET /v1/sinks the bench reads.
type sinkStatus struct {
	Name         string `json:"name"`
	State        string `json:"state"`
	Written      int64  `json:"written"`
	Batches      int64  `json:"batches"`
	Failures     int64  `json:"failures"`
	DeadLettered int64  `json:"dead_lettered"`
	LastError    string `json:"last_error"`
}

func getSinkStatus(httpAddr string) (sinkStatus, error) {
	resp, err := http.Get("http://" + httpAddr + "/v1/sinks/bench")
	if err != nil {
		return sinkStatus{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return sinkStatus{}, fmt.Errorf("status %d", resp.StatusCode)
	}
	var st sinkStatus
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// order is the part of a bench message the direct side maps.
type order struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Total  int64  `json:"total"`
	Pad    string `json:"pad"`
}

func sinkRedisDirect(ctx context.Context, e *env, p params) (result, error) {
	rd, err := startBenchRedis(e, "direct")
	if err != nil {
		return result{}, err
	}
	defer rd.stop()
	topic := "bench-sink-redis-direct"
	if err := e.fillJSON(ctx, topic, p); err != nil {
		return result{}, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafkaAddr), kgo.ConsumerGroup("bench-sink-redis-direct"), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	rc := goredis.NewClient(&goredis.Options{Addr: rd.addr})
	defer rc.Close()
	brokerName, brokerPID := e.broker()
	cpu := newCPUMeter("bench (consumer and redis client)", os.Getpid(), brokerName, brokerPID)

	pipe := rc.Pipeline()
	start, commits, err := directSinkLoop(ctx, cl, p, cpu, func(recs []*kgo.Record) error {
		for _, r := range recs {
			var o order
			if err := json.Unmarshal(r.Value, &o); err != nil {
				return err
			}
			pipe.HSet(ctx, "order:"+o.ID, "status", o.Status, "total", strconv.FormatInt(o.Total, 10), "pad", o.Pad)
		}
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		return result{}, err
	}
	r := result{msgs: p.n, bytes: int64(p.n * p.size), elapsed: time.Since(start)}
	r.note = fmt.Sprintf("direct: franz-go group consumer, polls of up to %d records, one go-redis pipeline of HSETs per poll, committed after it (%d commits); %s",
		p.batch, commits, cpu.report(p.n))
	return r, rd.check(ctx, p.n, &r)
}

// sinkHDFS: N JSON messages of about S bytes, produced first as for
// sink-redis, written as text lines into a fake WebHDFS
// (internal/webhdfsfake, in the bench process) under /bench/TOPIC. The
// gateway side is a second gateway with one sink of the topic through the
// bundled hdfs plugin (order qid, batches of 500, concurrency 2). The
// direct side is a franz-go group consumer that hands each poll of up to
// 500 records to the same HDFS sink code in its own process (no gateway,
// no plugin hop) and commits: what the gateway and its plugin process add.
var sinkHDFS = scenario{
	name:      "sink-hdfs",
	about:     "a sink into HDFS text files through WebHDFS (a fake in the bench process) vs a franz-go consumer calling the same sink code in-process",
	kafkaOnly: true,
	ownCPU:    true,
	adjust:    sinkParams,
	gateway: func(ctx context.Context, e *env, p params) (result, error) {
		fake, err := webhdfsfake.New(webhdfsfake.Options{MaxBody: 256 << 20})
		if err != nil {
			return result{}, err
		}
		defer fake.Close()
		topic := "bench-sink-hdfs-gateway"
		if err := e.fillJSON(ctx, topic, p); err != nil {
			return result{}, err
		}
		r, err := sinkGateway(e, "sink-hdfs", topic, "hdfs: {builtin: hdfs}", fmt.Sprintf(`plugin: hdfs
    order: qid
    config: %s`, hdfsBenchConfig(fake.URL())), p)
		if err != nil {
			return r, err
		}
		return r, checkHDFS(fake, p.n, &r)
	},
	direct: sinkHDFSDirect,
	report: func(g, d result) { fmt.Printf("sink-hdfs: %s\nsink-hdfs: %s\n", g.note, d.note) },
}

func hdfsBenchConfig(url string) string {
	return fmt.Sprintf(`{"namenodes": [%q], "path": "/bench/${topic}", "format": "text"}`, url)
}

// checkHDFS counts the lines in the fake's files and notes the count in r.
func checkHDFS(fake *webhdfsfake.Server, n int, r *result) error {
	lines, files := 0, 0
	for _, fi := range fake.Files("/bench") {
		data, err := fake.ReadFile(fi.Path)
		if err != nil {
			return err
		}
		lines += strings.Count(string(data), "\n")
		files++
	}
	r.note += fmt.Sprintf("; HDFS holds %d lines in %d files", lines, files)
	if lines < n {
		return fmt.Errorf("HDFS holds %d lines, want %d", lines, n)
	}
	return nil
}

func sinkHDFSDirect(ctx context.Context, e *env, p params) (result, error) {
	fake, err := webhdfsfake.New(webhdfsfake.Options{MaxBody: 256 << 20})
	if err != nil {
		return result{}, err
	}
	defer fake.Close()
	topic := "bench-sink-hdfs-direct"
	if err := e.fillJSON(ctx, topic, p); err != nil {
		return result{}, err
	}
	hs := hdfs.New(nil)
	cfg := fmt.Sprintf(`{"namenodes": [%q], "path": "/bench/${topic}", "format": "text", "mqgate": {"sink": "bench", "group": "bench-sink-hdfs-direct", "gateway": "bench-%d"}}`,
		fake.URL(), os.Getpid())
	if err := hs.Configure(ctx, []byte(cfg)); err != nil {
		return result{}, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafkaAddr), kgo.ConsumerGroup("bench-sink-hdfs-direct"), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	brokerName, brokerPID := e.broker()
	cpu := newCPUMeter("bench (consumer, sink code and the WebHDFS fake)", os.Getpid(), brokerName, brokerPID)

	start, commits, err := directSinkLoop(ctx, cl, p, cpu, func(recs []*kgo.Record) error {
		batch := make([]sdk.Record, len(recs))
		for i, r := range recs {
			batch[i] = sdk.Record{Topic: r.Topic, Qid: strconv.Itoa(int(r.Partition)), Partition: r.Partition, Offset: r.Offset,
				Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
		}
		res, err := hs.Write(ctx, batch)
		if err != nil {
			return err
		}
		for i, err := range res {
			if err != nil {
				return fmt.Errorf("record %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return result{}, err
	}
	r := result{msgs: p.n, bytes: int64(p.n * p.size), elapsed: time.Since(start)}
	if err := hs.Close(); err != nil {
		return r, err
	}
	r.note = fmt.Sprintf("direct: franz-go group consumer, polls of up to %d records, each written by the hdfs sink code in-process, committed after it (%d commits); %s",
		p.batch, commits, cpu.report(p.n))
	return r, checkHDFS(fake, p.n, &r)
}

// directSinkLoop is the direct side of a sink scenario: it polls up to
// p.batch records at a time, writes them with write, and commits them,
// until p.n are written. It returns when the first write was done (and
// begins cpu then), and how many commits it made.
func directSinkLoop(ctx context.Context, cl *kgo.Client, p params, cpu *cpuMeter, write func([]*kgo.Record) error) (time.Time, int, error) {
	var start time.Time
	written, commits := 0, 0
	for written < p.n {
		fs := cl.PollRecords(ctx, p.batch)
		if err := fs.Err0(); err != nil {
			return start, commits, err
		}
		recs := fs.Records()
		if len(recs) == 0 {
			cl.AllowRebalance()
			continue
		}
		if err := write(recs); err != nil {
			return start, commits, err
		}
		if start.IsZero() {
			start = time.Now() // the first batch is in the store
			cpu.begin()
		}
		if err := cl.CommitRecords(ctx, recs...); err != nil {
			return start, commits, err
		}
		commits++
		written += len(recs)
		cl.AllowRebalance()
	}
	return start, commits, nil
}
