package kafka

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/mqgate/mqgate/internal/nofile"
	"github.com/mqgate/mqgate/sdk"
)

// The embedded broker (kfake) keeps two files open for every partition it
// has written to: the active segment and its index (kfake's
// persist.go, openSegmentFiles), until the segment rolls, retention empties
// the partition, the topic is deleted or the broker closes. Sealed segments
// it has read from keep a third, cached read handle each. Nothing in
// kfake's options closes idle ones, so the number of topics is what bounds
// the descriptors; max_topics bounds it.
const (
	// fdsPerPartition is what one written partition holds open.
	fdsPerPartition = 2
	// maxDefaultMaxTopics caps the default of max_topics however high the
	// descriptor limit is: the embedded broker answers every request on
	// one goroutine, and a metadata request lists every topic.
	maxDefaultMaxTopics = 10_000
	// fdReserveMax is the most descriptors the default of max_topics keeps
	// back from topics, for connections (each Kafka client of the plugin
	// holds up to three to the broker, and the broker the other ends, in
	// the same process), the gRPC link to the gateway and state files.
	fdReserveMax = 1024
	// fdMemory is how long a descriptor shortage is remembered after it
	// was last seen: the shortage is a state of the process, and a failed
	// open or accept is only a sample of it.
	fdMemory = 10 * time.Second
)

// defaultMaxTopics is the default of max_topics for a process that may
// hold soft descriptors and topics of partitions partitions each: what is
// left after a reserve (half the limit, at most fdReserveMax), at two
// descriptors per partition, at least 1 and at most maxDefaultMaxTopics.
func defaultMaxTopics(soft uint64, partitions int32) int {
	reserve := min(soft/2, fdReserveMax)
	perTopic := uint64(fdsPerPartition) * uint64(max(partitions, 1))
	n := (soft - reserve) / perTopic
	return int(max(min(n, maxDefaultMaxTopics), 1))
}

// isFDShortage reports whether err says the process (EMFILE) or the
// system (ENFILE) is out of file descriptors.
func isFDShortage(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// fdWatch tracks whether the plugin process is out of file descriptors.
// It learns it from the errors the embedded broker logs and its listener
// meets (observe), and by opening one descriptor itself when asked. It is
// safe for concurrent use.
type fdWatch struct {
	mu    sync.Mutex
	last  time.Time // when a shortage was last seen; zero if never
	cause string    // the error seen then
	// advice is what the error tells the operator to do.
	advice string
	// probe opens and closes one descriptor.
	probe func() error
}

func newFDWatch() *fdWatch {
	return &fdWatch{probe: func() error {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return err
		}
		return f.Close()
	}}
}

// observe records err if it is a descriptor shortage, and reports whether
// it was.
func (w *fdWatch) observe(err error) bool {
	if err == nil || !isFDShortage(err) {
		return false
	}
	w.mu.Lock()
	w.last, w.cause = time.Now(), err.Error()
	w.mu.Unlock()
	return true
}

// shortage returns nil while the process can open descriptors, else a
// code 17 error naming the cause and the limit: when opening one fails
// now, or a shortage was seen in the last fdMemory.
func (w *fdWatch) shortage() error {
	probeErr := w.probe()
	now := time.Now()
	w.mu.Lock()
	if isFDShortage(probeErr) {
		// What the broker ran into says more than the probe.
		if now.Sub(w.last) > fdMemory {
			w.cause = probeErr.Error()
		}
		w.last = now
	}
	last, cause, advice := w.last, w.cause, w.advice
	w.mu.Unlock()
	if last.IsZero() || now.Sub(last) > fdMemory {
		return nil
	}
	limit := "unknown"
	if soft, _, ok := nofile.Limit(); ok {
		limit = fmt.Sprint(soft)
	}
	return sdk.Errorf(sdk.CodeUnavailable,
		"the kafka plugin is out of file descriptors (RLIMIT_NOFILE %s): %s%s", limit, cause, advice)
}

// advise sets what shortage's error tells the operator to do.
func (w *fdWatch) advise(embedded bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if embedded {
		w.advice = fmt.Sprintf(": the embedded broker holds %d per partition written; delete topics no longer used, or lower max_topics, or raise the limit (LimitNOFILE, ulimit -n) and restart", fdsPerPartition)
	} else {
		w.advice = ": raise the limit (LimitNOFILE, ulimit -n) and restart"
	}
}

// patientListener is the embedded broker's listener. kfake stops
// accepting for good on any Accept error (broker.listen returns), so one
// EMFILE would leave the broker deaf to new connections until restart;
// this listener instead waits and tries again, as net/http's server does,
// tells watch, and logs when it starts and stops waiting.
type patientListener struct {
	net.Listener
	watch  *fdWatch
	logger *slog.Logger
	closed chan struct{}
	once   sync.Once
}

func newPatientListener(ln net.Listener, watch *fdWatch, logger *slog.Logger) *patientListener {
	return &patientListener{Listener: ln, watch: watch, logger: logger, closed: make(chan struct{})}
}

// Accept returns the next connection. While the process is out of
// descriptors it retries, backing off from 5 ms to a second, until a
// descriptor frees up or the listener is closed.
func (l *patientListener) Accept() (net.Conn, error) {
	wait := 5 * time.Millisecond
	for {
		conn, err := l.Listener.Accept()
		if err == nil || !l.watch.observe(err) {
			if err == nil && wait > 5*time.Millisecond {
				l.logger.Info("embedded broker accepting connections again")
			}
			return conn, err
		}
		if wait == 5*time.Millisecond {
			l.logger.Warn("embedded broker cannot accept connections, out of file descriptors; waiting for some to free up", "error", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-l.closed:
			t.Stop()
			return nil, net.ErrClosed
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// Close closes the listener and ends an Accept waiting out a shortage.
func (l *patientListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}
