package main

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// cproxyReceiver is a webhook written for DDMQ's consumer proxy: it reads
// the form CProxy posts and answers each message with the errno its
// script says, one reply per request, the last repeating.
type cproxyReceiver struct {
	*httptest.Server
	script map[string][]string // message id -> replies: an errno, "500", or a body as is ("=text")

	mu    sync.Mutex
	forms map[string][]url.Values // message id -> the form of each request
}

func newCProxyReceiver(t *testing.T, script map[string][]string) *cproxyReceiver {
	rc := &cproxyReceiver{script: script, forms: map[string][]url.Values{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "want a form POST", http.StatusBadRequest)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// params is the message value; these values are {"id": ...}.
		id := strings.TrimSuffix(strings.TrimPrefix(r.PostForm.Get("params"), `{"id":"`), `"}`)
		rc.mu.Lock()
		rc.forms[id] = append(rc.forms[id], r.PostForm)
		n := len(rc.forms[id])
		rc.mu.Unlock()
		replies := rc.script[id]
		reply := replies[min(n, len(replies))-1]
		switch {
		case reply == "500":
			w.WriteHeader(http.StatusInternalServerError)
		case strings.HasPrefix(reply, "="):
			fmt.Fprint(w, reply[1:])
		default:
			fmt.Fprintf(w, `{"errno": %s, "errmsg": "scripted"}`, reply)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *cproxyReceiver) requests(id string) []url.Values {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.forms[id])
}

// A push subscription with envelope ddmq against a receiver written for
// CProxy, on each backend: every errno is handled as CProxy handles it
// (0, 1000001 and 1000000 deliver, 1000000 slowing the subscription;
// 1000002 and other errnos retry; an HTTP error retries on the error
// backoff; an errno that is not an integer, or retries spent with
// can_skip, go to the dead-letter topic), and no message is lost.
func TestPushDDMQReceiver(t *testing.T) {
	script := map[string][]string{
		"ok":          {"0"},
		"unprocessed": {"1000001"},
		"slow":        {"1000000"},
		"retry":       {"1000002", "0"},
		"other":       {"7", "-3", "0"},
		"error":       {"500", "="},
		"text":        {"=success"},
		"not-an-int":  {`"oops"`},
		"give-up":     {"7"},
	}
	const delivered, deadLettered = 7, 2
	wantRequests := map[string]int{"ok": 1, "unprocessed": 1, "slow": 1, "retry": 2, "other": 3, "error": 2, "text": 1, "not-an-int": 1, "give-up": 3}
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		broker := kind.local(t, dir)
		rc := newCProxyReceiver(t, script)
		extra := fmt.Sprintf(`push:
  - name: cproxy
    topics: [orders]
    targets: [%q]
    envelope: ddmq
    can_skip: true
    retry: {max: 3, backoff: [100ms]}
    state_dir: %q
    ddmq:
      token_key: s3cret
      retry_intervals: [50ms, 50ms]
`, rc.URL+"/hook", filepath.Join(dir, "push"))
		g := startGateway(t, writeConfig(t, dir, broker, options{extra: extra}))

		var msgs []string
		for id := range script {
			msgs = append(msgs, fmt.Sprintf(`{"key": "key-%s", "value": "{\"id\":\"%s\"}", "headers": {"trace": "t-%s"}}`, id, id, id))
		}
		if code, body := g.do("POST", "/v1/topics/orders/messages", `{"messages":[`+strings.Join(msgs, ",")+`]}`, nil); code != 200 {
			t.Fatalf("produce: %d %s", code, body)
		}
		// Should the wait fail, what the gateway holds says where it stuck.
		defer func() {
			if t.Failed() {
				_, push := g.do("GET", "/v1/push", "", nil)
				_, group := g.do("GET", "/v1/admin/groups/mqgate-push-cproxy", "", nil)
				t.Logf("GET /v1/push: %s\nGET /v1/admin/groups/mqgate-push-cproxy: %s", push, group)
				for id := range script {
					t.Logf("receiver: %s got %d requests", id, len(rc.requests(id)))
				}
			}
		}()
		var st pushStatus
		waitFor(t, "every message settled", func() bool {
			st = g.push()[0]
			return st.Delivered+st.DeadLettered == int64(len(script))
		})
		if st.Delivered != delivered || st.DeadLettered != deadLettered || st.SlowDowns != 1 {
			t.Errorf("GET /v1/push: delivered %d, dead-lettered %d, slow-downs %d; want %d, %d and 1",
				st.Delivered, st.DeadLettered, st.SlowDowns, delivered, deadLettered)
		}

		source := map[string]string{"kafka": "KAFKA", "rocketmq": "RMQ"}[kind.name]
		for id, want := range wantRequests {
			reqs := rc.requests(id)
			if len(reqs) != want {
				t.Errorf("%s: %d requests, want %d", id, len(reqs), want)
				continue
			}
			token := md5.Sum([]byte("key-" + id + "s3cret"))
			for i, f := range reqs {
				for name, v := range map[string]string{
					"carrera_topic": "orders", "carrera_group": "mqgate-push-cproxy", "carrera_source": source,
					"carrera_msg_key": "key-" + id, "carrera_token": hex.EncodeToString(token[:]),
					"carrera_properties": `{"trace":"t-` + id + `"}`, "carrera_req_cnt": strconv.Itoa(i),
				} {
					if got := f.Get(name); got != v {
						t.Errorf("%s request %d: %s = %q, want %q", id, i, name, got, v)
					}
				}
				if !strings.HasPrefix(f.Get("carrera_qid"), "local_") || f.Get("carrera_offset") == "" {
					t.Errorf("%s request %d: carrera_qid %q, carrera_offset %q", id, i, f.Get("carrera_qid"), f.Get("carrera_offset"))
				}
			}
		}

		// Nothing lost: what was not delivered is in the dead-letter topic.
		var dead []string
		for _, r := range broker.read(t, "mqgate-push-cproxy-dlq", deadLettered) {
			dead = append(dead, r.Value)
		}
		slices.Sort(dead)
		if want := []string{`{"id":"give-up"}`, `{"id":"not-an-int"}`}; !slices.Equal(dead, want) {
			t.Errorf("dead letters %v, want %v", dead, want)
		}
		t.Logf("%s: %d delivered, %d dead-lettered, %d slow-down; requests per message %v", kind.name, st.Delivered, st.DeadLettered, st.SlowDowns, wantRequests)
	})
}
