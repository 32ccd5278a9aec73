// Package pbwire sizes and appends proto3 fields the way the generated
// code writes them: a field at its default value (zero, empty) is left
// out. It is for the hand-written encoders of messages whose fields all
// have numbers below 16, and so one-byte tags: the HTTP front's protobuf
// answers and the plugin connection's produce batches.
package pbwire

import "google.golang.org/protobuf/encoding/protowire"

// BytesSize is the size of a bytes or string field of n bytes: 0 when
// n is 0.
func BytesSize(n int) int {
	if n == 0 {
		return 0
	}
	return 1 + protowire.SizeBytes(n)
}

// VarintSize is the size of a varint field of value v: 0 when v is 0.
func VarintSize(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

// AppendBytes appends field num of bytes v, unless v is empty.
func AppendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// AppendString appends field num of string s, unless s is empty.
func AppendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// AppendVarint appends field num of varint v, unless v is 0.
func AppendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}
