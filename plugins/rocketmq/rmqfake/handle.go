package rmqfake

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/mqgate/mqgate/plugins/rocketmq/internal/remoting"
)

// handle answers one request; nil means no answer (a one-way request, or
// the connection ended during a long poll).
func (f *Fake) handle(c *conn, req *remoting.Command) *remoting.Command {
	return f.start(c, req)()
}

// start applies one request and returns what answers it. Every request
// is applied in the order its connection sent it, a pull too (the commit
// offset it carries), so that all a client sent before hanging up is
// applied when its connection ends; only the answer of a pull may wait,
// for a long poll.
func (f *Fake) start(c *conn, req *remoting.Command) func() *remoting.Command {
	x := &exchange{f: f, c: c, req: req, fields: fields{m: req.ExtFields}}
	if req.Code == remoting.PullMessage {
		wait := x.pull()
		return func() *remoting.Command { return x.finish(wait()) }
	}
	h := handlers[req.Code]
	if h == nil {
		return answer(remoting.NewResponse(req, remoting.RequestCodeNotSupported,
			fmt.Sprintf("request code %d not supported by rmqfake", req.Code), nil, nil))
	}
	return answer(x.finish(h(x)))
}

// finish turns a handler's answer into the answer sent: Handled is told
// first, and a bad header field replaces it.
func (x *exchange) finish(resp *remoting.Command) *remoting.Command {
	if x.f.opts.Handled != nil {
		x.f.opts.Handled(x.req.Code)
	}
	if x.fields.err != nil {
		return remoting.NewResponse(x.req, remoting.SystemError, x.fields.err.Error(), nil, nil)
	}
	return resp
}

// answer is an answer that is ready.
func answer(resp *remoting.Command) func() *remoting.Command {
	return func() *remoting.Command { return resp }
}

type handler func(*exchange) *remoting.Command

var handlers map[int16]handler

func init() {
	handlers = map[int16]handler{
		remoting.GetRouteInfoByTopic:         (*exchange).routeInfo,
		remoting.GetBrokerClusterInfo:        (*exchange).clusterInfo,
		remoting.GetAllTopicListFromNamesrv:  (*exchange).topicList,
		remoting.UpdateAndCreateTopic:        (*exchange).createTopic,
		remoting.SendMessage:                 (*exchange).send,
		remoting.SendMessageV2:               (*exchange).send,
		remoting.SendBatchMessage:            (*exchange).send,
		remoting.HeartBeat:                   (*exchange).heartbeat,
		remoting.UnregisterClient:            (*exchange).unregister,
		remoting.GetConsumerListByGroup:      (*exchange).consumerList,
		remoting.GetAllSubscriptionGroupConf: (*exchange).subscriptionGroups,
		remoting.QueryConsumerOffset:         (*exchange).queryOffset,
		remoting.UpdateConsumerOffset:        (*exchange).updateOffset,
		remoting.GetMaxOffset:                (*exchange).maxOffset,
		remoting.GetMinOffset:                (*exchange).minOffset,
		remoting.SearchOffsetByTimestamp:     (*exchange).searchOffset,
		remoting.ConsumerSendMsgBack:         (*exchange).sendBack,
		remoting.LockBatchMQ:                 (*exchange).lockBatch,
		remoting.UnlockBatchMQ:               (*exchange).unlockBatch,
	}
}

// exchange is one request being handled.
type exchange struct {
	f   *Fake
	c   *conn
	req *remoting.Command
	fields
}

func (x *exchange) ok(fields map[string]string, body []byte) *remoting.Command {
	return remoting.NewResponse(x.req, remoting.Success, "", fields, body)
}

func (x *exchange) fail(code int16, format string, args ...any) *remoting.Command {
	return remoting.NewResponse(x.req, code, fmt.Sprintf(format, args...), nil, nil)
}

func (x *exchange) okJSON(v any) *remoting.Command {
	body, err := json.Marshal(v)
	if err != nil {
		return x.fail(remoting.SystemError, "encode response: %v", err)
	}
	return x.ok(nil, body)
}

// fields reads request header fields, remembering the first problem; the
// handler's answer is then replaced by SYSTEM_ERROR naming the field.
type fields struct {
	m   map[string]string
	err error
}

func (p *fields) bad(key, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("header field %q: %s", key, fmt.Sprintf(format, args...))
	}
}

// str is a required string field.
func (p *fields) str(key string) string {
	v, ok := p.m[key]
	if !ok || v == "" {
		p.bad(key, "missing")
	}
	return v
}

// int is a required integer field.
func (p *fields) int(key string) int64 {
	v, ok := p.m[key]
	if !ok {
		p.bad(key, "missing")
		return 0
	}
	return p.parse(key, v)
}

// intOr is an optional integer field.
func (p *fields) intOr(key string, def int64) int64 {
	v, ok := p.m[key]
	if !ok || v == "" {
		return def
	}
	return p.parse(key, v)
}

func (p *fields) parse(key, v string) int64 {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		p.bad(key, "not an integer: %q", v)
	}
	return n
}

