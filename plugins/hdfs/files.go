package hdfs

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// File names. A final name is part-<sink>-<gateway>-<start>-<seq>.<ext>:
// the sink entry and the gateway (host and pid) keep instances apart, the
// start time this instance's incarnations, seq its files. The in-progress
// name adds a leading underscore, which Hive and Spark skip, and a suffix.
const (
	partPrefix       = "part-"
	inProgressPrefix = "_"
	inProgressSuffix = ".inprogress"
)

// fileName names a file in both its states.
type fileName struct {
	dir   string
	final string // the base name once complete
}

// tmp is the base name while in progress.
func (n fileName) tmp() string       { return inProgressPrefix + n.final + inProgressSuffix }
func (n fileName) tmpPath() string   { return path.Join(n.dir, n.tmp()) }
func (n fileName) finalPath() string { return path.Join(n.dir, n.final) }
func (n fileName) String() string    { return n.tmpPath() }

// finalOf is the final base name of an in-progress base name, or false
// for a name the sink does not give.
func finalOf(tmp string) (string, bool) {
	final, ok := strings.CutPrefix(tmp, inProgressPrefix)
	if !ok {
		return "", false
	}
	final, ok = strings.CutSuffix(final, inProgressSuffix)
	if !ok || !strings.HasPrefix(final, partPrefix) {
		return "", false
	}
	return final, true
}

// safeName keeps letters, digits, '.', '_' and '-' of s for a file name
// and turns every other byte into '_'.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

// openFile is a file the sink is writing.
type openFile struct {
	name fileName
	enc  fileEncoder
	// created is set once CREATE succeeded; size and records are what the
	// successful requests wrote: the file's durable content.
	created           bool
	size, records     int64
	opened, lastWrite time.Time
}

// markerPath is where the marker of the in-progress file tmp lives: a
// small file in the sink's state directory holding tmp's directory.
func (s *Sink) markerPath(tmp string) string {
	return path.Join(s.markerDir(), tmp)
}

// markerDir holds this sink's markers.
func (s *Sink) markerDir() string {
	return path.Join(s.cfg.stateDir, safeName(s.cfg.info.Sink))
}

// dirBatch is the records of a Write that go into one directory, by index,
// in order.
type dirBatch struct {
	dir string
	idx []int
}

// route checks each record and groups the writable ones by directory,
// recording the refusals in results.
func (s *Sink) route(records []sdk.Record, results []error, now time.Time) []dirBatch {
	var batches []dirBatch
	pos := map[string]int{}
	for i := range records {
		r := &records[i]
		if err := s.format.check(r); err != nil {
			results[i] = err
			continue
		}
		if s.cfg.path.usesTopic {
			if err := checkName(r.Topic); err != nil {
				results[i] = sdk.Errorf(sdk.CodeIllegal, "topic of %s/%s@%d cannot name a directory of path %s: %v", r.Topic, r.Qid, r.Offset, s.cfg.path.src, err)
				continue
			}
		}
		t := now
		if !s.cfg.arrival && !r.Timestamp.IsZero() {
			t = r.Timestamp
		}
		dir := s.cfg.path.expand(s.cfg.info.Group, r.Topic, t.In(s.cfg.loc))
		k, ok := pos[dir]
		if !ok {
			k = len(batches)
			pos[dir] = k
			batches = append(batches, dirBatch{dir: dir})
		}
		batches[k].idx = append(batches[k].idx, i)
	}
	return batches
}

// writeDir writes a directory's records, into its open file or new ones,
// one request per file, and sets their results.
func (s *Sink) writeDir(ctx context.Context, b dirBatch, records []sdk.Record, results []error, now time.Time) {
	if f := s.files[b.dir]; f != nil {
		if why := s.due(f, now); why != "" {
			_ = s.finish(ctx, f, why) // logged; a file that stays in progress is recovery's
		}
	}
	fail := func(idx []int, err error) {
		for _, i := range idx {
			results[i] = err
		}
	}
	rest := b.idx
	for len(rest) > 0 {
		f := s.files[b.dir]
		if f == nil {
			var err error
			if f, err = s.startFile(ctx, b.dir, now); err != nil {
				fail(rest, err)
				return
			}
		}
		n := s.fits(f, records, rest)
		if n == 0 {
			_ = s.finish(ctx, f, "max_bytes") // logged
			continue
		}
		if err := s.appendRecords(ctx, f, records, rest[:n], now); err != nil {
			// The records after these are not tried: the next request
			// would most likely fail alike, and they are retried anyway.
			fail(rest, err)
			return
		}
		rest = rest[n:]
		if f.size >= s.cfg.maxBytes {
			_ = s.finish(ctx, f, "max_bytes") // logged
		}
	}
}

