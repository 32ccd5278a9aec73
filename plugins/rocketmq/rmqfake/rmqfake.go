// Package rmqfake is a FAKE RocketMQ name server and broker for tests. It is
// not a RocketMQ broker: it was written from reading rocketmq-client-go's
// source (v2.1.2) and serves just enough of the remoting protocol, from an
// in-memory store, for that client (and this repository's plugin) to
// produce, pull-consume, commit offsets, retry and dead-letter messages.
//
// One TCP listener answers both the name-server request codes and the broker
// request codes; the route data it hands out points the broker address back
// at the same listener. There is a single broker (id 0, a master) in a single
// cluster. Nothing is written to disk.
//
// Deliberate differences from a real broker, for tests' sake:
//   - A route lookup for a "%RETRY%group" topic creates it (one queue), as
//     if the group had heart-beaten before; a real broker creates it on the
//     first heartbeat, which a new client only picks up on its next 30 s
//     route refresh.
//   - QUERY_CONSUMER_OFFSET answers QUERY_NOT_FOUND for a group without an
//     offset; a real broker answers 0 while the queue's first message is
//     still in memory, so a new group there starts from the beginning.
//   - No SQL92 filtering, transactions, request/reply, ACL or slaves.
package rmqfake

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqgate/mqgate/plugins/rocketmq/internal/remoting"
)

// Options configure a Fake. The zero value is usable.
type Options struct {
	// Addr is the TCP address to listen on; default "127.0.0.1:0".
	Addr string
	// Listener, when set, is used instead of listening on Addr: a test
	// can hand the fake a port it holds, with no window in which another
	// process could take it. Close closes it.
	Listener net.Listener
	// DefaultQueues is the queue count of topics created without one and of
	// auto-created topics; default 4.
	DefaultQueues int
	// AutoCreateTopics makes sends to unknown topics create them, as a broker
	// with autoCreateTopicEnable=true does (the "TBW102" default-topic route
	// is then served). By default an unknown topic gets TOPIC_NOT_EXIST.
	AutoCreateTopics bool
	// ClusterName and BrokerName name the single broker; defaults
	// "DefaultCluster" and "broker-a".
	ClusterName, BrokerName string
	// RetryDelay is how long a message with delay level level (1-based) is
	// held back: delay-level sends and consumer send-backs. Default
	// DefaultRetryDelay.
	RetryDelay func(level int) time.Duration
	// ClientExpiry drops a consumer that has not sent a heartbeat for this
	// long; default 120 s. Consumers are also dropped when their connection
	// closes.
	ClientExpiry time.Duration
	// Handled, when set, is called with every request after the fake has
	// applied it and before it answers; the answer waits for it to
	// return. Tests use it to hold an answer, as a slow network would.
	Handled func(code int16)
	// LockLifetime is how long a queue lock (LOCK_BATCH_MQ) lasts without
	// renewal; default 60 s, a broker's rocketmq.broker.rebalance.lockMaxLiveTime.
	// Tests that kill a member shorten it so its queues free up sooner.
	LockLifetime time.Duration
}

// delayLevels are RocketMQ's default messageDelayLevel.
var delayLevels = []time.Duration{
	time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute, 5 * time.Minute,
	6 * time.Minute, 7 * time.Minute, 8 * time.Minute, 9 * time.Minute, 10 * time.Minute,
	20 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour,
}

// maxDelayLevel is the highest delay level; higher ones are clamped to it.
const maxDelayLevel = 18

// DefaultRetryDelay is RocketMQ's default delay for a level: 1s 5s 10s 30s
// 1m 2m ... 10m 20m 30m 1h 2h for levels 1 to 18.
func DefaultRetryDelay(level int) time.Duration {
	return delayLevels[min(max(level, 1), maxDelayLevel)-1]
}

// Fake is a running fake name server and broker.
type Fake struct {
	opts      Options
	ln        net.Listener
	addr      string  // advertised address, host:port
	storeHost [8]byte // IPv4 and port of addr, as in the store encoding

	paused atomic.Bool // sends go unanswered, as on a hung broker

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu        sync.Mutex
	topics    map[string]*topic
	commitLog map[int64]*stored // by physical offset, for send-back
	physical  int64             // next physical offset
	schedule  [maxDelayLevel]int64
	timers    map[*time.Timer]struct{}
	offsets   map[offsetKey]int64
	groups    map[string]map[string]*member // group -> clientID -> member
	locks     map[lockKey]lockOwner
	conns     map[*conn]struct{}
	opaque    int32
}

