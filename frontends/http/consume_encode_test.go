package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"

	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/sdk"
)

// The structs below are how the consume routes built their answers before
// the appender, for encoding/json through gin's PureJSON. The tests hold
// the appender's bytes equal to theirs, so clients see no change.

type refPullContext struct {
	Group string `json:"group"`
	Topic string `json:"topic"`
	Qid   string `json:"qid"`
}

type refPullResponse struct {
	Context  refPullContext       `json:"context"`
	Messages []refConsumedMessage `json:"messages"`
}

type refFetchResponse struct {
	Results []refFetchResult `json:"results"`
}

type refFetchResult struct {
	Topic      string               `json:"topic"`
	Qid        string               `json:"qid"`
	NextOffset int64                `json:"next_offset"`
	Messages   []refConsumedMessage `json:"messages"`
}

type refConsumedMessage struct {
	Key           *string         `json:"key,omitempty"`
	KeyBase64     *string         `json:"key_base64,omitempty"`
	Value         *string         `json:"value,omitempty"`
	ValueBase64   *string         `json:"value_base64,omitempty"`
	Headers       *refHeadersJSON `json:"headers,omitempty"`
	HeadersBase64 *refHeadersJSON `json:"headers_base64,omitempty"`
	Tags          string          `json:"tags,omitempty"`
	Offset        int64           `json:"offset"`
	Qid           string          `json:"qid"`
	TimestampMs   int64           `json:"timestamp_ms"`
	Attempt       int             `json:"attempt"`
}

type refHeadersJSON struct {
	headers []sdk.Header
	b64     bool
}

func (h refHeadersJSON) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, hd := range h.headers {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(hd.Key)
		if err != nil {
			return nil, err
		}
		b = append(append(b, k...), ':')
		var v []byte
		if h.b64 {
			v, err = json.Marshal(base64.StdEncoding.EncodeToString(hd.Value))
		} else {
			v, err = json.Marshal(string(hd.Value))
		}
		if err != nil {
			return nil, err
		}
		b = append(b, v...)
	}
	return append(b, '}'), nil
}

func refEncodeConsumed(msgs []consume.Message) []refConsumedMessage {
	out := make([]refConsumedMessage, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		o := refConsumedMessage{Tags: m.Tags, Offset: m.Offset, Qid: m.Qid, TimestampMs: unixMs(m.Timestamp), Attempt: m.Attempt}
		if m.Key != nil {
			if utf8.Valid(m.Key) {
				k := string(m.Key)
				o.Key = &k
			} else {
				k := base64.StdEncoding.EncodeToString(m.Key)
				o.KeyBase64 = &k
			}
		}
		if utf8.Valid(m.Value) {
			v := string(m.Value)
			o.Value = &v
		} else {
			v := base64.StdEncoding.EncodeToString(m.Value)
			o.ValueBase64 = &v
		}
		if len(m.Headers) > 0 {
			text := true
			for _, h := range m.Headers {
				text = text && utf8.Valid(h.Value)
			}
			if text {
				o.Headers = &refHeadersJSON{headers: m.Headers}
			} else {
				o.HeadersBase64 = &refHeadersJSON{headers: m.Headers, b64: true}
			}
		}
		out[i] = o
	}
	return out
}

