package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/frontends/http/httppb"
	"github.com/mqgate/mqgate/sdk"
)

// doAccept is do with an Accept header.
func doAccept(t *testing.T, h http.Handler, method, target, accept, body string) (int, http.Header, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Accept", accept)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Header(), rec.Body.Bytes()
}

// pullProtobufMessages is what TestPullProtobuf's consumer hands out.
func pullProtobufMessages(topic string) []consume.Message {
	return []consume.Message{
		{Topic: topic, Qid: "3", Offset: 41, Key: []byte("k"), Value: []byte("hello"),
			Headers:   []sdk.Header{{Key: "b", Value: []byte("2")}, {Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("3")}},
			Tags:      "tag",
			Timestamp: time.UnixMilli(1700000000123), Attempt: 2},
		{Topic: topic, Qid: "3", Offset: 42, Key: []byte{0xff}, Value: []byte{0, 0xff}, Headers: []sdk.Header{{Key: "\xfe", Value: []byte{0xfe}}}, Attempt: 1},
		{Topic: topic, Qid: "3", Offset: 0, Key: []byte{}, Value: nil, Tags: "\xff", Attempt: 1},
	}
}

func TestPullProtobuf(t *testing.T) {
	fake := &fakeConsumer{pull: func(_ context.Context, group, topic string, max int, wait time.Duration) (consume.Batch, error) {
		return consume.Batch{Group: group, Topic: topic, Qid: "3", Messages: pullProtobufMessages(topic)}, nil
	}}
	h := consumeServer(t, Options{}, fake)
	status, hdr, body := doAccept(t, h, "POST", "/v1/groups/cg.pay/topics/orders/pull",
		"application/json;q=0.5, Application/X-Protobuf", `{"max_messages": 10, "ack": {"qid": "3", "success": [39]}}`)
	if status != http.StatusOK || hdr.Get("Content-Type") != "application/x-protobuf" {
		t.Fatalf("status %d, Content-Type %q: %q", status, hdr.Get("Content-Type"), body)
	}
	if hdr.Get("Vary") != "Accept" {
		t.Errorf("Vary %q: caches must know the answer follows Accept", hdr.Get("Vary"))
	}
	var got httppb.PullResponse
	if err := proto.Unmarshal(body, &got); err != nil {
		t.Fatalf("the answer is not a PullResponse: %v", err)
	}
	// Bytes as they are, where JSON would base64 them; an empty key is
	// present, no key is absent; tags that are not UTF-8 are replaced as
	// JSON replaces them, since a protobuf string must be UTF-8.
	want := &httppb.PullResponse{
		Context: &httppb.PullContext{Group: "cg.pay", Topic: "orders", Qid: "3"},
		Messages: []*httppb.ConsumedMessage{
			{Key: []byte("k"), Value: []byte("hello"), Headers: []*httppb.Header{{Key: []byte("b"), Value: []byte("2")},
				{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("3")}},
				Tags: "tag", Offset: 41, Qid: "3", TimestampMs: 1700000000123, Attempt: 2},
			{Key: []byte{0xff}, Value: []byte{0, 0xff}, Headers: []*httppb.Header{{Key: []byte{0xfe}, Value: []byte{0xfe}}}, Offset: 42, Qid: "3", Attempt: 1},
			{Key: []byte{}, Tags: "\uFFFD", Qid: "3", Attempt: 1},
		},
	}
	if !proto.Equal(want, &got) {
		t.Errorf("answer\n%v\nwant\n%v", &got, want)
	}
	if got.Messages[2].Key == nil || got.Messages[0].Key == nil {
		t.Errorf("an empty key came back as no key")
	}

	// Errors stay JSON, whatever the client accepts.
	status, hdr, body = doAccept(t, h, "POST", "/v1/groups/cg.pay/topics/orders/pull", "application/x-protobuf", `{"max_messages": "x"}`)
	if !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Errorf("error answered as %q", hdr.Get("Content-Type"))
	}
	checkError(t, status, body, http.StatusBadRequest, sdk.CodeIllegal, "max_messages")

	for accept, want := range map[string]bool{
		"application/x-protobuf":                         true,
		"application/json, application/x-protobuf;q=0.1": true,
		"application/x-protobuf;q=0":                     false,
		"application/x-protobuf; Q=0.000, text/plain":    false,
		"application/json":                               false,
		"":                                               false,
	} {
		if got := wantsProtobuf(accept); got != want {
			t.Errorf("wantsProtobuf(%q) = %v, want %v", accept, got, want)
		}
	}

	// Without the media type in Accept, JSON as before.
	_, hdr, _ = doAccept(t, h, "POST", "/v1/groups/cg.pay/topics/orders/pull", "application/json, */*", `{}`)
	if !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Errorf("answered %q to a client that did not ask for protobuf", hdr.Get("Content-Type"))
	}
}

