package thriftapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/quota"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/sdk"
)

// Every ProducerService call counts its messages against the connection's
// principal (anonymous: no auth): past the quota it answers code 15 naming
// the principal and the key, and nothing is produced; a sendBatchSync
// larger than the burst answers code 16 and takes nothing.
func TestProduceCallsCountAgainstQuotas(t *testing.T) {
	ctx := context.Background()
	at := time.Unix(1000, 0)
	// A clock that stands still: a spent bucket stays spent.
	newQuotas := func() *quota.Ledger {
		return quota.New(quota.Options{
			Rules: []quota.Rule{{Principal: acl.MustPattern("anonymous"), MessagesPerSecond: 1, Burst: 2, Source: "quotas[0]"}},
			Now:   func() time.Time { return at },
		})
	}
	const overQuota = `principal "anonymous" is over its quota of 1 messages/s (quotas[0].messages_per_second)`
	dueAt := time.Now().Add(time.Minute).UnixMilli()
	cancel := newDelayMessage("orders", 0, "")
	cancel.Action, cancel.Timestamp = delayActionCancel, nil
	id := chronosID(time.Now().Unix()+60, 2, time.Now().Unix()+60+2*86400, 0, 0)
	cancel.UniqDelayMsgId = &id
	for _, tc := range []struct {
		name string
		call func(c *producer.ProducerServiceClient) (code int32, msg string, err error)
	}{
		{"sendSync", func(c *producer.ProducerServiceClient) (int32, string, error) {
			r, err := c.SendSync(ctx, newMessage("orders", "k", "v"), 5000)
			return r.GetCode(), r.GetMsg(), err
		}},
		{"sendAsync", func(c *producer.ProducerServiceClient) (int32, string, error) {
			r, err := c.SendAsync(ctx, newMessage("orders", "k", "v"))
			return r.GetCode(), r.GetMsg(), err
		}},
		{"sendBatchSync", func(c *producer.ProducerServiceClient) (int32, string, error) {
			r, err := c.SendBatchSync(ctx, []*producer.Message{newMessage("orders", "k", "v")})
			return r.GetCode(), r.GetMsg(), err
		}},
		{"sendDelaySync add", func(c *producer.ProducerServiceClient) (int32, string, error) {
			r, err := c.SendDelaySync(ctx, newDelayMessage("orders", dueAt, "v"), 5000)
			return r.GetCode(), r.GetMsg(), err
		}},
		{"sendDelaySync cancel", func(c *producer.ProducerServiceClient) (int32, string, error) {
			r, err := c.SendDelaySync(ctx, cancel, 5000)
			return r.GetCode(), r.GetMsg(), err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp, fd := &fakeProducer{}, &fakeDelayer{}
			srv := startServer(t, Options{Quotas: newQuotas(), Delayer: fd}, fp)
			client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
			for i := range 2 {
				if code, msg, err := tc.call(client); err != nil || code != 0 {
					t.Fatalf("call %d within the burst: code %d %q, %v", i+1, code, msg, err)
				}
			}
			adds, cancels := fd.calls()
			before := len(fp.Calls()) + len(adds) + len(cancels)
			code, msg, err := tc.call(client)
			if err != nil || code != int32(sdk.CodeRateLimited) || !strings.Contains(msg, overQuota) {
				t.Errorf("past the quota: code %d %q, %v; want code 15 naming %q", code, msg, err, overQuota)
			}
			adds, cancels = fd.calls()
			if after := len(fp.Calls()) + len(adds) + len(cancels); after != before {
				t.Errorf("the refused call reached the producer or delayer")
			}
		})
	}
	t.Run("sendBatchSync larger than the burst", func(t *testing.T) {
		fp := &fakeProducer{}
		srv := startServer(t, Options{Quotas: newQuotas()}, fp)
		client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
		three := []*producer.Message{newMessage("a", "", "1"), newMessage("b", "", "2"), newMessage("a", "", "3")}
		r, err := client.SendBatchSync(ctx, three)
		if err != nil || r.Code != int32(sdk.CodeTooLarge) || !strings.Contains(r.Msg, "3 messages exceed the burst of 2") || !strings.Contains(r.Msg, "quotas[0].burst") {
			t.Fatalf("a batch of 3 over a burst of 2: %+v, %v; want code 16 naming quotas[0].burst", r, err)
		}
		if r, err := client.SendBatchSync(ctx, three[:2]); err != nil || r.Code != 0 || len(fp.Calls()) != 2 {
			t.Fatalf("a batch of the burst after: %+v, %v, %d producer calls", r, err, len(fp.Calls()))
		}
	})
}
