package push_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/push"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/internal/consumetest"
	"github.com/mqgate/mqgate/internal/testport"
	"github.com/mqgate/mqgate/sdk"
)

// With order: key and concurrency 16, 100 keys each get their messages in
// produce order, every message once, and different keys are in flight at
// the same time.
func TestKeyOrder(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b)
		e.topic("orders", 4)
		const keys, per = 100, 10
		// The first request waits until a second one is in flight: proof
		// of parallelism without timing.
		var once sync.Once
		second := make(chan struct{})
		ep := newEndpoint(t, func(g got, n int) (int, string) {
			first := false
			once.Do(func() { first = true })
			if first {
				select {
				case <-second:
				case <-time.After(20 * time.Second):
					return 500, "no second request came while the first was in flight"
				}
			} else {
				select {
				case <-second:
				default:
					close(second)
				}
			}
			return 200, ""
		})
		var msgs []message
		for i := range per {
			for k := range keys {
				msgs = append(msgs, message{key: fmt.Sprintf("k%03d", k), value: fmt.Sprintf("k%03d-%d", k, i), partition: sdk.PartitionHash})
			}
		}
		for i := 0; i < len(msgs); i += 250 {
			e.produce("orders", msgs[i:min(i+250, len(msgs))]...)
		}
		ps := e.start(subscription(t, "orders", "orders", ep.URL))
		waitFor(t, "every message delivered", func() bool { return statusOf(ps, "orders").Delivered >= keys*per })

		seen := map[string][]int{}
		count := map[string]int{}
		for _, g := range ep.requests() {
			if g.header.Get("X-Mqgate-Attempt") != "1" {
				t.Errorf("%s was retried (attempt %s)", g.body, g.header.Get("X-Mqgate-Attempt"))
			}
			count[g.body]++
			k, i, _ := strings.Cut(g.body, "-")
			n, _ := strconv.Atoi(i)
			seen[k] = append(seen[k], n)
			if g.header.Get(push.HeaderKey) != k {
				t.Errorf("%s came with key header %q", g.body, g.header.Get(push.HeaderKey))
			}
		}
		if len(count) != keys*per {
			t.Errorf("%d distinct messages delivered, want %d", len(count), keys*per)
		}
		for body, n := range count {
			if n != 1 {
				t.Errorf("%s delivered %d times", body, n)
			}
		}
		for k, ns := range seen {
			if !slices.IsSorted(ns) {
				t.Errorf("key %s delivered out of order: %v", k, ns)
			}
		}
	})
}

// With order: partition, each qid's messages arrive strictly in offset
// order and never two at once, while partitions go in parallel.
func TestPartitionOrder(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b)
		e.topic("ledger", 3)
		var mu sync.Mutex
		inflight := map[string]int{}
		var overlap []string
		ep := newEndpoint(t, func(g got, n int) (int, string) {
			qid := g.header.Get(push.HeaderQid)
			mu.Lock()
			inflight[qid]++
			if inflight[qid] > 1 {
				overlap = append(overlap, g.body)
			}
			mu.Unlock()
			time.Sleep(time.Millisecond) // widen the window an overlap would need
			mu.Lock()
			inflight[qid]--
			mu.Unlock()
			return 200, ""
		})
		var msgs []message
		for i := range 300 {
			// Keys differ, so only the qid orders them.
			msgs = append(msgs, message{key: strconv.Itoa(i), value: strconv.Itoa(i), partition: int32(i % 3)})
		}
		e.produce("ledger", msgs...)
		sub := subscription(t, "ledger", "ledger", ep.URL)
		sub.Order = "partition"
		ps := e.start(sub)
		waitFor(t, "every message delivered", func() bool { return statusOf(ps, "ledger").Delivered >= 300 })
		if len(overlap) > 0 {
			t.Errorf("two messages of one qid were in flight at once: %v", overlap)
		}
		last := map[string]int64{}
		for _, g := range ep.requests() {
			qid := g.header.Get(push.HeaderQid)
			off, _ := strconv.ParseInt(g.header.Get(push.HeaderOffset), 10, 64)
			if prev, ok := last[qid]; ok && off != prev+1 {
				t.Errorf("qid %s: offset %d after %d", qid, off, prev)
			}
			last[qid] = off
		}
		if len(last) != 3 {
			t.Errorf("deliveries came from qids %v, want 3", last)
		}
	})
}

