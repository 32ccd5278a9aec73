package rmqfake

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/mqgate/mqgate/plugins/rocketmq/internal/remoting"
)

// member is one consumer client in a group.
type member struct {
	conn     *conn
	lastBeat time.Time
	subs     map[string]string // topic -> TAG expression
}

type offsetKey struct {
	group, topic string
	queue        int
}

type lockKey struct {
	group, topic string
	queue        int
}

type lockOwner struct {
	client  string
	expires time.Time
}

// defaultLockLifetime is how long a queue lock lasts without renewal
// (REBALANCE_LOCK_MAX_LIVE_TIME) unless Options.LockLifetime says otherwise.
const defaultLockLifetime = 60 * time.Second

// consumerIDs lists group's members, sorted. f.mu must be held.
func (f *Fake) consumerIDs(group string) []string {
	return slices.Sorted(maps.Keys(f.groups[group]))
}

// dropMembers removes the members gone reports and tells the rest of their
// groups. f.mu must be held.
func (f *Fake) dropMembers(gone func(*member) bool) {
	for group, members := range f.groups {
		changed := false
		for id, m := range members {
			if gone(m) {
				delete(members, id)
				changed = true
			}
		}
		if len(members) == 0 {
			delete(f.groups, group)
		} else if changed {
			f.notifyLocked(group, memberConns(members, nil))
		}
	}
}

func memberConns(members map[string]*member, except *conn) []*conn {
	var conns []*conn
	for _, m := range members {
		if m.conn != except && !slices.Contains(conns, m.conn) {
			conns = append(conns, m.conn)
		}
	}
	return conns
}

// heartbeatData is the HEART_BEAT body.
type heartbeatData struct {
	ClientID  string `json:"clientID"`
	Consumers []struct {
		GroupName     string `json:"groupName"`
		Subscriptions []struct {
			Topic     string `json:"topic"`
			SubString string `json:"subString"`
		} `json:"subscriptionDataSet"`
	} `json:"consumerDataSet"`
}

func (x *exchange) heartbeat() *remoting.Command {
	var hb heartbeatData
	if err := json.Unmarshal(x.req.Body, &hb); err != nil {
		return x.fail(remoting.SystemError, "heartbeat body: %v", err)
	}
	if hb.ClientID == "" {
		return x.fail(remoting.SystemError, "heartbeat body: clientID missing")
	}
	f := x.f
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cd := range hb.Consumers {
		if cd.GroupName == "" {
			return x.fail(remoting.SystemError, "heartbeat body: consumer groupName missing")
		}
		subs := map[string]string{}
		for _, s := range cd.Subscriptions {
			subs[s.Topic] = s.SubString
		}
		// The broker creates the group's retry topic on its heartbeat.
		if retry := retryPrefix + cd.GroupName; validTopic(retry) == nil {
			f.createTopic(retry, 1, 1, permRead|permWrite)
		}
		if x.c.groups == nil {
			x.c.groups = map[string]bool{}
		}
		x.c.groups[cd.GroupName] = true
		members := f.groups[cd.GroupName]
		if members == nil {
			members = map[string]*member{}
			f.groups[cd.GroupName] = members
		}
		m := members[hb.ClientID]
		changed := m == nil || m.conn != x.c || !maps.Equal(m.subs, subs)
		members[hb.ClientID] = &member{conn: x.c, lastBeat: time.Now(), subs: subs}
		if changed {
			f.notifyLocked(cd.GroupName, memberConns(members, x.c))
		}
	}
	return x.ok(nil, nil)
}

func (x *exchange) unregister() *remoting.Command {
	id := x.str("clientID")
	group := x.m["consumerGroup"]
	if x.err != nil {
		return nil
	}
	f := x.f
	f.mu.Lock()
	if members := f.groups[group]; members != nil && members[id] != nil {
		m := members[id]
		f.dropMembers(func(o *member) bool { return o == m })
	}
	f.mu.Unlock()
	return x.ok(nil, nil)
}

func (x *exchange) consumerList() *remoting.Command {
	group := x.str("consumerGroup")
	if x.err != nil {
		return nil
	}
	x.f.mu.Lock()
	ids := x.f.consumerIDs(group)
	x.f.mu.Unlock()
	if len(ids) == 0 {
		return x.fail(remoting.SystemError, "no consumer for this group, %s", group)
	}
	return x.okJSON(map[string][]string{consumerIDsHeader: ids})
}

