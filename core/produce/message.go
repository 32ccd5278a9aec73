// Package produce turns client messages into backend records: partition
// choice, and (as later issues add them) rate limits, auto-batching, retry
// and the durable async spool.
package produce

import (
	"github.com/mqgate/mqgate/sdk"
)

// Message is one message as a frontend decoded it, before routing.
type Message struct {
	// Key is nil when the client sent none.
	Key     []byte
	Value   []byte
	Headers []sdk.Header
	Tags    string
	// Partition is >= 0 for an explicit partition, sdk.PartitionHash (-1,
	// the default) to place by HashID or Key, sdk.PartitionRandom (-2).
	Partition int32
	// HashID, when set, places the message by its value (DDMQ's hashId)
	// instead of by Key.
	HashID *int64
}

// Size is the message's size as limits count it: key, value, tags and
// headers.
func (m *Message) Size() int {
	n := len(m.Key) + len(m.Value) + len(m.Tags)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}