// A target answering 500 twice then 200 gets the message three times, with
// attempts 1, 2, 3 and at least the configured backoff between them.
func TestRetryBackoff(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b)
		e.topic("flaky", 1)
		ep := newEndpoint(t, func(g got, n int) (int, string) {
			if n <= 2 {
				return 500, "not yet"
			}
			return 200, ""
		})
		e.produce("flaky", message{key: "a", value: "payload"})
		sub := subscription(t, "flaky", "flaky", ep.URL)
		sub.Retry.Backoff = []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}
		ps := e.start(sub)
		waitFor(t, "delivery", func() bool { return statusOf(ps, "flaky").Delivered == 1 })
		reqs := ep.requests()
		if len(reqs) != 3 {
			t.Fatalf("%d requests, want 3", len(reqs))
		}
		for i, g := range reqs {
			if g.attempt() != i+1 || g.body != "payload" {
				t.Errorf("request %d: attempt %d body %q", i, g.attempt(), g.body)
			}
		}
		for i, want := range sub.Retry.Backoff {
			if gap := reqs[i+1].at.Sub(reqs[i].at); gap < want {
				t.Errorf("attempt %d came %v after attempt %d, before the %v backoff", i+2, gap, i+1, want)
			}
		}
		st := statusOf(ps, "flaky")
		if st.Retried != 2 || st.Failures != 2 || !strings.Contains(st.LastError, "HTTP 500: not yet") {
			t.Errorf("status = %+v", st)
		}
	})
}

// With can_skip: false a message that keeps failing is retried past
// retry.max and holds back its own key only; with can_skip: true it goes
// to the dead-letter topic after retry.max attempts and its key moves on.
func TestCanSkip(t *testing.T) {
	for _, canSkip := range []bool{false, true} {
		t.Run(fmt.Sprintf("can_skip=%v", canSkip), func(t *testing.T) {
			brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
				e := newEnv(t, b)
				e.topic("jobs", 2)
				name := "jobs" + strconv.FormatBool(canSkip)
				e.topic("mqgate-push-"+name+"-dlq", 1)
				ep := newEndpoint(t, func(g got, n int) (int, string) {
					if g.body == "poison" {
						return 503, "cannot"
					}
					return 200, ""
				})
				var msgs []message
				msgs = append(msgs, message{key: "bad", value: "poison", partition: sdk.PartitionHash})
				for i := range 5 {
					msgs = append(msgs, message{key: "bad", value: fmt.Sprintf("bad-after-%d", i), partition: sdk.PartitionHash})
				}
				for i := range 50 {
					msgs = append(msgs, message{key: fmt.Sprintf("good%d", i), value: fmt.Sprintf("good-%d", i), partition: sdk.PartitionHash})
				}
				e.produce("jobs", msgs...)
				sub := subscription(t, name, "jobs", ep.URL)
				sub.CanSkip = canSkip
				sub.Retry.Max = 2
				sub.Retry.Backoff = []time.Duration{20 * time.Millisecond}
				ps := e.start(sub)

				if !canSkip {
					waitFor(t, "other keys delivered and the poison retried past retry.max", func() bool {
						st := statusOf(ps, name)
						return st.Delivered == 50 && st.Failures > 5
					})
					st := statusOf(ps, name)
					if st.DeadLettered != 0 || st.Retrying+st.InFlight != 1 || st.Queued != 6 {
						t.Errorf("status = %+v; want the poison held with its 5 followers, nothing dead-lettered", st)
					}
					for _, body := range ep.bodies() {
						if strings.HasPrefix(body, "bad-after") {
							t.Errorf("%s was delivered while the message before it on its key was failing", body)
						}
					}
					return
				}
				waitFor(t, "everything else delivered", func() bool { return statusOf(ps, name).Delivered == 55 })
				st := statusOf(ps, name)
				if st.DeadLettered != 1 {
					t.Errorf("status = %+v; want one dead letter", st)
				}
				n := 0
				for _, body := range ep.bodies() {
					if body == "poison" {
						n++
					}
				}
				if n != 2 {
					t.Errorf("poison tried %d times, want retry.max = 2", n)
				}
				dl := consumetest.PullOne(t, e.svc, "mqgate-push-"+name+"-dlq")
				if string(dl.Value) != "poison" || consumetest.Header(dl, consume.HeaderOriginTopic) != "jobs" || consumetest.Header(dl, consume.HeaderAttempts) != "2" ||
					!strings.Contains(consumetest.Header(dl, consume.HeaderLastError), "HTTP 503") {
					t.Errorf("dead letter %q with headers %v", dl.Value, dl.Headers)
				}
			})
		})
	}
}

