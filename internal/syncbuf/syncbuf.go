// Package syncbuf is a bytes.Buffer that one goroutine may read while
// others write: the log destination of tests that read what a server, a
// plugin or a background refresh logged.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer with a lock. The zero value is ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