// pureJSON is what gin's PureJSON writes for v.
func pureJSON(t testing.TB, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func refPull(group, topic string, b *consume.Batch) refPullResponse {
	return refPullResponse{Context: refPullContext{Group: group, Topic: topic, Qid: b.Qid}, Messages: refEncodeConsumed(b.Messages)}
}

func refFetch(qms []consume.QidMessages) refFetchResponse {
	out := refFetchResponse{Results: make([]refFetchResult, len(qms))}
	for i, q := range qms {
		out.Results[i] = refFetchResult{Topic: q.Topic, Qid: q.Qid, NextOffset: q.NextOffset, Messages: refEncodeConsumed(q.Messages)}
	}
	return out
}

// checkSameAnswers fails unless the appender writes for msgs what
// encoding/json wrote, as a pull, a fetch and a batch-id route's data.
func checkSameAnswers(t *testing.T, msgs []consume.Message) {
	t.Helper()
	b := consume.Batch{Group: "g", Topic: "t", Qid: msgs[0].Qid, Messages: msgs}
	if got, want := appendPullAnswer(nil, "g", "t", &b), pureJSON(t, refPull("g", "t", &b)); !bytes.Equal(got, want) {
		t.Fatalf("pull answer\n got %s\nwant %s", got, want)
	}
	qms := []consume.QidMessages{{Topic: "t", Qid: msgs[0].Qid, NextOffset: 7, Messages: msgs}, {Topic: "u", Qid: "q<&>\u2028", Messages: nil}}
	if got, want := appendFetchAnswer(nil, qms), pureJSON(t, refFetch(qms)); !bytes.Equal(got, want) {
		t.Fatalf("fetch answer\n got %s\nwant %s", got, want)
	}
	if got, want := pureJSON(t, batchResponse{Data: consumedList(msgs)}), pureJSON(t, batchResponse{Data: refEncodeConsumed(msgs)}); !bytes.Equal(got, want) {
		t.Fatalf("batch answer\n got %s\nwant %s", got, want)
	}
}

func TestConsumeAnswersAreEncodingJSONs(t *testing.T) {
	ts := time.UnixMilli(1700000000123)
	for _, tc := range []struct {
		name string
		msg  consume.Message
	}{
		{"plain", consume.Message{Qid: "0", Offset: 5, Key: []byte("k"), Value: []byte("hello"), Timestamp: ts, Attempt: 1}},
		{"no key, empty value, zero time", consume.Message{Qid: "1", Value: []byte{}}},
		{"nil value", consume.Message{Qid: "1"}},
		{"empty key", consume.Message{Qid: "1", Key: []byte{}, Value: []byte("v")}},
		{"binary key and value", consume.Message{Qid: "2", Key: []byte{0xff, 0}, Value: []byte{0xc3, 0x28, 'a'}}},
		{"escapes", consume.Message{Qid: "3", Key: []byte("\"\\/\b\f\n\r\t\x00\x1f\x7f"), Value: []byte("<a href=\"x\">&amp;</a>\u2028\u2029é😀")}},
		{"tags and negative offset", consume.Message{Qid: "q", Tags: "a||b<c>", Offset: -1, Value: []byte("v"), Attempt: 3}},
		{"text headers, repeated, HTML", consume.Message{Qid: "0", Value: []byte("v"), Headers: []sdk.Header{
			{Key: "a<b", Value: []byte("x&y")}, {Key: "a<b", Value: []byte("\u2028\n")}, {Key: "", Value: []byte{}}}}},
		{"binary header", consume.Message{Qid: "0", Value: []byte("v"), Headers: []sdk.Header{
			{Key: "ok", Value: []byte("text")}, {Key: "bin", Value: []byte{0xfe}}}}},
		{"invalid UTF-8 in names, tags and qid", consume.Message{Qid: "q\xff", Tags: "t\xc3", Value: []byte("v"), Headers: []sdk.Header{
			{Key: "k\xe2\x80", Value: []byte("v")}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkSameAnswers(t, []consume.Message{tc.msg})
			checkSameAnswers(t, []consume.Message{tc.msg, tc.msg})
		})
	}
}

func FuzzConsumeAnswers(f *testing.F) {
	f.Add([]byte("k"), []byte("v"), "h", []byte("hv"), "tags", "0", int64(3), int64(1700000000000), 1, true)
	f.Add([]byte{0xff}, []byte("<\u2028\x01>"), "\xff<", []byte{0xfe}, "", "q\"", int64(-1), int64(0), 0, false)
	f.Fuzz(func(t *testing.T, key, value []byte, hkey string, hvalue []byte, tags, qid string, offset, tsMs int64, attempt int, hasKey bool) {
		m := fuzzedMessage(key, value, hkey, hvalue, tags, qid, offset, tsMs, attempt, hasKey)
		checkSameAnswers(t, []consume.Message{m, {Qid: qid, Value: key}})
	})
}

// fuzzedMessage is the consumed message the answer fuzz targets encode:
// two headers, the key only when hasKey, no timestamp for 0.
func fuzzedMessage(key, value []byte, hkey string, hvalue []byte, tags, qid string, offset, tsMs int64, attempt int, hasKey bool) consume.Message {
	m := consume.Message{Qid: qid, Offset: offset, Value: value, Tags: tags, Attempt: attempt,
		Headers: []sdk.Header{{Key: hkey, Value: hvalue}, {Key: tags, Value: value}}}
	if hasKey {
		m.Key = key
	}
	if tsMs != 0 {
		m.Timestamp = time.UnixMilli(tsMs)
	}
	return m
}

// benchBatch is a pull of 100 messages of 1 KiB, as in consume-pull-http.
func benchBatch() *consume.Batch {
	value := []byte(strings.Repeat("abcdefghijklmnopqrstuvwxyz012345", 32))
	b := &consume.Batch{Group: "g", Topic: "bench", Qid: "0"}
	for i := range 100 {
		b.Messages = append(b.Messages, consume.Message{Qid: "0", Offset: int64(i), Key: []byte("key-" + string(rune('a'+i%26))),
			Value: value, Timestamp: time.UnixMilli(1700000000000), Attempt: 1})
	}
	return b
}

// BenchmarkEncodePull compares ways to encode a pull answer: the
// appender the routes use, and the structs before it through encoding/json
// (as gin's PureJSON did) and through goccy/go-json.
func BenchmarkEncodePull(b *testing.B) {
	batch := benchBatch()
	b.Run("appender", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = appendPullAnswer(buf[:0], "g", "bench", batch)
		}
		b.SetBytes(int64(len(buf)))
	})
	// Both encoders as gin's PureJSON sets encoding/json's up.
	type encoder interface {
		SetEscapeHTML(bool)
		Encode(any) error
	}
	for _, tc := range []struct {
		name string
		new  func(io.Writer) encoder
	}{
		{"encoding-json", func(w io.Writer) encoder { return json.NewEncoder(w) }},
		{"goccy-go-json", func(w io.Writer) encoder { return gojson.NewEncoder(w) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var buf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				enc := tc.new(&buf)
				enc.SetEscapeHTML(false)
				if err := enc.Encode(refPull("g", "bench", batch)); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(buf.Len()))
		})
	}
}