// What the reply says decides: 2xx delivers, 4xx dead-letters at once, and
// a JSON status overrides the code.
func TestReplies(t *testing.T) {
	e := newEnv(t, brokertest.Kinds[0].Start(t))
	for _, tc := range []struct {
		name           string
		status         int
		reply          string
		wantAttempts   int
		wantDeadLetter bool
	}{
		{"204 delivers", 204, "", 1, false},
		{"400 dead-letters at once", 400, "bad field", 1, true},
		{"404 dead-letters at once", 404, "", 1, true},
		{"429 retries", 429, "", 3, true},
		{"408 retries", 408, "", 3, true},
		{"status RETRY on 200 retries", 200, `{"status": "RETRY"}`, 3, true},
		{"status DROP dead-letters at once", 200, `{"status":"DROP"}`, 1, true},
		{"status SUCCESS on 500 delivers", 500, `{"status":"success"}`, 1, false},
		{"other JSON leaves the code", 200, `{"status":"whatever"}`, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "replies-" + strconv.Itoa(tc.status) + "-" + strings.ReplaceAll(strings.Fields(tc.name)[1], `"`, "")
			topic = strings.Map(func(r rune) rune {
				if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
					return r
				}
				return '-'
			}, strings.ToLower(topic+tc.name))
			e.topic(topic, 1)
			ep := newEndpoint(t, func(got, int) (int, string) { return tc.status, tc.reply })
			e.produce(topic, message{value: "m"})
			sub := subscription(t, topic, topic, ep.URL)
			sub.CanSkip = true
			sub.Retry.Backoff = []time.Duration{10 * time.Millisecond}
			e.topic(sub.Group+"-dlq", 1)
			ps := e.start(sub)
			waitFor(t, "the message settled", func() bool {
				st := statusOf(ps, topic)
				return st.Delivered+st.DeadLettered == 1
			})
			st := statusOf(ps, topic)
			if n := len(ep.requests()); n != tc.wantAttempts {
				t.Errorf("%d attempts, want %d", n, tc.wantAttempts)
			}
			if (st.DeadLettered == 1) != tc.wantDeadLetter {
				t.Errorf("status = %+v, want dead-lettered %v", st, tc.wantDeadLetter)
			}
		})
	}
}

// A target that does not answer within timeout is cut off and the message
// retried.
func TestHangingTargetTimesOut(t *testing.T) {
	e := newEnv(t, brokertest.Kinds[0].Start(t))
	e.topic("slow", 1)
	release := make(chan struct{})
	ep := newEndpoint(t, func(g got, n int) (int, string) {
		if n == 1 {
			<-release // hangs past the timeout
		}
		return 200, ""
	})
	t.Cleanup(func() { close(release) }) // before the server's Close, which waits for the handler
	e.produce("slow", message{value: "m"})
	sub := subscription(t, "slow", "slow", ep.URL)
	// The timeout bounds every attempt, so on a loaded machine a retry
	// answered at once may time out too: retries to spare, and the checks
	// hold however many attempts it took.
	sub.Timeout = 200 * time.Millisecond
	sub.Retry.Max = 20
	ps := e.start(sub)
	waitFor(t, "delivery", func() bool { return statusOf(ps, "slow").Delivered == 1 })
	reqs := ep.requests()
	if len(reqs) < 2 {
		t.Fatalf("%d requests; want the hanging one cut off and a retry to deliver", len(reqs))
	}
	for i, g := range reqs {
		if g.attempt() != i+1 {
			t.Fatalf("request %d was attempt %d; want every request after the hanging one a retry of it", i+1, g.attempt())
		}
	}
	if st := statusOf(ps, "slow"); !strings.Contains(st.LastError, "timed out") {
		t.Errorf("last error %q does not say it timed out", st.LastError)
	}
}

