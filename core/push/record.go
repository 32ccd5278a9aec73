package push

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/mqgate/mqgate/internal/dirlock"
)

// delivered is a subscription's local record of delivered offsets that
// the group may not have committed yet (delivery 2 and 3): a restarted
// gateway skips what it finds here instead of sending it again.
//
// It is an append-only log, state_dir/NAME.log (see recordlog.go), with
// the offsets it holds in memory. Adds are written in groups by one
// writer, a write (and in delivery 3 an fsync) per group, and each Add's
// done runs once its group is written: the subscription acks a message
// there, so the group never commits past an offset the record does not
// hold yet. Prune drops offsets the group has committed past and rewrites
// the file when most of it is dropped offsets.
//
// Lock order: fileMu before mu. mu guards the offsets held; fileMu the
// file, so Has never waits for a write.
type delivered struct {
	path   string
	sync   bool
	logger *slog.Logger
	lock   *dirlock.Lock

	fileMu sync.Mutex
	f      *os.File
	size   int64  // of the file: header and whole frames
	buf    []byte // the writer's, reused

	mu      sync.Mutex
	streams map[streamKey]*stream
	nextID  uint32
	held    int // offsets held, all streams

	adds    chan addReq
	pending sync.WaitGroup // Adds whose done has not run
	stop    chan struct{}
	done    chan struct{}
}

type addReq struct {
	k      streamKey
	offset int64
	done   func(error)
}

// Compaction: Prune rewrites the file once it is over compactMinBytes and
// more than compactRatio times what the offsets held take.
var (
	compactMinBytes int64 = 4 << 20
	compactRatio    int64 = 4
)

// maxAddGroup is the most Adds written in one group.
const maxAddGroup = 4096

// maxHeld bounds the offsets the record holds, in memory and in its file:
// delivered offsets the group has not committed yet (about 40 MiB at the
// bound). Commits prune them; a group whose commits fail for long while
// delivery goes on would otherwise grow it without end. Past it, an Add
// is refused: the message is still acked, and a restart may send it
// again.
var maxHeld = 1 << 20

// openDelivered opens (creating) the record of subscription name in dir.
// sync makes every group reach the disk before its Adds are done
// (delivery 3); otherwise writes reach the operating system, which
// survives a crash of the process but not of the machine (delivery 2).
// A record of an earlier version, name.db, is read once and removed.
func openDelivered(dir, name string, sync bool, logger *slog.Logger) (*delivered, error) {
	path := filepath.Join(dir, name+".log")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating push state directory: %w", err)
	}
	lock, err := dirlock.AcquireFile(filepath.Join(dir, name+".lock"))
	if _, held := errors.AsType[*dirlock.HeldError](err); held {
		return nil, fmt.Errorf("opening push state %s: another process has it open (a second gateway needs its own state_dir): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening push state %s: %w", path, err)
	}
	d := &delivered{path: path, sync: sync, logger: logger, lock: lock,
		adds: make(chan addReq, maxAddGroup), stop: make(chan struct{}), done: make(chan struct{})}
	if err := d.load(filepath.Join(dir, name+".db")); err != nil {
		lock.Release()
		return nil, fmt.Errorf("opening push state %s: %w", path, err)
	}
	go d.writer()
	return d, nil
}

