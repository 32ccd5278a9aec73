package consume

import "slices"

// pendingOffsets is a qid's offsets received and not yet acked, in
// ascending order: its first is the commit point. Acks mostly come in the
// order offsets were handed out, so removing from the front must not shift
// everything after it (at a buffer of 1,024 that shift was a fourteenth of
// a pulling gateway's CPU): an acked offset is marked, and the front
// advances past marks. Marks are swept out once they are half of what
// remains, so a first offset that stays unacked (a held pull, a dead
// letter that cannot be written yet) does not keep every later ack: the
// list holds at most about four times the offsets not acked. Every
// operation is O(log n) amortized.
type pendingOffsets struct {
	offs  []int64 // ascending
	acked []bool  // acked[i]: offs[i] is acked
	head  int     // the first offset not acked, or len(offs)
	marks int     // acked offsets at or after head
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
	p.marks++
	for p.head < len(p.offs) && p.acked[p.head] {
		p.head++
		p.marks--
	}
	switch live := len(p.offs) - p.head; {
	case live == 0:
		p.offs, p.acked, p.head, p.marks = p.offs[:0], p.acked[:0], 0, 0
	case p.head >= 64 && 2*p.head >= len(p.offs):
		// The acked front is half the list: move the rest down.
		n := copy(p.offs, p.offs[p.head:])
		copy(p.acked, p.acked[p.head:])
		p.offs, p.acked, p.head = p.offs[:n], p.acked[:n], 0
	case p.marks >= 64 && 2*p.marks >= live:
		p.sweep()
	}
	return true
}

// sweep drops every acked offset, keeping the order of the rest.
func (p *pendingOffsets) sweep() {
	n := 0
	for i := p.head; i < len(p.offs); i++ {
		if !p.acked[i] {
			p.offs[n], p.acked[n] = p.offs[i], false
			n++
		}
	}
	p.offs, p.acked, p.head, p.marks = p.offs[:n], p.acked[:n], 0, 0
}

// len is how many offsets the list holds, acked ones not yet dropped
// included: what it costs in memory.
func (p *pendingOffsets) len() int { return len(p.offs) }