// subscriptionGroups answers GET_ALL_SUBSCRIPTIONGROUP_CONFIG as a broker
// does (a SubscriptionGroupWrapper): every group that has heartbeated or
// stored an offset here, which a broker with autoCreateSubscriptionGroup
// (its default) would have created.
func (x *exchange) subscriptionGroups() *remoting.Command {
	x.f.mu.Lock()
	table := map[string]any{}
	add := func(g string) {
		table[g] = map[string]any{"groupName": g, "consumeEnable": true, "consumeBroadcastEnable": true,
			"retryQueueNums": 1, "retryMaxTimes": 16, "brokerId": 0, "whichBrokerWhenConsumeSlowly": 1}
	}
	for g := range x.f.groups {
		add(g)
	}
	for k := range x.f.offsets {
		add(k.group)
	}
	x.f.mu.Unlock()
	return x.okJSON(map[string]any{"subscriptionGroupTable": table, "dataVersion": map[string]any{"timestamp": 0, "counter": 0}})
}

// ---- offsets ----

func (x *exchange) queueKey() offsetKey {
	return offsetKey{x.str("consumerGroup"), x.str("topic"), int(x.bounded("queueId", 0, maxQueues))}
}

func (x *exchange) queryOffset() *remoting.Command {
	k := x.queueKey()
	if x.err != nil {
		return nil
	}
	x.f.mu.Lock()
	off, ok := x.f.offsets[k]
	x.f.mu.Unlock()
	if !ok || off < 0 {
		return x.fail(remoting.QueryNotFound, "Not found, maybe this group consumer boot first")
	}
	return x.ok(map[string]string{"offset": strconv.FormatInt(off, 10)}, nil)
}

func (x *exchange) updateOffset() *remoting.Command {
	k := x.queueKey()
	off := x.int("commitOffset")
	if x.err != nil {
		return nil
	}
	x.f.mu.Lock()
	x.f.offsets[k] = off
	x.f.mu.Unlock()
	return x.ok(nil, nil)
}

// queueOf looks up a queue from topic and queueId fields; nil if the topic
// or queue does not exist. f.mu must be held.
func (x *exchange) queueOf() *queue {
	name := x.str("topic")
	id := x.bounded("queueId", 0, maxQueues)
	if t := x.f.topics[name]; t != nil && int(id) < len(t.queues) {
		return t.queues[id]
	}
	return nil
}

func (x *exchange) offsetField(get func(q *queue) int64) *remoting.Command {
	x.f.mu.Lock()
	var off int64
	if q := x.queueOf(); q != nil {
		off = get(q)
	}
	x.f.mu.Unlock()
	if x.err != nil {
		return nil
	}
	return x.ok(map[string]string{"offset": strconv.FormatInt(off, 10)}, nil)
}

func (x *exchange) maxOffset() *remoting.Command {
	return x.offsetField(func(q *queue) int64 { return int64(len(q.msgs)) })
}

func (x *exchange) minOffset() *remoting.Command {
	return x.offsetField(func(*queue) int64 { return 0 })
}

func (x *exchange) searchOffset() *remoting.Command {
	ts := x.int("timestamp")
	return x.offsetField(func(q *queue) int64 {
		i, _ := slices.BinarySearchFunc(q.msgs, ts, func(s *stored, ts int64) int {
			return int(min(max(s.StoreTimestamp-ts, -1), 1))
		})
		return int64(i)
	})
}

// ---- pull ----

// Pull sysFlag bits.
const (
	pullCommitOffset = 1 << 0
	pullSuspend      = 1 << 1
	pullSubscription = 1 << 2
)

// maxSuspend caps a long poll.
const maxSuspend = time.Minute