// Start listens and serves until Close.
func Start(opts Options) (*Fake, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.DefaultQueues <= 0 {
		opts.DefaultQueues = 4
	}
	if opts.LockLifetime <= 0 {
		opts.LockLifetime = defaultLockLifetime
	}
	opts.DefaultQueues = min(opts.DefaultQueues, maxQueues)
	if opts.ClusterName == "" {
		opts.ClusterName = "DefaultCluster"
	}
	if opts.BrokerName == "" {
		opts.BrokerName = "broker-a"
	}
	if opts.RetryDelay == nil {
		opts.RetryDelay = DefaultRetryDelay
	}
	if opts.ClientExpiry <= 0 {
		opts.ClientExpiry = 120 * time.Second
	}
	ln := opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", opts.Addr); err != nil {
			return nil, err
		}
	}
	tcp := ln.Addr().(*net.TCPAddr)
	ip := tcp.IP.To4()
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1).To4()
	}
	f := &Fake{
		opts: opts, ln: ln,
		addr:      net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port)),
		storeHost: hostBytes(ip, tcp.Port),
		done:      make(chan struct{}),
		topics:    map[string]*topic{},
		commitLog: map[int64]*stored{},
		timers:    map[*time.Timer]struct{}{},
		offsets:   map[offsetKey]int64{},
		groups:    map[string]map[string]*member{},
		locks:     map[lockKey]lockOwner{},
		conns:     map[*conn]struct{}{},
	}
	if opts.AutoCreateTopics {
		f.topics[defaultTopic] = newTopic(defaultTopic, opts.DefaultQueues, opts.DefaultQueues, permRead|permWrite|permInherit)
	}
	f.wg.Add(2)
	go f.acceptLoop()
	go f.expiryLoop()
	return f, nil
}

// Addr is the address clients should use both as name server and broker.
func (f *Fake) Addr() string { return f.addr }

// Close stops the listener, closes every connection and drops pending
// delayed messages. It is safe to call more than once.
func (f *Fake) Close() error {
	var err error
	f.closeOnce.Do(func() {
		close(f.done)
		err = f.ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.nc.Close()
		}
		for t := range f.timers {
			t.Stop()
		}
		clear(f.timers)
		f.mu.Unlock()
		f.wg.Wait()
	})
	return err
}

func (f *Fake) closed() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

func (f *Fake) acceptLoop() {
	defer f.wg.Done()
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !f.closed() {
				continue
			}
			return
		}
		c := &conn{f: f, nc: nc, done: make(chan struct{})}
		f.mu.Lock()
		if f.closed() {
			f.mu.Unlock()
			nc.Close()
			return
		}
		f.conns[c] = struct{}{}
		f.wg.Add(1)
		f.mu.Unlock()
		go c.serve()
	}
}

// expiryLoop drops consumers whose heartbeats stopped.
func (f *Fake) expiryLoop() {
	defer f.wg.Done()
	tick := time.NewTicker(min(max(f.opts.ClientExpiry/4, 10*time.Millisecond), 5*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-f.done:
			return
		case now := <-tick.C:
			f.expire(now)
		}
	}
}

// expire drops the consumers whose last heartbeat is more than
// ClientExpiry before now.
func (f *Fake) expire(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropMembers(func(m *member) bool { return now.Sub(m.lastBeat) > f.opts.ClientExpiry })
}

// conn is one client connection.
type conn struct {
	f    *Fake
	nc   net.Conn
	wmu  sync.Mutex
	done chan struct{} // closed when the connection ends
	// mute is set, under wmu, once a write failed: nothing more is
	// answered, but requests are still read and applied until the client
	// hangs up.
	mute bool
	// groups are the consumer groups this connection sent heartbeats
	// for, members still or not; f.mu guards it.
	groups map[string]bool
}

// writeTimeout bounds a write to a client that does not read.
const writeTimeout = 5 * time.Second

