package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The admin routes describe a topic and browse its messages on every
// backend, from what the gateway produced, without moving any group.
func TestAdminBrowsesATopic(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		g := startLocal(t, kind)
		var msgs []string
		for i := range 12 {
			msgs = append(msgs, fmt.Sprintf(`{"key":"k","value":"m%02d","partition":0}`, i))
		}
		g.produceOK("browsed", `{"messages":[`+strings.Join(msgs, ",")+`]}`)

		code, body := g.do("GET", "/v1/admin/topics/browsed", "", nil)
		var top struct {
			Cluster  string `json:"cluster"`
			Messages int64  `json:"messages"`
			Qids     []struct {
				Qid        string `json:"qid"`
				Start, End int64
			} `json:"qids"`
		}
		if code != 200 || json.Unmarshal(body, &top) != nil || top.Cluster != "local" || top.Messages != 12 {
			t.Fatalf("describe: %d %s", code, body)
		}
		qid := ""
		for _, q := range top.Qids {
			if q.End-q.Start == 12 {
				qid = url.QueryEscape(q.Qid)
			}
		}
		if qid == "" {
			t.Fatalf("describe: no qid holds the 12 messages: %s", body)
		}

		var seen []string
		next := "0"
		for range 5 {
			code, body = g.do("GET", "/v1/admin/topics/browsed/messages?qid="+qid+"&limit=5&offset="+next, "", nil)
			var page struct {
				Next     int64 `json:"next_offset"`
				Messages []struct {
					Value string `json:"value"`
				} `json:"messages"`
			}
			if code != 200 || json.Unmarshal(body, &page) != nil {
				t.Fatalf("browse from %s: %d %s", next, code, body)
			}
			if len(page.Messages) == 0 {
				break
			}
			for _, m := range page.Messages {
				seen = append(seen, m.Value)
			}
			next = fmt.Sprint(page.Next)
		}
		if len(seen) != 12 || seen[0] != "m00" || seen[11] != "m11" {
			t.Fatalf("browsed %v, want m00..m11 in order", seen)
		}
		code, body = g.do("GET", "/v1/admin/topics/browsed/messages/"+qid+"/4?format=hex", "", nil)
		if code != 200 || !strings.Contains(string(body), `"value_hex":"6d3034"`) {
			t.Fatalf("show at 4: %d %s", code, body)
		}
		code, body = g.do("GET", "/v1/admin/topics/none-such/messages?qid=0", "", nil)
		if code != 404 || !strings.Contains(string(body), `"code":14`) {
			t.Fatalf("browse of a missing topic: %d %s, want 404 code 14", code, body)
		}

		// A group pulls 3 and fails one: the admin view of the group shows
		// them out, which the broker does not know.
		var pulled struct {
			Messages []struct {
				Offset int64  `json:"offset"`
				Qid    string `json:"qid"`
			} `json:"messages"`
		}
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); {
			code, body = g.do("POST", "/v1/groups/g1/topics/browsed/pull", `{"max_messages": 3, "max_wait_ms": 500}`, nil)
			if code != 200 || json.Unmarshal(body, &pulled) != nil {
				t.Fatalf("pull: %d %s", code, body)
			}
			if len(pulled.Messages) > 0 {
				break
			}
		}
		if len(pulled.Messages) != 3 {
			t.Fatalf("pulled %s, want 3 messages", body)
		}
		ack := fmt.Sprintf(`{"qid": %q, "fail": [%d]}`, pulled.Messages[0].Qid, pulled.Messages[0].Offset)
		if code, body = g.do("POST", "/v1/groups/g1/topics/browsed/ack", ack, nil); code != 200 {
			t.Fatalf("ack: %d %s", code, body)
		}
		code, body = g.do("GET", "/v1/admin/groups/g1?topic=browsed", "", nil)
		var grp struct {
			Stats []struct {
				Lag int64 `json:"lag"`
			} `json:"stats"`
			Sessions []struct {
				Qids []struct {
					Delivered int `json:"delivered"`
					Retrying  int `json:"retrying"`
					Flights   []struct {
						Offset int64  `json:"offset"`
						State  string `json:"state"`
					} `json:"flights"`
				} `json:"qids"`
			} `json:"sessions"`
		}
		if code != 200 || json.Unmarshal(body, &grp) != nil || len(grp.Stats) != 1 || grp.Stats[0].Lag != 12 || len(grp.Sessions) != 1 {
			t.Fatalf("describe group: %d %s; want lag 12 (browsing and pulling committed nothing) and one session", code, body)
		}
		delivered, retrying := 0, 0
		for _, q := range grp.Sessions[0].Qids {
			delivered += q.Delivered
			retrying += q.Retrying
		}
		if delivered != 2 || retrying != 1 {
			t.Fatalf("describe group: %s; want 2 delivered and 1 retrying", body)
		}
	})
}

