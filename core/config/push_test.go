package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPushDecoded(t *testing.T) {
	c, err := Load("testdata/good/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Push) != 2 {
		t.Fatalf("Push has %d entries, want 2", len(c.Push))
	}
	full := Push{
		Name:           "orders-hook",
		Cluster:        "other",
		Group:          "orders-hook-v2",
		Topics:         []string{"orders", "payments"},
		Targets:        []string{"https://hooks.example.com/orders", "http://10.0.0.7:8080/orders?src=mqgate"},
		Method:         "PUT",
		Headers:        map[string]string{"Authorization": "Bearer s3cret", "X-Team": "billing"},
		HostHeader:     "hooks.example.com:443",
		ConnectTimeout: 2 * time.Second,
		Timeout:        10 * time.Second,
		Concurrency:    4,
		Order:          "partition",
		Retry:          PushRetry{Max: 5, Backoff: []time.Duration{100 * time.Millisecond, time.Second}},
		CanSkip:        true,
		RateLimit:      200,
		SlowMs:         500,
		Delivery:       3,
		CommitInterval: 5 * time.Second,
		Envelope:       "json",
		DDMQ:           ddmqDefaults,
		Filter:         `topic == "orders" && json?.amount > 100`,
		Transform: &PushTransform{
			Body:    `{"id": key, "amount": json?.amount}`,
			Headers: map[string]string{"X-Amount": "string(json?.amount)"},
			Transit: map[string]string{},
		},
		TargetCooldown: 30 * time.Second,
		Buffer:         256,
		StateDir:       "/var/lib/mqgate/push",
	}
	if !reflect.DeepEqual(*c.Push[0], full) {
		t.Errorf("push[0] =\n%#v\nwant\n%#v", *c.Push[0], full)
	}
	defaults := Push{
		Name:           "audit",
		Group:          "mqgate-push-audit",
		Topics:         []string{"audit"},
		Targets:        []string{"http://localhost:9000/audit"},
		Method:         "POST",
		Headers:        map[string]string{}, // like every map left out
		ConnectTimeout: 5 * time.Second,
		Timeout:        30 * time.Second,
		Concurrency:    16,
		Order:          "key",
		Retry:          PushRetry{Max: 3, Backoff: []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, time.Minute}},
		Delivery:       2,
		CommitInterval: time.Second,
		Envelope:       "raw",
		DDMQ:           ddmqDefaults,
		TargetCooldown: 10 * time.Second,
		Buffer:         1024,
		StateDir:       "./data/push",
	}
	if !reflect.DeepEqual(*c.Push[1], defaults) {
		t.Errorf("push[1] =\n%#v\nwant\n%#v", *c.Push[1], defaults)
	}
	if c.Push[1].Cluster != "" {
		t.Errorf("Cluster = %q; want it left empty (each topic's own cluster)", c.Push[1].Cluster)
	}

	// Defaults are decoded afresh for every entry: no shared backing array.
	c, err = Parse("p.yaml", []byte(pushBase+
		"  - {name: a, topics: [t], targets: [\"http://h/\"]}\n"+
		"  - {name: b, topics: [t], targets: [\"http://h/\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.Push[0].Retry.Backoff[0] = time.Hour
	if c.Push[1].Retry.Backoff[0] != time.Second {
		t.Errorf("changing one entry's default backoff changed another's")
	}

	// A null group is a group left out.
	c, err = Parse("p.yaml", []byte(pushBase+"  - {name: a, group: ~, topics: [t], targets: [\"http://h/\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Push[0].Group != "mqgate-push-a" {
		t.Errorf("Group = %q with group: ~, want mqgate-push-a", c.Push[0].Group)
	}

	// No push: key is a nil list.
	c, err = Load("testdata/good/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Push != nil {
		t.Errorf("Push = %#v without a push: key, want nil", c.Push)
	}
}

// ddmqDefaults are the ddmq: settings of every push entry that leaves
// them out.
var ddmqDefaults = PushDDMQ{
	AppendContext:   []string{"TOPIC", "GROUP", "OFFSET", "QID", "SOURCE", "MSG_KEY", "TOKEN", "PROPERTIES"},
	QueryParams:     map[string]string{},
	RetryIntervals:  []time.Duration{100 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond},
	HTTPCallbackURL: true,
}

// An entry with envelope ddmq takes CProxy's settings and its error
// backoff unless retry.backoff is given.
func TestPushDDMQDecoded(t *testing.T) {
	c, err := Parse("p.yaml", []byte(pushBase+`  - name: a
    topics: [t]
    targets: ["http://h/"]
    envelope: ddmq
    method: GET
    ddmq:
      form_params2: true
      append_context: [QID, TOKEN]
      token_key: secret
      query_params: {uid: $.user.id, "first tag": "$.tags[0]"}
      order_key: $.user.id
      retry_intervals: [0s, 1s]
      pressure_traffic: true
      http_callback_url: false
    transform: {transit: {"$": $.order, $.who: $.user.name}}
  - {name: b, topics: [t], targets: ["http://h/"], envelope: ddmq}
  - {name: c, topics: [t], targets: ["http://h/"], envelope: ddmq, retry: {backoff: [3s]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := PushDDMQ{
		FormParams2: true, AppendContext: []string{"QID", "TOKEN"}, TokenKey: "secret",
		QueryParams: map[string]string{"uid": "$.user.id", "first tag": "$.tags[0]"}, OrderKey: "$.user.id",
		RetryIntervals: []time.Duration{0, time.Second}, PressureTraffic: true,
	}
	if !reflect.DeepEqual(c.Push[0].DDMQ, want) {
		t.Errorf("ddmq =\n%#v\nwant\n%#v", c.Push[0].DDMQ, want)
	}
	if c.Push[0].Method != "GET" {
		t.Errorf("method = %s", c.Push[0].Method)
	}
	if tr := c.Push[0].Transform; tr == nil || !reflect.DeepEqual(tr.Transit, map[string]string{"$": "$.order", "$.who": "$.user.name"}) {
		t.Errorf("transform = %+v", tr)
	}
	if !reflect.DeepEqual(c.Push[1].DDMQ, ddmqDefaults) {
		t.Errorf("defaults =\n%#v\nwant\n%#v", c.Push[1].DDMQ, ddmqDefaults)
	}
	cproxy := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 32 * time.Second, 64 * time.Second, 128 * time.Second}
	if !reflect.DeepEqual(c.Push[1].Retry.Backoff, cproxy) {
		t.Errorf("envelope ddmq: retry.backoff = %v, want CProxy's %v", c.Push[1].Retry.Backoff, cproxy)
	}
	if !reflect.DeepEqual(c.Push[2].Retry.Backoff, []time.Duration{3 * time.Second}) {
		t.Errorf("retry.backoff given = %v, want [3s]", c.Push[2].Retry.Backoff)
	}
}

// pushBase is a valid config up to a push: key on line 6; entries added to
// it start on line 7.
const pushBase = `version: 1
plugins: {kafka: {builtin: kafka}}
clusters: {local: {plugin: kafka}, other: {plugin: kafka}}
default_cluster: local
topics: {routed: {cluster: other}}
push:
`

func TestPushProblems(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries string // YAML after push:, from line 7
		want    []string
	}{
		{"not a list", "  {name: a}\n",
			[]string{"6: push: want a list, got a mapping"}},
		{"a scalar entry", "  - just-a-name\n",
			[]string{`7: push[0]: want a mapping, got the string "just-a-name"`}},
		{"a null entry", "  -\n  - {name: a, topics: [t], targets: [\"http://h/\"]}\n",
			[]string{"7: push[0]: want a mapping, got null"}},
		{"required keys", "  - {method: PUT}\n", []string{
			"7: push[0].name: required key is missing",
			"7: push[0].topics: required key is missing",
			"7: push[0].targets: required key is missing",
		}},
		{"empty topics", "  - {name: a, topics: [], targets: [\"http://h/\"]}\n",
			[]string{"7: push[0].topics: must have at least one entry"}},
		{"a string for a list", "  - {name: a, topics: orders, targets: [\"http://h/\"]}\n",
			[]string{`7: push[0].topics: want a list, got the string "orders"`}},
		{"element types", "  - name: a\n    topics: [5, ~]\n    targets: [\"http://h/\"]\n", []string{
			"8: push[0].topics[0]: want a string, got the integer 5",
			"8: push[0].topics[1]: want a string, got null",
		}},
		{"element lines", "  - name: a\n    topics:\n      - t\n      - t\n    targets: [\"http://h/\"]\n",
			[]string{`10: push[0].topics[1]: duplicate topic "t"; first at topics[0]`}},
		{"bad name", "  - {name: \"a b\", topics: [t], targets: [\"http://h/\"]}\n",
			[]string{"7: push[0].name: character ' ' at byte 1 is not allowed; a push name is made of [a-zA-Z0-9._-]"}},
		{"long name", "  - {name: " + strings.Repeat("n", 101) + ", topics: [t], targets: [\"http://h/\"]}\n",
			[]string{"7: push[0].name: must be at most 100 characters; got 101"}},
		{"unknown cluster", "  - {name: a, cluster: nope, topics: [t], targets: [\"http://h/\"]}\n",
			[]string{`7: push[0].cluster: no cluster "nope" under clusters`}},
		{"same session by explicit group", "" +
			"  - {name: a, group: g, topics: [t, routed], targets: [\"http://h/\"]}\n" +
			"  - {name: b, group: g, cluster: other, topics: [routed], targets: [\"http://h/\"]}\n",
			[]string{`8: push[1].topics[0]: push[0] ("a", line 7) already consumes topic "routed" from cluster "other" as group "g"; the two would share one consumer-group session`}},
		{"same group on other clusters is fine", "" +
			"  - {name: a, group: g, topics: [t], targets: [\"http://h/\"]}\n" +
			"  - {name: b, group: g, cluster: other, topics: [t], targets: [\"http://h/\"]}\n",
			nil},
		{"an explicit group equal to a default one", "" +
			"  - {name: a, topics: [t], targets: [\"http://h/\"]}\n" +
			"  - {name: b, group: mqgate-push-a, topics: [t], targets: [\"http://h/\"]}\n",
			[]string{`8: push[1].topics[0]: push[0] ("a", line 7) already consumes topic "t" from cluster "local" as group "mqgate-push-a"; the two would share one consumer-group session`}},
		{"a delay tier's group and topic", "  - {name: a, group: mqgate_delay_1s, topics: [mqgate_delay_1s, mqgate_x], targets: [\"http://h/\"]}\n", []string{
			`7: push[0].group: group "mqgate_delay_1s" is reserved: names starting "mqgate_delay_" are the gateway's delay tiers and cancels (delay.topic_prefix); clients may not use it`,
			`7: push[0].topics[0]: topic "mqgate_delay_1s" is reserved: names starting "mqgate_delay_" are the gateway's delay tiers and cancels (delay.topic_prefix); clients may not use it`,
			`7: push[0].topics[1]: topic "mqgate_x" is reserved: names starting "mqgate_" belong to the gateway itself (a fixed rule, not a config key); clients may not use it`,
		}},
		{"duplicate name is one error", "" +
			"  - {name: a, topics: [t], targets: [\"http://h/\"]}\n" +
			"  - {name: a, topics: [t], targets: [\"http://h/\"]}\n",
			[]string{`8: push[1].name: duplicate push name "a"; first on line 7`}},
		{"targets", "  - name: a\n    topics: [t]\n    targets:\n" +
			"      - example.com/in\n" +
			"      - \"http:///in\"\n" +
			"      - \"http://user:pw@h/in\"\n" +
			"      - \"http://h/in#frag\"\n" +
			"      - \"http://h:99999/\"\n" +
			"      - \"http://[::1/\"\n" +
			"      - \"https://H/in\"\n" +
			"      - \"https://h/in\"\n", []string{
			`10: push[0].targets[0]: "example.com/in" is not an http(s) URL`,
			`11: push[0].targets[1]: "http:///in" has no host; want a URL like http://host:port/path`,
			`12: push[0].targets[2]: "http://user:pw@h/in" has user info; put credentials in headers (Authorization)`,
			`13: push[0].targets[3]: "http://h/in#frag" has a fragment (#...), which is never sent`,
			`14: push[0].targets[4]: "http://h:99999/": port 99999 is not a number from 1 to 65535`,
			`15: push[0].targets[5]: "http://[::1/" is not a valid URL: missing ']' in host`,
			`17: push[0].targets[7]: duplicate target "https://h/in"; same as targets[6]`,
		}},
		{"headers", "  - name: a\n    topics: [t]\n    targets: [\"http://h/\"]\n    headers:\n" +
			"      \"Bad Name\": x\n" +
			"      x-mqgate-key: k\n" +
			"      Host: h\n" +
			"      X-Ok: \"a\\u0001b\"\n" +
			"      X-Num: 5\n" +
			"      X-Dup: a\n" +
			"      x-dup: b\n", []string{
			`11: push[0].headers."Bad Name": "Bad Name" is not a valid HTTP header name; want letters, digits and !#$%&'*+-.^_` + "`" + `|~`,
			`12: push[0].headers.x-mqgate-key: "x-mqgate-key" is reserved: mqgate sets the X-Mqgate-* headers itself`,
			`13: push[0].headers.Host: "Host" cannot be set here: set it with host_header`,
			`14: push[0].headers.X-Ok: not a valid HTTP header value: control character U+0001 at byte 1`,
			`15: push[0].headers.X-Num: want a string, got the integer 5`,
			`17: push[0].headers.x-dup: duplicate header "x-dup": header names ignore case, and "X-Dup" is set on line 16`,
		}},
		{"host_header", "" +
			"  - {name: a, topics: [t], targets: [\"http://h/\"], host_header: \"h/x\"}\n" +
			"  - {name: b, topics: [t], targets: [\"http://h/\"], host_header: \"h:0\"}\n" +
			"  - {name: c, topics: [t], targets: [\"http://h/\"], host_header: \"::1\"}\n" +
			"  - {name: d, topics: [t], targets: [\"http://h/\"], host_header: \"[::1]:8080\"}\n" +
			"  - {name: e, topics: [t], targets: [\"http://h/\"], host_header: \":80\"}\n", []string{
			`7: push[0].host_header: "h/x" is not a valid host; want host or host:port, an IPv6 address in brackets`,
			`8: push[1].host_header: "h:0": port "0" is not a number from 1 to 65535`,
			`9: push[2].host_header: "::1" is not a valid host; want host or host:port, an IPv6 address in brackets`,
			`11: push[4].host_header: ":80" has no host; want host or host:port, an IPv6 address in brackets`,
		}},
		{"delivery", "  - {name: a, topics: [t], targets: [\"http://h/\"], delivery: 0}\n",
			[]string{"7: push[0].delivery: invalid value 0; want 1, 2 or 3 (delivery guarantees: 1 periodic commits, 2 commit after success with a local record, 3 single-node, fsynced record)"}},
		{"filter not boolean", "  - {name: a, topics: [t], targets: [\"http://h/\"], filter: value}\n",
			[]string{"7: push[0].filter: does not compile: expected bool, but got string"}},
		{"filter on several lines", "  - name: a\n    topics: [t]\n    targets: [\"http://h/\"]\n    filter: |\n      topic == \"t\"\n      && nope\n",
			[]string{"10: push[0].filter: does not compile: unknown name nope (2:4)"}},
		{"transform", "" +
			"  - {name: a, topics: [t], targets: [\"http://h/\"], transform: {}}\n" +
			"  - {name: b, topics: [t], targets: [\"http://h/\"], transform: {headers: {}}}\n" +
			"  - {name: c, topics: [t], targets: [\"http://h/\"], transform: [body]}\n" +
			"  - {name: d, topics: [t], targets: [\"http://h/\"], transform: {headers: {X-A: 5}}}\n" +
			"  - name: e\n    topics: [t]\n    targets: [\"http://h/\"]\n    transform:\n" +
			"      body: \"nope +\"\n" +
			"      headers:\n" +
			"        X-B: \"((\"\n" +
			"        X-Mqgate-Key: key\n" +
			"        X-A: \")\"\n", []string{
			"7: push[0].transform: set body, transit or headers",
			"8: push[1].transform: set body, transit or headers",
			"9: push[2].transform: want a mapping, got a list",
			"10: push[3].transform.headers.X-A: want a string, got the integer 5",
			"15: push[4].transform.body: does not compile: unexpected token EOF (1:6)",
			"17: push[4].transform.headers.X-B: does not compile: unexpected token EOF (1:2)",
			`18: push[4].transform.headers.X-Mqgate-Key: "X-Mqgate-Key" is reserved: mqgate sets the X-Mqgate-* headers itself`,
			`19: push[4].transform.headers.X-A: does not compile: unexpected token Bracket(")") (1:1)`,
		}},
		{"backoff", "  - {name: a, topics: [t], targets: [\"http://h/\"], retry: {backoff: [1s, -1s, 5]}}\n", []string{
			"7: push[0].retry.backoff[1]: must not be negative",
			"7: push[0].retry.backoff[2]: want a duration like 10s or 1m30s, got the integer 5",
		}},
		{"null keys are left out", "  - {name: a, topics: [t], targets: [\"http://h/\"], cluster: ~, group: ~, filter: ~,\n" +
			"     host_header: ~, headers: ~, transform: ~, delivery: ~, retry: ~}\n",
			nil},
		{"null transform keys", "  - {name: a, topics: [t], targets: [\"http://h/\"], transform: {body: ~, headers: ~}}\n",
			[]string{"7: push[0].transform: set body, transit or headers"}},
		{"null backoff takes the default", "  - {name: a, topics: [t], targets: [\"http://h/\"], retry: {backoff: ~}}\n",
			nil},
		{"ddmq keys without envelope ddmq", "  - {name: a, topics: [t], targets: [\"http://h/\"], method: GET, ddmq: {token_key: k}}\n", []string{
			"7: push[0].method: GET is for envelope: ddmq only (DDMQ's consumer proxy sends its form in the body of a GET too); other envelopes use POST, PUT or PATCH",
			"7: push[0].ddmq: ddmq: applies to envelope: ddmq only; set envelope: ddmq or remove it",
		}},
		{"ddmq settings", "  - name: a\n    topics: [t]\n    targets: [\"http://h/\"]\n    envelope: ddmq\n    order: key\n    ddmq:\n" +
			"      append_context: [TOPIC, topic, TOPIC]\n" +
			"      query_params: {a: \"$..x\", b: $.ok}\n" +
			"      order_key: \"$.a[*]\"\n" +
			"      retry_intervals: [-1s]\n" +
			"      form_params2: yes please\n", []string{
			`11: push[0].order: order and ddmq.order_key (line 15) both say how messages are ordered; set one`,
			`13: push[0].ddmq.append_context[1]: invalid value "topic"; want TOPIC, GROUP, OFFSET, QID, SOURCE, MSG_KEY, TOKEN or PROPERTIES`,
			`13: push[0].ddmq.append_context[2]: duplicate TOPIC; first at append_context[0]`,
			`14: push[0].ddmq.query_params.a: JSON path "$..x": recursive descent (..) is not supported`,
			`15: push[0].ddmq.order_key: want QID, KEY or a JSON path like $.user.id: JSON path "$.a[*]": [*]: want an array index like [0] or [-1], or a quoted name; wildcards, slices and filters are not supported`,
			"16: push[0].ddmq.retry_intervals[0]: must not be negative",
			`17: push[0].ddmq.form_params2: want true or false, got the string "yes please"`,
		}},
		{"transit", "  - name: a\n    topics: [t]\n    targets: [\"http://h/\"]\n    transform:\n      body: value\n      transit:\n" +
			"        $.a: $.b\n" +
			"        \"$.c[0]\": $.d\n" +
			"        $.e: \"$.f[\"\n", []string{
			"12: push[0].transform.transit: body (line 11) and transit both build the body; set one",
			`14: push[0].transform.transit."$.c[0]": does not compile: a target may only name object members ($.a.b or $['a']), not array elements`,
			`15: push[0].transform.transit."$.e": does not compile: JSON path "$.f[": unterminated [`,
		}},
		{"empty backoff", "  - {name: a, topics: [t], targets: [\"http://h/\"], retry: {backoff: []}}\n",
			[]string{"7: push[0].retry.backoff: must have at least one entry; leave it out for the default [1s, 5s, 30s, 1m]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(pushBase+tc.entries))
			var got []string
			var errs Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					got = append(got, strings.TrimPrefix(e.String(), "p.yaml:"))
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestPushAliasBudget checks that aliases cannot make lists expand to
// far more than the file holds.
func TestPushAliasBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString(pushBase + "  - &p {name: a, targets: [\"http://h/\"], topics: [")
	for i := range 500 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "t%d", i)
	}
	b.WriteString("]}\n")
	for range 499 {
		b.WriteString("  - *p\n")
	}
	_, err := Parse("p.yaml", []byte(b.String()))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse = %v, want Errors", err)
	}
	n := 0
	for _, e := range errs {
		if e.Msg == "nested too deeply or expands to too much (aliases?)" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("got %d budget errors, want 1; errors:\n%v", n, err)
	}
}
