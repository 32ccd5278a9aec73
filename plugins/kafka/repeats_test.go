package kafka

import (
	"testing"
	"time"
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
