package rocketmq

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqgate/mqgate/plugins/rocketmq/internal/remoting"
	"github.com/mqgate/mqgate/sdk"
)

// A consumer is one member of a RocketMQ consumer group in clustering mode,
// built on the remoting protocol rather than rocketmq-client-go's push or
// pull consumers: those commit offsets on their own schedule (the pull
// consumer even past records it has not handed out), hide assignment
// changes, and buffer without bound. Here:
//
//   - membership is RocketMQ's: a heartbeat to every broker of the topics
//     registers the member, and brokers tell members when the group
//     changes;
//   - each member allocates queues with RocketMQ's default strategy
//     (averagely over the sorted queue and member lists), so mqgate
//     members share a group with Java and Go clients that use it;
//   - offsets move only when the gateway commits, synchronously;
//   - at most eventBuffer pulled batches wait for Poll; pullers block
//     behind them.
const (
	heartbeatInterval = 20 * time.Second
	rebalanceInterval = 20 * time.Second
	// pullSuspendTime is how long a broker holds a pull with nothing to
	// return.
	pullSuspendTime = 15 * time.Second
	eventBuffer     = 8
	retryDelay      = time.Second
)

// clientSeq numbers the consumers of this process; with the host name and
// pid it makes each member's client id unique in its group.
var clientSeq atomic.Int64

type consumer struct {
	b        *Backend
	cfg      config
	rs       *routes
	pool     *pool // this member's own connections: brokers track members by connection
	group    string
	topics   []string // namespaced
	start    sdk.StartPosition
	clientID string
	grace    time.Duration // graceWindow, unless a test shortened it

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // asks for a rebalance now
	holds  chan struct{} // tells graceLoop of a new revocation
	beat   chan struct{} // asks for a heartbeat now
	events chan sdk.ConsumeEvent
	errs   chan error
	closed chan struct{}
	once   sync.Once

	// lockMu orders taking queue locks and starting queues (the rebalance
	// loop) against unlocking queues let go (release commits, the grace
	// running out), so that a queue unlocked as it is let go is not one
	// the rebalance just took back. Lock order: lockMu, then mu.
	lockMu sync.Mutex
	// mu guards owned, held and revocations. Only the rebalance loop
	// changes owned.
	mu    sync.Mutex
	owned map[ownedQueue]*puller
	// held maps queues given up, still locked for the gateway's release
	// commit, to their revocation; revocations lists them in the order of
	// their Revoked events (see grace.go).
	held        map[ownedQueue]*revocation
	revocations []*revocation

	// pending is what the last Poll could not return; only Poll uses it.
	pending []sdk.Record
}

type ownedQueue struct {
	topic string // namespaced
	q     queue
}

type puller struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Consume joins sub.Group. Every topic must exist.
func (b *Backend) Consume(ctx context.Context, sub sdk.Subscription) (sdk.Consumer, error) {
	cfg, _, rs, err := b.state()
	if err != nil {
		return nil, err
	}
	if sub.Group == "" || len(sub.Topics) == 0 {
		return nil, sdk.Errorf(sdk.CodeIllegal, "a subscription needs a group and at least one topic")
	}
	c := &consumer{
		b:      b,
		cfg:    cfg,
		rs:     rs,
		group:  cfg.wrap(sub.Group),
		start:  sub.Start,
		kick:   make(chan struct{}, 1),
		holds:  make(chan struct{}, 1),
		beat:   make(chan struct{}, 1),
		events: make(chan sdk.ConsumeEvent, eventBuffer),
		errs:   make(chan error, 1),
		closed: make(chan struct{}),
		owned:  map[ownedQueue]*puller{},
		held:   map[ownedQueue]*revocation{},
		grace:  graceWindow,
	}
	if b.revokeGrace > 0 {
		c.grace = b.revokeGrace
	}
	for _, t := range sub.Topics {
		name := cfg.wrap(t)
		if _, err := rs.get(ctx, name, false); err != nil {
			return nil, err
		}
		c.topics = append(c.topics, name)
	}
	host, _ := os.Hostname()
	c.clientID = fmt.Sprintf("%s@mqgate-%d-%d-%d", host, os.Getpid(), clientSeq.Add(1), time.Now().UnixNano())
	c.pool = newPool(cfg, func(cmd *remoting.Command) {
		if cmd.Code == remoting.NotifyConsumerIDsChanged {
			c.rebalanceSoon()
		}
	})
	// Brokers know members by connection: a new one (after a broker
	// restart, say) must carry a heartbeat before the next tick, or the
	// group would rebalance this member away.
	c.pool.onDial = func(string) {
		select {
		case c.beat <- struct{}{}:
		default:
		}
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		c.pool.close()
		return nil, errNotConfigured
	}
	b.consumers[c] = struct{}{}
	b.mu.Unlock()

	c.wg.Go(c.heartbeatLoop)
	c.wg.Go(c.rebalanceLoop)
	c.wg.Go(c.graceLoop)
	return c, nil
}

