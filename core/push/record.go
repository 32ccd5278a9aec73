package push

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// delivered is a subscription's local record of delivered offsets that
// the group may not have committed yet (delivery 2 and 3): a restarted
// gateway skips what it finds here instead of sending it again. One bbolt
// file per subscription, a bucket per topic and qid, 8-byte big-endian
// offsets as keys. Adds are written in groups, one transaction per group,
// so concurrent deliveries share a write (and in delivery 3 an fsync).
type delivered struct {
	db   *bolt.DB
	adds chan addReq
	stop chan struct{}
	done chan struct{}
}

type addReq struct {
	topic, qid string
	offset     int64
	done       chan error
}

// openDelivered opens (creating) the record at path. sync makes every
// write reach the disk before Add returns (delivery 3); otherwise writes
// reach the operating system, which survives a crash of the process but
// not of the machine (delivery 2).
func openDelivered(path string, sync bool) (*delivered, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating push state directory: %w", err)
	}
	db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: 2 * time.Second, NoSync: !sync, NoFreelistSync: true})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("opening push state %s: another process has it open (a second gateway needs its own state_dir)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening push state %s: %w", path, err)
	}
	d := &delivered{db: db, adds: make(chan addReq, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	go d.writer()
	return d, nil
}

func bucketName(topic, qid string) []byte { return []byte(topic + "\x00" + qid) }

func offsetKey(off int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(off)) }

// Add records offset as delivered and returns once it is written.
func (d *delivered) Add(ctx context.Context, topic, qid string, offset int64) error {
	req := addReq{topic, qid, offset, make(chan error, 1)}
	select {
	case d.adds <- req:
	case <-d.stop:
		return errors.New("push state closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writer writes whatever Adds are waiting in one transaction, and again.
func (d *delivered) writer() {
	defer close(d.done)
	for {
		var batch []addReq
		select {
		case r := <-d.adds:
			batch = append(batch, r)
		case <-d.stop:
			return
		}
	more:
		for len(batch) < 4096 {
			select {
			case r := <-d.adds:
				batch = append(batch, r)
			default:
				break more
			}
		}
		err := d.db.Update(func(tx *bolt.Tx) error {
			for _, r := range batch {
				b, err := tx.CreateBucketIfNotExists(bucketName(r.topic, r.qid))
				if err != nil {
					return err
				}
				if err := b.Put(offsetKey(r.offset), nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			err = fmt.Errorf("recording delivered offsets: %w", err)
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

// Has reports which of offs (of one topic and qid) are recorded.
func (d *delivered) Has(topic, qid string, offs []int64) (map[int64]bool, error) {
	found := map[int64]bool{}
	err := d.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName(topic, qid))
		if b == nil {
			return nil
		}
		for _, off := range offs {
			if b.Get(offsetKey(off)) != nil {
				found[off] = true
			}
		}
		return nil
	})
	return found, err
}

// Prune forgets offsets below the committed offset of each qid of topic:
// the group will not be handed them again.
func (d *delivered) Prune(topic string, committed map[string]int64) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		for qid, upto := range committed {
			b := tx.Bucket(bucketName(topic, qid))
			if b == nil {
				continue
			}
			// Deleting under a moving cursor skips keys; collect first.
			var old [][]byte
			c := b.Cursor()
			for k, _ := c.First(); k != nil && int64(binary.BigEndian.Uint64(k)) < upto; k, _ = c.Next() {
				old = append(old, append([]byte(nil), k...))
			}
			for _, k := range old {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Close waits for the writer and closes the file, syncing it.
func (d *delivered) Close() error {
	close(d.stop)
	<-d.done
	if err := d.db.Sync(); err != nil {
		d.db.Close()
		return err
	}
	return d.db.Close()
}