// fits is how many of idx go into f's next request before it reaches
// roll.max_bytes: at least one when f holds none yet.
func (s *Sink) fits(f *openFile, records []sdk.Record, idx []int) int {
	size := f.size
	for k, i := range idx {
		e := s.format.estimate(&records[i])
		if (f.records > 0 || k > 0) && size+e > s.cfg.maxBytes {
			return k
		}
		size += e
	}
	return len(idx)
}

// appendRecords writes records idx to f in one request: the CREATE of the
// file with its header, or an APPEND. On failure f is abandoned.
func (s *Sink) appendRecords(ctx context.Context, f *openFile, records []sdk.Record, idx []int, now time.Time) error {
	for _, i := range idx {
		if err := f.enc.add(&records[i]); err != nil {
			s.abandon(ctx, f, err)
			return sdk.Errorf(sdk.CodeInternal, "encoding %s/%s@%d: %v", records[i].Topic, records[i].Qid, records[i].Offset, err)
		}
	}
	data, err := f.enc.take()
	if err == nil {
		if f.created {
			err = s.fs.appendTo(ctx, f.name.tmpPath(), data)
		} else {
			err = s.fs.create(ctx, f.name.tmpPath(), data)
		}
	}
	if err != nil {
		s.abandon(ctx, f, err)
		return storeError(fmt.Errorf("writing %d records to %s: %w", len(idx), f.name, err))
	}
	f.created = true
	f.size += int64(len(data))
	f.records += int64(len(idx))
	f.lastWrite = now
	return nil
}

// startFile opens a new file in dir: it picks a name no file has and
// creates the file's marker. The file itself is created with its first
// records.
func (s *Sink) startFile(ctx context.Context, dir string, now time.Time) (*openFile, error) {
	if len(s.files) >= s.cfg.maxOpenFiles {
		var lru *openFile
		for _, f := range s.files {
			if lru == nil || f.lastWrite.Before(lru.lastWrite) {
				lru = f
			}
		}
		_ = s.finish(ctx, lru, "max_open_files") // logged
	}
	enc, err := s.format.newEncoder()
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "%v", err)
	}
	// An earlier instance of this sink on this gateway that started in the
	// same second used the same names: skip the ones it took.
	for range 1000 {
		s.seq++
		name := fileName{dir: dir, final: fmt.Sprintf("%s%s-%s-%s-%06d.%s", partPrefix,
			safeName(s.cfg.info.Sink), safeName(s.cfg.info.Gateway), s.stamp, s.seq, s.format.ext())}
		_, taken, err := s.fs.status(ctx, name.finalPath())
		if err != nil {
			return nil, storeError(fmt.Errorf("checking the name %s: %w", name.finalPath(), err))
		}
		if taken {
			continue
		}
		err = s.fs.create(ctx, s.markerPath(name.tmp()), []byte(dir))
		if isRemote(err, "FileAlreadyExistsException") {
			continue
		}
		if err != nil {
			// A datanode may have written part of it before failing.
			if _, rmErr := s.fs.remove(ctx, s.markerPath(name.tmp())); rmErr != nil {
				s.log.Warn("deleting a marker after failing to create it; recovery deletes it", "marker", s.markerPath(name.tmp()), "error", rmErr)
			}
			return nil, storeError(fmt.Errorf("creating the in-progress marker of %s: %w", name, err))
		}
		f := &openFile{name: name, enc: enc, opened: now, lastWrite: now}
		s.files[dir] = f
		s.log.Debug("opened a file", "path", name.tmpPath())
		return f, nil
	}
	return nil, sdk.Errorf(sdk.CodeInternal, "no free file name in %s after 1000 tries", dir)
}

// due says why f should close at now, or "" when it stays open.
func (s *Sink) due(f *openFile, now time.Time) string {
	switch {
	case now.Sub(f.opened) >= s.cfg.maxAge:
		return "max_age"
	case now.Sub(f.lastWrite) >= s.cfg.idle:
		return "idle"
	}
	return ""
}

// sweep closes the files that are due.
func (s *Sink) sweep(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	now := s.now()
	for _, f := range s.files {
		if why := s.due(f, now); why != "" {
			_ = s.finish(ctx, f, why) // logged
		}
	}
}