func (c *consumer) rebalanceSoon() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// report hands a non-fatal error to the next Poll, dropping it when one is
// already waiting.
func (c *consumer) report(err error) {
	select {
	case c.errs <- err:
	default:
	}
}

// brokers returns the master addresses serving the subscribed topics.
func (c *consumer) brokers(ctx context.Context, refresh bool) []string {
	var addrs []string
	for _, t := range c.topics {
		r, err := c.rs.get(ctx, t, refresh)
		if err != nil {
			c.report(err)
			continue
		}
		for _, a := range r.addrs {
			if !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
		}
	}
	slices.Sort(addrs)
	return addrs
}

// heartbeatData is the HEART_BEAT body registering this member.
func (c *consumer) heartbeatData() []byte {
	type subscription struct {
		ClassFilterMode bool     `json:"classFilterMode"`
		Topic           string   `json:"topic"`
		SubString       string   `json:"subString"`
		TagsSet         []string `json:"tagsSet"`
		CodeSet         []int    `json:"codeSet"`
		SubVersion      int64    `json:"subVersion"`
		ExpressionType  string   `json:"expressionType"`
	}
	from := "CONSUME_FROM_FIRST_OFFSET"
	if c.start == sdk.StartLatest {
		from = "CONSUME_FROM_LAST_OFFSET"
	}
	var subs []subscription
	for _, t := range c.topics {
		subs = append(subs, subscription{Topic: t, SubString: "*", TagsSet: []string{}, CodeSet: []int{}, SubVersion: 0, ExpressionType: "TAG"})
	}
	body, _ := json.Marshal(map[string]any{
		"clientID":        c.clientID,
		"producerDataSet": []any{},
		"consumerDataSet": []any{map[string]any{
			"groupName":           c.group,
			"consumeType":         "CONSUME_ACTIVELY",
			"messageModel":        "CLUSTERING",
			"consumeFromWhere":    from,
			"subscriptionDataSet": subs,
			"unitMode":            false,
		}},
	})
	return body
}

// heartbeat registers this member with every broker of its topics. It
// reports whether every broker took it.
func (c *consumer) heartbeat(refresh bool) bool {
	ok := true
	body := c.heartbeatData()
	for _, addr := range c.brokers(c.ctx, refresh) {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		resp, err := c.pool.invoke(ctx, addr, remoting.NewRequest(remoting.HeartBeat, nil, body))
		cancel()
		if err == nil && resp.Code != remoting.Success {
			err = brokerError("heartbeat", resp)
		}
		if err != nil {
			ok = false
			if c.ctx.Err() == nil {
				c.report(err)
			}
		}
	}
	return ok
}

func (c *consumer) heartbeatLoop() {
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.heartbeat(true)
		case <-c.beat:
			c.heartbeat(false)
		}
	}
}

