package hdfs

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/internal/webhdfsfake"
	"github.com/mqgate/mqgate/sdk"
)

// Records land in the directory of their topic and hour, each file with
// exactly its records in order, every field kept (Avro), under final
// names once the sink closes.
func TestRecordsLandExactly(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			c := newClock()
			fake := startFake(t, webhdfsfake.Options{Now: c.Now})
			s := newSink(t, c, testConfig(t, fake, "land", "host-a-7", f.over))
			h10 := time.Date(2026, 12, 6, 10, 59, 59, 999e6, time.UTC)
			h11 := h10.Add(time.Millisecond)
			batch := []sdk.Record{record("orders", 0, h10), record("pays", 1, h10), record("orders", 2, h11), record("orders", 3, h10)}
			batch[1].Key = nil   // absent, not empty
			batch[3].Value = nil // an empty value is a record too
			batch[3].Headers = nil
			writeOK(t, s, batch)
			writeOK(t, s, []sdk.Record{record("orders", 4, h10)})
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			ext := map[string]string{"text": "txt", "avro": "avro"}[f.name]
			want := map[string][]int{
				"g1/orders/20261206/10": {0, 3, 4},
				"g1/pays/20261206/10":   {1},
				"g1/orders/20261206/11": {2},
			}
			all := append(batch, record("orders", 4, h10))
			for dir, idx := range want {
				names := fileNames(fake, "/data/"+dir)
				prefix := "part-land-host-a-7-20261206103000-"
				if len(names) != 1 || !strings.HasPrefix(names[0], prefix) || !strings.HasSuffix(names[0], "."+ext) {
					t.Fatalf("%s holds %v; want one file %s<seq>.%s", dir, names, prefix, ext)
				}
				got := readStore(t, fake, "/data/"+dir)
				if len(got) != len(idx) {
					t.Fatalf("%s holds %d records %q; want %d", dir, len(got), values(got), len(idx))
				}
				for k, i := range idx {
					r, g := all[i], got[k]
					if g.value != string(r.Value) {
						t.Errorf("%s record %d: value %q; want %q", dir, k, g.value, r.Value)
					}
					if f.name != "avro" {
						continue
					}
					if g.topic != r.Topic || g.qid != r.Qid || g.offset != r.Offset || g.timestamp != r.Timestamp.UnixMilli() {
						t.Errorf("%s record %d: %+v; want topic %s qid %s offset %d timestamp %d", dir, k, g, r.Topic, r.Qid, r.Offset, r.Timestamp.UnixMilli())
					}
					if (g.key == nil) != (r.Key == nil) || !bytes.Equal(g.key, r.Key) {
						t.Errorf("%s record %d: key %q; want %q", dir, k, g.key, r.Key)
					}
					if len(g.headers) != len(r.Headers) || (len(r.Headers) > 0 && g.headers[r.Headers[0].Key] != string(r.Headers[0].Value)) {
						t.Errorf("%s record %d: headers %v; want %v", dir, k, g.headers, r.Headers)
					}
				}
			}
			if m := markers(fake); len(m) != 0 {
				t.Errorf("markers left after Close: %v", m)
			}
		})
	}
}

// A record a format cannot hold or whose topic cannot name a directory
// fails alone with code 11; nothing of it reaches a file.
func TestRefusedRecords(t *testing.T) {
	c := newClock()
	fake := startFake(t, webhdfsfake.Options{Now: c.Now})
	s := newSink(t, c, testConfig(t, fake, "refuse", "gw", nil))
	rs := []sdk.Record{record("t", 0, c.Now()), record("t", 1, c.Now()), record("t", 2, c.Now()), record("a:b", 3, c.Now()), record("..", 4, c.Now())}
	rs[1].Value = []byte("carriage\rreturn")
	rs[2].Value = []byte("new\nline")
	res := write(t, s, rs)
	for i, err := range res {
		if (i == 0) != (err == nil) {
			t.Fatalf("record %d: %v", i, err)
		}
		if i > 0 && sdk.CodeOf(err) != sdk.CodeIllegal {
			t.Errorf("record %d: code %d (%v); want 11", i, sdk.CodeOf(err), err)
		}
	}
	if !strings.Contains(res[2].Error(), "line break") || !strings.Contains(res[3].Error(), "topic") {
		t.Errorf("errors %q, %q; want them to say what is wrong", res[2], res[3])
	}
	if got := values(readStore(t, fake, "/data")); !slices.Equal(got, []string{"value-0"}) {
		t.Fatalf("store holds %q", got)
	}
}