// bounded is a required integer field that must lie in lo..hi.
func (p *fields) bounded(key string, lo, hi int64) int64 {
	n := p.int(key)
	if p.err == nil && (n < lo || n > hi) {
		p.bad(key, "%d outside %d..%d", n, lo, hi)
	}
	return n
}

// alias returns the first of keys present, so that SEND_MESSAGE_V2's
// one-letter names and SEND_MESSAGE's long ones read alike.
func (p *fields) alias(keys ...string) string {
	for _, k := range keys {
		if _, ok := p.m[k]; ok {
			return k
		}
	}
	return keys[0]
}

// ---- name server ----

type queueData struct {
	BrokerName     string `json:"brokerName"`
	ReadQueueNums  int    `json:"readQueueNums"`
	WriteQueueNums int    `json:"writeQueueNums"`
	Perm           int    `json:"perm"`
	TopicSynFlag   int    `json:"topicSynFlag"` // sic, as in RocketMQ's QueueData
}

// brokerData is RocketMQ's BrokerData. brokerAddrs is emitted as a JSON
// object with string keys ({"0":"host:port"}); Java's fastjson emits bare
// integer keys, which rocketmq-client-go copes with by parsing the raw text.
type brokerData struct {
	Cluster     string            `json:"cluster"`
	BrokerName  string            `json:"brokerName"`
	BrokerAddrs map[string]string `json:"brokerAddrs"`
}

func (f *Fake) brokerData() brokerData {
	return brokerData{Cluster: f.opts.ClusterName, BrokerName: f.opts.BrokerName, BrokerAddrs: map[string]string{"0": f.addr}}
}

func (x *exchange) routeInfo() *remoting.Command {
	name := x.str("topic")
	if x.err != nil {
		return nil
	}
	f := x.f
	f.mu.Lock()
	t := f.topics[name]
	if t == nil && strings.HasPrefix(name, retryPrefix) && validTopic(name) == nil {
		t = f.createTopic(name, 1, 1, permRead|permWrite)
	}
	var qd queueData
	if t != nil {
		qd = queueData{f.opts.BrokerName, t.readQueues, t.writeQueues, t.perm, t.sysFlag}
	}
	f.mu.Unlock()
	if t == nil {
		return x.fail(remoting.TopicNotExist, "No topic route info in name server for the topic: %s", name)
	}
	return x.okJSON(map[string]any{
		"queueDatas":        []queueData{qd},
		"brokerDatas":       []brokerData{f.brokerData()},
		"filterServerTable": map[string]any{},
	})
}

func (x *exchange) clusterInfo() *remoting.Command {
	f := x.f
	return x.okJSON(map[string]any{
		"brokerAddrTable":  map[string]brokerData{f.opts.BrokerName: f.brokerData()},
		"clusterAddrTable": map[string][]string{f.opts.ClusterName: {f.opts.BrokerName}},
	})
}

func (x *exchange) topicList() *remoting.Command {
	return x.okJSON(map[string]any{"topicList": x.f.Topics()})
}

// ---- topics ----

func (x *exchange) createTopic() *remoting.Command {
	name := x.str("topic")
	read := x.bounded("readQueueNums", 0, maxQueues)
	write := x.bounded("writeQueueNums", 0, maxQueues)
	perm := x.intOr("perm", permRead|permWrite)
	sysFlag := x.intOr("topicSysFlag", 0)
	if x.err != nil {
		return nil
	}
	if err := validTopic(name); err != nil {
		return x.fail(remoting.SystemError, "%v", err)
	}
	if name == defaultTopic {
		return x.fail(remoting.SystemError, "the topic[%s] is conflict with system reserved words", name)
	}
	if read == 0 && write == 0 {
		read, write = int64(x.f.opts.DefaultQueues), int64(x.f.opts.DefaultQueues)
	}
	if perm < 0 || perm > 7 {
		perm = permRead | permWrite
	}
	x.f.mu.Lock()
	t := x.f.createTopic(name, int(read), int(write), int(perm))
	t.perm, t.sysFlag = int(perm), int(sysFlag)
	x.f.mu.Unlock()
	return x.ok(nil, nil)
}

// ---- send ----