func (c *conn) serve() {
	defer c.f.wg.Done()
	defer c.close()
	r := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		// A frame that does not decode leaves the stream unusable: drop
		// the connection, as a broker does.
		cmd, err := remoting.ReadCommand(r, maxFrame)
		if err != nil {
			return
		}
		if cmd.IsResponse() {
			continue // we only send one-way requests
		}
		if cmd.Code == remoting.PullMessage {
			// Applied in order; answered out of order, since a long
			// poll may hold the answer.
			answer := c.f.start(c, cmd)
			c.f.wg.Add(1)
			go func() {
				defer c.f.wg.Done()
				c.reply(cmd, answer())
			}()
			continue
		}
		if c.f.paused.Load() && isSend(cmd.Code) {
			continue // read and dropped: the sender waits, as on a hung broker
		}
		c.reply(cmd, c.f.handle(c, cmd))
	}
}

func isSend(code int16) bool {
	return code == remoting.SendMessage || code == remoting.SendMessageV2 || code == remoting.SendBatchMessage
}

// Pause makes the broker stop answering send requests (true) and answer
// them again (false). A send read while paused is dropped, never stored.
func (f *Fake) Pause(on bool) { f.paused.Store(on) }

func (c *conn) reply(req, resp *remoting.Command) {
	if resp != nil && !req.IsOneway() {
		c.send(resp)
	}
}

func (c *conn) send(cmd *remoting.Command) {
	frame, err := cmd.Encode()
	if err != nil {
		return
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.mute {
		return
	}
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.nc.Write(frame); err != nil {
		// The client hung up, or does not read. Closing the connection
		// here would drop the requests it sent before and the fake has
		// not read yet (rocketmq-client-go sends its last offset updates
		// as requests it does not wait for, and then hangs up): close
		// only the sending side, and read on until the client hangs up.
		c.mute = true
		if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite() // the peer may be gone already
		} else {
			c.nc.Close()
		}
	}
}

func (c *conn) close() {
	c.wmu.Lock() // let a response being written finish
	c.nc.Close()
	c.wmu.Unlock()
	f := c.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.conns[c]; !ok {
		return
	}
	delete(f.conns, c)
	close(c.done)
	f.dropMembers(func(m *member) bool { return m.conn == c })
}

// notifyLocked sends NOTIFY_CONSUMER_IDS_CHANGED for group to conns in the
// background. f.mu must be held.
func (f *Fake) notifyLocked(group string, conns []*conn) {
	if f.closed() {
		return
	}
	for _, c := range conns {
		f.opaque++
		cmd := remoting.NewRequest(remoting.NotifyConsumerIDsChanged, map[string]string{"consumerGroup": group}, nil)
		cmd.Flag, cmd.Opaque = remoting.FlagOneway, f.opaque
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			c.send(cmd)
		}()
	}
}

// Topics lists the topics the fake holds, sorted.
func (f *Fake) Topics() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, 0, len(f.topics))
	for name := range f.topics {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// CreateTopic creates topic with queues read and write queues (DefaultQueues
// if queues <= 0), or grows an existing one; it never shrinks a topic.
func (f *Fake) CreateTopic(name string, queues int) error {
	if queues <= 0 {
		queues = f.opts.DefaultQueues
	}
	if err := validTopic(name); err != nil {
		return err
	}
	if queues > maxQueues {
		return fmt.Errorf("rmqfake: %d queues exceed %d", queues, maxQueues)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.createTopic(name, queues, queues, permRead|permWrite)
	return nil
}

// Messages returns copies of the messages stored in a queue, in offset
// order. Delayed messages appear once they are due.
func (f *Fake) Messages(topic string, queue int) []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.topics[topic]
	if t == nil || queue < 0 || queue >= len(t.queues) {
		return nil
	}
	msgs := make([]Message, len(t.queues[queue].msgs))
	for i, s := range t.queues[queue].msgs {
		msgs[i] = s.copy()
	}
	return msgs
}

// ConsumerOffset is the committed offset of group in a queue.
func (f *Fake) ConsumerOffset(group, topic string, queue int) (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	off, ok := f.offsets[offsetKey{group, topic, queue}]
	return off, ok && off >= 0
}

// Consumers lists the client IDs of group's live consumers, sorted.
func (f *Fake) Consumers(group string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.consumerIDs(group)
}