// checkSameProduceAnswer fails unless appendProduceAnswer writes what
// encoding/json wrote for the same results through PureJSON.
func checkSameProduceAnswer(t *testing.T, results []produceResult) {
	t.Helper()
	if got, want := appendProduceAnswer(nil, results), pureJSON(t, produceResponse{Results: results}); !bytes.Equal(got, want) {
		t.Fatalf("produce answer\n got %s\nwant %s", got, want)
	}
}

func TestProduceAnswerIsEncodingJSONs(t *testing.T) {
	p, o := int32(3), int64(41)
	checkSameProduceAnswer(t, []produceResult{})
	checkSameProduceAnswer(t, []produceResult{
		{Partition: &p, Offset: &o, Code: sdk.CodeOK},
		{Code: sdk.CodeRateLimited, Message: "over 10 messages/s <topics.a&b> \u2028 \"q\" \xff"},
		{Partition: &p, Code: sdk.CodeTimeout},
	})
}

func FuzzProduceAnswer(f *testing.F) {
	f.Add(int32(0), int64(0), int32(0), "", true)
	f.Add(int32(-1), int64(-5), int32(15), "over <&> \u2028 \xff", false)
	f.Fuzz(func(t *testing.T, partition int32, offset int64, code int32, msg string, ok bool) {
		r := produceResult{Code: sdk.Code(code), Message: msg}
		if ok {
			r.Partition, r.Offset = &partition, &offset
		}
		checkSameProduceAnswer(t, []produceResult{r, {Code: sdk.Code(code), Message: msg + msg}})
	})
}
