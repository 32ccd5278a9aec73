package pluginhost

import "time"

// exitPoll is how often pollExit looks at go-plugin's exit flag, where
// the process cannot be waited for directly.
const exitPoll = 100 * time.Millisecond

// pollExit returns a channel closed once exited reports true; it checks
// every exitPoll. The goroutine ends with the process.
func pollExit(exited func() bool) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		t := time.NewTicker(exitPoll)
		defer t.Stop()
		for !exited() {
			<-t.C
		}
	}()
	return ch
}