// pull applies a PULL_MESSAGE (the commit offset it may carry) and returns
// what answers it, which may wait for messages up to the long poll's
// suspend time.
func (x *exchange) pull() func() *remoting.Command {
	group := x.str("consumerGroup")
	name := x.str("topic")
	queueID := x.bounded("queueId", 0, maxQueues)
	offset := x.int("queueOffset")
	maxNums := x.int("maxMsgNums")
	sysFlag := x.int("sysFlag")
	commit := x.intOr("commitOffset", 0)
	suspend := time.Duration(min(max(x.intOr("suspendTimeoutMillis", 0), 0), int64(maxSuspend/time.Millisecond))) * time.Millisecond
	if x.err != nil {
		return answer(nil) // finish answers which field is bad
	}
	if sysFlag&pullSuspend == 0 {
		suspend = 0
	}

	f := x.f
	f.mu.Lock()
	t := f.topics[name]
	if t == nil {
		f.mu.Unlock()
		return answer(x.fail(remoting.TopicNotExist, "topic[%s] not exist, apply first please!", name))
	}
	if t.perm&permRead == 0 {
		f.mu.Unlock()
		return answer(x.fail(remoting.NoPermission, "the topic[%s] pulling message is forbidden", name))
	}
	if int(queueID) >= t.readQueues {
		f.mu.Unlock()
		return answer(x.fail(remoting.SystemError, "queueId[%d] is illegal, topic:[%s] topicConfig.readQueueNums:[%d]", queueID, name, t.readQueues))
	}
	var filter tagFilter
	if sysFlag&pullSubscription != 0 {
		filter = parseTagFilter(x.m["subscription"])
	} else if expr, ok := x.subscription(group, name); ok {
		filter = parseTagFilter(expr)
	} else {
		f.mu.Unlock()
		return answer(x.fail(remoting.SubscriptionNotExist, "the consumer's subscription of group %s to topic %s not exist", group, name))
	}
	if sysFlag&pullCommitOffset != 0 {
		f.offsets[offsetKey{group, name, int(queueID)}] = commit
	}
	q := t.queues[queueID]
	f.mu.Unlock()
	return func() *remoting.Command { return x.awaitPull(q, offset, int(maxNums), filter, suspend) }
}

// awaitPull reads a queue for a pull, waiting up to suspend for a message
// when there is none.
func (x *exchange) awaitPull(q *queue, offset int64, maxNums int, filter tagFilter, suspend time.Duration) *remoting.Command {
	f := x.f
	deadline := time.Now().Add(suspend)
	for {
		f.mu.Lock()
		code, fields, body := f.read(q, offset, maxNums, filter)
		wake := q.wake
		f.mu.Unlock()
		left := time.Until(deadline)
		if code != remoting.PullNotFound || left <= 0 {
			return remoting.NewResponse(x.req, code, "", fields, body)
		}
		timer := time.NewTimer(left)
		select {
		case <-wake:
		case <-timer.C:
		case <-x.c.done:
			timer.Stop()
			return nil
		case <-f.done:
			timer.Stop()
			return nil
		}
		timer.Stop()
	}
}

// subscription is group's subscription expression for topic, as
// registered by heartbeats; the broker keeps one per group, so any member's
// will do, this connection's first. f.mu must be held.
func (x *exchange) subscription(group, topic string) (string, bool) {
	var expr string
	found := false
	for _, m := range x.f.groups[group] {
		if e, ok := m.subs[topic]; ok && (!found || m.conn == x.c) {
			expr, found = e, true
		}
	}
	return expr, found
}

// read is one pull attempt, answering as the broker's message store does.
// f.mu must be held.
func (f *Fake) read(q *queue, offset int64, maxNums int, filter tagFilter) (int16, map[string]string, []byte) {
	maxOff := int64(len(q.msgs))
	status := func(code int16, next int64) (int16, map[string]string, []byte) {
		return code, map[string]string{
			"nextBeginOffset":      strconv.FormatInt(next, 10),
			"minOffset":            "0",
			"maxOffset":            strconv.FormatInt(maxOff, 10),
			"suggestWhichBrokerId": "0",
		}, nil
	}
	switch {
	case maxOff == 0 && offset != 0: // NO_MESSAGE_IN_QUEUE
		return status(remoting.PullOffsetMoved, 0)
	case offset < 0: // OFFSET_TOO_SMALL
		return status(remoting.PullOffsetMoved, 0)
	case offset == maxOff: // OFFSET_OVERFLOW_ONE (or an empty queue at 0)
		return status(remoting.PullNotFound, offset)
	case offset > maxOff: // OFFSET_OVERFLOW_BADLY: back to minOffset, which is 0
		return status(remoting.PullOffsetMoved, 0)
	}
	maxNums = min(max(maxNums, 1), maxPullBatch)
	var body []byte
	found, i := 0, offset
	for ; i < maxOff && found < maxNums && i-offset < maxFilterScan; i++ {
		if s := q.msgs[i]; filter.match(s) {
			body = f.appendEncoded(body, s)
			found++
		}
	}
	if found == 0 { // NO_MATCHED_MESSAGE
		return status(remoting.PullRetryImmediately, i)
	}
	code, fields, _ := status(remoting.Success, i)
	return code, fields, body
}

