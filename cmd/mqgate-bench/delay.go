package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// delayAccuracy: N messages (default 10,000) with delays spread evenly
// over 1-120 s, added through POST /v1/topics/{topic}/delayed in batches of
// B; a franz-go consumer notes when each arrives. The "call" columns are
// lateness: arrival minus due time. The direct side sends the same number
// of undelayed messages straight to the broker and notes their produce to
// consume latency, the floor any delivery pays here.
var delayAccuracy = scenario{
	name:  "delay-accuracy",
	about: "lateness of delayed messages (arrival - due), against the broker's own produce-to-consume latency",
	adjust: func(p params) params {
		p.n = min(p.n, 10000)
		return p
	},
	gateway: func(ctx context.Context, e *env, p params) (result, error) {
		const topic = "bench-delay-accuracy"
		if err := e.requireKafka("delay-accuracy"); err != nil {
			return result{}, err
		}
		arrivals, stop, err := e.watch(ctx, topic)
		if err != nil {
			return result{}, err
		}
		defer stop()
		client := &http.Client{}
		url := "http://" + e.httpAddr + "/v1/topics/" + topic + "/delayed"
		start := time.Now()
		var latest time.Time
		value := strings.Repeat("x", p.size)
		for i := 0; i < p.n; i += p.batch {
			var msgs []map[string]any
			for j := i; j < min(i+p.batch, p.n); j++ {
				delay := 1000 + int64(j)*119000/int64(p.n) + rand.Int64N(100)
				msgs = append(msgs, map[string]any{"key": strconv.Itoa(j), "value": value, "delay_ms": delay})
			}
			body, _ := json.Marshal(map[string]any{"messages": msgs})
			if err := postStatus(client, url, body, http.StatusOK); err != nil {
				return result{}, fmt.Errorf("adding delayed messages: %w", err)
			}
		}
		latest = start.Add(121 * time.Second)
		r := result{latency: make([]time.Duration, 0, p.n)}
		for len(r.latency) < p.n {
			select {
			case a := <-arrivals:
				r.latency = append(r.latency, a.at.Sub(a.due))
				r.msgs++
			case <-time.After(time.Until(latest) + 30*time.Second):
				r.failures = p.n - len(r.latency)
				fmt.Printf("delay-accuracy: %d of %d messages never arrived\n", r.failures, p.n)
				r.elapsed = time.Since(start)
				return r, nil
			}
		}
		r.elapsed = time.Since(start)
		return r, nil
	},
	direct: func(ctx context.Context, e *env, p params) (result, error) {
		const topic = "bench-delay-direct"
		arrivals, stop, err := e.watch(ctx, topic)
		if err != nil {
			return result{}, err
		}
		defer stop()
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafkaAddr), kgo.AllowAutoTopicCreation())
		if err != nil {
			return result{}, err
		}
		defer cl.Close()
		start := time.Now()
		r := result{latency: make([]time.Duration, 0, p.n)}
		value := []byte(strings.Repeat("x", p.size))
		// The same count, spread over 10 s rather than 2 minutes: this side
		// measures the broker round trip, not the spread.
		for i := 0; i < p.n; i += p.batch {
			var rs []*kgo.Record
			now := time.Now()
			for j := i; j < min(i+p.batch, p.n); j++ {
				rs = append(rs, &kgo.Record{Topic: topic, Value: value, Headers: []kgo.RecordHeader{{Key: "mqgate-delay-due-ms", Value: []byte(strconv.FormatInt(now.UnixMilli(), 10))}}})
			}
			if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				return result{}, err
			}
			time.Sleep(10 * time.Second / time.Duration(max(p.n/p.batch, 1)))
		}
		for len(r.latency) < p.n {
			select {
			case a := <-arrivals:
				r.latency = append(r.latency, a.at.Sub(a.due))
				r.msgs++
			case <-time.After(30 * time.Second):
				r.failures = p.n - len(r.latency)
				r.elapsed = time.Since(start)
				return r, nil
			}
		}
		r.elapsed = time.Since(start)
		return r, nil
	},
	report: func(g, d result) {
		fmt.Printf("delay-accuracy: lateness p50 %s, p99 %s, max %s (broker produce-to-consume: p50 %s, p99 %s, max %s)\n",
			g.pct(0.5).Round(time.Millisecond), g.pct(0.99).Round(time.Millisecond), g.pct(1).Round(time.Millisecond),
			d.pct(0.5).Round(time.Millisecond), d.pct(0.99).Round(time.Millisecond), d.pct(1).Round(time.Millisecond))
	},
}

