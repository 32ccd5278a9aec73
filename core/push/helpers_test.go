package push_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/rlog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/push"
	"github.com/mqgate/mqgate/internal/consumetest"
	"github.com/mqgate/mqgate/sdk"
)

// These tests run push in process over each backend (the Kafka plugin on
// its embedded broker, the RocketMQ plugin on the RocketMQ protocol fake),
// delivering to real HTTP servers the tests start.

func TestMain(m *testing.M) {
	rlog.SetLogLevel("error")
	m.Run()
}

// env is a broker, a producer and a consume service: one gateway.
type env struct {
	t   testing.TB
	b   sdk.Backend
	p   *produce.Producer
	svc *consume.Service
}

func newEnv(t testing.TB, b sdk.Backend) *env {
	p := produce.NewProducer(map[string]sdk.Backend{"local": b}, produce.Options{Logger: slog.New(slog.DiscardHandler)})
	set := consume.DefaultSettings()
	svc := consume.New(consume.Options{
		Backends: map[string]sdk.Backend{"local": b}, Route: func(string) (string, error) { return "local", nil },
		DefaultCluster: "local", Producer: p, Defaults: set, Logger: testLogger,
	})
	t.Cleanup(svc.Close)
	return &env{t: t, b: b, p: p, svc: svc}
}

// subscription returns a push config with the defaults plugins.yaml
// gives, for topic, delivering to urls.
func subscription(t testing.TB, name, topic string, urls ...string) *config.Push {
	return &config.Push{
		Name: name, Group: "mqgate-push-" + name, Topics: []string{topic}, Targets: urls,
		Method: "POST", ConnectTimeout: 5 * time.Second, Timeout: 30 * time.Second, Concurrency: 16,
		Order: "key", Retry: config.PushRetry{Max: 3, Backoff: []time.Duration{50 * time.Millisecond}},
		Delivery: 2, CommitInterval: time.Second, Envelope: "raw", TargetCooldown: 10 * time.Second,
		Buffer: 1024, StateDir: t.TempDir(),
	}
}

// start runs push with subs on e until the test ends.
func (e *env) start(subs ...*config.Push) *push.Service {
	e.t.Helper()
	ps, err := push.New(push.Options{Subscriptions: subs, Consumer: e.svc, Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		e.t.Fatal(err)
	}
	ps.Start()
	e.t.Cleanup(ps.Close)
	return ps
}

// message is one to produce.
type message struct {
	key       string // "" for none
	value     string
	partition int32
	headers   []sdk.Header
}

func (e *env) topic(topic string, partitions int32) {
	e.t.Helper()
	if err := e.b.EnsureTopics(context.Background(), []sdk.TopicSpec{{Name: topic, Partitions: partitions}}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) produce(topic string, msgs ...message) {
	e.t.Helper()
	recs := make([]sdk.Record, len(msgs))
	for i, m := range msgs {
		recs[i] = sdk.Record{Topic: topic, Partition: m.partition, Value: []byte(m.value), Headers: m.headers}
		if m.key != "" {
			recs[i].Key = []byte(m.key)
		}
	}
	// A topic just created may not be routable yet (RocketMQ's route
	// cache): retry what failed, as the gateway's producer does.
	for attempt := 1; ; attempt++ {
		res, err := e.b.Produce(context.Background(), recs)
		if err == nil {
			var again []sdk.Record
			for i, r := range res {
				if r.Err != nil {
					again, err = append(again, recs[i]), r.Err
				}
			}
			recs = again
		}
		if err == nil || len(recs) == 0 {
			return
		}
		if attempt == 20 {
			e.t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// got is one request an endpoint received.
type got struct {
	method string
	url    *url.URL
	header http.Header
	body   string
	at     time.Time
}

func (g got) attempt() int {
	n, _ := strconv.Atoi(g.header.Get(push.HeaderAttempt))
	return n
}

// endpoint is an HTTP server that records every request and answers
// with its reply function (200 when nil).
type endpoint struct {
	*httptest.Server
	reply func(g got, n int) (status int, body string)

	mu   sync.Mutex
	reqs []got
	// times counts requests per body, for reply's n (1 on the first).
	times map[string]int
}

func newEndpoint(t testing.TB, reply func(g got, n int) (int, string)) *endpoint {
	ep := &endpoint{reply: reply, times: map[string]int{}}
	ep.Server = httptest.NewServer(http.HandlerFunc(ep.serve))
	t.Cleanup(ep.Close)
	return ep
}

func (ep *endpoint) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	g := got{method: r.Method, url: r.URL, header: r.Header.Clone(), body: string(body), at: time.Now()}
	ep.mu.Lock()
	ep.times[g.body]++
	n := ep.times[g.body]
	ep.reqs = append(ep.reqs, g)
	ep.mu.Unlock()
	status, reply := 200, ""
	if ep.reply != nil {
		status, reply = ep.reply(g, n)
	}
	w.WriteHeader(status)
	io.WriteString(w, reply)
}

func (ep *endpoint) requests() []got {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return append([]got(nil), ep.reqs...)
}

// bodies returns the body of every request received, in arrival order.
func (ep *endpoint) bodies() []string {
	var out []string
	for _, g := range ep.requests() {
		out = append(out, g.body)
	}
	return out
}

// waitFor is consumetest.WaitFor.
var waitFor = consumetest.WaitFor

func statusOf(ps *push.Service, name string) push.Status {
	for _, st := range ps.Status() {
		if st.Name == name {
			return st
		}
	}
	panic(fmt.Sprintf("no push subscription %s", name))
}

var testLogger = slog.New(slog.DiscardHandler)