// Two live targets share the load; a dead one is skipped and everything
// arrives at the live one.
func TestTargets(t *testing.T) {
	e := newEnv(t, brokertest.Kinds[0].Start(t))
	e.topic("spread", 2)
	a := newEndpoint(t, nil)
	bb := newEndpoint(t, nil)
	var msgs []message
	for i := range 200 {
		msgs = append(msgs, message{key: strconv.Itoa(i), value: strconv.Itoa(i), partition: sdk.PartitionHash})
	}
	e.produce("spread", msgs...)
	ps := e.start(subscription(t, "spread", "spread", a.URL, bb.URL))
	waitFor(t, "delivery", func() bool { return statusOf(ps, "spread").Delivered == 200 })
	if na, nb := len(a.requests()), len(bb.requests()); na+nb != 200 || na < 50 || nb < 50 {
		t.Errorf("targets got %d and %d of 200; want both a fair share", na, nb)
	}

	// A dead target: its port is bound and not listening, so dials are
	// refused and no other socket can take it. It stays down for the
	// rest of the test: the cooldown outlasts it.
	dead := "http://" + testport.Reserve(t).Addr + "/hook"
	live := newEndpoint(t, nil)
	e.topic("spread2", 2)
	e.produce("spread2", msgs...)
	sub := subscription(t, "spread2", "spread2", dead, live.URL)
	sub.TargetCooldown = time.Hour
	ps2 := e.start(sub)
	waitFor(t, "delivery", func() bool { return statusOf(ps2, "spread2").Delivered == 200 })
	st := statusOf(ps2, "spread2")
	if len(live.requests()) != 200 || st.Failures != 0 || st.Retried != 0 {
		t.Errorf("live target got %d; status %+v: a refused connection should move on to the live target in the same attempt", len(live.requests()), st)
	}
	// Requests already on their way when it was marked down fail too:
	// at most one per worker.
	if st.Targets[0].Healthy || st.Targets[0].Failures == 0 || st.Targets[0].Failures > int64(sub.Concurrency) {
		t.Errorf("dead target status %+v; want unhealthy, tried only until marked down", st.Targets[0])
	}
}

// filter drops what it rejects (counted as filtered, acked) and transform
// builds the body and a header from JSON values.
func TestFilterAndTransform(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b)
		e.topic("payments", 1)
		e.topic("mqgate-push-big-dlq", 1)
		ep := newEndpoint(t, nil)
		e.produce("payments",
			message{value: `{"id": 1, "amount": 50, "currency": "EUR"}`},
			message{value: `{"id": 2, "amount": 500, "currency": "EUR"}`},
			message{value: `not json`},
			message{value: `{"id": 3, "amount": 1000, "currency": "USD"}`, headers: []sdk.Header{{Key: "source", Value: []byte("web")}}},
		)
		sub := subscription(t, "big", "payments", ep.URL)
		sub.Filter = `json?.amount > 100`
		sub.Transform = &config.PushTransform{
			Body:    `{"payment": json.id, "cents": json.amount * 100, "source": "source" in headers ? headers.source : "unknown"}`,
			Headers: map[string]string{"X-Currency": `json.currency`},
		}
		ps := e.start(sub)
		waitFor(t, "settled", func() bool {
			st := statusOf(ps, "big")
			return st.Delivered+st.Filtered+st.DeadLettered == 4
		})
		reqs := ep.requests()
		if len(reqs) != 2 {
			t.Fatalf("%d requests: %v", len(reqs), ep.bodies())
		}
		want := []struct{ body, currency string }{
			{`{"cents":50000,"payment":2,"source":"unknown"}`, "EUR"},
			{`{"cents":100000,"payment":3,"source":"web"}`, "USD"},
		}
		// Messages without a key have no order to keep.
		slices.SortFunc(reqs, func(a, b got) int { return strings.Compare(a.header.Get("X-Currency"), b.header.Get("X-Currency")) })
		for i, w := range want {
			if reqs[i].body != w.body || reqs[i].header.Get("X-Currency") != w.currency || reqs[i].header.Get("Content-Type") != "application/json" {
				t.Errorf("request %d: %s %v", i, reqs[i].body, reqs[i].header)
			}
		}
		if st := statusOf(ps, "big"); st.Filtered != 1 || st.DeadLettered != 1 {
			t.Errorf("filtered %d, dead-lettered %d; want 1 and 1", st.Filtered, st.DeadLettered)
		}
		// The filter cannot compare a value that is not JSON: an error,
		// not a silent drop; the message goes to the dead-letter topic.
		dl := consumetest.PullOne(t, e.svc, sub.Group+"-dlq")
		if string(dl.Value) != "not json" || !strings.Contains(consumetest.Header(dl, consume.HeaderLastError), "filter:") {
			t.Errorf("dead letter %q, last error %q", dl.Value, consumetest.Header(dl, consume.HeaderLastError))
		}
		// Filtered and dead-lettered messages are acked: the group commits
		// past all four.
		waitFor(t, "commit past all", func() bool {
			offs, err := b.ListOffsets(context.Background(), []string{"payments"}, sub.Group)
			return err == nil && len(offs) == 1 && offs[0].Committed == offs[0].End
		})
	})
}

