package kafka

import (
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// reachability remembers how the last dials to the brokers went, so a call
// that runs out of time while no broker can be reached says so (code 17,
// retriable) rather than reporting a plain timeout.
type reachability struct {
	mu      sync.Mutex
	lastErr error     // the last failed dial
	failAt  time.Time // when it failed
	okAt    time.Time // the last successful dial
}

var _ kgo.HookBrokerConnect = (*reachability)(nil)

// OnBrokerConnect records each dial's outcome.
func (r *reachability) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.lastErr, r.failAt = err, time.Now()
		return
	}
	r.okAt = time.Now()
}

// unreachable returns the last dial error when no dial has succeeded since.
func (r *reachability) unreachable() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastErr != nil && r.failAt.After(r.okAt) {
		return r.lastErr
	}
	return nil
}
