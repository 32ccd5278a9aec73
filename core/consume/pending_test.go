package consume

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// pendingOffsets keeps the commit point a plain sorted list would, through
// acks in order, out of order, repeated and of offsets never received.
func TestPendingOffsetsIsASortedList(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var p pendingOffsets
	var model []int64
	next := int64(rng.IntN(10))
	for step := range 200000 {
		switch op := rng.IntN(10); {
		case op < 4:
			p.add(next)
			model = append(model, next)
			next += 1 + int64(rng.IntN(3)) // gaps, as compacted topics and markers leave
		case op < 8 && len(model) > 0:
			// Mostly the front, as acks of pulled messages come.
			i := 0
			if rng.IntN(4) == 0 {
				i = rng.IntN(len(model))
			}
			off := model[i]
			if !p.remove(off) {
				t.Fatalf("step %d: remove(%d) of a pending offset reported false", step, off)
			}
			model = slices.Delete(model, i, i+1)
		default:
			// An offset acked twice, or never received.
			off := next + 5
			if len(model) > 0 && rng.IntN(2) == 0 {
				off = model[0] - 1
			}
			if !slices.Contains(model, off) && p.remove(off) {
				t.Fatalf("step %d: remove(%d) of an offset not pending reported true", step, off)
			}
		}
		got, ok := p.first()
		if ok != (len(model) > 0) || ok && got != model[0] {
			t.Fatalf("step %d: first() = %d, %v; want %v", step, got, ok, model)
		}
		if p.len() > 4*len(model)+200 {
			t.Fatalf("step %d: the list holds %d offsets for %d pending", step, p.len(), len(model))
		}
	}
}

// An offset that is never acked does not make the list keep every later
// one: a held pull or a dead letter not yet written leaves the commit
// point where it is while the qid flows on.
func TestPendingOffsetsStuckFront(t *testing.T) {
	var p pendingOffsets
	for off := range int64(100000) {
		p.add(off)
		if off > 0 && !p.remove(off) {
			t.Fatalf("remove(%d) reported false", off)
		}
		if got, _ := p.first(); got != 0 {
			t.Fatalf("commit point %d, want 0 (never acked)", got)
		}
	}
	if p.len() > 200 {
		t.Fatalf("the list holds %d offsets for 1 not acked", p.len())
	}
	if !p.remove(0) {
		t.Fatal("remove(0) reported false")
	}
	if _, ok := p.first(); ok || p.len() != 0 {
		t.Fatalf("after acking everything: first ok %v, len %d", ok, p.len())
	}
}