// load reads the file, cutting a torn tail, and takes in an old bbolt
// record at boltPath if there is one.
func (d *delivered) load(boltPath string) error {
	data, err := os.ReadFile(d.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	c, err := readLog(data)
	if err != nil {
		return fmt.Errorf("%w; move it away to start with an empty record (its messages may then be sent again)", err)
	}
	if c.torn {
		d.logger.Warn("push state: cutting a torn or corrupt tail (offsets in it may be sent again)",
			"file", d.path, "kept_bytes", c.good, "dropped_bytes", len(data)-c.good)
	}
	if c.orphans > 0 {
		d.logger.Warn("push state: skipping offsets of an undeclared stream", "file", d.path, "offsets", c.orphans)
	}
	d.streams, d.nextID = c.streams, c.nextID
	for _, st := range d.streams {
		st.declared = true
		d.held += len(st.offs)
	}
	imported, err := d.importBolt(boltPath)
	if err != nil {
		return err
	}
	if d.f, err = os.OpenFile(d.path, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return err
	}
	d.size = int64(c.good)
	switch {
	case imported || c.good < len(logHeader):
		// A fresh file, or one holding what the old record had: write it
		// whole, synced, before the old record goes.
		if err := d.compact(true); err != nil {
			return err
		}
	case c.torn:
		if err := d.f.Truncate(d.size); err != nil {
			return fmt.Errorf("cutting the torn tail: %w", err)
		}
	}
	if imported {
		if err := os.Remove(boltPath); err != nil {
			return fmt.Errorf("removing the old record %s, now in %s: %w", boltPath, d.path, err)
		}
	}
	return nil
}

// streamLocked returns the stream of k, new if need be.
func (d *delivered) streamLocked(k streamKey) *stream {
	st := d.streams[k]
	if st == nil {
		st = &stream{id: d.nextID, offs: map[int64]struct{}{}}
		d.nextID++
		d.streams[k] = st
	}
	return st
}

// Add records offset as delivered. done runs on the record's writer once
// the offset is written (nil) or could not be (an error); it must not call
// Add or Flush.
func (d *delivered) Add(topic, qid string, offset int64, done func(error)) {
	d.pending.Add(1)
	d.adds <- addReq{streamKey{topic, qid}, offset, done}
}

// Flush waits until every Add's done has run. No Add may start meanwhile.
func (d *delivered) Flush() { d.pending.Wait() }

// writer writes whatever Adds are waiting as one group, and again, until
// Close; it writes what is left before it stops.
func (d *delivered) writer() {
	defer close(d.done)
	batch := make([]addReq, 0, 64)
	for {
		batch = batch[:0]
		stopping := false
		select {
		case r := <-d.adds:
			batch = append(batch, r)
		case <-d.stop:
			stopping = true
		}
	more:
		for len(batch) < maxAddGroup {
			select {
			case r := <-d.adds:
				batch = append(batch, r)
			default:
				break more
			}
		}
		if len(batch) > 0 {
			err := d.write(batch)
			if err != nil {
				err = fmt.Errorf("recording delivered offsets in %s: %w", d.path, err)
			}
			for _, r := range batch {
				r.done(err)
				d.pending.Done()
			}
			clear(batch) // let the items go
		}
		if stopping && len(batch) == 0 {
			return
		}
	}
}

// write appends one group's frames, declaring new streams, and syncs in
// delivery 3. The offsets are held in memory even when the write fails:
// they were delivered.
func (d *delivered) write(batch []addReq) error {
	d.fileMu.Lock()
	defer d.fileMu.Unlock()
	buf := d.buf[:0]
	var declared []*stream
	var refused error
	d.mu.Lock()
	for _, r := range batch {
		st := d.streams[r.k]
		if st == nil {
			if err := checkStreamNames(r.k); err != nil {
				refused = err
				continue
			}
			st = d.streamLocked(r.k)
		}
		if !st.declared {
			buf = appendStreamFrame(buf, st.id, r.k)
			st.declared = true
			declared = append(declared, st)
		}
		if _, ok := st.offs[r.offset]; !ok {
			if d.held >= maxHeld {
				refused = fmt.Errorf("the record holds %d delivered offsets the group has not committed, its limit: offset %d of %s/%s is not recorded (are the group's commits failing?)",
					d.held, r.offset, r.k.topic, r.k.qid)
				continue
			}
			st.offs[r.offset] = struct{}{}
			d.held++
		}
		buf = appendOffsetFrame(buf, st.id, r.offset)
	}
	d.mu.Unlock()
	d.buf = buf
	if _, err := d.f.WriteAt(buf, d.size); err != nil {
		// Cut what part was written, so that what comes next follows
		// whole frames, and declare the streams again then.
		d.mu.Lock()
		for _, st := range declared {
			st.declared = false
		}
		d.mu.Unlock()
		if terr := d.f.Truncate(d.size); terr != nil {
			return errors.Join(err, fmt.Errorf("cutting the partial write: %w", terr))
		}
		return err
	}
	d.size += int64(len(buf))
	if d.sync {
		if err := d.f.Sync(); err != nil {
			return fmt.Errorf("syncing: %w", err)
		}
	}
	return refused
}

// Has reports which of offs (of one topic and qid) are recorded.
func (d *delivered) Has(topic, qid string, offs []int64) (map[int64]bool, error) {
	found := map[int64]bool{}
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.streams[streamKey{topic, qid}]
	if st == nil {
		return found, nil
	}
	for _, off := range offs {
		if _, ok := st.offs[off]; ok {
			found[off] = true
		}
	}
	return found, nil
}

// Prune forgets offsets below the committed offset of each qid of topic:
// the group will not be handed them again. It rewrites the file when what
// is left takes a small part of it.
func (d *delivered) Prune(topic string, committed map[string]int64) error {
	d.mu.Lock()
	for qid, upto := range committed {
		st := d.streams[streamKey{topic, qid}]
		if st == nil {
			continue
		}
		for off := range st.offs {
			if off < upto {
				delete(st.offs, off)
				d.held--
			}
		}
	}
	held := int64(d.held)
	d.mu.Unlock()
	d.fileMu.Lock()
	size := d.size
	d.fileMu.Unlock()
	if size < compactMinBytes || size < compactRatio*held*offsetFrameLen {
		return nil
	}
	return d.compact(d.sync)
}

// compact rewrites the file with only the offsets held: a new file
// renamed over the old one, so that a crash leaves one or the other.
// sync syncs the new file before the rename and the directory after.
func (d *delivered) compact(sync bool) error {
	d.fileMu.Lock()
	defer d.fileMu.Unlock()
	d.mu.Lock()
	buf := appendSnapshot(append(d.buf[:0], logHeader...), d.streams)
	d.mu.Unlock()
	d.buf = buf
	tmp := d.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("compacting: %w", err)
	}
	if _, err = f.Write(buf); err == nil && sync {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, d.path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp) // best effort: the old file is still whole and in use
		return fmt.Errorf("compacting: %w", err)
	}
	// The new file is the record now, whatever follows.
	old := d.f
	d.f, d.size = f, int64(len(buf))
	err = old.Close()
	if sync {
		err = errors.Join(err, syncDir(filepath.Dir(d.path)))
	}
	if err != nil {
		return fmt.Errorf("compacting: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Close writes what was added, syncs and closes the file.
func (d *delivered) Close() error {
	close(d.stop)
	<-d.done
	d.fileMu.Lock()
	defer d.fileMu.Unlock()
	err := d.f.Sync()
	err = errors.Join(err, d.f.Close(), d.lock.Release())
	return err
}