// The directory's time is the record's timestamp by default, the clock
// with time_source arrival, in time_zone; a record without a timestamp
// uses the clock.
func TestDirectoryTimes(t *testing.T) {
	ts := time.Date(2026, 1, 2, 23, 15, 0, 0, time.UTC) // 07:15 the next day in Shanghai
	for _, tc := range []struct {
		name string
		over map[string]any
		rec  func(c *clock) sdk.Record
		dir  string
	}{
		{"message time", nil, func(*clock) sdk.Record { return record("t", 0, ts) }, "/logs/t/2026-01-02/23/15"},
		{"zone", map[string]any{"time_zone": "Asia/Shanghai"}, func(*clock) sdk.Record { return record("t", 0, ts) }, "/logs/t/2026-01-03/07/15"},
		{"arrival", map[string]any{"time_source": "arrival"}, func(*clock) sdk.Record { return record("t", 0, ts) }, "/logs/t/2026-12-06/10/30"},
		{"no timestamp", nil, func(*clock) sdk.Record { return record("t", 0, time.Time{}) }, "/logs/t/2026-12-06/10/30"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			fake := startFake(t, webhdfsfake.Options{Now: c.Now})
			over := map[string]any{"path": "/logs/${topic}/${yyyy}-${MM}-${dd}/${HH}/${mm}"}
			for k, v := range tc.over {
				over[k] = v
			}
			s := newSink(t, c, testConfig(t, fake, "times", "gw", over))
			writeOK(t, s, []sdk.Record{tc.rec(c)})
			files := fileNames(fake, "/logs")
			if len(files) != 1 || !strings.HasPrefix("/logs/"+files[0], tc.dir+"/_part-") {
				t.Fatalf("files %v; want one in %s", files, tc.dir)
			}
		})
	}
}

