package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// inProcessKafka is the plugins: entry of a Kafka backend in the gateway's
// process.
const inProcessKafka = "{builtin: kafka, in_process: true}"

// With in_process: true the bundled Kafka backend serves the gateway from
// inside its process: no plugin process runs, /v1/plugins says so, and
// produce, consume with acks, stats and a restart behave as with a plugin
// process.
func TestInProcessKafkaServesWithoutAPluginProcess(t *testing.T) {
	dir := t.TempDir()
	s := writeConfig(t, dir, embeddedKafka(t, dir), options{plugin: inProcessKafka})
	g := startGateway(t, s)

	ps := g.plugins()
	if len(ps) != 1 || ps[0].State != "up" || !ps[0].InProcess || ps[0].PID != g.cmd.Process.Pid {
		t.Fatalf("/v1/plugins = %+v, want kafka up in the gateway's process %d", ps, g.cmd.Process.Pid)
	}
	if kids := children(t, g.cmd.Process.Pid); len(kids) != 0 {
		t.Fatalf("the gateway runs child processes %v; want none", kids)
	}
	// The backend's connections and the embedded broker's files come out
	// of the gateway's descriptors: the listeners plan for half of them.
	if v := g.logged("connection limits", "other_half"); v != "in_process_backend" {
		t.Errorf("connection limits: other_half=%q, want the listeners to plan for half the descriptors", v)
	}

	var msgs []string
	for i := range 20 {
		msgs = append(msgs, fmt.Sprintf(`{"key":"k%d","value":"m%02d","headers":{"n":"%d"}}`, i, i, i))
	}
	res := g.produceOK("events", `{"messages":[`+strings.Join(msgs, ",")+`]}`)
	if len(res) != 20 {
		t.Fatalf("%d results for 20 messages", len(res))
	}
	for _, r := range g.read("events", 20) {
		n, err := strconv.Atoi(r.Headers["n"])
		if err != nil || r.Value != fmt.Sprintf("m%02d", n) || r.Key != fmt.Sprintf("k%d", n) {
			t.Fatalf("the broker's own client read %+v: key, value and header disagree", r)
		}
	}

	// Pull and ack every message; the group's lag falls to zero.
	seen := map[string]int{}
	var ack string
	// A group's first pull waits for it to join, which a loaded machine
	// may take many seconds over.
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); {
		if len(seen) == 20 && ack == "" {
			break
		}
		body := `{"max_messages": 7, "max_wait_ms": 200`
		if ack != "" {
			body += `, "ack": ` + ack
		}
		code, out := g.do("POST", "/v1/groups/g1/topics/events/pull", body+"}", nil)
		if code != 200 {
			t.Fatalf("pull: %d %s", code, out)
		}
		var pulled struct {
			Messages []struct {
				Value  string `json:"value"`
				Offset int64  `json:"offset"`
				Qid    string `json:"qid"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(out, &pulled); err != nil {
			t.Fatalf("pull answer %s: %v", out, err)
		}
		ack = ""
		if len(pulled.Messages) == 0 {
			continue
		}
		var offs []string
		for _, m := range pulled.Messages {
			seen[m.Value]++
			offs = append(offs, fmt.Sprint(m.Offset))
		}
		ack = fmt.Sprintf(`{"qid": %q, "success": [%s]}`, pulled.Messages[0].Qid, strings.Join(offs, ","))
	}
	for i := range 20 {
		if v := fmt.Sprintf("m%02d", i); seen[v] != 1 {
			t.Errorf("%s pulled %d times, want once", v, seen[v])
		}
	}
	waitFor(t, "the group's lag to reach zero", func() bool {
		code, body := g.do("GET", "/v1/groups/g1/stats?topic=events", "", nil)
		var st struct {
			Stats []struct {
				Lag int64 `json:"lag"`
			} `json:"stats"`
		}
		return code == 200 && json.Unmarshal(body, &st) == nil && len(st.Stats) == 1 && st.Stats[0].Lag == 0
	})

	// A clean stop closes the backend, which saves the embedded broker's
	// data: a new gateway finds every message.
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-g.exited; err != nil {
		t.Fatalf("gateway exited with %v after SIGTERM, want a clean exit", err)
	}
	g.exited <- nil // for the cleanup
	g2 := startGateway(t, s)
	g2.produceOK("events", `{"value":"after"}`)
	if got := valuesOf(g2.read("events", 21)); !got["after"] || !got["m00"] || !got["m19"] {
		t.Fatalf("after a restart the topic holds %v", got)
	}
}

// children lists the pids of pid's child processes.
func children(t *testing.T, pid int) []string {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil || len(tasks) == 0 {
		t.Skipf("cannot list child processes here (/proc/PID/task/*/children): %v", err)
	}
	var out []string
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended meanwhile
		}
		out = append(out, strings.Fields(string(b))...)
	}
	return out
}