// ---- send back ----

func (x *exchange) sendBack() *remoting.Command {
	group := x.str("group")
	offset := x.int("offset")
	level := x.intOr("delayLevel", 0)
	originID := x.m["originMsgId"]
	maxReconsume := x.intOr("maxReconsumeTimes", 16)
	if x.err != nil {
		return nil
	}
	if err := validTopic(retryPrefix + group); err != nil {
		return x.fail(remoting.SystemError, "header field \"group\": %v", err)
	}
	f := x.f
	f.mu.Lock()
	defer f.mu.Unlock()
	orig := f.commitLog[offset]
	if orig == nil {
		return x.fail(remoting.SystemError, "look message by offset failed, %d", offset)
	}
	p := maps.Clone(orig.Properties)
	if p[propRetryTopic] == "" {
		p[propRetryTopic] = orig.Topic
	}
	if p[propOriginMsgID] == "" {
		p[propOriginMsgID] = firstNonEmpty(originID, orig.Properties[propUniqKey], orig.MsgID)
	}
	s := &stored{
		Message: Message{
			Body: orig.Body, Flag: orig.Flag, SysFlag: orig.SysFlag,
			BornTimestamp: orig.BornTimestamp, BornHost: orig.BornHost,
			StoreTimestamp: time.Now().UnixMilli(), ReconsumeTimes: orig.ReconsumeTimes + 1,
		},
		bornHost: orig.bornHost,
	}
	if int64(orig.ReconsumeTimes) >= maxReconsume || level < 0 {
		s.setProps(p)
		f.deadLetter(s, group)
		return x.ok(nil, nil)
	}
	if level == 0 {
		level = 3 + int64(orig.ReconsumeTimes)
	}
	level = min(level, maxDelayLevel)
	p[propDelay] = strconv.FormatInt(level, 10)
	s.setProps(p)
	s.Topic = retryPrefix + group
	f.createTopic(s.Topic, 1, 1, permRead|permWrite)
	f.delay(s, int(level))
	return x.ok(nil, nil)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// ---- orderly consumers' queue locks ----

type lockBody struct {
	ConsumerGroup string `json:"consumerGroup"`
	ClientID      string `json:"clientId"`
	MQs           []mq   `json:"mqSet"`
}

type mq struct {
	Topic      string `json:"topic"`
	BrokerName string `json:"brokerName"`
	QueueID    int    `json:"queueId"`
}

func (x *exchange) lockBody() (lockBody, *remoting.Command) {
	var b lockBody
	if err := json.Unmarshal(x.req.Body, &b); err != nil {
		return b, x.fail(remoting.SystemError, "lock body: %v", err)
	}
	if b.ConsumerGroup == "" || b.ClientID == "" {
		return b, x.fail(remoting.SystemError, "lock body: consumerGroup and clientId are required")
	}
	return b, nil
}

func (x *exchange) lockBatch() *remoting.Command {
	b, fail := x.lockBody()
	if fail != nil {
		return fail
	}
	f := x.f
	now := time.Now()
	locked := []mq{}
	f.mu.Lock()
	for _, q := range b.MQs {
		k := lockKey{b.ConsumerGroup, q.Topic, q.QueueID}
		if o, ok := f.locks[k]; !ok || o.client == b.ClientID || now.After(o.expires) {
			f.locks[k] = lockOwner{b.ClientID, now.Add(f.opts.LockLifetime)}
			locked = append(locked, q)
		}
	}
	f.mu.Unlock()
	return x.okJSON(map[string][]mq{"lockOKMQSet": locked})
}

func (x *exchange) unlockBatch() *remoting.Command {
	b, fail := x.lockBody()
	if fail != nil {
		return fail
	}
	f := x.f
	f.mu.Lock()
	for _, q := range b.MQs {
		k := lockKey{b.ConsumerGroup, q.Topic, q.QueueID}
		if f.locks[k].client == b.ClientID {
			delete(f.locks, k)
		}
	}
	f.mu.Unlock()
	return x.ok(nil, nil)
}
