package kafka

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRepeatedLinesAreCounted(t *testing.T) {
	var r repeats
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		key      string
		at       time.Duration
		log      bool
		repeated int
	}{
		{"dial refused", 0, true, 0},
		{"dial refused", time.Second, false, 0},
		{"dial refused", 30 * time.Second, false, 0},
		{"other", 31 * time.Second, true, 0},
		{"dial refused", 61 * time.Second, true, 2},
		{"dial refused", 62 * time.Second, false, 0},
		{"dial refused", 200 * time.Second, true, 1},
	} {
		log, repeated := r.admit(tc.key, t0.Add(tc.at))
		if log != tc.log || repeated != tc.repeated {
			t.Errorf("%q at %v: logged %v with %d repeats; want %v with %d", tc.key, tc.at, log, repeated, tc.log, tc.repeated)
		}
	}
}

// The client's info (group joins, assignments) reaches a logger at debug,
// as debug lines, and stays out of one at info, the default.
func TestKgoLoggerInfoAtDebug(t *testing.T) {
	for _, tc := range []struct {
		level slog.Level
		want  kgo.LogLevel
		lines int
	}{{slog.LevelDebug, kgo.LogLevelInfo, 1}, {slog.LevelInfo, kgo.LogLevelWarn, 0}} {
		var buf bytes.Buffer
		l := kgoLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level})), &repeats{}}
		if got := l.Level(); got != tc.want {
			t.Errorf("logger at %s: client level %s; want %s", tc.level, got, tc.want)
		}
		if l.Level() >= kgo.LogLevelInfo {
			l.Log(kgo.LogLevelInfo, "assigning partitions", "group", "g")
		}
		if n := strings.Count(buf.String(), "level=DEBUG msg=\"assigning partitions\""); n != tc.lines {
			t.Errorf("logger at %s: %d debug lines of the client's info; want %d (%q)", tc.level, n, tc.lines, buf.String())
		}
	}
}