// The raw request carries the metadata headers and every message header;
// envelope: json carries all of it in one object.
func TestRequestShape(t *testing.T) {
	e := newEnv(t, brokertest.Kinds[0].Start(t))
	e.topic("shape", 1)
	e.topic("shape2", 1)
	msg := message{key: "k\x01", value: "v\xff", headers: []sdk.Header{
		{Key: "trace", Value: []byte("t1")}, {Key: "mqgate-delay-id", Value: []byte("d-7")}, {Key: "bin", Value: []byte("a\nb")},
	}}
	e.produce("shape", msg)
	e.produce("shape2", msg)
	raw := newEndpoint(t, nil)
	js := newEndpoint(t, nil)
	sub := subscription(t, "shape", "shape", raw.URL)
	sub.Headers = map[string]string{"Authorization": "Bearer x"}
	sub.HostHeader = "api.example.com"
	sub2 := subscription(t, "shape2", "shape2", js.URL)
	sub2.Envelope = "json"
	ps := e.start(sub, sub2)
	waitFor(t, "delivery", func() bool {
		return statusOf(ps, "shape").Delivered == 1 && statusOf(ps, "shape2").Delivered == 1
	})
	r := raw.requests()[0]
	h := r.header
	for name, want := range map[string]string{
		push.HeaderTopic: "shape", push.HeaderKeyBase64: "awE=", push.HeaderQid: "0", push.HeaderOffset: "0",
		push.HeaderAttempt: "1", push.HeaderDelayID: "d-7", push.HeaderPropPrefix + "Trace": "t1",
		"Authorization": "Bearer x", "Content-Type": "application/octet-stream",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if got := h.Values(push.HeaderPropEncoded); len(got) != 1 || got[0] != "Ymlu:YQpi" {
		t.Errorf("%s = %v, want the binary header encoded", push.HeaderPropEncoded, got)
	}
	if r.body != "v\xff" {
		t.Errorf("body %q", r.body)
	}
	j := js.requests()[0]
	for _, want := range []string{`"topic":"shape2"`, `"key":"k\u0001"`, `"value_base64":"dv8="`, `"delay_id":"d-7"`, `"attempt":1`, `"trace":"t1"`} {
		if !strings.Contains(j.body, want) {
			t.Errorf("json envelope %s lacks %s", j.body, want)
		}
	}
	if j.header.Get("Content-Type") != "application/json" {
		t.Errorf("json envelope content type %q", j.header.Get("Content-Type"))
	}
}

// The Host header override reaches the server.
func TestHostHeader(t *testing.T) {
	e := newEnv(t, brokertest.Kinds[0].Start(t))
	e.topic("hosted", 1)
	var host string
	var mu sync.Mutex
	srv := newEndpoint(t, nil)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		host = r.Host
		mu.Unlock()
		srv.serve(w, r)
	})
	e.produce("hosted", message{value: "m"})
	sub := subscription(t, "hosted", "hosted", srv.URL)
	sub.HostHeader = "api.example.com"
	ps := e.start(sub)
	waitFor(t, "delivery", func() bool { return statusOf(ps, "hosted").Delivered == 1 })
	mu.Lock()
	defer mu.Unlock()
	if host != "api.example.com" {
		t.Errorf("Host = %q", host)
	}
}

