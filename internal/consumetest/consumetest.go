// Package consumetest holds what tests of consume's clients (push, sinks)
// read back through a consume.Service.
package consumetest

import (
	"context"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/consume"
)

// PullOne reads one message of topic with a group of its own ("reader"),
// failing t when none comes within 30 s.
func PullOne(t *testing.T, svc *consume.Service, topic string) consume.Message {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, err := svc.Pull(context.Background(), "reader", topic, 1, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Messages) > 0 {
			return b.Messages[0]
		}
	}
	t.Fatalf("nothing in %s", topic)
	return consume.Message{}
}

// Header is the value of m's header key, "" when it has none.
func Header(m consume.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// WaitFor polls cond every 10 ms until it holds, failing t after two
// minutes: a guard against a hang, not a measure (a loaded 2-core machine
// ran a thousand ordered deliveries past 30 s).
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
