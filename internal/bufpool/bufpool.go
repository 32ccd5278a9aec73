// Package bufpool is a pool of byte buffers that are not zeroed: one
// sync.Pool per power of two, for buffers whose every byte read is first
// written (a frame marshalled into one, a request body read into one).
//
// Making a large buffer afresh costs its clearing, which for a batch of
// 100 KiB is as much as reading it: the plugin protocol's frames and the
// HTTP front's produce bodies are read into buffers from here.
package bufpool

import (
	"math/bits"
	"sync"
)

// Pool is a pool of byte buffers, one sync.Pool per power of two up to
// 64 MiB; larger buffers are not kept. It has the methods of gRPC's
// mem.BufferPool, which it is used as. Its zero value is ready to use.
type Pool struct {
	classes [27]sync.Pool // class i holds buffers of capacity 1<<i
}

// Get returns a buffer of length n, its contents whatever its last user
// left, and a capacity of the smallest power of two that holds n (for n up
// to 64 MiB; a larger one has capacity n).
func (p *Pool) Get(n int) *[]byte {
	i := Class(n)
	if i >= len(p.classes) {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.classes[i].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<i)
	return &b
}

// Put gives b back for another Get. A buffer whose capacity is not a
// power of two (not one of Get's, or resliced) is left to the collector.
// Whoever puts b must hold the only reference to its bytes.
func (p *Pool) Put(b *[]byte) {
	c := cap(*b)
	if c == 0 || c&(c-1) != 0 {
		return
	}
	if i := bits.TrailingZeros(uint(c)); i < len(p.classes) {
		p.classes[i].Put(b)
	}
}

// Class is the smallest i with 1<<i >= n: Get(n)'s capacity is 1<<Class(n).
func Class(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}
