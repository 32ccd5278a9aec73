package hdfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/mqgate/mqgate/sdk"
)

// fileFormat is how records become the bytes of a file.
type fileFormat interface {
	// ext is the file name extension, without the dot.
	ext() string
	// check refuses, with code 11, a record the format cannot hold.
	check(r *sdk.Record) error
	// estimate is about how many bytes r adds to a file, before
	// compression.
	estimate(r *sdk.Record) int64
	// newEncoder starts a file. Its first take returns the file's header
	// (if the format has one) before the first records.
	newEncoder() (fileEncoder, error)
	// validPrefix reads a file and returns the length of its longest
	// prefix that ends on a record boundary, and how many records that
	// prefix holds. It reads to the end of r, or to the first byte that
	// cannot continue a valid file.
	validPrefix(r io.Reader) (n int64, records int64, err error)
}

// fileEncoder encodes the records of one file.
type fileEncoder interface {
	// add encodes r after the records added before.
	add(r *sdk.Record) error
	// take returns the bytes encoded since the last take, which end on a
	// record boundary: appended to what the earlier takes returned, they
	// make a valid file. They are valid until the next add, which reuses
	// their memory.
	take() ([]byte, error)
}

// formatByExt is the format of a file named with extension ext, so that
// recovery reads a file as it was written whatever the config says now.
// Reading needs no codec: validPrefix does not decompress.
func formatByExt(ext string) (fileFormat, bool) {
	switch ext {
	case textFormat{}.ext():
		return textFormat{}, true
	case avroFormat{}.ext():
		return avroFormat{}, true
	}
	return nil, false
}

// textFormat writes each record's value as one line, as DDMQ's HDFS
// writer does. A value holding a line break is refused: Hadoop's text
// input splits lines at "\n", "\r" and "\r\n", so it would turn into two
// records or run into the next.
type textFormat struct{}

func (textFormat) ext() string { return "txt" }

func (textFormat) check(r *sdk.Record) error {
	if i := bytes.IndexAny(r.Value, "\r\n"); i >= 0 {
		return sdk.Errorf(sdk.CodeIllegal, "value of %s/%s@%d holds a line break at byte %d, which format text cannot store (Hadoop splits lines there); use format avro for such values", r.Topic, r.Qid, r.Offset, i)
	}
	return nil
}

func (textFormat) estimate(r *sdk.Record) int64 { return int64(len(r.Value)) + 1 }

func (textFormat) newEncoder() (fileEncoder, error) { return &textEncoder{}, nil }

// validPrefix is the file up to its last newline.
func (textFormat) validPrefix(r io.Reader) (int64, int64, error) {
	var n, valid, lines int64
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		chunk, err := br.ReadSlice('\n')
		n += int64(len(chunk))
		if len(chunk) > 0 && chunk[len(chunk)-1] == '\n' {
			valid, lines = n, lines+1
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return valid, lines, nil
		default:
			return valid, lines, err
		}
	}
}

// textEncoder is a textFormat file's encoder.
type textEncoder struct{ buf []byte }

func (e *textEncoder) add(r *sdk.Record) error {
	e.buf = append(append(e.buf, r.Value...), '\n')
	return nil
}

func (e *textEncoder) take() ([]byte, error) {
	b := e.buf
	e.buf = b[:0]
	return b, nil
}

// errTruncated marks input that ends inside a value.
var errTruncated = errors.New("truncated")

// countingReader counts the bytes read through it. A read that ends
// early at the end of the input is errTruncated; any other read error is
// kept in err, so that a connection failing mid-file is never taken for a
// file that ends there.
type countingReader struct {
	r   *bufio.Reader
	n   int64
	err error
}

// keep records err unless it is the end of the input.
func (c *countingReader) keep(err error) {
	if err != nil && c.err == nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		c.err = err
	}
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err != nil {
		c.keep(err)
		return 0, errTruncated
	}
	c.n++
	return b, nil
}

// skip discards n bytes.
func (c *countingReader) skip(n int64) error {
	m, err := io.CopyN(io.Discard, c.r, n)
	c.n += m
	if err != nil {
		c.keep(err)
		return fmt.Errorf("%w: %d of %d bytes", errTruncated, m, n)
	}
	return nil
}

// full reads len(p) bytes.
func (c *countingReader) full(p []byte) error {
	m, err := io.ReadFull(c.r, p)
	c.n += int64(m)
	if err != nil {
		c.keep(err)
		return fmt.Errorf("%w: %d of %d bytes", errTruncated, m, len(p))
	}
	return nil
}

// varint reads an Avro long: zig-zag, base-128, at most 10 bytes.
func (c *countingReader) varint() (int64, error) {
	var u uint64
	for shift := uint(0); shift < 70; shift += 7 {
		b, err := c.ReadByte()
		if err != nil {
			return 0, err
		}
		u |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return int64(u>>1) ^ -int64(u&1), nil
		}
	}
	return 0, errors.New("a long of more than 10 bytes")
}
