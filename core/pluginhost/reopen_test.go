package pluginhost

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/mqgate/mqgate/sdk"
)

// A consume stream the plugin's death ended is re-opened on the new
// process only when its subscriber's ReopenIf says so; otherwise Poll ends
// the subscription, and the new process gets no stream for it.
func TestReopenIfDecidesAfterRestart(t *testing.T) {
	for _, tc := range []struct {
		name        string
		keep        bool
		wantStreams int32
	}{
		{"in use: re-opened", true, 1},
		{"idle: ended", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newTestHost(t)
			b := startChild(t, h)
			ctx, c := subscribe(t, b)
			var asked atomic.Int32
			c.(interface{ ReopenIf(func() bool) }).ReopenIf(func() bool {
				asked.Add(1)
				return tc.keep
			})
			for range 2 { // the assignment, then a record
				if _, err := c.Poll(ctx, 1); err != nil {
					t.Fatal(err)
				}
			}
			if err := syscall.Kill(h.Statuses()[0].PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			for {
				ev, err := c.Poll(ctx, 1)
				if tc.keep {
					if err != nil {
						t.Fatalf("Poll across the restart: %v", err)
					}
					if len(ev.Assigned) > 0 {
						break
					}
					continue
				}
				if err != nil {
					if !errors.Is(err, sdk.ErrStreamEnded) || sdk.CodeOf(err) != sdk.CodeUnavailable {
						t.Fatalf("Poll of an idle subscription after the restart: %v (code %d); want a stream end, code 17", err, sdk.CodeOf(err))
					}
					if len(ev.Revoked) > 0 {
						t.Fatalf("the ended subscription reported %v revoked", ev.Revoked)
					}
					break
				}
			}
			if asked.Load() == 0 {
				t.Fatal("keep was never asked")
			}
			waitFor(t, "the new process", func() bool {
				s := h.Statuses()[0]
				return s.State == StateUp && s.Restarts == 1
			})
			if !tc.keep {
				if _, err := c.Poll(ctx, 1); !errors.Is(err, sdk.ErrStreamEnded) {
					t.Fatalf("Poll after the subscription ended: %v; want a stream end", err)
				}
			}
			inst := h.instances[0]
			inst.mu.Lock()
			gen := inst.gen
			inst.mu.Unlock()
			if n := gen.streams.Load(); n != tc.wantStreams {
				t.Fatalf("the new process has %d consume streams; want %d", n, tc.wantStreams)
			}
		})
	}
}
