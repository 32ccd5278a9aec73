package push

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
)

// The delivered record's file is an append-only log: a header, then
// frames. A frame is a 2-byte little-endian body length, the body's
// CRC-32C (4 bytes, little-endian) and the body, whose first byte is its
// kind:
//
//	stream  (1): id u32, topic length u16, topic, qid  (names an id)
//	offset  (2): id u32, offset i64                    (one delivered offset)
//
// An id names a topic and qid for the offset frames after it; a file
// declares each id before using it, and ids are never reused. Frames are
// appended in groups, one write each. A crash may leave the last group
// torn: reading stops at the first frame that is short or fails its
// checksum, and the file is cut there.
const logHeader = "mqgate push delivered v1\n"

const (
	frameStream byte = 1
	frameOffset byte = 2

	frameHead      = 6                  // length and checksum
	offsetFrameLen = frameHead + 1 + 12 // one offset frame, in bytes
	maxFrameBody   = 1 + 4 + 2 + 1024   // a stream frame with the longest names taken
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// streamKey names the offsets of one qid of one topic.
type streamKey struct{ topic, qid string }

// stream is the record's offsets of one topic and qid.
type stream struct {
	id   uint32
	offs map[int64]struct{}
	// declared says the current file names id (a stream frame).
	declared bool
}

func appendFrame(buf []byte, body []byte) []byte {
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(body)))
	buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(body, castagnoli))
	return append(buf, body...)
}

// appendStreamFrame appends the frame naming id topic and qid. Names too
// long for a frame are refused by the caller (checkStreamNames).
func appendStreamFrame(buf []byte, id uint32, k streamKey) []byte {
	body := make([]byte, 0, 7+len(k.topic)+len(k.qid))
	body = append(body, frameStream)
	body = binary.LittleEndian.AppendUint32(body, id)
	body = binary.LittleEndian.AppendUint16(body, uint16(len(k.topic)))
	body = append(body, k.topic...)
	body = append(body, k.qid...)
	return appendFrame(buf, body)
}

// appendOffsetFrame appends the frame recording offset of stream id.
func appendOffsetFrame(buf []byte, id uint32, offset int64) []byte {
	var body [13]byte
	body[0] = frameOffset
	binary.LittleEndian.PutUint32(body[1:], id)
	binary.LittleEndian.PutUint64(body[5:], uint64(offset))
	return appendFrame(buf, body[:])
}

// checkStreamNames refuses a topic and qid a stream frame cannot hold.
func checkStreamNames(k streamKey) error {
	if 7+len(k.topic)+len(k.qid) > maxFrameBody {
		return fmt.Errorf("topic %q and qid %q: longer than the delivered record's limit of %d bytes together", k.topic, k.qid, maxFrameBody-7)
	}
	return nil
}

// logContents is what a delivered record's file holds.
type logContents struct {
	streams map[streamKey]*stream
	nextID  uint32 // above every id declared
	// good is the length of the valid prefix: header and whole frames.
	good int
	// torn says data after good was not read: a torn or corrupt tail.
	torn bool
	// orphans counts offset frames of an id never declared (skipped).
	orphans int
}

// errNotDeliveredLog is readLog's answer for a file that is not a
// delivered record.
type errNotDeliveredLog struct{}

func (errNotDeliveredLog) Error() string {
	return "not a push delivered record (its header is not " + fmt.Sprintf("%q", logHeader) + ")"
}

// readLog reads a record file's contents. An empty file, or one holding
// only the start of the header (a crash while it was created), is an
// empty record. Any other header is errNotDeliveredLog.
func readLog(data []byte) (*logContents, error) {
	c := &logContents{streams: map[streamKey]*stream{}}
	if len(data) < len(logHeader) {
		if !bytes.HasPrefix([]byte(logHeader), data) {
			return nil, errNotDeliveredLog{}
		}
		c.torn = len(data) > 0
		return c, nil
	}
	if string(data[:len(logHeader)]) != logHeader {
		return nil, errNotDeliveredLog{}
	}
	byID := map[uint32]*stream{}
	pos := len(logHeader)
	c.good = pos
	for pos < len(data) {
		if len(data)-pos < frameHead {
			break
		}
		n := int(binary.LittleEndian.Uint16(data[pos:]))
		sum := binary.LittleEndian.Uint32(data[pos+2:])
		if n == 0 || n > maxFrameBody || len(data)-pos-frameHead < n {
			break
		}
		body := data[pos+frameHead : pos+frameHead+n]
		if crc32.Checksum(body, castagnoli) != sum || !c.apply(body, byID) {
			break
		}
		pos += frameHead + n
		c.good = pos
	}
	c.torn = c.good < len(data)
	return c, nil
}

// apply takes one checked frame body; false for one that makes no sense
// (an unknown kind, a wrong length, an id named twice differently).
func (c *logContents) apply(body []byte, byID map[uint32]*stream) bool {
	switch body[0] {
	case frameStream:
		if len(body) < 7 {
			return false
		}
		id := binary.LittleEndian.Uint32(body[1:])
		tl := int(binary.LittleEndian.Uint16(body[5:]))
		if len(body)-7 < tl {
			return false
		}
		k := streamKey{string(body[7 : 7+tl]), string(body[7+tl:])}
		st := c.streams[k]
		switch {
		case st == nil && byID[id] == nil:
			st = &stream{id: id, offs: map[int64]struct{}{}}
			c.streams[k], byID[id] = st, st
		case st == nil || st.id != id || byID[id] != st:
			return false // one id for two streams, or two ids for one
		}
		c.nextID = max(c.nextID, id+1)
		return true
	case frameOffset:
		if len(body) != 13 {
			return false
		}
		st := byID[binary.LittleEndian.Uint32(body[1:])]
		if st == nil {
			c.orphans++
			return true
		}
		st.offs[int64(binary.LittleEndian.Uint64(body[5:]))] = struct{}{}
		return true
	}
	return false
}

// appendSnapshot appends the frames of every stream and offset held, in
// a stable order, and marks the streams declared.
func appendSnapshot(buf []byte, streams map[streamKey]*stream) []byte {
	keys := slices.SortedFunc(maps.Keys(streams), func(a, b streamKey) int {
		return cmp.Compare(streams[a].id, streams[b].id)
	})
	for _, k := range keys {
		st := streams[k]
		buf = appendStreamFrame(buf, st.id, k)
		st.declared = true
		for _, off := range slices.Sorted(maps.Keys(st.offs)) {
			buf = appendOffsetFrame(buf, st.id, off)
		}
	}
	return buf
}
