package delay

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
)

// levels records the level of each line logged.
type levels struct {
	mu  sync.Mutex
	got []slog.Level
}

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.got = append(l.got, r.Level)
	l.mu.Unlock()
	return nil
}
func (l *levels) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levels) WithGroup(string) slog.Handler      { return l }

func (l *levels) count(level slog.Level) int {
	n := 0
	for _, g := range l.got {
		if g == level {
			n++
		}
	}
	return n
}

// When every tier worker fails the same way (the plugin restarting), and
// retries, and then all recover, that is one warning and one line saying
// they are past it, not a line per worker and retry.
func TestWorkerTroubleLogsOnceForAllWorkers(t *testing.T) {
	l := &levels{}
	tr := &workerTrouble{logger: slog.New(l), recoveredMsg: "moving again"}
	err := errors.New("plugin kafka for local is restarting")
	const workers, retries = 36, 5
	var failing [workers]bool
	for range retries {
		for w := range workers {
			tr.fail(!failing[w], "delay tier worker will retry moving records", "tier", err)
			failing[w] = true
		}
	}
	for w := range workers {
		tr.recover()
		failing[w] = false
	}
	if w, i, d := l.count(slog.LevelWarn), l.count(slog.LevelInfo), l.count(slog.LevelDebug); w != 1 || i != 1 || d != workers*retries-1 {
		t.Fatalf("%d warnings, %d infos, %d debug lines; want 1, 1 and %d", w, i, d, workers*retries-1)
	}
}
