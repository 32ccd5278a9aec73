package produce

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/sdk"
)

// spoolWaitFor polls fn every few milliseconds until it returns nil, and
// fails the test with fn's last error if that takes longer than total.
func spoolWaitFor(t testing.TB, total time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %v: %v", total, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// openTestSpool opens a spool in dir with its own metrics registry and
// closes it when the test ends.
func openTestSpool(t testing.TB, dir string, maxBytes int64) (*Spool, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := OpenSpool(SpoolOptions{Dir: dir, MaxBytes: maxBytes, Registerer: reg})
	if err != nil {
		t.Fatalf("OpenSpool: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, reg
}

// spoolMetric reads a gauge or counter from reg.
func spoolMetric(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// runSpool runs s's forwarder with send until the test ends.
func runSpool(t testing.TB, s *Spool, send SendFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, send)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// spoolRec is a record whose value starts with its id, so tests can tell
// records apart and check their order.
func spoolRec(topic string, id int) sdk.Record {
	return sdk.Record{Topic: topic, Partition: sdk.PartitionRandom, Value: []byte(fmt.Sprintf("%d|payload", id))}
}

func spoolRecID(r sdk.Record) int {
	s, _, _ := strings.Cut(string(r.Value), "|")
	id, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return id
}

// spoolBroker is a fake broker behind a SendFunc: it keeps what it
// acknowledged, per cluster, and lets a test decide each record's fate.
type spoolBroker struct {
	mu sync.Mutex
	// fate, when set, decides a record's result; a nil error acknowledges
	// it. call is the cluster's send count so far, from 1.
	fate func(cluster string, call int, r sdk.Record) error
	// whole, when set, may fail a whole send.
	whole func(cluster string, call int, rs []sdk.Record) error
	calls map[string]int
	// sent lists the ids of every send, per cluster.
	sent map[string][][]int
	// acked are the records acknowledged, per cluster, in order.
	acked map[string][]sdk.Record
}

func newSpoolBroker() *spoolBroker {
	return &spoolBroker{calls: map[string]int{}, sent: map[string][][]int{}, acked: map[string][]sdk.Record{}}
}

func (b *spoolBroker) send(ctx context.Context, cluster string, rs []sdk.Record) ([]sdk.ProduceResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls[cluster]++
	call := b.calls[cluster]
	ids := make([]int, len(rs))
	for i, r := range rs {
		ids[i] = spoolRecID(r)
	}
	b.sent[cluster] = append(b.sent[cluster], ids)
	if b.whole != nil {
		if err := b.whole(cluster, call, rs); err != nil {
			return nil, err
		}
	}
	out := make([]sdk.ProduceResult, len(rs))
	for i, r := range rs {
		if b.fate != nil {
			out[i].Err = b.fate(cluster, call, r)
		}
		if out[i].Err == nil {
			b.acked[cluster] = append(b.acked[cluster], r)
		}
	}
	return out, nil
}

func (b *spoolBroker) ackedIDs(cluster string) []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]int, len(b.acked[cluster]))
	for i, r := range b.acked[cluster] {
		ids[i] = spoolRecID(r)
	}
	return ids
}

func (b *spoolBroker) waitAcked(t *testing.T, cluster string, n int) []int {
	t.Helper()
	var ids []int
	spoolWaitFor(t, 20*time.Second, func() error {
		ids = b.ackedIDs(cluster)
		if len(ids) < n {
			return fmt.Errorf("cluster %s: %d of %d records acknowledged", cluster, len(ids), n)
		}
		return nil
	})
	return ids
}

func spoolIDs(from, to int) []int {
	var ids []int
	for i := from; i < to; i++ {
		ids = append(ids, i)
	}
	return ids
}

func appendSpool(t testing.TB, s *Spool, cluster string, rs ...sdk.Record) {
	t.Helper()
	if err := s.Append(context.Background(), cluster, rs); err != nil {
		t.Fatalf("Append to %s: %v", cluster, err)
	}
}

func TestSpoolDeliversEveryRecordOnceInOrderIntact(t *testing.T) {
	stamp := time.Unix(1700000000, 123456789)
	// Record shapes the spool must keep apart; the test appends them in
	// turn and checks each comes back equal.
	shapes := []struct {
		name string
		rec  sdk.Record
	}{
		{"binary value", sdk.Record{Topic: "t", Partition: 3, Value: []byte{0, 1, 0xff, 0xfe, '\n', 0}}},
		{"nil key", sdk.Record{Topic: "t", Partition: sdk.PartitionRandom, Key: nil, Value: []byte("v")}},
		{"empty key", sdk.Record{Topic: "t", Partition: sdk.PartitionHash, Hash: 1 << 63, Key: []byte{}, Value: []byte("v")}},
		{"empty value", sdk.Record{Topic: "t", Partition: sdk.PartitionHash, Hash: 7, Key: []byte("k"), Value: []byte{}}},
		{"nil value", sdk.Record{Topic: "t", Partition: 0, Key: []byte("k")}},
		{"headers repeat and keep order", sdk.Record{Topic: "t", Partition: 1, Value: []byte("v"), Headers: []sdk.Header{
			{Key: "b", Value: []byte{0xff, 0}}, {Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}, {Key: "nil", Value: nil}, {Key: "empty", Value: []byte{}},
		}}},
		{"tags", sdk.Record{Topic: "t", Partition: 1, Value: []byte("v"), Tags: "TagA||TagB"}},
		{"timestamp and large value", sdk.Record{Topic: "t.with.dots", Partition: 2, Value: make([]byte, 256<<10), Timestamp: stamp}},
	}
	s, reg := openTestSpool(t, t.TempDir(), 0)
	b := newSpoolBroker()
	// Records of two clusters, appended interleaved, in calls of
	// different sizes; ids go up in append order within each cluster.
	want := map[string][]sdk.Record{}
	id := 0
	for round := range 40 {
		for _, cluster := range []string{"east", "west"} {
			n := 1 + round%5
			var rs []sdk.Record
			for range n {
				shape := shapes[id%len(shapes)].rec
				r := shape
				r.Topic = fmt.Sprintf("%s-%d", shape.Topic, id)
				r.Headers = append([]sdk.Header{{Key: "id", Value: []byte(strconv.Itoa(id))}}, shape.Headers...)
				rs = append(rs, r)
				id++
			}
			appendSpool(t, s, cluster, rs...)
			want[cluster] = append(want[cluster], rs...)
		}
	}
	if got := spoolMetric(t, reg, "mqgate_spool_depth_messages"); got != float64(id) {
		t.Fatalf("depth before forwarding = %v, want %d", got, id)
	}
	runSpool(t, s, b.send)
	for cluster, recs := range want {
		b.waitAcked(t, cluster, len(recs))
		b.mu.Lock()
		got := b.acked[cluster]
		b.mu.Unlock()
		if len(got) != len(recs) {
			t.Fatalf("cluster %s: %d records delivered, want %d (each once)", cluster, len(got), len(recs))
		}
		for i := range recs {
			if !reflect.DeepEqual(got[i], recs[i]) {
				t.Fatalf("cluster %s record %d:\n got %#v\nwant %#v", cluster, i, got[i], recs[i])
			}
		}
	}
	spoolWaitFor(t, 10*time.Second, func() error {
		if d := spoolMetric(t, reg, "mqgate_spool_depth_messages"); d != 0 {
			return fmt.Errorf("depth %v", d)
		}
		if n := spoolMetric(t, reg, "mqgate_spool_forwarded_total"); n != float64(id) {
			return fmt.Errorf("forwarded_total %v, want %d", n, id)
		}
		if n := spoolMetric(t, reg, "mqgate_spool_bytes"); n != 0 {
			return fmt.Errorf("bytes %v", n)
		}
		return nil
	})
}

// checkSpoolOrder checks what a cluster's sends carried: no record was
// sent while an earlier one that failed retriably was still
// unacknowledged, except that one itself.
func checkSpoolOrder(t *testing.T, sends [][]int, failed func(call, id int) bool) {
	t.Helper()
	outstanding := map[int]bool{}
	for call, ids := range sends {
		for _, id := range ids {
			if len(outstanding) > 0 && !outstanding[id] {
				t.Fatalf("send %d carried record %d while %v failed earlier and were not yet acknowledged (sends %v)", call+1, id, outstanding, sends)
			}
		}
		for _, id := range ids {
			if failed(call+1, id) {
				outstanding[id] = true
			} else {
				delete(outstanding, id)
			}
		}
	}
}

func TestSpoolRetriesRejectsAndIsolatesClusters(t *testing.T) {
	unavailable := sdk.Errorf(sdk.CodeUnavailable, "leader moved")
	for _, tc := range []struct {
		name  string
		fate  func(cluster string, call int, r sdk.Record) error
		whole func(cluster string, call int, rs []sdk.Record) error
		// want is the ids each cluster's broker must end up with, in
		// order; rejected the ids that must end in rejected.jsonl.
		want     map[string][]int
		rejected map[int]sdk.Code
		// topics names the topic of some ids; the rest go to "ok".
		topics map[int]string
		// retried, when set, says which sends of which ids fail
		// retriably; the order check follows it.
		retried func(call, id int) bool
		// down is a cluster whose every send fails.
		down bool
	}{
		{
			name: "retriable record failures are retried before anything newer",
			fate: func(_ string, call int, r sdk.Record) error {
				if id := spoolRecID(r); (id == 3 || id == 4) && call <= 3 {
					return unavailable
				}
				if spoolRecID(r) == 7 && call <= 2 {
					return sdk.Errorf(sdk.CodeTimeout, "broker slow")
				}
				return nil
			},
			// 3, 4 and 7 fail in the first send and go again, alone,
			// until acknowledged; the rest of the first send is not sent
			// again.
			want: map[string][]int{"a": {0, 1, 2, 5, 6, 8, 9, 7, 3, 4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}},
			retried: func(call, id int) bool {
				return (id == 3 || id == 4) && call <= 3 || id == 7 && call <= 2
			},
		},
		{
			// A broker out of file descriptors answers records with
			// errors the plugin cannot classify (100); they may pass, so
			// an accepted record is sent again, never rejected.
			name: "unknown and credential failures of records are retried, not rejected",
			fate: func(_ string, call int, r sdk.Record) error {
				switch id := spoolRecID(r); {
				case (id == 2 || id == 5) && call <= 3:
					return sdk.Errorf(sdk.CodeInternal, "kafka: accept tcp: too many open files")
				case id == 8 && call <= 2:
					return sdk.Errorf(sdk.CodeUnauthenticated, "SASL authentication failed")
				case id == 9 && call <= 2:
					return sdk.Errorf(sdk.Code(42), "a code only the plugin knows")
				}
				return nil
			},
			want: map[string][]int{"a": {0, 1, 3, 4, 6, 7, 8, 9, 2, 5, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}},
			retried: func(call, id int) bool {
				return (id == 2 || id == 5) && call <= 3 || (id == 8 || id == 9) && call <= 2
			},
		},
		{
			name: "whole send failures are retried",
			whole: func(_ string, call int, _ []sdk.Record) error {
				if call <= 3 {
					return errors.New("plugin restarting")
				}
				return nil
			},
			want: map[string][]int{"a": spoolIDs(0, 20)},
		},
		{
			name: "whole send refusals that are the cluster's are retried",
			whole: func(_ string, call int, _ []sdk.Record) error {
				if call <= 2 {
					return sdk.Errorf(sdk.CodeNotAllowed, "no cluster %q", "a")
				}
				return nil
			},
			want: map[string][]int{"a": spoolIDs(0, 20)},
		},
		{
			name: "refused records go to rejected and later ones still flow",
			fate: func(_ string, _ int, r sdk.Record) error {
				switch r.Topic {
				case "missing":
					return sdk.Errorf(sdk.CodeTopicNotExist, "topic %q does not exist", r.Topic)
				case "huge":
					return sdk.Errorf(sdk.CodeTooLarge, "record larger than max.message.bytes")
				case "denied":
					return sdk.Errorf(sdk.CodeNotAllowed, "TOPIC_AUTHORIZATION_FAILED")
				case "bad":
					return sdk.Errorf(sdk.CodeIllegal, "null key on a compacted topic")
				}
				return nil
			},
			topics:   map[int]string{3: "missing", 6: "denied", 12: "bad", 15: "huge"},
			want:     map[string][]int{"a": {0, 1, 2, 4, 5, 7, 8, 9, 10, 11, 13, 14, 16, 17, 18, 19}},
			rejected: map[int]sdk.Code{3: sdk.CodeTopicNotExist, 6: sdk.CodeNotAllowed, 12: sdk.CodeIllegal, 15: sdk.CodeTooLarge},
		},
		{
			name: "a record that fails its whole send is isolated and rejected",
			whole: func(_ string, _ int, rs []sdk.Record) error {
				for _, r := range rs {
					if r.Topic == "illegal" {
						return sdk.Errorf(sdk.CodeIllegal, "illegal message in batch")
					}
				}
				return nil
			},
			topics:   map[int]string{3: "illegal"},
			want:     map[string][]int{"a": {0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}},
			rejected: map[int]sdk.Code{3: sdk.CodeIllegal},
		},
		{
			name: "one cluster down does not stop another",
			whole: func(cluster string, _ int, _ []sdk.Record) error {
				if cluster == "down" {
					return sdk.Errorf(sdk.CodeUnavailable, "broker down")
				}
				return nil
			},
			want: map[string][]int{"a": spoolIDs(0, 20), "down": nil},
			down: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, reg := openTestSpool(t, dir, 0)
			b := newSpoolBroker()
			b.fate, b.whole = tc.fate, tc.whole
			topics := tc.topics
			// Appended before Run, so the first send carries them all
			// and the order of retries is what the test says.
			for cluster := range tc.want {
				var rs []sdk.Record
				for id := range 10 {
					topic := topics[id]
					if topic == "" {
						topic = "ok"
					}
					rs = append(rs, spoolRec(topic, id))
				}
				appendSpool(t, s, cluster, rs...)
			}
			runSpool(t, s, b.send)
			// And ten more while it runs, once its first send has read
			// the first ten: appended sooner, they could join it.
			spoolWaitFor(t, 20*time.Second, func() error {
				b.mu.Lock()
				defer b.mu.Unlock()
				for cluster := range tc.want {
					if len(b.sent[cluster]) == 0 {
						return fmt.Errorf("nothing sent to cluster %s yet", cluster)
					}
					if first := b.sent[cluster][0]; !reflect.DeepEqual(first, spoolIDs(0, 10)) {
						t.Fatalf("the first send to cluster %s carried %v, want the 10 appended before Run", cluster, first)
					}
				}
				return nil
			})
			for cluster := range tc.want {
				for id := 10; id < 20; id++ {
					topic := topics[id]
					if topic == "" {
						topic = "ok"
					}
					appendSpool(t, s, cluster, spoolRec(topic, id))
				}
			}
			for cluster, want := range tc.want {
				if want == nil {
					continue
				}
				if got := b.waitAcked(t, cluster, len(want)); !reflect.DeepEqual(got, want) {
					t.Fatalf("cluster %s acknowledged %v, want %v", cluster, got, want)
				}
				if tc.retried != nil {
					b.mu.Lock()
					sends := b.sent[cluster]
					b.mu.Unlock()
					checkSpoolOrder(t, sends, tc.retried)
				}
			}
			if tc.down {
				// The down cluster keeps its records, and keeps trying.
				spoolWaitFor(t, 10*time.Second, func() error {
					b.mu.Lock()
					calls := b.calls["down"]
					b.mu.Unlock()
					if calls < 2 {
						return fmt.Errorf("down cluster tried %d times", calls)
					}
					if d := spoolMetric(t, reg, "mqgate_spool_depth_messages"); d != 20 {
						return fmt.Errorf("depth = %v, want the down cluster's 20 records", d)
					}
					return nil
				})
				if age := spoolMetric(t, reg, "mqgate_spool_oldest_age_seconds"); age <= 0 {
					t.Fatalf("oldest_age_seconds = %v with records waiting", age)
				}
			}
			spoolWaitFor(t, 10*time.Second, func() error {
				if n := spoolMetric(t, reg, "mqgate_spool_rejected_total"); n != float64(len(tc.rejected)) {
					return fmt.Errorf("rejected_total %v, want %d", n, len(tc.rejected))
				}
				return nil
			})
			got := readSpoolRejected(t, dir)
			if len(got) != len(tc.rejected) {
				t.Fatalf("rejected.jsonl holds %d records, want %d: %+v", len(got), len(tc.rejected), got)
			}
			for _, rr := range got {
				id := spoolRecID(sdk.Record{Value: rr.Value})
				if want, ok := tc.rejected[id]; !ok || rr.Code != want || rr.Cluster != "a" || rr.Topic != topics[id] || rr.Error == "" {
					t.Fatalf("rejected %+v, want id %d with code %d", rr, id, tc.rejected[id])
				}
			}
		})
	}
}

