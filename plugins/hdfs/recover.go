package hdfs

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// maxMarkerBytes bounds the content of a marker: a directory path.
const maxMarkerBytes = 8 << 10

// recoverOrphans finalises the in-progress files of this sink whose writer
// is gone, found through the markers in the sink's state directory.
//
// A writer touches its open file at least every roll.idle, and closes it
// when idle that long; a file untouched for recover_after (at least twice
// that) therefore has no writer, whichever gateway opened it. Such a file
// is cut back to its last whole record (a line, an Avro block), given its
// final name, and its marker deleted; a file without any whole record is
// deleted. A marker whose file is gone is deleted once it is as old, so
// that a writer's marker is never taken away between its creation and the
// creation of its file.
//
// It returns how many files it finalised or deleted.
func (s *Sink) recoverOrphans(ctx context.Context) (int, error) {
	s.mu.Lock()
	if !s.configured || s.closed {
		s.mu.Unlock()
		return 0, nil
	}
	own := make(map[string]bool, len(s.files))
	for _, f := range s.files {
		own[f.name.tmp()] = true
	}
	dir := s.markerDir()
	s.mu.Unlock()

	markers, found, err := s.fs.list(ctx, dir)
	if err != nil || !found {
		return 0, err
	}
	var recovered int
	var errs []error
	for _, m := range markers {
		if m.Type != "FILE" || own[m.PathSuffix] {
			continue
		}
		if _, ok := finalOf(m.PathSuffix); !ok {
			continue // not a marker; the directory is the sink's, but leave what others put there
		}
		done, err := s.recoverOne(ctx, path.Join(dir, m.PathSuffix), m)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.PathSuffix, err))
		}
		if done {
			recovered++
		}
	}
	return recovered, errors.Join(errs...)
}

// recoverOne handles the in-progress file of one marker. done reports that
// the file was finalised or deleted, or the marker was stale.
func (s *Sink) recoverOne(ctx context.Context, marker string, m fileStatus) (done bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*s.cfg.requestTimeout)
	defer cancel()
	now := s.now()
	old := func(ms int64) bool { return now.Sub(time.UnixMilli(ms)) >= s.cfg.recoverAfter }
	final, _ := finalOf(m.PathSuffix)
	content, err := s.fs.readSmall(ctx, marker, maxMarkerBytes)
	if err != nil {
		return false, fmt.Errorf("reading the marker: %w", err)
	}
	dir := string(content)
	if !strings.HasPrefix(dir, "/") || path.Clean(dir) != dir {
		if !old(m.ModificationTime) {
			return false, nil // a marker being written
		}
		s.log.Warn("deleting a marker that names no directory", "marker", marker, "content", dir[:min(len(dir), 200)])
		_, err := s.fs.remove(ctx, marker)
		return err == nil, err
	}
	name := fileName{dir: dir, final: final}
	st, found, err := s.fs.status(ctx, name.tmpPath())
	switch {
	case err != nil:
		return false, err
	case !found && !old(m.ModificationTime):
		return false, nil // its writer is about to create it
	case !found: // finalised or deleted by its writer, who died before deleting the marker
		_, err := s.fs.remove(ctx, marker)
		return err == nil, err
	case !old(st.ModificationTime):
		return false, nil // its writer may be alive
	}
	format, ok := formatByExt(strings.TrimPrefix(path.Ext(final), "."))
	if !ok {
		return false, fmt.Errorf("%s: no format writes files named *%s", name.tmpPath(), path.Ext(final))
	}
	rc, err := s.fs.open(ctx, name.tmpPath())
	if err != nil {
		return false, err
	}
	valid, records, err := format.validPrefix(rc)
	_ = rc.Close() // everything needed was read
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", name.tmpPath(), err)
	}
	if records == 0 {
		if _, err := s.fs.remove(ctx, name.tmpPath()); err != nil {
			return false, err
		}
		s.log.Info("deleted an in-progress file of a dead writer that held no whole record", "path", name.tmpPath(), "bytes", st.Length)
	} else {
		if valid < st.Length {
			if err := s.cut(ctx, name.tmpPath(), valid); err != nil {
				return false, err
			}
		}
		if err := s.finalise(ctx, name); err != nil {
			return false, err
		}
		s.log.Info("recovered an in-progress file of a dead writer", "path", name.finalPath(), "records", records, "bytes", valid, "cut_bytes", st.Length-valid)
	}
	_, err = s.fs.remove(ctx, marker)
	return true, err
}
