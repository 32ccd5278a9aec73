package push

import (
	"encoding/binary"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// These tests drive the delivered record directly; push_test.go's
// TestDeliveredRecordSkipsOnRestart drives it through a subscription.

func openRecord(t *testing.T, dir string, sync bool) *delivered {
	t.Helper()
	d, err := openDelivered(dir, "sub", sync, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// add records offsets and waits until they are written.
func add(t *testing.T, d *delivered, topic, qid string, offs ...int64) {
	t.Helper()
	errs := make(chan error, len(offs))
	for _, off := range offs {
		d.Add(topic, qid, off, func(err error) { errs <- err })
	}
	for range offs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// has returns which of offs the record holds, sorted.
func has(t *testing.T, d *delivered, topic, qid string, offs ...int64) []int64 {
	t.Helper()
	found, err := d.Has(topic, qid, offs)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(found))
}

func span(from, to int64) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func closeRecord(t *testing.T, d *delivered) {
	t.Helper()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// A restarted gateway finds every offset it recorded, per topic and qid,
// in delivery 2 and 3.
func TestRecordRestartFindsDelivered(t *testing.T) {
	for _, sync := range []bool{false, true} {
		dir := t.TempDir()
		d := openRecord(t, dir, sync)
		add(t, d, "orders", "0", 0, 1, 2, 7)
		add(t, d, "orders", "1", 3)
		add(t, d, "audit", "0", 5)
		closeRecord(t, d)

		d = openRecord(t, dir, sync)
		if got := has(t, d, "orders", "0", span(0, 10)...); !slices.Equal(got, []int64{0, 1, 2, 7}) {
			t.Errorf("sync %v: orders/0 holds %v, want [0 1 2 7]", sync, got)
		}
		if got := has(t, d, "orders", "1", span(0, 10)...); !slices.Equal(got, []int64{3}) {
			t.Errorf("sync %v: orders/1 holds %v, want [3]", sync, got)
		}
		if got := has(t, d, "audit", "0", span(0, 10)...); !slices.Equal(got, []int64{5}) {
			t.Errorf("sync %v: audit/0 holds %v, want [5]", sync, got)
		}
		if got := has(t, d, "audit", "1", span(0, 10)...); len(got) != 0 {
			t.Errorf("sync %v: audit/1 holds %v, want nothing", sync, got)
		}
		closeRecord(t, d)
	}
}

// An offset is in the file by the time its Add is done: a gateway killed
// after the write and before the ack (done still running) leaves a file
// that a restarted gateway reads the offset from.
func TestRecordCrashBetweenWriteAndAck(t *testing.T) {
	dir := t.TempDir()
	d := openRecord(t, dir, false)
	add(t, d, "orders", "0", 1)
	acking := make(chan struct{})
	release := make(chan struct{})
	d.Add("orders", "0", 2, func(error) {
		close(acking)
		<-release // the ack never comes: the process dies here
	})
	<-acking
	// What kill -9 leaves: the file as it is now, and no lock held.
	crashed := t.TempDir()
	data, err := os.ReadFile(filepath.Join(dir, "sub.log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(crashed, "sub.log"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	d2 := openRecord(t, crashed, false)
	if got := has(t, d2, "orders", "0", 0, 1, 2, 3); !slices.Equal(got, []int64{1, 2}) {
		t.Errorf("after the crash the record holds %v, want [1 2]", got)
	}
	closeRecord(t, d2)
	close(release)
	closeRecord(t, d)
}

// A crash in the middle of a write leaves a torn last frame: the restarted
// gateway keeps every whole frame, cuts the rest, and what it records
// next is read back after the following restart.
func TestRecordTornTail(t *testing.T) {
	for _, cut := range []int{1, offsetFrameLen - 1, offsetFrameLen / 2} {
		dir := t.TempDir()
		d := openRecord(t, dir, false)
		add(t, d, "orders", "0", 0, 1, 2)
		add(t, d, "orders", "0", 3)
		closeRecord(t, d)
		path := filepath.Join(dir, "sub.log")
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, info.Size()-int64(cut)); err != nil {
			t.Fatal(err)
		}

		d = openRecord(t, dir, false)
		if got := has(t, d, "orders", "0", span(0, 5)...); !slices.Equal(got, []int64{0, 1, 2}) {
			t.Errorf("cut %d: after the torn write the record holds %v, want [0 1 2]", cut, got)
		}
		add(t, d, "orders", "0", 4)
		closeRecord(t, d)
		d = openRecord(t, dir, false)
		if got := has(t, d, "orders", "0", span(0, 5)...); !slices.Equal(got, []int64{0, 1, 2, 4}) {
			t.Errorf("cut %d: after a write past the cut the record holds %v, want [0 1 2 4]", cut, got)
		}
		closeRecord(t, d)
	}
}

// Corrupt frames at the end are dropped like a torn tail; a file that is
// not a record at all is refused, naming the file.
func TestRecordMalformedFile(t *testing.T) {
	valid := func() []byte {
		b := appendStreamFrame([]byte(logHeader), 0, streamKey{"orders", "0"})
		return appendOffsetFrame(b, 0, 9)
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		want    []int64 // offsets of orders/0 held after opening
		refused string  // part of the error, when refused
	}{
		{name: "empty", data: nil},
		{name: "half a header", data: []byte(logHeader[:10])},
		{name: "not a record", data: []byte("SQLite format 3\x00 and more bytes than a header"), refused: "not a push delivered record"},
		{name: "a header of another version", data: []byte(strings.Replace(logHeader, "v1", "v9", 1)), refused: "not a push delivered record"},
		{name: "a bad checksum at the end", data: func() []byte {
			b := appendOffsetFrame(valid(), 0, 10)
			b[len(b)-1] ^= 0xff
			return b
		}(), want: []int64{9}},
		{name: "garbage after the frames", data: append(valid(), "\xff\xff\x00\x00\x00\x00junk"...), want: []int64{9}},
		{name: "a zero-length frame", data: append(valid(), 0, 0, 0, 0, 0, 0), want: []int64{9}},
		{name: "an offset of an undeclared stream", data: appendOffsetFrame(valid(), 7, 11), want: []int64{9}},
		{name: "one id for two streams", data: appendOffsetFrame(appendStreamFrame(valid(), 0, streamKey{"audit", "0"}), 0, 12), want: []int64{9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.data != nil {
				if err := os.WriteFile(filepath.Join(dir, "sub.log"), tc.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			d, err := openDelivered(dir, "sub", false, slog.New(slog.DiscardHandler))
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) || !strings.Contains(err.Error(), filepath.Join(dir, "sub.log")) {
					t.Fatalf("open = %v; want an error naming the file and saying %q", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := has(t, d, "orders", "0", span(0, 20)...); !slices.Equal(got, tc.want) {
				t.Errorf("orders/0 holds %v, want %v", got, tc.want)
			}
			// Whatever was dropped, the file takes new offsets and reads
			// them back.
			add(t, d, "orders", "0", 15)
			closeRecord(t, d)
			d = openRecord(t, dir, false)
			if got := has(t, d, "orders", "0", 15); !slices.Equal(got, []int64{15}) {
				t.Errorf("after reopening, orders/0 holds %v of [15]", got)
			}
			closeRecord(t, d)
		})
	}
}

// Prune forgets offsets below the committed ones, and once the file is
// mostly forgotten offsets it is rewritten smaller, holding the rest.
func TestRecordPrune(t *testing.T) {
	minBytes, ratio := compactMinBytes, compactRatio
	compactMinBytes, compactRatio = 1024, 4
	t.Cleanup(func() { compactMinBytes, compactRatio = minBytes, ratio })
	for _, sync := range []bool{false, true} {
		dir := t.TempDir()
		d := openRecord(t, dir, sync)
		add(t, d, "orders", "0", span(0, 500)...)
		add(t, d, "orders", "1", span(0, 500)...)
		path := filepath.Join(dir, "sub.log")
		before, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Prune("orders", map[string]int64{"0": 490, "1": 10}); err != nil {
			t.Fatal(err)
		}
		if got := has(t, d, "orders", "0", span(0, 500)...); !slices.Equal(got, span(490, 500)) {
			t.Errorf("sync %v: orders/0 holds %v after pruning below 490", sync, got)
		}
		if got := has(t, d, "orders", "1", span(0, 500)...); !slices.Equal(got, span(10, 500)) {
			t.Errorf("sync %v: orders/1 holds %d offsets after pruning below 10, want 490", sync, len(got))
		}
		// Still more than a quarter held: not rewritten.
		if after, _ := os.Stat(path); after.Size() < before.Size() {
			t.Errorf("sync %v: rewritten at %d bytes holding 500 of 1000 offsets", sync, after.Size())
		}
		if err := d.Prune("orders", map[string]int64{"1": 480}); err != nil {
			t.Fatal(err)
		}
		after, _ := os.Stat(path)
		if after.Size() >= before.Size()/4 {
			t.Errorf("sync %v: %d bytes after pruning to 30 offsets, %d before: not rewritten", sync, after.Size(), before.Size())
		}
		add(t, d, "orders", "0", 500)
		closeRecord(t, d)
		d = openRecord(t, dir, sync)
		if got := has(t, d, "orders", "0", span(0, 501)...); !slices.Equal(got, span(490, 501)) {
			t.Errorf("sync %v: after reopening orders/0 holds %v, want 490..500", sync, got)
		}
		if got := has(t, d, "orders", "1", span(0, 500)...); !slices.Equal(got, span(480, 500)) {
			t.Errorf("sync %v: after reopening orders/1 holds %v, want 480..499", sync, got)
		}
		closeRecord(t, d)
		if _, err := os.Stat(path + ".tmp"); err == nil {
			t.Errorf("sync %v: the compaction left %s.tmp behind", sync, path)
		}
	}
}

// A record written by an earlier version (bbolt, NAME.db) is taken in on
// the first start and removed; its offsets are skipped from then on.
func TestRecordUpgradeFromBolt(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "sub.db")
	db, err := bolt.Open(old, 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for qid, offs := range map[string][]int64{"0": {3, 4}, "1": {8}} {
			b, err := tx.CreateBucketIfNotExists([]byte("orders\x00" + qid))
			if err != nil {
				return err
			}
			for _, off := range offs {
				if err := b.Put(binary.BigEndian.AppendUint64(nil, uint64(off)), nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for run := 1; run <= 2; run++ {
		d := openRecord(t, dir, false)
		if got := has(t, d, "orders", "0", span(0, 10)...); !slices.Equal(got, []int64{3, 4}) {
			t.Errorf("start %d: orders/0 holds %v, want the old record's [3 4]", run, got)
		}
		if got := has(t, d, "orders", "1", span(0, 10)...); !slices.Equal(got, []int64{8}) {
			t.Errorf("start %d: orders/1 holds %v, want the old record's [8]", run, got)
		}
		if _, err := os.Stat(old); !os.IsNotExist(err) {
			t.Errorf("start %d: the old record is still there (%v)", run, err)
		}
		closeRecord(t, d)
	}
}

// A second gateway on the same state_dir is refused while the first has
// the record open.
func TestRecordOpenTwice(t *testing.T) {
	dir := t.TempDir()
	d := openRecord(t, dir, false)
	_, err := openDelivered(dir, "sub", false, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "a second gateway needs its own state_dir") {
		t.Fatalf("second open = %v; want it refused", err)
	}
	closeRecord(t, d)
	closeRecord(t, openRecord(t, dir, false))
}

// FuzzReadDeliveredLog: no file makes the reader fail other than by
// refusing its header, and what it reads, written out again, reads the
// same.
func FuzzReadDeliveredLog(f *testing.F) {
	b := appendStreamFrame([]byte(logHeader), 0, streamKey{"orders", "0"})
	b = appendOffsetFrame(b, 0, 9)
	f.Add(b)
	f.Add(appendOffsetFrame(appendStreamFrame(b, 1, streamKey{"audit", "3"}), 1, -1))
	f.Add([]byte(logHeader[:5]))
	f.Add([]byte("junk"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := readLog(data)
		if err != nil {
			if _, ok := err.(errNotDeliveredLog); !ok {
				t.Fatalf("readLog: %v", err)
			}
			return
		}
		if c.good > len(data) || (c.good < len(data)) != c.torn && len(data) >= len(logHeader) {
			t.Fatalf("good %d of %d bytes, torn %v", c.good, len(data), c.torn)
		}
		again, err := readLog(appendSnapshot([]byte(logHeader), c.streams))
		if err != nil || again.torn || again.orphans != 0 {
			t.Fatalf("reading the snapshot: %v, torn %v, orphans %d", err, again.torn, again.orphans)
		}
		if len(again.streams) != len(c.streams) {
			t.Fatalf("%d streams, %d after a snapshot", len(c.streams), len(again.streams))
		}
		for k, st := range c.streams {
			if !maps.Equal(st.offs, again.streams[k].offs) {
				t.Fatalf("stream %q/%q: %v, %v after a snapshot", k.topic, k.qid, st.offs, again.streams[k].offs)
			}
		}
	})
}

// The record holds at most maxHeld offsets: past it an Add is refused with
// an error naming the limit (the message is acked all the same), and once
// commits prune offsets, Adds are recorded again.
func TestRecordIsBounded(t *testing.T) {
	old := maxHeld
	maxHeld = 100
	t.Cleanup(func() { maxHeld = old })
	d := openRecord(t, t.TempDir(), false)
	defer closeRecord(t, d)
	add(t, d, "orders", "0", span(0, 100)...)
	errs := make(chan error, 1)
	d.Add("orders", "0", 100, func(err error) { errs <- err })
	if err := <-errs; err == nil || !strings.Contains(err.Error(), "100 delivered offsets") || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("the Add past the bound got %v, want an error naming the limit of 100", err)
	}
	if got := has(t, d, "orders", "0", 100); len(got) != 0 {
		t.Fatalf("the refused offset is held: %v", got)
	}
	if err := d.Prune("orders", map[string]int64{"0": 50}); err != nil {
		t.Fatal(err)
	}
	add(t, d, "orders", "0", 100)
	if got := has(t, d, "orders", "0", 100); !slices.Equal(got, []int64{100}) {
		t.Fatalf("after pruning, offset 100 is not held: %v", got)
	}
}