// A file is in progress (a name Hive and Spark skip) until it rolls: when
// the next records would take it past roll.max_bytes, when it is
// roll.max_age old, or after roll.idle without a write. The clock moves
// only when the test moves it, and the test sweeps.
func TestRolls(t *testing.T) {
	value := strings.Repeat("v", 29) // 30 bytes a line
	rec := func(i int, c *clock) sdk.Record {
		r := record("t", i, c.Now())
		r.Value = []byte(fmt.Sprintf("%s%d", value[:29-len(fmt.Sprint(i))], i))
		return r
	}
	roll := func(over map[string]any) map[string]any {
		return map[string]any{"path": "/data/t", "roll": over, "recover_after": "10h"}
	}
	// state lists the files of /data/t as "final:N" or "tmp:N", N records,
	// sorted.
	state := func(t *testing.T, fake *webhdfsfake.Server) []string {
		t.Helper()
		var out []string
		for _, f := range fake.Files("/data/t") {
			if strings.Contains(f.Path, stateDirName) {
				continue
			}
			base := f.Path[strings.LastIndexByte(f.Path, '/')+1:]
			kind := "final"
			if _, ok := finalOf(base); ok {
				kind = "tmp"
			} else if !strings.HasPrefix(base, partPrefix) {
				t.Fatalf("unexpected file %s", f.Path)
			}
			data, _ := fake.ReadFile(f.Path)
			out = append(out, fmt.Sprintf("%s:%d", kind, bytes.Count(data, []byte("\n"))))
		}
		slices.Sort(out)
		return out
	}
	t.Run("max_bytes", func(t *testing.T) {
		c := newClock()
		fake := startFake(t, webhdfsfake.Options{Now: c.Now})
		s := newSink(t, c, testConfig(t, fake, "roll", "gw", roll(map[string]any{"max_bytes": 90})))
		var rs []sdk.Record
		for i := range 7 {
			rs = append(rs, rec(i, c))
		}
		writeOK(t, s, rs[:2])
		if got := state(t, fake); !slices.Equal(got, []string{"tmp:2"}) {
			t.Fatalf("after 2 records: %v", got)
		}
		writeOK(t, s, rs[2:])
		// 90 bytes hold three 30-byte lines: the file that reached it
		// closed at once, and a Write splits across files.
		if got := state(t, fake); !slices.Equal(got, []string{"final:3", "final:3", "tmp:1"}) {
			t.Fatalf("after 7 records: %v", got)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if got := state(t, fake); !slices.Equal(got, []string{"final:1", "final:3", "final:3"}) {
			t.Fatalf("after Close: %v", got)
		}
		if got := values(readStore(t, fake, "/data/t")); len(got) != 7 || got[6] != string(rs[6].Value) {
			t.Fatalf("records %q", got)
		}
	})
	t.Run("max_bytes below one record", func(t *testing.T) {
		c := newClock()
		fake := startFake(t, webhdfsfake.Options{Now: c.Now})
		s := newSink(t, c, testConfig(t, fake, "roll", "gw", roll(map[string]any{"max_bytes": 10})))
		writeOK(t, s, []sdk.Record{rec(0, c), rec(1, c)})
		if got := state(t, fake); !slices.Equal(got, []string{"final:1", "final:1"}) {
			t.Fatalf("state %v; want a file per record", got)
		}
	})
	t.Run("max_age", func(t *testing.T) {
		c := newClock()
		fake := startFake(t, webhdfsfake.Options{Now: c.Now})
		s := newSink(t, c, testConfig(t, fake, "roll", "gw", roll(map[string]any{"max_age": "10m", "idle": "1h"})))
		writeOK(t, s, []sdk.Record{rec(0, c)})
		c.Advance(9 * time.Minute)
		writeOK(t, s, []sdk.Record{rec(1, c)})
		s.sweep(t.Context())
		if got := state(t, fake); !slices.Equal(got, []string{"tmp:2"}) {
			t.Fatalf("at 9 minutes: %v", got)
		}
		c.Advance(time.Minute)
		// Due at 10 minutes: the next Write closes it before writing.
		writeOK(t, s, []sdk.Record{rec(2, c)})
		if got := state(t, fake); !slices.Equal(got, []string{"final:2", "tmp:1"}) {
			t.Fatalf("at 10 minutes, after a write: %v", got)
		}
		c.Advance(10 * time.Minute)
		s.sweep(t.Context())
		if got := state(t, fake); !slices.Equal(got, []string{"final:1", "final:2"}) {
			t.Fatalf("at 20 minutes, after a sweep: %v", got)
		}
	})
	t.Run("idle", func(t *testing.T) {
		c := newClock()
		fake := startFake(t, webhdfsfake.Options{Now: c.Now})
		s := newSink(t, c, testConfig(t, fake, "roll", "gw", roll(map[string]any{"idle": "1m"})))
		writeOK(t, s, []sdk.Record{rec(0, c)})
		c.Advance(59 * time.Second)
		s.sweep(t.Context())
		if got := state(t, fake); !slices.Equal(got, []string{"tmp:1"}) {
			t.Fatalf("idle 59 s: %v", got)
		}
		c.Advance(time.Second)
		s.sweep(t.Context())
		if got := state(t, fake); !slices.Equal(got, []string{"final:1"}) {
			t.Fatalf("idle 60 s: %v", got)
		}
		if m := markers(fake); len(m) != 0 {
			t.Fatalf("markers left after an idle roll: %v", m)
		}
	})
	t.Run("max_open_files", func(t *testing.T) {
		c := newClock()
		fake := startFake(t, webhdfsfake.Options{Now: c.Now})
		over := roll(nil)
		over["path"], over["max_open_files"] = "/data/t/${topic}", 2
		delete(over, "roll")
		s := newSink(t, c, testConfig(t, fake, "roll", "gw", over))
		for i, topic := range []string{"a", "b", "c"} {
			writeOK(t, s, []sdk.Record{record(topic, i, c.Now())})
			c.Advance(time.Second)
		}
		var got []string
		for _, f := range fake.Files("/data/t") {
			if !strings.Contains(f.Path, stateDirName) {
				_, tmp := finalOf(f.Path[strings.LastIndexByte(f.Path, '/')+1:])
				got = append(got, fmt.Sprintf("%s:%v", f.Path[len("/data/t/"):len("/data/t/")+1], tmp))
			}
		}
		if !slices.Equal(got, []string{"a:false", "b:true", "c:true"}) {
			t.Fatalf("files %v; want the least recently written closed", got)
		}
	})
}

// File names differ across gateways and across incarnations of the sink
// on one gateway, even ones started in the same second.
func TestFileNamesNeverCollide(t *testing.T) {
	c := newClock()
	fake := startFake(t, webhdfsfake.Options{Now: c.Now})
	over := map[string]any{"path": "/data/t"}
	a := newSink(t, c, testConfig(t, fake, "names", "host-1", over))
	b := newSink(t, c, testConfig(t, fake, "names", "host-2", over))
	writeOK(t, a, []sdk.Record{record("t", 0, c.Now())})
	writeOK(t, b, []sdk.Record{record("t", 1, c.Now())})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// a's successor on host-1, started in the same second, must not
	// take the name of a's finished file, nor b's.
	a2 := newSink(t, c, testConfig(t, fake, "names", "host-1", over))
	writeOK(t, a2, []sdk.Record{record("t", 2, c.Now())})
	for _, s := range []*Sink{a2, b} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	names := fileNames(fake, "/data/t")
	want := []string{
		"part-names-host-1-20261206103000-000001.txt",
		"part-names-host-1-20261206103000-000002.txt",
		"part-names-host-2-20261206103000-000001.txt",
	}
	if !slices.Equal(names, want) {
		t.Fatalf("names %v; want %v", names, want)
	}
	if got := values(readStore(t, fake, "/data/t")); !slices.Equal(got, []string{"value-0", "value-2", "value-1"}) {
		t.Fatalf("records %q", got)
	}
}
