package produce

import (
	"github.com/mqgate/mqgate/sdk"
)

// Placement returns the partition choice and hash a backend needs to place
// m: an explicit partition as is; PartitionHash by HashID when set, else by
// the Kafka-compatible murmur2 hash of the key, so a keyed message lands
// where any Kafka client's default partitioner would put it; a keyless
// message without HashID goes to a random partition.
func Placement(m *Message) (partition int32, hash uint64) {
	switch {
	case m.Partition >= 0 || m.Partition == sdk.PartitionRandom:
		return m.Partition, 0
	case m.HashID != nil:
		h := *m.HashID
		if h < 0 {
			// DDMQ takes the absolute value; -MinInt64 overflows, so
			// reinterpret instead of negating.
			return sdk.PartitionHash, uint64(-(h + 1)) + 1
		}
		return sdk.PartitionHash, uint64(h)
	case m.Key != nil:
		return sdk.PartitionHash, uint64(murmur2(m.Key) & 0x7fffffff)
	default:
		return sdk.PartitionRandom, 0
	}
}

// murmur2 is Kafka's default partitioner hash (Utils.murmur2 in the Java
// client).
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[length&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
