package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
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
	})
}
