package kafka

import (
	"sync"
	"time"
)

// repeatWindow is how long a repeated log line is held back after it was
// last logged.
const repeatWindow = time.Minute

// repeats keeps identical log lines from flooding the log: the first is
// logged, the same line again within repeatWindow is counted instead, and
// the first one after the window is logged with that count.
type repeats struct {
	mu   sync.Mutex
	seen map[string]*repeat
}

type repeat struct {
	at   time.Time // when it was last logged
	left int       // times it came since, not logged
}

// maxRepeats bounds the lines remembered; past it, lines not logged within
// the window are forgotten.
const maxRepeats = 1000

// admit reports whether the line keyed key is logged at now, and how many
// times it came since it last was.
func (r *repeats) admit(key string, now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rep, ok := r.seen[key]; ok {
		if now.Sub(rep.at) < repeatWindow {
			rep.left++
			return false, 0
		}
		left := rep.left
		rep.at, rep.left = now, 0
		return true, left
	}
	if r.seen == nil {
		r.seen = map[string]*repeat{}
	}
	if len(r.seen) >= maxRepeats {
		for k, rep := range r.seen {
			if now.Sub(rep.at) >= repeatWindow {
				delete(r.seen, k)
			}
		}
	}
	r.seen[key] = &repeat{at: now}
	return true, 0
}
