package topicname

import (
	"strings"
	"testing"

	"github.com/mqgate/mqgate/sdk"
)

func TestReserved(t *testing.T) {
	custom := &Reserved{DelayPrefix: "acme_delay_", Groups: map[string]string{"mqgate-push-orders": "push[0].group"}}
	for _, tc := range []struct {
		name    string
		r       *Reserved
		check   func(r *Reserved) error
		wantMsg string // "": allowed
	}{
		{"tier topic, default rule", nil, func(r *Reserved) error { return r.Topic("mqgate_delay_10s") }, `"mqgate_delay_" are the gateway's delay tiers and cancels (delay.topic_prefix)`},
		{"cancel topic", nil, func(r *Reserved) error { return r.Topic("mqgate_delay_cancel") }, "delay.topic_prefix"},
		{"tier group", nil, func(r *Reserved) error { return r.Group("mqgate_delay_10s") }, `group "mqgate_delay_10s" is reserved`},
		{"any mqgate_ topic", nil, func(r *Reserved) error { return r.Topic("mqgate_future") }, `"mqgate_" belong to the gateway itself`},
		{"custom prefix", custom, func(r *Reserved) error { return r.Topic("acme_delay_1s") }, `"acme_delay_"`},
		{"mqgate_ with a custom prefix", custom, func(r *Reserved) error { return r.Group("mqgate_delay_1s") }, `"mqgate_"`},
		{"push group", custom, func(r *Reserved) error { return r.Group("mqgate-push-orders") }, "push[0].group"},
		{"own dead letters", nil, func(r *Reserved) error { return r.Consume("billing", "billing-dlq", "billing-dlq") }, "may not consume its own dead letters"},
		{"ordinary topic", nil, func(r *Reserved) error { return r.Topic("orders") }, ""},
		{"mqgate- is not mqgate_", nil, func(r *Reserved) error { return r.Topic("mqgate-orders") }, ""},
		{"another group reads a DLQ", nil, func(r *Reserved) error { return r.Consume("reader", "billing-dlq", "reader-dlq") }, ""},
		{"other push-like group", custom, func(r *Reserved) error { return r.Group("mqgate-push-other") }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.check(tc.r)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if sdk.CodeOf(err) != sdk.CodeNotAllowed || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("got %v (code %d); want code 13 with %q", err, sdk.CodeOf(err), tc.wantMsg)
			}
		})
	}
}

func TestCheckHeaders(t *testing.T) {
	for _, tc := range []struct {
		key     string
		refused bool
	}{
		{"mqgate-delay-id", true},
		{"MQGATE-Delay-Due-Ms", true},
		{"mqgate-dlq-origin-topic", true},
		{"mqgate-delayed", false},
		{"trace", false},
		{"x-mqgate-delay-id", false},
	} {
		t.Run(tc.key, func(t *testing.T) {
			err := CheckHeaders([]sdk.Header{{Key: "ok", Value: []byte("v")}, {Key: tc.key}})
			if !tc.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if sdk.CodeOf(err) != sdk.CodeIllegal || !strings.HasPrefix(err.Error(), "headers: ") || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("got %v; want code 11 naming headers and %q", err, tc.key)
			}
		})
	}
}