// A restarted subscription with delivery 2 does not send again what its
// record says was delivered, even when the group never committed it.
func TestDeliveredRecordSkipsOnRestart(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b)
		e.topic("once", 1)
		var msgs []message
		for i := range 20 {
			msgs = append(msgs, message{value: strconv.Itoa(i)})
		}
		e.produce("once", msgs...)
		ep := newEndpoint(t, nil)
		sub := subscription(t, "once", "once", ep.URL)
		sub.Order = "partition"
		sub.Delivery = 2
		ps := e.start(sub)
		waitFor(t, "delivery", func() bool { return statusOf(ps, "once").Delivered == 20 })
		ps.Close()
		e.svc.Close()

		// Forget the commits: a new consume service whose group starts
		// from the beginning, as if the gateway died before committing.
		e2 := newEnv(t, b)
		sub2 := *sub
		sub2.Group = sub.Group + "-again"
		// Same record file (same name and state_dir), different group: the
		// record is per subscription, so it still knows offsets 0..19.
		ps2 := e2.start(&sub2)
		waitFor(t, "all 20 skipped", func() bool { return statusOf(ps2, "once").Deduplicated == 20 })
		if n := len(ep.requests()); n != 20 {
			t.Errorf("%d requests after the restart, want the 20 of the first run only", n)
		}
	})
}

// Two gateways on one subscription split its qids: when the second joins,
// qids move to it, every message is delivered, and each gateway delivers
// each qid in offset order. A message may come twice across the move
// (at-least-once): when the first gateway holds a full buffer it sees the
// revoke late; the test reports how many.
func TestTwoGatewaysShareSubscription(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e1, e2 := newEnv(t, b), newEnv(t, b)
		e1.topic("shared", 4)
		var mu sync.Mutex
		byGateway := map[string][]got{}
		distinct := map[string]bool{}
		endpoint := func(name string) *endpoint {
			return newEndpoint(t, func(g got, _ int) (int, string) {
				mu.Lock()
				byGateway[name] = append(byGateway[name], g)
				distinct[g.body] = true
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
				return 200, ""
			})
		}
		ep1, ep2 := endpoint("one"), endpoint("two")
		n := 0 // messages produced
		produce := func(count int) {
			var msgs []message
			for i := n; i < n+count; i++ {
				msgs = append(msgs, message{value: strconv.Itoa(i), partition: int32(i % 4)})
			}
			e1.produce("shared", msgs...)
			n += count
		}
		produce(2000)
		sub1 := subscription(t, "shared", "shared", ep1.URL)
		sub1.Order = "partition"
		sub2 := *sub1
		sub2.Targets, sub2.StateDir = []string{ep2.URL}, t.TempDir()
		ps1 := e1.start(sub1)
		waitFor(t, "the first gateway under way", func() bool { return statusOf(ps1, "shared").Delivered >= 100 })
		e2.start(&sub2)
		// However long the rebalance takes, the first gateway must not
		// run out of messages before a qid moved: whenever it has
		// delivered everything and the second nothing yet, produce more.
		twoDelivered := func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(byGateway["two"]) > 0
		}
		for batches := 0; !twoDelivered(); batches++ {
			if batches == 100 {
				t.Fatalf("the second gateway delivered nothing of %d messages: no qid moved to it", n)
			}
			waitFor(t, "the second gateway to deliver, or the first to catch up", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(byGateway["two"]) > 0 || len(distinct) == n
			})
			if !twoDelivered() {
				produce(200)
			}
		}
		waitFor(t, "every message delivered", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(distinct) == n
		})
		mu.Lock()
		defer mu.Unlock()
		deliveries := 0
		for name, reqs := range byGateway {
			last := map[string]int64{}
			for _, g := range reqs {
				deliveries++
				qid := g.header.Get(push.HeaderQid)
				off, _ := strconv.ParseInt(g.header.Get(push.HeaderOffset), 10, 64)
				if prev, ok := last[qid]; ok && off <= prev {
					t.Errorf("gateway %s: qid %s offset %d after %d", name, qid, off, prev)
				}
				last[qid] = off
			}
		}
		t.Logf("%d messages, %d deliveries (%d repeated across the rebalance)", n, deliveries, deliveries-n)
	})
}

