package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqgate/mqgate/plugins/rocketmq/rmqfake"
)

// hook is a webhook endpoint that records every request it receives with
// the generation of the connection it came on, so a test can tell what a
// killed gateway sent from what its successor sent.
type hook struct {
	*httptest.Server
	gen atomic.Int32 // stamped on connections as they are accepted

	mu   sync.Mutex
	reqs []hookRequest
}

type hookRequest struct {
	gen    int32
	qid    string
	offset int64
	value  string
}

type genKey struct{}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.gen.Store(1)
	h.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		off, _ := strconv.ParseInt(r.Header.Get("X-Mqgate-Offset"), 10, 64)
		h.mu.Lock()
		h.reqs = append(h.reqs, hookRequest{r.Context().Value(genKey{}).(int32), r.Header.Get("X-Mqgate-Qid"), off, string(body)})
		h.mu.Unlock()
		time.Sleep(2 * time.Millisecond) // a handler's work: keeps the stream going while the test kills the gateway
		w.WriteHeader(http.StatusOK)
	}))
	h.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, genKey{}, h.gen.Load())
	}
	h.Start()
	t.Cleanup(h.Close)
	return h
}

func (h *hook) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.reqs...)
}

func (h *hook) distinct() int {
	seen := map[string]bool{}
	for _, r := range h.requests() {
		seen[r.value] = true
	}
	return len(seen)
}

// pushStatus is the part of GET /v1/push a test reads.
type pushStatus struct {
	Name         string `json:"name"`
	State        string `json:"state"`
	Delivered    int64  `json:"delivered"`
	DeadLettered int64  `json:"dead_lettered"`
	Deduplicated int64  `json:"deduplicated"`
	SlowDowns    int64  `json:"slow_downs"`
}

func (g *gateway) push() []pushStatus {
	g.t.Helper()
	code, body := g.do("GET", "/v1/push", "", nil)
	if code != 200 {
		g.t.Fatalf("GET /v1/push: %d %s", code, body)
	}
	var out struct{ Push []pushStatus }
	if err := json.Unmarshal(body, &out); err != nil {
		g.t.Fatal(err)
	}
	return out.Push
}

// Each delivery mode under a kill -9 of the gateway mid-stream, counted
// against seed 003's promise: no mode loses a message; delivery 2 and 3
// resend nothing their record holds, so only the one message per qid that
// was on its way at the kill may come twice; delivery 1 resends what was
// delivered since its last commit.
func TestPushDeliveryModesUnderKill(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		for _, mode := range []int{1, 2, 3} {
			t.Run(fmt.Sprintf("delivery=%d", mode), func(t *testing.T) {
				dir := t.TempDir()
				broker := kind.local(t, dir)
				if kind.name == "rocketmq" {
					// The killed member's queue locks must expire before its
					// successor may take the queues: 60 s on a default broker.
					broker = startRocketMQ(t, rmqfake.Options{AutoCreateTopics: true, LockLifetime: 2 * time.Second})
				}
				h := newHook(t)
				extra := fmt.Sprintf(`push:
  - name: orders
    topics: [events]
    targets: [%q]
    order: partition
    concurrency: 8
    delivery: %d
    commit_interval: 1s
    state_dir: %q
`, h.URL+"/hook", mode, filepath.Join(dir, "push"))
				s := writeConfig(t, dir, broker, options{extra: extra})
				g := startGateway(t, s)

				const n = 1000
				var msgs []string
				for i := range n {
					msgs = append(msgs, fmt.Sprintf(`{"key":"k%d","value":"m-%04d"}`, i, i))
				}
				for i := 0; i < n; i += 250 {
					if code, body := g.do("POST", "/v1/topics/events/messages", `{"messages":[`+strings.Join(msgs[i:i+250], ",")+`]}`, nil); code != 200 {
						t.Fatalf("produce: %d %s", code, body)
					}
				}
				waitFor(t, "a fifth delivered", func() bool { return h.distinct() >= n/5 })
				g.kill9()

				h.gen.Store(2)
				g2 := startGateway(t, s)
				waitFor(t, "every message delivered", func() bool { return h.distinct() == n })

				// What the killed gateway may not have recorded: per qid, the
				// last message it sent (order: partition sends one at a time).
				lastSent := map[string]int64{}
				first := map[string]bool{}
				dups, ambiguous := 0, 0
				for _, r := range h.requests() {
					if r.gen == 1 {
						lastSent[r.qid] = max(lastSent[r.qid], r.offset)
						first[r.value] = true
					}
				}
				seen := map[string]int{}
				for _, r := range h.requests() {
					seen[r.value]++
					if seen[r.value] < 2 {
						continue
					}
					dups++
					switch {
					case r.gen == 2 && first[r.value] && lastSent[r.qid] == r.offset:
						ambiguous++ // the one on its way at the kill
					case mode == 1:
					default:
						t.Errorf("%s (qid %s offset %d) delivered again after the restart; delivery %d promises no duplicates of what was recorded",
							r.value, r.qid, r.offset, mode)
					}
				}
				st := g2.push()
				if len(st) != 1 || st[0].Name != "orders" || st[0].State != "running" {
					t.Fatalf("GET /v1/push = %+v", st)
				}
				t.Logf("delivery %d: %d messages, kill -9 after %d delivered: lost 0, duplicates %d (%d of them the message in flight at the kill); the restarted gateway skipped %d its record had",
					mode, n, len(first), dups, ambiguous, st[0].Deduplicated)
			})
		}
	})
}
