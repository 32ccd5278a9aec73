package bufpool

import "testing"

func TestPoolClasses(t *testing.T) {
	var pool Pool
	for _, n := range []int{0, 1, 2, 3, 255, 256, 257, 100 << 10, 1 << 26, 1<<26 + 1} {
		b := pool.Get(n)
		if len(*b) != n {
			t.Fatalf("Get(%d) has length %d", n, len(*b))
		}
		if n <= 1<<26 && cap(*b) != 1<<Class(n) {
			t.Errorf("Get(%d) has capacity %d, want %d", n, cap(*b), 1<<Class(n))
		}
		if n > 1 && cap(*b) >= 2*n {
			t.Errorf("Get(%d) has capacity %d, more than twice what was asked", n, cap(*b))
		}
		pool.Put(b)
	}
}

// A buffer put back is what a later Get of its class may return; one that
// is not of a class is not kept.
func TestPoolKeepsOnlyItsClasses(t *testing.T) {
	var pool Pool
	odd := make([]byte, 10, 100)
	pool.Put(&odd)
	if b := pool.Get(100); cap(*b) != 128 {
		t.Errorf("Get(100) after putting a buffer of capacity 100 has capacity %d, want 128", cap(*b))
	}
}