// delayScale: N pending delayed messages (default 1,000,000) added through
// POST .../delayed in HTTP batches of B with C in flight, due in an hour, so
// they all stay pending in the broker. Reported: the add rate against a
// direct franz-go ProduceSync of the same batches, and the resident memory
// of the gateway and plugin processes before and after.
var delayScale = scenario{
	name:  "delay-scale",
	about: "adding 1,000,000 pending delayed messages over HTTP; memory of the gateway while they wait",
	adjust: func(p params) params {
		if p.n == 200000 { // the default -n
			p.n = 1000000
		}
		p.batch = max(p.batch, 1000)
		return p
	},
	gateway: func(ctx context.Context, e *env, p params) (result, error) {
		const topic = "bench-delay-scale"
		before := e.rss()
		value := strings.Repeat("x", p.size)
		bodies := make([][]byte, 8)
		for i := range bodies {
			var msgs []map[string]any
			for j := range p.batch {
				msgs = append(msgs, map[string]any{"key": strconv.Itoa(i*p.batch + j), "value": value, "delay_ms": 3600000})
			}
			bodies[i], _ = json.Marshal(map[string]any{"messages": msgs})
		}
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: p.concurrency * 2}}
		url := "http://" + e.httpAddr + "/v1/topics/" + topic + "/delayed"
		// Added in three steps (10%, 50%, 100%), with resident memory read
		// after each: flat means it does not grow with what is pending.
		var total result
		done := 0
		for _, upto := range []int{p.n / 10, p.n / 2, p.n} {
			step := p
			step.n = upto - done
			r := runCalls(step, func(_, call int) error { return postStatus(client, url, bodies[call%len(bodies)], http.StatusOK) })
			done = upto
			total.msgs += r.msgs
			total.bytes += r.bytes
			total.elapsed += r.elapsed
			total.failures += r.failures
			total.latency = append(total.latency, r.latency...)
			time.Sleep(5 * time.Second) // let the tier workers settle on what they hold
			fmt.Printf("delay-scale: %d pending: %s\n", done, e.rss())
		}
		fmt.Printf("delay-scale: before adding: %s\n", before)
		return total, nil
	},
	direct: directProduce,
}

// arrival is one consumed record: when it came and when it was due.
type arrival struct{ at, due time.Time }

// watch consumes topic from its end with franz-go and reports arrivals of
// records carrying a due time.
func (e *env) watch(ctx context.Context, topic string) (<-chan arrival, func(), error) {
	admin, err := kgo.NewClient(kgo.SeedBrokers(e.kafkaAddr))
	if err != nil {
		return nil, nil, err
	}
	_, err = kadm.NewClient(admin).CreateTopic(ctx, int32(e.partitions), -1, nil, topic)
	admin.Close()
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return nil, nil, fmt.Errorf("creating %s: %w", topic, err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafkaAddr), kgo.ConsumeTopics(topic), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		return nil, nil, err
	}
	out := make(chan arrival, 1<<16)
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for cctx.Err() == nil {
			fs := cl.PollFetches(cctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				for _, h := range r.Headers {
					if h.Key == "mqgate-delay-due-ms" {
						ms, _ := strconv.ParseInt(string(h.Value), 10, 64)
						out <- arrival{at: now, due: time.UnixMilli(ms)}
					}
				}
			})
		}
	})
	return out, func() { cancel(); wg.Wait(); cl.Close() }, nil
}

func (e *env) requireKafka(scenario string) error {
	if e.backend != "kafka" {
		return fmt.Errorf("%s reads delivered messages with franz-go; run it with -backend kafka", scenario)
	}
	return nil
}

// rss reads VmRSS of the gateway and of its plugin processes.
func (e *env) rss() string {
	read := func(pid int) string {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return "?"
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				return strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:"))
			}
		}
		return "?"
	}
	out := "gateway " + read(e.cmd.Process.Pid)
	resp, err := http.Get("http://" + e.httpAddr + "/v1/plugins")
	if err == nil {
		var ps []pluginStatus
		_ = json.NewDecoder(resp.Body).Decode(&ps)
		resp.Body.Close()
		for _, pl := range ps {
			if pl.InProcess {
				continue // its memory is the gateway's
			}
			out += ", plugin " + pl.Name + " " + read(pl.PID)
		}
	}
	return out
}
