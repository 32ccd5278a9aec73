package kafka

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// maxFetchClients bounds the clients a fetchPool makes: the Fetch calls
// that run at once with a connection of their own. Past it, calls share
// the admin client's.
const maxFetchClients = 16

// A fetchPool lends each Fetch call a client, and so a connection to each
// broker, of its own. A broker answers a connection's requests one at a
// time, in order, and a fetch with nothing to read holds its connection
// for its whole wait: on one shared connection, the gateway's own long
// polls (the delay cancels and the group subscriptions wait 5 s each) held
// a client's fetch with a 100 ms linger behind them for seconds.
type fetchPool struct {
	newClient func() (*kgo.Client, error)

	mu     sync.Mutex
	idle   []*kgo.Client
	made   int
	closed bool
}

// get returns a client of the caller's own and the function that gives it
// back, or shared and a no-op when the pool is spent or a client cannot
// be made.
func (p *fetchPool) get(shared *kgo.Client) (*kgo.Client, func()) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		cl := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return cl, func() { p.put(cl) }
	}
	if p.closed || p.made >= maxFetchClients {
		p.mu.Unlock()
		return shared, func() {}
	}
	p.made++
	p.mu.Unlock()
	cl, err := p.newClient()
	if err != nil {
		p.mu.Lock()
		p.made--
		p.mu.Unlock()
		return shared, func() {}
	}
	return cl, func() { p.put(cl) }
}

func (p *fetchPool) put(cl *kgo.Client) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		cl.Close()
		return
	}
	p.idle = append(p.idle, cl)
	p.mu.Unlock()
}

// close closes the idle clients, and those lent out as they come back.
func (p *fetchPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, cl := range idle {
		cl.Close()
	}
}