func (c *consumer) rebalanceLoop() {
	// The first heartbeat must land before the first rebalance: a broker
	// lists only members it has heard from.
	for !c.heartbeat(false) {
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(retryDelay):
		}
	}
	t := time.NewTicker(rebalanceInterval)
	defer t.Stop()
	for {
		retry := false
		for _, topic := range c.topics {
			if !c.rebalance(topic) {
				retry = true
			}
		}
		wait := t.C
		var again <-chan time.Time
		if retry {
			again = time.After(retryDelay)
		}
		select {
		case <-c.ctx.Done():
			c.stopAll()
			return
		case <-wait:
		case <-again:
		case <-c.kick:
		}
	}
}

// rebalance brings this member's queues of topic in line with the group's
// allocation. It reports false when it could not complete.
func (c *consumer) rebalance(topic string) bool {
	r, err := c.rs.get(c.ctx, topic, false)
	if err != nil {
		c.report(err)
		return false
	}
	members, err := c.members(r)
	if err != nil {
		if c.ctx.Err() == nil {
			c.report(err)
		}
		return false
	}
	// A member the broker does not list (not registered yet, or dropped
	// with its connection) owns nothing: the others have its queues. It
	// gives up what it holds and tries again once heartbeats register it.
	registered := slices.Contains(members, c.clientID)
	want := allocateAveragely(r.read, members, c.clientID)

	c.mu.Lock()
	var revoked []ownedQueue
	for oq := range c.owned {
		if oq.topic == topic && !slices.Contains(want, oq.q) {
			revoked = append(revoked, oq)
		}
	}
	c.mu.Unlock()
	if len(revoked) > 0 {
		// Held before they stop: a commit of them is never refused.
		c.hold(revoked)
		ev := sdk.ConsumeEvent{}
		for _, oq := range revoked {
			c.stop(oq)
			ev.Revoked = append(ev.Revoked, sdk.Offset{Topic: c.cfg.unwrap(topic), Qid: oq.q.qid(), Offset: -1})
		}
		if !c.emit(ev) {
			return false
		}
	}

	start, ok := c.lockWanted(r, topic, want)
	var assigned []sdk.Offset
	for _, q := range start {
		offset, err := c.startOffset(r, topic, q)
		if err != nil {
			if c.ctx.Err() == nil {
				c.report(err)
			}
			ok = false
			continue
		}
		assigned = append(assigned, sdk.Offset{Topic: c.cfg.unwrap(topic), Qid: q.qid(), Offset: offset})
		// The Assigned event goes out before any record of the queue.
		if !c.emit(sdk.ConsumeEvent{Assigned: assigned[len(assigned)-1:]}) {
			return false
		}
		c.startPuller(r, ownedQueue{topic, q}, offset)
	}
	return ok && registered
}

// lockWanted locks the queues of topic this member should own, and the
// queues it holds for a release commit, renewing the locks it has. It
// returns the wanted queues to start: locked, and neither owned already
// nor held. ok is false when a wanted queue could not start: its previous
// owner still holds it (this member included); the caller tries again
// soon.
//
// A queue starts only once its previous owner let go (no message is handed
// to two members at once), and a held one only once its release commit
// stored the offset to start from. Held queues renew their locks, as
// RocketMQ's orderly consumers keep locking a queue they are still
// finishing, until the release commit or the grace lets them go.
func (c *consumer) lockWanted(r *route, topic string, want []queue) (start []queue, ok bool) {
	c.lockMu.Lock()
	defer c.lockMu.Unlock()
	byBroker := map[string][]queue{}
	for _, q := range want {
		byBroker[q.broker] = append(byBroker[q.broker], q)
	}
	c.mu.Lock()
	for _, q := range c.heldQueuesLocked(topic) {
		if !slices.Contains(want, q) {
			byBroker[q.broker] = append(byBroker[q.broker], q)
		}
	}
	c.mu.Unlock()
	lockedSet := map[queue]bool{}
	for broker, qs := range byBroker {
		got, err := c.lockQueues(r.addrs[broker], topic, qs)
		if err != nil {
			if c.ctx.Err() == nil {
				c.report(err)
			}
			continue
		}
		for _, q := range got {
			lockedSet[q] = true
		}
	}
	ok = true
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range want {
		oq := ownedQueue{topic, q}
		_, have := c.owned[oq]
		_, held := c.held[oq]
		switch {
		case have:
		case !lockedSet[q] || held:
			ok = false
		default:
			start = append(start, q)
		}
	}
	return start, ok
}