// A message a group fails past its retries is dead-lettered; the admin
// routes show it with its origin and send it back to its topic, where the
// group gets it again.
func TestAdminRedrivesADeadLetter(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{extra: "consume: {max_retries: 0}\n"}))
		g.produceOK("jobs", `{"key":"k","value":"job-1"}`)
		var pulled pulledOne
		pullOne := func() { pulled = g.pullOne(t, "w", "jobs") }
		pullOne()
		ack := fmt.Sprintf(`{"qid": %q, "fail": [%d]}`, pulled.Messages[0].Qid, pulled.Messages[0].Offset)
		if code, body := g.do("POST", "/v1/groups/w/topics/jobs/ack", ack, nil); code != 200 {
			t.Fatalf("ack: %d %s", code, body)
		}

		// No retries: it goes to w-dlq.
		var top struct {
			Name     string `json:"topic"`
			Messages int64  `json:"messages"`
			Qids     []struct {
				Qid        string `json:"qid"`
				Start, End int64
			} `json:"qids"`
		}
		waitFor(t, "the dead letter", func() bool {
			code, body := g.do("GET", "/v1/admin/groups/w/dead-letters", "", nil)
			return code == 200 && json.Unmarshal(body, &top) == nil && top.Messages == 1
		})
		qid := ""
		for _, q := range top.Qids {
			if q.End > q.Start {
				qid = q.Qid
			}
		}
		code, body := g.do("GET", "/v1/admin/groups/w/dead-letters/messages?qid="+url.QueryEscape(qid), "", nil)
		if code != 200 || top.Name != "w-dlq" || !strings.Contains(string(body), `"value":"job-1"`) || !strings.Contains(string(body), `"mqgate-dlq-origin-topic":"jobs"`) {
			t.Fatalf("dead letters of w: %d %s", code, body)
		}
		code, body = g.do("POST", "/v1/admin/groups/w/dead-letters/redrive", fmt.Sprintf(`{"qid": %q, "offsets": [0]}`, qid), nil)
		if code != 200 || !strings.Contains(string(body), `"redriven":1`) {
			t.Fatalf("redrive: %d %s", code, body)
		}
		pullOne() // the group gets it again, as a new message of jobs
		if pulled.Messages[0].Value != "job-1" {
			t.Fatalf("after the redrive the group pulled %+v", pulled.Messages)
		}
		if !g.eventuallyLogged(`action="dead letters redriven"`) {
			t.Error("the redrive was not audited")
		}
	})
}

// pulledOne is a pull's answer.
type pulledOne struct {
	Messages []struct {
		Offset int64  `json:"offset"`
		Qid    string `json:"qid"`
		Value  string `json:"value"`
	} `json:"messages"`
}

// pullOne pulls one message of topic for group, waiting for it.
func (g *gateway) pullOne(t *testing.T, group, topic string) pulledOne {
	t.Helper()
	// A group's first pull waits for it to join, which a loaded machine
	// may take many seconds over.
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); {
		var pulled pulledOne
		code, body := g.do("POST", "/v1/groups/"+group+"/topics/"+topic+"/pull", `{"max_messages": 1, "max_wait_ms": 500}`, nil)
		if code != 200 || json.Unmarshal(body, &pulled) != nil {
			t.Fatalf("pull: %d %s", code, body)
		}
		if len(pulled.Messages) == 1 {
			return pulled
		}
	}
	t.Fatal("nothing to pull")
	return pulledOne{}
}

// A group's offsets are moved back while a client pulls through the
// gateway: refused, then forced, and the client's next pull reads the
// message again.
func TestAdminResetsAGroup(t *testing.T) {
	forEachBroker(t, func(t *testing.T, kind brokerKind) {
		dir := t.TempDir()
		g := startGateway(t, writeConfig(t, dir, kind.local(t, dir), options{}))
		g.produceOK("jobs", `{"key":"k","value":"job-1"}`)
		pulled := g.pullOne(t, "w", "jobs")
		ack := fmt.Sprintf(`{"qid": %q, "success": [%d]}`, pulled.Messages[0].Qid, pulled.Messages[0].Offset)
		if code, body := g.do("POST", "/v1/groups/w/topics/jobs/ack", ack, nil); code != 200 {
			t.Fatalf("ack: %d %s", code, body)
		}
		const route = "/v1/admin/groups/w/topics/jobs/offsets"
		code, body := g.do("POST", route, `{"to": "earliest"}`, nil)
		if code != 403 || !strings.Contains(string(body), `"code":13`) || !strings.Contains(string(body), "reset with force") {
			t.Fatalf("reset while a client pulls: %d %s; want 403 naming force", code, body)
		}
		code, body = g.do("POST", route, `{"to": "earliest", "force": true}`, nil)
		if code != 200 || !strings.Contains(string(body), `"to":0`) {
			t.Fatalf("forced reset: %d %s", code, body)
		}
		again := g.pullOne(t, "w", "jobs")
		if again.Messages[0].Value != "job-1" || again.Messages[0].Offset != pulled.Messages[0].Offset {
			t.Fatalf("after the reset the group pulled %+v; want job-1 again", again.Messages)
		}
		if !g.eventuallyLogged(`action="group offsets reset"`) {
			t.Error("the reset was not audited")
		}
	})
}
