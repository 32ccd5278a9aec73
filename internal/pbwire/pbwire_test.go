package pbwire

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// A field at its default is left out, and one with a value is written as
// protowire writes it, in the size said.
func TestFields(t *testing.T) {
	if got := AppendBytes(nil, 1, nil); len(got) != 0 || BytesSize(0) != 0 {
		t.Errorf("empty bytes: %x, size %d; want nothing", got, BytesSize(0))
	}
	if got := AppendString(nil, 1, ""); len(got) != 0 {
		t.Errorf("empty string: %x; want nothing", got)
	}
	if got := AppendVarint(nil, 1, 0); len(got) != 0 || VarintSize(0) != 0 {
		t.Errorf("zero varint: %x, size %d; want nothing", got, VarintSize(0))
	}
	long := bytes.Repeat([]byte{'x'}, 300)
	want := protowire.AppendBytes(protowire.AppendTag(nil, 15, protowire.BytesType), long)
	if got := AppendBytes(nil, 15, long); !bytes.Equal(got, want) || len(got) != BytesSize(len(long)) {
		t.Errorf("bytes: %x (size %d); want %x", got, BytesSize(len(long)), want)
	}
	if got := AppendString(nil, 15, string(long)); !bytes.Equal(got, want) {
		t.Errorf("string: %x; want %x", got, want)
	}
	v := uint64(1) << 63
	want = protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), v)
	if got := AppendVarint(nil, 2, v); !bytes.Equal(got, want) || len(got) != VarintSize(v) {
		t.Errorf("varint: %x (size %d); want %x", got, VarintSize(v), want)
	}
}
