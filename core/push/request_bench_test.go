package push

import (
	"context"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/sdk"
)

// BenchmarkNewRequest is building one raw push request: its allocations
// are per delivered message.
func BenchmarkNewRequest(b *testing.B) {
	s := &subscription{cfg: &config.Push{Method: "POST", Envelope: "raw"}}
	it := &item{msg: consume.Message{Topic: "orders", Qid: "3", Offset: 12345, Key: []byte("key-1"), Value: []byte("v"), Timestamp: time.Now(),
		Headers: []sdk.Header{{Key: "trace", Value: []byte("abc")}}}, attempt: 1}
	p := &payload{body: []byte("v"), ctype: "application/octet-stream"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.newRequest(context.Background(), "http://127.0.0.1:1/x", true, it, p, 0); err != nil {
			b.Fatal(err)
		}
	}
}