func readSpoolRejected(t *testing.T, dir string) []RejectedRecord {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, spoolRejectedFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []RejectedRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rr RejectedRecord
		if err := json.Unmarshal(sc.Bytes(), &rr); err != nil {
			t.Fatalf("rejected.jsonl line %q: %v", sc.Text(), err)
		}
		out = append(out, rr)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSpoolFullRefusesAtOnceAndStoresNothing(t *testing.T) {
	dir := t.TempDir()
	const maxBytes = 20 << 10
	s, reg := openTestSpool(t, dir, maxBytes)
	rec := func(id int) sdk.Record {
		r := spoolRec("t", id)
		r.Value = append(r.Value, make([]byte, 1000)...)
		return r
	}
	accepted := 0
	var full error
	for id := 0; id < 100; id++ {
		if err := s.Append(context.Background(), "a", []sdk.Record{rec(id)}); err != nil {
			full = err
			break
		}
		accepted++
	}
	if full == nil {
		t.Fatalf("100 KiB went into a spool of %d bytes", maxBytes)
	}
	if accepted == 0 || accepted > maxBytes/1000 {
		t.Fatalf("%d records of 1 KiB accepted into %d bytes", accepted, maxBytes)
	}
	var e *sdk.Error
	if !errors.As(full, &e) || e.Code != sdk.CodeUnavailable {
		t.Fatalf("full spool: %v, want code 17", full)
	}
	if want := fmt.Sprintf("producer.spool_max_bytes = %d", maxBytes); !strings.Contains(e.Msg, want) {
		t.Fatalf("full spool message %q does not name %q", e.Msg, want)
	}
	bytesBefore := spoolMetric(t, reg, "mqgate_spool_bytes")
	// A call of several records that does not fit as a whole stores none.
	if err := s.Append(context.Background(), "a", []sdk.Record{rec(1000), rec(1001)}); sdk.CodeOf(err) != sdk.CodeUnavailable {
		t.Fatalf("Append of two records into a full spool: %v", err)
	}
	// One that could not fit even an empty spool is too large, not a
	// reason to come back later.
	huge := rec(1002)
	huge.Value = make([]byte, maxBytes)
	if err := s.Append(context.Background(), "a", []sdk.Record{huge}); sdk.CodeOf(err) != sdk.CodeTooLarge || !strings.Contains(err.Error(), "producer.spool_max_bytes") {
		t.Fatalf("Append larger than the spool: %v, want code 16 naming producer.spool_max_bytes", err)
	}
	if got := spoolMetric(t, reg, "mqgate_spool_bytes"); got != bytesBefore || got > maxBytes {
		t.Fatalf("bytes after refused Appends = %v, was %v (bound %d)", got, bytesBefore, maxBytes)
	}
	if got := spoolMetric(t, reg, "mqgate_spool_depth_messages"); got != float64(accepted) {
		t.Fatalf("depth = %v, want the %d accepted", got, accepted)
	}

	// Forwarding frees the space.
	b := newSpoolBroker()
	runSpool(t, s, b.send)
	got := b.waitAcked(t, "a", accepted)
	if !reflect.DeepEqual(got, spoolIDs(0, accepted)) {
		t.Fatalf("delivered %v, want ids 0..%d: refused records must not be stored", got, accepted-1)
	}
	spoolWaitFor(t, 10*time.Second, func() error {
		return s.Append(context.Background(), "a", []sdk.Record{rec(accepted)})
	})
	b.waitAcked(t, "a", accepted+1)
}

func TestSpoolReopenKeepsUndeliveredAndDoesNotResendDelivered(t *testing.T) {
	dir := t.TempDir()
	const n, delivered = 300, 120
	reg := prometheus.NewRegistry()
	s, err := OpenSpool(SpoolOptions{Dir: dir, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	for id := range n {
		appendSpool(t, s, []string{"a", "b"}[id%2], spoolRec("t", id))
	}
	// The broker takes ids below 120, then goes down.
	first := newSpoolBroker()
	first.fate = func(_ string, _ int, r sdk.Record) error {
		if spoolRecID(r) < delivered {
			return nil
		}
		return sdk.Errorf(sdk.CodeUnavailable, "broker down")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, first.send)
	}()
	spoolWaitFor(t, 10*time.Second, func() error {
		if got := spoolMetric(t, reg, "mqgate_spool_forwarded_total"); got != delivered {
			return fmt.Errorf("forwarded %v of %d", got, delivered)
		}
		return nil
	})
	cancel()
	<-done
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, reg2 := openTestSpool(t, dir, 0)
	if d := spoolMetric(t, reg2, "mqgate_spool_depth_messages"); d != n-delivered {
		t.Fatalf("reopened depth = %v, want %d", d, n-delivered)
	}
	second := newSpoolBroker()
	runSpool(t, s2, second.send)
	for _, cluster := range []string{"a", "b"} {
		var want []int
		for id := delivered; id < n; id++ {
			if []string{"a", "b"}[id%2] == cluster {
				want = append(want, id)
			}
		}
		if got := second.waitAcked(t, cluster, len(want)); !reflect.DeepEqual(got, want) {
			t.Fatalf("after reopen cluster %s got %v, want %v", cluster, got, want)
		}
	}
	// Nothing more comes: the spool is empty.
	spoolWaitFor(t, 10*time.Second, func() error {
		if d := spoolMetric(t, reg2, "mqgate_spool_depth_messages"); d != 0 {
			return fmt.Errorf("depth %v", d)
		}
		return nil
	})
	for _, cluster := range []string{"a", "b"} {
		if got := second.ackedIDs(cluster); len(got) != (n-delivered)/2 {
			t.Fatalf("cluster %s: %d records after reopen, want %d", cluster, len(got), (n-delivered)/2)
		}
	}
}

func TestSpoolConcurrentAppendsShareFsyncs(t *testing.T) {
	s, reg := openTestSpool(t, t.TempDir(), 0)
	before := spoolMetric(t, reg, "mqgate_spool_append_fsyncs_total")
	const appenders, each = 32, 20
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range appenders {
		wg.Go(func() {
			for i := range each {
				if err := s.Append(context.Background(), "a", []sdk.Record{spoolRec("t", w*each+i)}); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d Appends failed", failed.Load())
	}
	fsyncs := spoolMetric(t, reg, "mqgate_spool_append_fsyncs_total") - before
	t.Logf("%d Appends, %v fsyncs", appenders*each, fsyncs)
	if fsyncs < 1 || fsyncs >= appenders*each {
		t.Fatalf("%d concurrent Appends took %v fsyncs: want at least one, and fewer than one each", appenders*each, fsyncs)
	}
}

func TestSpoolAppendRefusals(t *testing.T) {
	s, _ := openTestSpool(t, t.TempDir(), 0)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		cluster string
		want    sdk.Code
	}{
		{"empty cluster", context.Background(), "", sdk.CodeIllegal},
		{"cluster with NUL", context.Background(), "a\x00b", sdk.CodeIllegal},
		{"canceled context", canceled, "a", sdk.CodeUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Append(tc.ctx, tc.cluster, []sdk.Record{spoolRec("t", 1)}); sdk.CodeOf(err) != tc.want {
				t.Fatalf("Append: %v (code %d), want code %d", err, sdk.CodeOf(err), tc.want)
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(context.Background(), "a", []sdk.Record{spoolRec("t", 1)}); sdk.CodeOf(err) != sdk.CodeUnavailable {
		t.Fatalf("Append after Close: %v, want code 17", err)
	}
}

func TestSpoolEntryRoundTrip(t *testing.T) {
	appended := time.Unix(1700000000, 42)
	for _, tc := range []struct {
		name string
		rec  sdk.Record
	}{
		{"zero", sdk.Record{}},
		{"everything", sdk.Record{Topic: "t", Qid: "3", Partition: -1, Hash: 1<<64 - 1, Offset: -5, Key: []byte{}, Value: []byte{0}, Tags: "x",
			Headers: []sdk.Header{{Key: "", Value: nil}, {Key: "k", Value: []byte{}}}, Timestamp: time.Unix(-1, 0)}},
		{"negative partition", sdk.Record{Topic: "t", Partition: sdk.PartitionRandom, Value: []byte("v")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := encodeSpoolEntry(nil, &tc.rec, appended)
			if len(v) > spoolEntrySize(&tc.rec) {
				t.Fatalf("encoded %d bytes, size bound %d", len(v), spoolEntrySize(&tc.rec))
			}
			got, at, err := decodeSpoolEntry(v)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.rec) || !at.Equal(appended) {
				t.Fatalf("round trip:\n got %#v at %v\nwant %#v at %v", got, at, tc.rec, appended)
			}
			for i := range len(v) {
				if _, _, err := decodeSpoolEntry(v[:i]); err == nil {
					t.Fatalf("decoding the first %d of %d bytes succeeded", i, len(v))
				}
			}
		})
	}
}

func FuzzSpoolEntryDecode(f *testing.F) {
	f.Add(encodeSpoolEntry(nil, &sdk.Record{Topic: "t", Key: []byte("k"), Value: []byte("v"), Headers: []sdk.Header{{Key: "h", Value: []byte("x")}}}, time.Unix(1, 0)))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, v []byte) {
		r, at, err := decodeSpoolEntry(v)
		if err != nil {
			return
		}
		again, at2, err := decodeSpoolEntry(encodeSpoolEntry(nil, &r, at))
		if err != nil || !reflect.DeepEqual(again, r) || !at2.Equal(at) {
			t.Fatalf("re-encoding %#v: %#v, %v", r, again, err)
		}
	})
}

// With space reclaimed after every settle, the range tombstone over a
// cluster's resolved records must never reach a record still pending.
func TestSpoolReclaimSparesPendingRecords(t *testing.T) {
	dir := t.TempDir()
	s, reg := openTestSpool(t, dir, 0)
	s.reclaimBytes, s.reclaimIdleBytes = 1, 1
	b := newSpoolBroker()
	b.fate = func(_ string, call int, r sdk.Record) error {
		if id := spoolRecID(r); id%7 == 3 && call <= 4 {
			return sdk.Errorf(sdk.CodeUnavailable, "leader moved")
		}
		return nil
	}
	var want []int
	for id := range 50 {
		appendSpool(t, s, "a", spoolRec("t", id))
		want = append(want, id)
	}
	runSpool(t, s, b.send)
	for id := 50; id < 100; id++ {
		appendSpool(t, s, "a", spoolRec("t", id))
		want = append(want, id)
	}
	got := b.waitAcked(t, "a", len(want))
	if !sameIDs(got, want) {
		t.Fatalf("acknowledged %v, want each of %v once", got, want)
	}
	b.mu.Lock()
	sends := b.sent["a"]
	b.mu.Unlock()
	checkSpoolOrder(t, sends, func(call, id int) bool { return id%7 == 3 && call <= 4 })
	spoolWaitFor(t, 10*time.Second, func() error {
		if d := spoolMetric(t, reg, "mqgate_spool_depth_messages"); d != 0 {
			return fmt.Errorf("depth %v", d)
		}
		return nil
	})
}

// sameIDs reports whether got holds exactly the ids of want, each once.
func sameIDs(got, want []int) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[int]bool{}
	for _, id := range got {
		seen[id] = true
	}
	for _, id := range want {
		if !seen[id] {
			return false
		}
	}
	return true
}

// A second spool on an open spool's directory is refused, naming the
// process that holds it; once that one closes, the directory opens again.
func TestSpoolDirIsExclusive(t *testing.T) {
	dir := t.TempDir()
	first, err := OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenSpool(SpoolOptions{Dir: dir})
	if err == nil {
		s.Close()
		t.Fatal("a second OpenSpool of an open Dir succeeded")
	}
	if want := fmt.Sprintf("another mqgate process holds %s (pid %d)", dir, os.Getpid()); err.Error() != want {
		t.Fatalf("second OpenSpool: %q; want %q", err, want)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	openTestSpool(t, dir, 0)
}