// rate_limit bounds requests per second: 40 messages at 50/s with a burst
// of 16 take at least (40-16)/50 s from when the limiter was made, full.
func TestRateLimit(t *testing.T) {
	e := newEnv(t, brokertest.Kinds[0].Start(t))
	e.topic("limited", 1)
	ep := newEndpoint(t, nil)
	var msgs []message
	for i := range 40 {
		msgs = append(msgs, message{key: strconv.Itoa(i), value: strconv.Itoa(i)})
	}
	e.produce("limited", msgs...)
	sub := subscription(t, "limited", "limited", ep.URL)
	sub.RateLimit = 50
	// Measured from before the limiter exists, not from the first
	// request's arrival, which a loaded machine may delay: the bound
	// holds however slow the machine.
	start := time.Now()
	ps := e.start(sub)
	waitFor(t, "delivery", func() bool { return statusOf(ps, "limited").Delivered == 40 })
	reqs := ep.requests()
	if span, least := reqs[len(reqs)-1].at.Sub(start), 24*time.Second/50; span < least {
		t.Errorf("40 requests within %v of starting; the rate limit allows them no sooner than %v", span, least)
	}
}

// A delivery slower than slow_ms is logged with its topic, qid, offset and
// time taken.
func TestSlowDeliveryLogged(t *testing.T) {
	e := newEnv(t, brokertest.Kinds[0].Start(t))
	e.topic("sluggish", 1)
	ep := newEndpoint(t, func(got, int) (int, string) {
		time.Sleep(30 * time.Millisecond)
		return 200, ""
	})
	e.produce("sluggish", message{value: "m"})
	sub := subscription(t, "sluggish", "sluggish", ep.URL)
	sub.SlowMs = 10
	logs := &logCapture{}
	ps, err := push.New(push.Options{Subscriptions: []*config.Push{sub}, Consumer: e.svc, Logger: slog.New(logs), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ps.Start()
	t.Cleanup(ps.Close)
	waitFor(t, "delivery", func() bool { return statusOf(ps, "sluggish").Delivered == 1 })
	rec, ok := logs.find("slow push delivery")
	if !ok {
		t.Fatal("no slow delivery logged")
	}
	if rec["topic"] != "sluggish" || rec["qid"] != "0" || rec["offset"] != "0" || rec["took"] == "" {
		t.Errorf("slow delivery log %v lacks topic, qid, offset or took", rec)
	}
}

// logCapture is a slog.Handler that keeps records' messages and
// attributes (as text).
type logCapture struct {
	mu   sync.Mutex
	recs []map[string]string
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logCapture) WithGroup(string) slog.Handler            { return l }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, m)
	l.mu.Unlock()
	return nil
}

func (l *logCapture) find(msg string) (map[string]string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r["msg"] == msg {
			return r, true
		}
	}
	return nil, false
}

// Credentials in a target's URL reach it as Basic authorization, unless
// the subscription sends an Authorization header of its own; a failure
// names the method and the URL, its password masked.
func TestCredentialsInTargetURL(t *testing.T) {
	e := newEnv(t, brokertest.Kinds[0].Start(t))
	e.topic("creds", 1)
	e.topic("creds2", 1)
	e.produce("creds", message{value: "m"})
	e.produce("creds2", message{value: "m"})
	withCreds := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword("pusher", "s3cret")
		return u.String()
	}
	ep, ep2 := newEndpoint(t, nil), newEndpoint(t, nil)
	sub := subscription(t, "creds", "creds", withCreds(ep.URL))
	sub2 := subscription(t, "creds2", "creds2", withCreds(ep2.URL))
	sub2.Headers = map[string]string{"Authorization": "Bearer own"}
	closed := newEndpoint(t, nil)
	closedURL := withCreds(closed.URL) + "/hook"
	closed.Close()
	e.topic("creds3", 1)
	e.produce("creds3", message{value: "m"})
	sub3 := subscription(t, "creds3", "creds3", closedURL)
	ps := e.start(sub, sub2, sub3)
	waitFor(t, "delivery", func() bool {
		return statusOf(ps, "creds").Delivered == 1 && statusOf(ps, "creds2").Delivered == 1 && statusOf(ps, "creds3").LastError != ""
	})
	if got, want := ep.requests()[0].header.Get("Authorization"), "Basic cHVzaGVyOnMzY3JldA=="; got != want {
		t.Errorf("Authorization from the URL = %q, want %q", got, want)
	}
	if got := ep2.requests()[0].header.Get("Authorization"); got != "Bearer own" {
		t.Errorf("Authorization with the subscription's own header = %q, want it kept", got)
	}
	last := statusOf(ps, "creds3").LastError
	if !strings.Contains(last, `Post "http://pusher:***@`) || strings.Contains(last, "s3cret") {
		t.Errorf("last error %q: want the method and the URL with its password masked", last)
	}
}
