package hdfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"github.com/hamba/avro/v2/ocf"

	"github.com/mqgate/mqgate/sdk"
)

// container encodes takes of records as the sink writes a file: the
// header with the first take, then one append per take. It returns the
// file and the offsets where each append ended, with the record count up
// to there.
func container(t testing.TB, f fileFormat, takes ...int) (file []byte, ends []int64, counts []int64) {
	t.Helper()
	enc, err := f.newEncoder()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range takes {
		for range k {
			r := record("t", n, time.UnixMilli(int64(n)))
			r.Value = bytes.Repeat([]byte{'v'}, n%7)
			if err := enc.add(&r); err != nil {
				t.Fatal(err)
			}
			n++
		}
		b, err := enc.take()
		if err != nil {
			t.Fatal(err)
		}
		file = append(file, b...)
		ends, counts = append(ends, int64(len(file))), append(counts, int64(n))
	}
	return file, ends, counts
}

// Cut anywhere, a file's valid prefix ends at the last append boundary
// at or before the cut, and holds the records written up to there: what
// recovery keeps of a file whose last append was torn.
func TestValidPrefixAtEveryCut(t *testing.T) {
	for _, f := range []fileFormat{textFormat{}, avroFormat{codec: ocf.Deflate}, avroFormat{codec: ocf.Null}} {
		t.Run(fmt.Sprintf("%s%v", f.ext(), f), func(t *testing.T) {
			// One record an append, so that lines and blocks both end
			// where appends do.
			file, ends, counts := container(t, f, 1, 1, 1, 1, 1, 1)
			for cut := 0; cut <= len(file); cut++ {
				want, records := int64(0), int64(0)
				for i, e := range ends {
					if e <= int64(cut) {
						want, records = e, counts[i]
					}
				}
				n, got, err := f.validPrefix(bytes.NewReader(file[:cut]))
				if err != nil {
					t.Fatalf("cut %d: %v", cut, err)
				}
				// Without a whole record the length does not matter:
				// recovery deletes such a file.
				if got != records || (records > 0 && n != want) {
					t.Fatalf("cut %d of %d: valid prefix %d with %d records; want %d with %d", cut, len(file), n, got, want, records)
				}
			}
			n, got, err := f.validPrefix(bytes.NewReader(file))
			if err != nil || n != int64(len(file)) || got != 6 {
				t.Fatalf("whole file: %d bytes, %d records, %v; want %d, 6", n, got, err, len(file))
			}
		})
	}
}

// A read error is not the end of the file: recovery must not cut a file
// because the connection reading it broke.
func TestValidPrefixReadError(t *testing.T) {
	broken := errors.New("connection reset")
	for _, f := range []fileFormat{textFormat{}, avroFormat{codec: ocf.Deflate}} {
		file, _, _ := container(t, f, 3, 3)
		r := io.MultiReader(bytes.NewReader(file[:len(file)/2]), iotest.ErrReader(broken))
		if _, _, err := f.validPrefix(r); !errors.Is(err, broken) {
			t.Errorf("%s: validPrefix over a broken read = %v; want the read error", f.ext(), err)
		}
	}
}

// Bytes that are not a container, a header that lies about its sizes and
// a block whose sync marker is wrong end the valid prefix without a
// panic or a huge allocation.
func TestAvroValidPrefixMalformed(t *testing.T) {
	file, ends, _ := container(t, avroFormat{codec: ocf.Null}, 1, 1)
	badSync := bytes.Clone(file)
	badSync[len(badSync)-1] ^= 0xff
	for _, tc := range []struct {
		name    string
		data    []byte
		n, recs int64
	}{
		{"empty", nil, 0, 0},
		{"text", []byte("hello\nworld\n"), 0, 0},
		{"huge metadata entry", []byte("Obj\x01\x02\xfe\xff\xff\xff\x0f"), 0, 0},
		{"negative block size", append(bytes.Clone(file[:ends[1]]), 0x02, 0x01), ends[1], 2},
		{"long varint", append(bytes.Clone(file[:ends[1]]), bytes.Repeat([]byte{0xff}, 11)...), ends[1], 2},
		{"wrong sync marker", badSync, ends[0], 1},
	} {
		n, recs, err := avroFormat{}.validPrefix(bytes.NewReader(tc.data))
		if err != nil || n != tc.n || recs != tc.recs {
			t.Errorf("%s: %d bytes, %d records, %v; want %d, %d", tc.name, n, recs, err, tc.n, tc.recs)
		}
	}
}

// FuzzAvroValidPrefix: any bytes give a prefix no longer than them, which
// is its own valid prefix.
func FuzzAvroValidPrefix(f *testing.F) {
	file, _, _ := container(f, avroFormat{codec: ocf.Snappy}, 2, 2)
	f.Add(file)
	f.Add(file[:len(file)-3])
	f.Add([]byte("Obj\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, recs, err := avroFormat{}.validPrefix(bytes.NewReader(data))
		if err != nil || n < 0 || n > int64(len(data)) || recs < 0 {
			t.Fatalf("validPrefix = %d, %d, %v over %d bytes", n, recs, err, len(data))
		}
		n2, recs2, _ := avroFormat{}.validPrefix(bytes.NewReader(data[:n]))
		if n > 0 && (n2 != n || recs2 != recs) {
			t.Fatalf("the prefix %d (%d records) reads back as %d (%d records)", n, recs, n2, recs2)
		}
	})
}

// The text format keeps values as they are, one a line.
func TestTextLines(t *testing.T) {
	enc, _ := textFormat{}.newEncoder()
	for _, v := range []string{"a", "", "tab\there", "ünïcode"} {
		if err := enc.add(&sdk.Record{Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := enc.take()
	if string(b) != "a\n\ntab\there\nünïcode\n" {
		t.Fatalf("encoded %q", b)
	}
	if b, _ := enc.take(); len(b) != 0 {
		t.Fatalf("a second take gave %q", b)
	}
}
