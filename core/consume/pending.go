package consume

import "slices"

// pendingOffsets is a qid's offsets received and not yet acked, in
// ascending order: its first is the commit point. Acks mostly come in the
// order offsets were handed out, so removing from the front must not shift
// everything after it (at a buffer of 1,024 that shift was a fourteenth of
// a pulling gateway's CPU): an acked offset is marked, the front advances
// past marks, and the slice is compacted once its acked front is half of
// it. Every operation is O(log n) amortized.
type pendingOffsets struct {
	offs  []int64 // ascending
	acked []bool  // acked[i]: offs[i] is acked; false for every i < head is never read
	head  int     // the first offset not acked, or len(offs)
}

// add appends off, which must be above every offset added before.
func (p *pendingOffsets) add(off int64) {
	p.offs = append(p.offs, off)
	p.acked = append(p.acked, false)
}

// first is the lowest offset not acked.
func (p *pendingOffsets) first() (int64, bool) {
	if p.head < len(p.offs) {
		return p.offs[p.head], true
	}
	return 0, false
}

// remove acks off and reports whether it was pending.
func (p *pendingOffsets) remove(off int64) bool {
	i, ok := slices.BinarySearch(p.offs[p.head:], off)
	if !ok || p.acked[p.head+i] {
		return false
	}
	p.acked[p.head+i] = true
	for p.head < len(p.offs) && p.acked[p.head] {
		p.head++
	}
	switch {
	case p.head == len(p.offs):
		p.offs, p.acked, p.head = p.offs[:0], p.acked[:0], 0
	case p.head >= 64 && 2*p.head >= len(p.offs):
		n := copy(p.offs, p.offs[p.head:])
		copy(p.acked, p.acked[p.head:])
		p.offs, p.acked, p.head = p.offs[:n], p.acked[:n], 0
	}
	return true
}
