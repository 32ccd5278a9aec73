package push_test

import (
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/push"
	"github.com/mqgate/mqgate/internal/brokertest"
	"github.com/mqgate/mqgate/sdk"
)

// ddmqSubscription is a push entry with envelope ddmq and the defaults
// plugins.yaml gives it.
func ddmqSubscription(t *testing.T, name, topic string, urls ...string) *config.Push {
	sub := subscription(t, name, topic, urls...)
	sub.Envelope = "ddmq"
	sub.DDMQ = config.PushDDMQ{
		AppendContext:   []string{"TOPIC", "GROUP", "OFFSET", "QID", "SOURCE", "MSG_KEY", "TOKEN", "PROPERTIES"},
		RetryIntervals:  []time.Duration{10 * time.Millisecond},
		HTTPCallbackURL: true,
	}
	return sub
}

// formOf parses the form a ddmq request carries in its body, whatever
// its method: DDMQ's CProxy sends the form in the body of a GET too.
func formOf(t *testing.T, g got) url.Values {
	t.Helper()
	if ct := g.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type %q", ct)
	}
	v, err := url.ParseQuery(g.body)
	if err != nil {
		t.Fatalf("form %q: %v", g.body, err)
	}
	return v
}

// Envelope ddmq over each backend: GET with the form in the body, the
// context fields, a transit transform feeding params and the query
// parameters, carrera_req_cnt counting a 1000002 retry, a message's
// carrera_http_callback_url replacing the targets (without the
// subscription's headers), and pressure traffic skipped.
func TestDDMQEnvelope(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, b sdk.Backend) {
		e := newEnv(t, b)
		e.topic("ddmq", 1)
		ep := newEndpoint(t, func(g got, _ int) (int, string) {
			// The body changes with carrera_req_cnt: the first request is 0.
			if strings.Contains(g.body, "retry-me") && strings.HasSuffix(g.body, "&carrera_req_cnt=0") {
				return 200, `{"errno": 1000002, "errmsg": "busy"}`
			}
			return 200, `{"errno": 0}`
		})
		callback := newEndpoint(t, nil)
		e.produce("ddmq",
			message{key: "k1", value: `{"u": {"id": 7}, "v": "one two"}`, headers: []sdk.Header{{Key: "trace", Value: []byte("t1")}}},
			message{key: "k2", value: `{"u": {"id": 8}, "v": "retry-me"}`},
			message{value: `{"u": {"id": 9}, "v": "called back"}`, headers: []sdk.Header{{Key: push.PropCallbackURL, Value: []byte(callback.URL + "/cb?x=1")}}},
			message{key: "k4", value: `{"u": {"id": 10}, "v": "load test"}`, headers: []sdk.Header{{Key: push.PropPressureTraffic, Value: []byte("true")}}},
		)
		sub := ddmqSubscription(t, "ddmq", "ddmq", ep.URL+"/hook")
		sub.Method = "GET"
		sub.Headers = map[string]string{"Authorization": "Bearer operator"}
		sub.DDMQ.TokenKey = "tk"
		sub.DDMQ.QueryParams = map[string]string{"uid": "$.user"}
		sub.Transform = &config.PushTransform{Transit: map[string]string{"$.user": "$.u.id", "$.text": "$.v"}}
		ps, err := push.New(push.Options{Subscriptions: []*config.Push{sub}, Consumer: e.svc,
			Origin: func(cluster, topic string) push.Origin { return push.Origin{Cluster: "dc1", Source: "RMQ"} },
			Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		ps.Start()
		t.Cleanup(ps.Close)
		waitFor(t, "every message settled", func() bool {
			st := statusOf(ps, "ddmq")
			return st.Delivered == 3 && st.Filtered == 1
		})

		byText := map[string][]got{}
		for _, g := range append(ep.requests(), callback.requests()...) {
			byText[formOf(t, g).Get("params")] = append(byText[formOf(t, g).Get("params")], g)
		}
		first := byText[`{"text":"one two","user":7}`]
		if len(first) != 1 {
			t.Fatalf("requests by params: %v", byText)
		}
		g := first[0]
		if g.method != "GET" || g.url.Path != "/hook" || g.url.Query().Get("uid") != "7" || g.header.Get("Authorization") != "Bearer operator" {
			t.Errorf("request %s %s %v", g.method, g.url, g.header)
		}
		f := formOf(t, g)
		for name, want := range map[string]string{
			push.FieldTopic: "ddmq", push.FieldGroup: sub.Group, push.FieldOffset: "0", push.FieldSource: "RMQ",
			push.FieldMsgKey: "k1", push.FieldToken: "61b556184ef6cb0e28c327534f0008a6", // md5("k1tk")
			push.FieldProperties: `{"trace":"t1"}`, push.FieldReqCnt: "0",
		} {
			if got := f.Get(name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		if q := f.Get(push.FieldQid); !strings.HasPrefix(q, "dc1_") {
			t.Errorf("%s = %q, want the cluster's name first", push.FieldQid, q)
		}

		retried := byText[`{"text":"retry-me","user":8}`]
		if len(retried) != 2 || formOf(t, retried[0]).Get(push.FieldReqCnt) != "0" || formOf(t, retried[1]).Get(push.FieldReqCnt) != "1" {
			t.Errorf("the 1000002 message: %d requests, want 2 with carrera_req_cnt 0 then 1", len(retried))
		}
		cb := callback.requests()
		if len(cb) != 1 || cb[0].url.Path != "/cb" || cb[0].url.Query().Get("x") != "1" || cb[0].url.Query().Get("uid") != "9" {
			t.Fatalf("callback endpoint got %v", cb)
		}
		if a := cb[0].header.Get("Authorization"); a != "" {
			t.Errorf("a callback URL the message named got the subscription's Authorization header %q", a)
		}
		if len(byText[`{"text":"load test","user":10}`]) != 0 {
			t.Errorf("a pressure-traffic message was sent")
		}
		if st := statusOf(ps, "ddmq"); st.Retried != 1 || st.DeadLettered != 0 {
			t.Errorf("status %+v; want one retry, nothing dead-lettered", st)
		}
	})
}