func (x *exchange) send() *remoting.Command {
	v2 := x.req.Code == remoting.SendBatchMessage || x.req.Code == remoting.SendMessageV2
	pick := func(long, short string) string {
		if v2 {
			return x.alias(short, long)
		}
		return x.alias(long, short)
	}
	name := x.str(pick("topic", "b"))
	queueID := x.bounded(pick("queueId", "e"), -1, maxQueues)
	sysFlag := x.intOr(pick("sysFlag", "f"), 0)
	born := x.intOr(pick("bornTimestamp", "g"), time.Now().UnixMilli())
	flag := x.intOr(pick("flag", "h"), 0)
	props := x.m[pick("properties", "i")]
	reconsume := x.intOr(pick("reconsumeTimes", "j"), 0)
	maxReconsume := x.intOr(pick("maxReconsumeTimes", "l"), 16)
	if x.err != nil {
		return nil
	}
	if err := validTopic(name); err != nil {
		return x.fail(remoting.SystemError, "%v", err)
	}

	var items []batchItem
	if x.req.Code == remoting.SendBatchMessage {
		var err error
		if items, err = decodeBatch(x.req.Body); err != nil {
			return x.fail(remoting.MessageIllegal, "%v", err)
		}
	} else {
		items = []batchItem{{flag: int32(flag), body: x.req.Body, props: props}}
	}
	for _, it := range items {
		if len(it.body) > maxBody {
			return x.fail(remoting.MessageIllegal, "message body of %d bytes exceeds %d", len(it.body), maxBody)
		}
		if len(it.props) > maxProperties {
			return x.fail(remoting.MessageIllegal, "message properties of %d bytes exceed %d", len(it.props), maxProperties)
		}
	}

	f := x.f
	bornHost, bornAddr := [8]byte{}, "127.0.0.1:0"
	if x.c != nil {
		bornHost, bornAddr = remoteHost(x.c.nc)
	}
	now := time.Now().UnixMilli()
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.topics[name]
	if t == nil && f.opts.AutoCreateTopics {
		n := int(min(x.intOr(pick("defaultTopicQueueNums", "d"), int64(f.opts.DefaultQueues)), int64(f.opts.DefaultQueues)))
		t = f.createTopic(name, max(n, 1), max(n, 1), permRead|permWrite)
	}
	if t == nil {
		return x.fail(remoting.TopicNotExist, "topic[%s] not exist, apply first please!", name)
	}
	if t.perm&permWrite == 0 {
		return x.fail(remoting.NoPermission, "the topic[%s] sending message is forbidden", name)
	}
	if queueID < 0 && t.writeQueues > 0 { // the broker picks a queue
		queueID = int64(rand.IntN(t.writeQueues))
	}
	if queueID < 0 || int(queueID) >= t.writeQueues {
		return x.fail(remoting.SystemError, "request queueId[%d] is illegal, topic %s has %d write queues", queueID, name, t.writeQueues)
	}
	q := int(queueID)

	var ids []string
	var first int64 = -1
	for _, it := range items {
		s := &stored{
			Message: Message{
				Topic: name, QueueID: q, Body: append([]byte(nil), it.body...), Flag: it.flag,
				SysFlag:       int32(sysFlag) &^ (sysFlagBornHostV6 | sysFlagStoreHostV6),
				Properties:    parseProps(it.props),
				BornTimestamp: born, StoreTimestamp: now, BornHost: bornAddr,
				ReconsumeTimes: int32(reconsume),
			},
			props: it.props, bornHost: bornHost,
		}
		// A message re-sent by a client to the retry topic that has used up
		// its attempts goes to the dead-letter queue, as the broker does.
		if strings.HasPrefix(name, retryPrefix) && reconsume >= maxReconsume {
			f.deadLetter(s, strings.TrimPrefix(name, retryPrefix))
			ids, first = append(ids, s.MsgID), s.QueueOffset
			continue
		}
		level, _ := strconv.Atoi(s.Properties[propDelay])
		if level > 0 && x.req.Code != remoting.SendBatchMessage {
			off := f.delay(s, level)
			ids, first = append(ids, s.MsgID), off
			continue
		}
		f.put(s, t.queues[q])
		if first < 0 {
			first = s.QueueOffset
		}
		ids = append(ids, s.MsgID)
	}
	return x.ok(map[string]string{
		"msgId":       strings.Join(ids, ","),
		"queueId":     strconv.Itoa(q),
		"queueOffset": strconv.FormatInt(first, 10),
		"MSG_REGION":  "DefaultRegion",
		"TRACE_ON":    "true",
	}, nil)
}

// delay holds s back for RetryDelay(level) and then stores it in its topic
// and queue, like the broker's schedule service. It returns the offset in
// the level's schedule queue. f.mu must be held.
func (f *Fake) delay(s *stored, level int) int64 {
	level = min(level, maxDelayLevel)
	p := s.Properties
	p[propRealTopic], p[propRealQueue] = s.Topic, strconv.Itoa(s.QueueID)
	s.setProps(p)
	f.allocPhysical(s) // the schedule-topic copy's id, returned to the sender
	off := f.schedule[level-1]
	f.schedule[level-1]++
	var t *time.Timer
	t = time.AfterFunc(f.opts.RetryDelay(level), func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.timers[t]; !ok {
			return // closed
		}
		delete(f.timers, t)
		top := f.topics[s.Topic]
		if top == nil || s.QueueID >= len(top.queues) {
			return
		}
		p := s.Properties
		delete(p, propDelay)
		s.setProps(p)
		s.StoreTimestamp = time.Now().UnixMilli()
		f.put(s, top.queues[s.QueueID])
	})
	f.timers[t] = struct{}{}
	return off
}

// deadLetter stores s in group's dead-letter topic. f.mu must be held.
func (f *Fake) deadLetter(s *stored, group string) {
	s.Topic, s.QueueID = dlqPrefix+group, 0
	p := s.Properties
	delete(p, propDelay)
	s.setProps(p)
	f.put(s, f.createTopic(s.Topic, 1, 1, permWrite).queues[0])
}
