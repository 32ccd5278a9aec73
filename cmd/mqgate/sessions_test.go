package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pulled is a pull's answer.
type pulled struct {
	Context struct {
		Qid string `json:"qid"`
	} `json:"context"`
	Messages []struct {
		Offset int64 `json:"offset"`
	} `json:"messages"`
}

// pullOnce pulls for group on topic; safe from any goroutine.
func (g *gateway) pullOnce(group, topic string, waitMs int) (int, pulled, string, error) {
	resp, err := http.Post(fmt.Sprintf("http://%s/v1/groups/%s/topics/%s/pull", g.httpAddr, group, topic), "application/json",
		strings.NewReader(fmt.Sprintf(`{"max_messages": 10, "max_wait_ms": %d}`, waitMs)))
	if err != nil {
		return 0, pulled{}, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	var p pulled
	if err == nil && resp.StatusCode == 200 {
		err = json.Unmarshal(body, &p)
	}
	return resp.StatusCode, p, string(body), err
}

// pullMessages pulls until messages come.
func (g *gateway) pullMessages(group, topic string) (pulled, error) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		code, p, body, err := g.pullOnce(group, topic, 1000)
		if err != nil || code != 200 {
			return p, fmt.Errorf("pull of %s: %d %s %v", group, code, body, err)
		}
		if len(p.Messages) > 0 {
			return p, nil
		}
	}
	return pulled{}, fmt.Errorf("nothing to pull for %s from %s", group, topic)
}

func (g *gateway) ack(group, topic string, p pulled) (int, string) {
	offs := make([]string, len(p.Messages))
	for i, m := range p.Messages {
		offs[i] = fmt.Sprint(m.Offset)
	}
	code, body := g.do("POST", "/v1/groups/"+group+"/topics/"+topic+"/ack",
		fmt.Sprintf(`{"qid": %q, "success": [%s]}`, p.Context.Qid, strings.Join(offs, ",")), nil)
	return code, string(body)
}

// Past consume.max_sessions a new group's pull is refused with 429, code
// 15, naming the key, while produce and open sessions go on; when the
// plugin is killed, only the session with a message in flight re-opens on
// the new process, and its ack still works; the idle ones close, which
// makes room for the refused group.
func TestSessionsCappedAndIdleOnesNotReopened(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{
			extra: "consume: {max_sessions: 4, session_idle: 20s}\n",
		}))
		g.produceOK("busy", `{"value":"in flight"}`)
		g.produceOK("idle", `{"value":"acked"}`)

		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
			busy pulled
		)
		report := func(err error) {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err)
		}
		wg.Go(func() {
			p, err := g.pullMessages("g-busy", "busy")
			if err != nil {
				report(err)
			}
			busy = p // not acked: in flight across the restart
		})
		for i := range 3 {
			wg.Go(func() {
				group := fmt.Sprintf("g-idle-%d", i)
				p, err := g.pullMessages(group, "idle")
				if err == nil {
					if code, body := g.ack(group, "idle", p); code != 200 {
						err = fmt.Errorf("ack of %s: %d %s", group, code, body)
					}
				}
				if err != nil {
					report(err)
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			t.Fatal(err)
		}

		code, _, body, err := g.pullOnce("g-late", "idle", 0)
		var e apiError
		if err != nil || code != 429 || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != 15 ||
			!strings.Contains(e.Error.Message, "consume.max_sessions") || !strings.Contains(e.Error.Message, " 4 ") {
			t.Fatalf("a fifth group's pull with max_sessions 4: %d %s %v; want 429, code 15, naming consume.max_sessions and 4", code, body, err)
		}
		g.produceOK("busy", `{"value":"produced at the limit"}`)

		// The idle sessions' last pull or ack must be more than a tenth
		// of session_idle (2 s) old when the plugin dies: time passing is
		// the condition, there is nothing to poll for.
		time.Sleep(3 * time.Second)
		old := g.plugins()[0]
		if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the restart, the idle sessions closed and the busy one re-opened", func() bool {
			p := g.plugins()[0]
			return p.Restarts == 1 && p.State == "up" && g.metric("mqgate_consume_sessions_not_reopened_total") == 3 &&
				g.metric("mqgate_consume_sessions") == 1
		})
		if code, body := g.ack("g-busy", "busy", busy); code != 200 {
			t.Fatalf("acking the message in flight across the restart: %d %s", code, body)
		}
		if code, _, body, err := g.pullOnce("g-late", "idle", 0); err != nil || code != 200 {
			t.Fatalf("the refused group's pull once idle sessions closed: %d %s %v", code, body, err)
		}
	})
}