// FuzzPullProtobuf checks the hand-written answer against the protobuf
// module's reader: it parses, and holds every message as it was.
func FuzzPullProtobuf(f *testing.F) {
	f.Add([]byte("k"), []byte("v"), "h", []byte("hv"), "tags", "0", int64(3), int64(1700000000000), 1, true)
	f.Add([]byte{0xff}, []byte{}, "\xff<", []byte{0xfe}, "", "q\xff", int64(-1), int64(-5), 0, false)
	f.Fuzz(func(t *testing.T, key, value []byte, hkey string, hvalue []byte, tags, qid string, offset, tsMs int64, attempt int, hasKey bool) {
		attempt = int(int32(attempt))
		m := fuzzedMessage(key, value, hkey, hvalue, tags, qid, offset, tsMs, attempt, hasKey)
		batch := &consume.Batch{Qid: qid, Messages: []consume.Message{m, {Qid: qid, Value: key}}}
		var got httppb.PullResponse
		if err := proto.Unmarshal(appendPullProtobuf(nil, "g", "t", batch), &got); err != nil {
			t.Fatalf("the answer is not a PullResponse: %v", err)
		}
		if len(got.Messages) != 2 || got.Context.GetQid() != validString(qid) {
			t.Fatalf("answer %v", &got)
		}
		pm := got.Messages[0]
		if (pm.Key != nil) != hasKey || string(pm.Key) != string(m.Key) || string(pm.Value) != string(value) ||
			pm.Tags != validString(tags) || pm.Qid != validString(qid) || pm.Offset != offset ||
			pm.TimestampMs != unixMs(m.Timestamp) || pm.Attempt != int32(attempt) || len(pm.Headers) != 2 ||
			string(pm.Headers[0].Key) != hkey || string(pm.Headers[0].Value) != string(hvalue) || string(pm.Headers[1].Key) != tags {
			t.Fatalf("message %+v came back as %v", m, pm)
		}
	})
}

// BenchmarkEncodePullProtobuf is BenchmarkEncodePull's batch as a
// PullResponse.
func BenchmarkEncodePullProtobuf(b *testing.B) {
	batch := benchBatch()
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = appendPullProtobuf(buf[:0], "g", "bench", batch)
	}
	b.SetBytes(int64(len(buf)))
}

// A pull answer larger than net/http holds before sending says its
// length, JSON or protobuf, rather than coming in chunks: a client can
// read it into a buffer of its size.
func TestLargeAnswersSayTheirLength(t *testing.T) {
	msgs := make([]consume.Message, 50)
	for i := range msgs {
		msgs[i] = consume.Message{Topic: "orders", Qid: "1", Offset: int64(i), Value: []byte(strings.Repeat("v", 1024)), Attempt: 1}
	}
	fake := &fakeConsumer{pull: func(_ context.Context, group, topic string, max int, wait time.Duration) (consume.Batch, error) {
		return consume.Batch{Group: group, Topic: topic, Qid: "1", Messages: msgs}, nil
	}}
	srv := httptest.NewServer(consumeServer(t, Options{}, fake))
	defer srv.Close()
	for _, accept := range []string{"application/json", "application/x-protobuf"} {
		req, err := http.NewRequest("POST", srv.URL+"/v1/groups/cg/topics/orders/pull", strings.NewReader(`{"max_messages": 50}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d, %v", accept, resp.StatusCode, err)
		}
		if len(body) < 50*1024 || resp.ContentLength != int64(len(body)) || len(resp.TransferEncoding) != 0 {
			t.Errorf("%s: an answer of %d bytes came with Content-Length %d and Transfer-Encoding %q",
				accept, len(body), resp.ContentLength, resp.TransferEncoding)
		}
	}
}
