package sdk

import (
	"google.golang.org/protobuf/encoding/protowire"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// Field numbers of plugin.proto's ProduceBatch, as decodeProduceBatch
// reads them.
const (
	fieldProduceBatchID        = 1
	fieldProduceBatchRecords   = 2
	fieldProduceBatchTimeoutMs = 3
)

// produceBatch is a ProduceBatch as a plugin produces it: its records
// decoded, from the plugin connection (decodeProduceBatch) or a gRPC
// stream (produceBatchFromPB).
type produceBatch struct {
	id        uint64
	timeoutMs int64
	records   []Record
	// buf, when set, is the pool's buffer the records' bytes are in: it
	// goes back to the pool once a ProduceReleaser's Produce has
	// returned without an error.
	buf *[]byte
}

func produceBatchFromPB(b *pb.ProduceBatch) *produceBatch {
	return &produceBatch{id: b.Id, timeoutMs: b.TimeoutMs, records: recordsFromPB(b.Records)}
}

// decodeProduceBatch decodes a ProduceBatch straight into records, as
// UnmarshalVTUnsafe and recordsFromPB would, in fewer allocations: the
// records in one, and none for their bytes. Their keys, values and header
// values are slices of b, which must be a buffer of this batch alone, so
// that nothing else ever writes them. Their strings are copies (a topic or
// qid the record before had is shared with it), since a plugin may keep a
// topic name (in a map, say) far longer than the batch, and would keep
// all of b.
func decodeProduceBatch(b []byte) (*produceBatch, error) {
	batch := &produceBatch{}
	n := 0
	err := fields(b, func(num protowire.Number, typ protowire.Type, x uint64, _ []byte) (bool, error) {
		switch num {
		case fieldProduceBatchID:
			batch.id = x
			return wantType(typ, protowire.VarintType)
		case fieldProduceBatchTimeoutMs:
			batch.timeoutMs = int64(x)
			return wantType(typ, protowire.VarintType)
		case fieldProduceBatchRecords:
			n++
			return wantType(typ, protowire.BytesType)
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	if batch.records, err = decodeRecords(b, fieldProduceBatchRecords, n, true); err != nil {
		return nil, err
	}
	return batch, nil
}