// members lists the group's client ids as a broker of the topic knows them.
func (c *consumer) members(r *route) ([]string, error) {
	addrs := make([]string, 0, len(r.addrs))
	for _, a := range r.addrs {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	var lastErr error
	for _, addr := range addrs {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		resp, err := c.pool.invoke(ctx, addr, remoting.NewRequest(remoting.GetConsumerListByGroup, fields("consumerGroup", c.group), nil))
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		if resp.Code != remoting.Success {
			lastErr = brokerError("listing members of "+c.cfg.unwrap(c.group), resp)
			continue
		}
		var body struct {
			ConsumerIDList []string `json:"consumerIdList"`
		}
		if err := json.Unmarshal(resp.Body, &body); err != nil {
			lastErr = sdk.Errorf(sdk.CodeInternal, "rocketmq broker %s: bad consumer list: %v", addr, err)
			continue
		}
		slices.Sort(body.ConsumerIDList)
		return body.ConsumerIDList, nil
	}
	return nil, lastErr
}

// lockQueues asks the broker at addr to lock qs of topic for this member
// (LOCK_BATCH_MQ, as RocketMQ's orderly consumers do) and returns those it
// got. A queue stays locked for a minute unless locked again; its previous
// owner unlocks it once the gateway's release commit of it is stored, or
// the grace for that ran out (see grace.go).
func (c *consumer) lockQueues(addr, topic string, qs []queue) ([]queue, error) {
	type mq struct {
		Topic      string `json:"topic"`
		BrokerName string `json:"brokerName"`
		QueueID    int    `json:"queueId"`
	}
	var set []mq
	for _, q := range qs {
		set = append(set, mq{topic, q.broker, q.id})
	}
	body, _ := json.Marshal(map[string]any{"consumerGroup": c.group, "clientId": c.clientID, "mqSet": set})
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	resp, err := c.pool.invoke(ctx, addr, remoting.NewRequest(remoting.LockBatchMQ, nil, body))
	if err != nil {
		return nil, err
	}
	if resp.Code != remoting.Success {
		return nil, brokerError("locking queues of "+c.cfg.unwrap(topic), resp)
	}
	var out struct {
		Locked []mq `json:"lockOKMQSet"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "rocketmq broker %s: bad lock answer: %v", addr, err)
	}
	var got []queue
	for _, m := range out.Locked {
		got = append(got, queue{m.BrokerName, m.QueueID})
	}
	return got, nil
}

// unlockQueues releases queues this member locked.
func (c *consumer) unlockQueues(ctx context.Context, oqs []ownedQueue) {
	byTopic := map[string][]queue{}
	for _, oq := range oqs {
		byTopic[oq.topic] = append(byTopic[oq.topic], oq.q)
	}
	for topic, qs := range byTopic {
		r, err := c.rs.get(ctx, topic, false)
		if err != nil {
			continue
		}
		type mq struct {
			Topic      string `json:"topic"`
			BrokerName string `json:"brokerName"`
			QueueID    int    `json:"queueId"`
		}
		byBroker := map[string][]mq{}
		for _, q := range qs {
			byBroker[q.broker] = append(byBroker[q.broker], mq{topic, q.broker, q.id})
		}
		for broker, set := range byBroker {
			body, _ := json.Marshal(map[string]any{"consumerGroup": c.group, "clientId": c.clientID, "mqSet": set})
			c.pool.invoke(ctx, r.addrs[broker], remoting.NewRequest(remoting.UnlockBatchMQ, nil, body)) // best effort: locks expire
		}
	}
}

// allocateAveragely is RocketMQ's default allocation: queues (sorted)
// split into contiguous runs, the first len(queues)%len(members) members
// (sorted) taking one extra.
func allocateAveragely(queues []queue, members []string, me string) []queue {
	index := slices.Index(members, me)
	if index < 0 || len(queues) == 0 {
		return nil
	}
	n, m := len(queues), len(members)
	mod := n % m
	size := n / m
	if n <= m {
		size = 1
	} else if mod > 0 && index < mod {
		size++
	}
	start := index*size + mod
	if mod > 0 && index < mod {
		start = index * size
	}
	var out []queue
	for i := 0; i < min(size, n-start); i++ {
		out = append(out, queues[(start+i)%n])
	}
	return out
}

// startOffset is where consumption of q begins: the group's commit, or the
// subscription's start position.
func (c *consumer) startOffset(r *route, topic string, q queue) (int64, error) {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	addr := r.addrs[q.broker]
	off, err := committedOffset(ctx, c.pool, addr, c.group, topic, q)
	if err != nil || off >= 0 {
		return off, err
	}
	if c.start == sdk.StartLatest {
		return maxOffset(ctx, c.pool, addr, topic, q)
	}
	return minOffset(ctx, c.pool, addr, topic, q)
}

// emit queues ev for Poll; false when the consumer is closing.
func (c *consumer) emit(ev sdk.ConsumeEvent) bool {
	select {
	case c.events <- ev:
		return true
	case <-c.ctx.Done():
		return false
	}
}

func (c *consumer) startPuller(r *route, oq ownedQueue, offset int64) {
	ctx, cancel := context.WithCancel(c.ctx)
	p := &puller{cancel: cancel, done: make(chan struct{})}
	c.mu.Lock()
	c.owned[oq] = p
	c.mu.Unlock()
	go func() {
		defer close(p.done)
		c.pullLoop(ctx, r, oq, offset)
	}()
}

// stop ends the puller of oq and waits for it.
func (c *consumer) stop(oq ownedQueue) {
	c.mu.Lock()
	p := c.owned[oq]
	delete(c.owned, oq)
	c.mu.Unlock()
	if p != nil {
		p.cancel()
		<-p.done
	}
}

func (c *consumer) stopAll() {
	c.mu.Lock()
	var all []ownedQueue
	for oq := range c.owned {
		all = append(all, oq)
	}
	c.mu.Unlock()
	for _, oq := range all {
		c.stop(oq)
	}
}

// pullLoop long-polls one queue and hands what it gets to Poll.
func (c *consumer) pullLoop(ctx context.Context, r *route, oq ownedQueue, offset int64) {
	topic := c.cfg.unwrap(oq.topic)
	for ctx.Err() == nil {
		addr := r.addrs[oq.q.broker]
		pr, err := pull(ctx, c.pool, addr, c.group, oq.topic, oq.q, offset, defaultPullMessages, pullSuspendTime)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.report(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(retryDelay):
			}
			if nr, err := c.rs.get(ctx, oq.topic, true); err == nil && nr.addrs[oq.q.broker] != "" {
				r = nr
			}
			continue
		}
		switch {
		case pr.found:
			var recs []sdk.Record
			for _, m := range pr.msgs {
				if m.QueueOffset >= offset {
					recs = append(recs, toRecord(m, topic, r))
				}
			}
			if len(recs) > 0 {
				select {
				case c.events <- sdk.ConsumeEvent{Records: recs}:
				case <-ctx.Done():
					return
				}
			}
			offset = pr.next
		case pr.moved:
			// The queue no longer holds offset (retention removed it, or it
			// is past the end): continue where the broker says, as
			// RocketMQ's clients do.
			c.report(sdk.Errorf(sdk.CodeIllegal, "topic %s qid %s: offset %d out of range [%d, %d]; continuing at %d",
				topic, oq.q.qid(), offset, pr.min, pr.max, pr.next))
			offset = pr.next
		default:
			if pr.next > offset {
				offset = pr.next
			}
		}
	}
}

// Poll returns the next records or assignment change.
func (c *consumer) Poll(ctx context.Context, maxRecords int) (sdk.ConsumeEvent, error) {
	if maxRecords < 1 {
		maxRecords = 1
	}
	if len(c.pending) == 0 {
		select {
		case ev := <-c.events:
			if len(ev.Records) == 0 {
				return ev, nil
			}
			c.pending = ev.Records
		case err := <-c.errs:
			return sdk.ConsumeEvent{}, err
		case <-c.closed:
			return sdk.ConsumeEvent{}, sdk.ErrStreamEnded
		case <-ctx.Done():
			return sdk.ConsumeEvent{}, ctx.Err()
		}
	}
	n := min(maxRecords, len(c.pending))
	recs := c.pending[:n:n]
	c.pending = c.pending[n:]
	return sdk.ConsumeEvent{Records: recs}, nil
}

// Commit stores offsets of queues this member owns, and of queues it gave
// up and holds for the gateway's release commit (see grace.go). Other
// queues are refused with CodeNotFound, and nothing is stored: their new
// owner's progress must not be moved back. A release commit then unlocks
// the queues of its revocation for their next owner, stored or not: the
// gateway commits none of them again.
func (c *consumer) Commit(ctx context.Context, offsets []sdk.Offset) error {
	queues := make([]ownedQueue, len(offsets))
	for i, o := range offsets {
		q, err := parseQid(o.Qid)
		if err != nil {
			return sdk.Errorf(sdk.CodeIllegal, "topic %s: %v", o.Topic, err)
		}
		queues[i] = ownedQueue{c.cfg.wrap(o.Topic), q}
	}
	var err error
	c.mu.Lock()
	answered := c.answeredByLocked(offsets, queues)
	for i, oq := range queues {
		_, own := c.owned[oq]
		if _, held := c.held[oq]; !own && !held {
			o := offsets[i]
			err = sdk.Errorf(sdk.CodeNotFound, "topic %s qid %s is not assigned to this member of group %s", o.Topic, o.Qid, c.cfg.unwrap(c.group))
			break
		}
	}
	c.mu.Unlock()
	if err == nil {
		err = commitOffsets(ctx, c.cfg, c.pool, c.rs, c.group, offsets)
	}
	if answered != nil {
		c.release(answered)
	}
	return err
}

// Close leaves the group: the brokers drop the member at once and tell the
// others to rebalance.
func (c *consumer) Close() error {
	c.once.Do(func() {
		c.cancel()
		c.wg.Wait()
		c.stopAll()
		close(c.closed)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Every queue of the topics, not only those owned: a rebalance
		// that the cancel interrupted may have locked queues it never
		// recorded, and those would stay locked to no one until they
		// expire. A broker unlocks only this member's locks.
		var all []ownedQueue
		for _, t := range c.topics {
			if r, err := c.rs.get(ctx, t, false); err == nil {
				for _, q := range r.read {
					all = append(all, ownedQueue{t, q})
				}
			}
		}
		c.unlockQueues(ctx, all)
		for _, addr := range c.brokers(ctx, false) {
			req := remoting.NewRequest(remoting.UnregisterClient, fields("clientID", c.clientID, "producerGroup", "", "consumerGroup", c.group), nil)
			c.pool.invoke(ctx, addr, req) // best effort: the connection closing drops the member too
		}
		c.pool.close()
		c.b.mu.Lock()
		delete(c.b.consumers, c) // nil after Backend.Close: a no-op
		c.b.mu.Unlock()
	})
	return nil
}
