package httpapi

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// checkDecodeError fails unless err is code 11 with a message.
func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	var e *sdk.Error
	if !errors.As(err, &e) || e.Code != sdk.CodeIllegal || e.Msg == "" {
		t.Fatalf("error %#v is not an *sdk.Error with code %d and a message", err, sdk.CodeIllegal)
	}
}

func checkOffsetList(t *testing.T, offsets []int64) {
	t.Helper()
	for _, o := range offsets {
		if o < 0 {
			t.Fatalf("accepted offset %d", o)
		}
	}
}

func checkOffsetMap(t *testing.T, m map[string]map[string]int64) {
	t.Helper()
	n := 0
	for topic, qids := range m {
		if topicname.Problem(topic) != "" {
			t.Fatalf("accepted topic %q", topic)
		}
		for qid, o := range qids {
			if qid == "" || o < 0 {
				t.Fatalf("accepted %q/%q at %d", topic, qid, o)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("accepted offsets without one offset")
	}
}

// mustJSON encodes v for a round trip.
func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ackJSON(a ackBody) map[string]any {
	return map[string]any{"qid": a.qid, "success": a.success, "fail": a.fail}
}

func FuzzDecodePullBody(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `{"max_messages": 10, "max_wait_ms": 0}`,
		`{"ack": {"qid": "3", "success": [1, 2], "fail": [3]}}`,
		`{"ack": {"qid": 3, "success": []}}`, `{"ack": {"success": [1]}}`,
		`{"max_messages": 0}`, `{"max_wait_ms": -1}`, `{"ack": null, "max_messages": null}`,
		`{"ack": {"qid": "0", "success": [1.5]}}`, `[]`, `{"x": 1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodePullBody(body)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if p.maxMessages != nil && *p.maxMessages < 1 || p.maxWaitMs != nil && *p.maxWaitMs < 0 {
			t.Fatalf("accepted %+v", p)
		}
		re := map[string]any{"max_messages": p.maxMessages, "max_wait_ms": p.maxWaitMs}
		if a := p.ack; a != nil {
			if a.qid == "" {
				t.Fatal("accepted an ack without qid")
			}
			checkOffsetList(t, a.success)
			checkOffsetList(t, a.fail)
			re["ack"] = ackJSON(*a)
		}
		again, err := decodePullBody(mustJSON(t, re))
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, p)
		}
	})
}

func FuzzDecodeAckBody(f *testing.F) {
	for _, seed := range []string{
		`{"qid": "0", "success": [1], "fail": [2, 3]}`, `{"qid": 12, "fail": [0]}`,
		`{"qid": "0"}`, `{"success": [1]}`, `{"qid": "", "success": [1]}`,
		`{"qid": "0", "success": [-1]}`, `{"qid": "0", "success": [1e2]}`, ``, `{"qid": "0", "success": [1]} x`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := decodeAckBody(body)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if a.qid == "" || len(a.success)+len(a.fail) == 0 {
			t.Fatalf("accepted %+v", a)
		}
		checkOffsetList(t, a.success)
		checkOffsetList(t, a.fail)
		again, err := decodeAckBody(mustJSON(t, ackJSON(a)))
		if err != nil || !reflect.DeepEqual(again, a) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, a)
		}
	})
}

func FuzzDecodeFetchBody(f *testing.F) {
	for _, seed := range []string{
		`{"cluster": "east", "group": "g", "consumer_id": "c", "offsets": {"t": {"0": 1, "1": 2}}, "max_messages": 5, "max_wait_ms": 9}`,
		`{"offsets": {"t": {}}}`, `{"offsets": {"a b": {"0": 1}}}`, `{"offsets": {"t": {"": 1}}}`,
		`{"offsets": {"t": {"0": 1, "0": 2}}}`, `{"group": "", "offsets": {"t": {"0": 1}}}`, `{"offsets": []}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := decodeFetchBody(body)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		checkOffsetMap(t, b.offsets)
		if b.maxMessages != nil && *b.maxMessages < 1 || b.maxWaitMs != nil && *b.maxWaitMs < 0 {
			t.Fatalf("accepted %+v", b)
		}
		re := map[string]any{"cluster": b.cluster, "offsets": b.offsets, "max_messages": b.maxMessages, "max_wait_ms": b.maxWaitMs}
		if b.group != "" {
			if topicname.ValidateGroup(b.group) != nil {
				t.Fatalf("accepted group %q", b.group)
			}
			re["group"] = b.group
		}
		again, err := decodeFetchBody(mustJSON(t, re))
		if err != nil || !reflect.DeepEqual(again, b) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, b)
		}
	})
}

func FuzzDecodeCommitBody(f *testing.F) {
	for _, seed := range []string{
		`{"cluster": "east", "group": "g", "offsets": {"t": {"0": 12}}}`, `{"group": "g"}`,
		`{"offsets": {"t": {"0": 1}}}`, `{"group": "g h", "offsets": {"t": {"0": 1}}}`,
		`{"group": "g", "offsets": {"t": {"0": -1}}}`, `{"group": "g", "offsets": {"t": {"0": 1}}, "group": "h"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := decodeCommitBody(body)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if topicname.ValidateGroup(b.group) != nil {
			t.Fatalf("accepted group %q", b.group)
		}
		checkOffsetMap(t, b.offsets)
		again, err := decodeCommitBody(mustJSON(t, map[string]any{"cluster": b.cluster, "group": b.group, "offsets": b.offsets}))
		if err != nil || !reflect.DeepEqual(again, b) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, b)
		}
	})
}

func FuzzDecodeBatchAckBody(f *testing.F) {
	for _, seed := range []string{`{"ack_batch_id": 6}`, `{}`, `{"ack_batch_id": -1}`, `{"ack_batch_id": "6"}`, `6`, ``} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		id, err := decodeBatchAckBody(body)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		again, err := decodeBatchAckBody(mustJSON(t, map[string]int64{"ack_batch_id": id}))
		if err != nil || again != id {
			t.Fatalf("round trip: %d, %v; want %d", again, err, id)
		}
	})
}
