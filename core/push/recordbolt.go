package push

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// importBolt takes in the record of an earlier version at path, if there
// is one: a bbolt file with a bucket per topic and qid ("topic\x00qid")
// and 8-byte big-endian offsets as keys. It holds offsets delivered and
// perhaps not committed, so it is read rather than dropped: dropping it
// would send them again. It reports whether there was one; the caller
// writes the offsets to the new file before it removes the old.
func (d *delivered) importBolt(path string) (bool, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: true})
	if errors.Is(err, bolt.ErrTimeout) {
		return false, fmt.Errorf("reading the old record %s: another process has it open", path)
	}
	if err != nil {
		return false, fmt.Errorf("reading the old record %s: %w", path, err)
	}
	defer db.Close()
	n := 0
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			topic, qid, ok := bytes.Cut(name, []byte{0})
			if !ok {
				return nil // not a bucket of the old record's
			}
			k := streamKey{string(topic), string(qid)}
			if err := checkStreamNames(k); err != nil {
				return err
			}
			st := d.streamLocked(k)
			return b.ForEach(func(key, _ []byte) error {
				if len(key) != 8 {
					return nil // not an offset
				}
				off := int64(binary.BigEndian.Uint64(key))
				if _, ok := st.offs[off]; !ok {
					st.offs[off] = struct{}{}
					d.held++
					n++
				}
				return nil
			})
		})
	})
	if err != nil {
		return false, fmt.Errorf("reading the old record %s: %w", path, err)
	}
	d.logger.Info("push state: took in the record of an earlier version", "from", path, "to", d.path, "offsets", n)
	return true, nil
}
