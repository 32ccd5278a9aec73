package produce

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// spoolRejectedFile is the name, inside the spool's Dir, of the file that
// keeps records the broker refused with a code that cannot succeed.
const spoolRejectedFile = "rejected.jsonl"

// RejectedRecord is one line of the spool's rejected.jsonl: a record the
// broker refused with a code sending again cannot change, kept for an
// operator to inspect or replay. Byte fields are base64 in JSON; Key is
// null when the record had no key.
type RejectedRecord struct {
	// Rejected is when the forwarder gave up on the record; Appended when
	// Append accepted it.
	Rejected  time.Time      `json:"rejected"`
	Appended  time.Time      `json:"appended"`
	Cluster   string         `json:"cluster"`
	Topic     string         `json:"topic"`
	Partition int32          `json:"partition"`
	Hash      uint64         `json:"hash"`
	Key       []byte         `json:"key"`
	Value     []byte         `json:"value"`
	Headers   []RejectedHead `json:"headers,omitempty"`
	Tags      string         `json:"tags,omitempty"`
	Code      sdk.Code       `json:"code"`
	Error     string         `json:"error"`
}

// RejectedHead is a header of a RejectedRecord.
type RejectedHead struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

// spoolRejects appends rejected records to Dir/rejected.jsonl. Each write
// is fsynced before the records leave the spool, so a record is always in
// one of the two.
type spoolRejects struct {
	path string
	dir  string
	mu   sync.Mutex
	f    *os.File // opened on first use
}

// write appends recs durably.
func (r *spoolRejects) write(recs []RejectedRecord) error {
	var buf []byte
	for i := range recs {
		line, err := json.Marshal(&recs[i])
		if err != nil {
			return fmt.Errorf("encoding rejected record: %w", err)
		}
		buf = append(append(buf, line...), '\n')
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("opening rejected file: %w", err)
		}
		r.f = f
		// The new file's name must survive a crash too.
		if err := syncDir(r.dir); err != nil {
			return err
		}
	}
	if _, err := r.f.Write(buf); err != nil {
		return fmt.Errorf("writing %s: %w", r.path, err)
	}
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", r.path, err)
	}
	return nil
}

func (r *spoolRejects) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

func rejectedRecord(cluster string, e *spoolEntry, err error, now time.Time) RejectedRecord {
	rr := RejectedRecord{
		Rejected:  now,
		Appended:  e.appended,
		Cluster:   cluster,
		Topic:     e.rec.Topic,
		Partition: e.rec.Partition,
		Hash:      e.rec.Hash,
		Key:       e.rec.Key,
		Value:     e.rec.Value,
		Tags:      e.rec.Tags,
		Code:      sdk.CodeOf(err),
		Error:     err.Error(),
	}
	for _, h := range e.rec.Headers {
		rr.Headers = append(rr.Headers, RejectedHead{Key: h.Key, Value: h.Value})
	}
	return rr
}

// syncDir fsyncs a directory, making the names created in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