// finish gives f its final name, or deletes it when it holds no record,
// then deletes its marker, and forgets it. A failure leaves the file in
// progress with its marker, for recovery; it is logged and returned.
func (s *Sink) finish(ctx context.Context, f *openFile, why string) error {
	delete(s.files, f.name.dir)
	if f.records > 0 {
		if err := s.finalise(ctx, f.name); err != nil {
			s.log.Warn("closing a file; it stays in progress until recovered", "path", f.name.tmpPath(), "error", err)
			return err
		}
		s.log.Info("closed a file", "path", f.name.finalPath(), "records", f.records, "bytes", f.size, "reason", why)
	} else if f.created {
		if _, err := s.fs.remove(ctx, f.name.tmpPath()); err != nil {
			s.log.Warn("deleting an empty in-progress file", "path", f.name.tmpPath(), "error", err)
			return err
		}
	}
	if _, err := s.fs.remove(ctx, s.markerPath(f.name.tmp())); err != nil {
		// Recovery deletes a marker whose file is gone.
		s.log.Warn("deleting the marker of a closed file", "path", f.name.finalPath(), "error", err)
	}
	return nil
}

// finalise renames n's in-progress file to its final name. A refusal is
// success when the rename happened already: an answer lost on the way, or
// another instance's recovery.
func (s *Sink) finalise(ctx context.Context, n fileName) error {
	ok, err := s.fs.rename(ctx, n.tmpPath(), n.finalPath())
	if err != nil || ok {
		return err
	}
	_, tmpThere, err := s.fs.status(ctx, n.tmpPath())
	if err != nil {
		return err
	}
	_, finalThere, err := s.fs.status(ctx, n.finalPath())
	if err != nil {
		return err
	}
	if !tmpThere && finalThere {
		return nil
	}
	return fmt.Errorf("HDFS refused to rename %s to %s (the in-progress file is there: %v; the final name is taken: %v)", n.tmpPath(), n.final, tmpThere, finalThere)
}

// abandon closes f after a failed request: it cuts the file back to what
// the successful requests wrote, so that no byte of a record reported as
// failed stays, and finalises that. What fails here is left to recovery,
// which does the same from the marker.
func (s *Sink) abandon(ctx context.Context, f *openFile, cause error) {
	delete(s.files, f.name.dir)
	ctx = context.WithoutCancel(ctx) // the Write's context may be what ended the request
	if isRemote(cause, "FileAlreadyExistsException") {
		// Not this sink's file after all; recovery finalises it from the
		// marker like any other.
		s.log.Warn("a file with this sink's in-progress name exists", "path", f.name.tmpPath())
		return
	}
	var err error
	switch {
	case f.records == 0:
		_, err = s.fs.remove(ctx, f.name.tmpPath())
	default:
		err = s.cut(ctx, f.name.tmpPath(), f.size)
		if err == nil {
			err = s.finalise(ctx, f.name)
		}
	}
	if err == nil {
		_, err = s.fs.remove(ctx, s.markerPath(f.name.tmp()))
	}
	if err != nil {
		s.log.Warn("closing a file after a failed write; it stays in progress until recovered", "path", f.name.tmpPath(), "cause", cause, "error", err)
		return
	}
	s.log.Warn("closed a file after a failed write", "path", f.name.finalPath(), "records", f.records, "cause", cause)
}

// cut truncates the file p to n bytes and waits until HDFS reports that
// length: a truncate off a block boundary completes in the background, in
// seconds.
func (s *Sink) cut(ctx context.Context, p string, n int64) error {
	done, err := s.fs.truncate(ctx, p, n)
	if err != nil || done {
		return err
	}
	wait := 100 * time.Millisecond
	for range 30 { // about a minute; block recovery takes seconds
		wait = min(2*wait, 2*time.Second)
		st, found, err := s.fs.status(ctx, p)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("%s disappeared while being truncated", p)
		case st.Length == n:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to be truncated to %d bytes: %w", p, n, ctx.Err())
		case <-time.After(wait):
		}
	}
	return fmt.Errorf("%s still is not %d bytes long after truncating it", p, n)
}

// storeError is the error of records whose request failed: code 17, and
// lasting when the cluster refused the sink's credentials.
func storeError(err error) error {
	e := sdk.Errorf(sdk.CodeUnavailable, "HDFS: %v", err)
	if refusedCredentials(err) {
		return sdk.Lasting(e)
	}
	return e
}
