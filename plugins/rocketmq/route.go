package rocketmq

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mqgate/mqgate/plugins/rocketmq/internal/remoting"
	"github.com/mqgate/mqgate/sdk"
)

// routeTTL is how long a topic's route is trusted before it is asked
// again; RocketMQ clients refresh every 30 s too.
const routeTTL = 30 * time.Second

// queue is one RocketMQ message queue of a topic.
type queue struct {
	broker string
	id     int
}

// qid spells the queue as mqgate's qid: "brokerName:queueId". It depends
// only on names the cluster keeps across restarts.
func (q queue) qid() string { return q.broker + ":" + strconv.Itoa(q.id) }

// parseQid reverses qid.
func parseQid(s string) (queue, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return queue{}, fmt.Errorf("qid %q is not brokerName:queueId", s)
	}
	id, err := strconv.Atoi(s[i+1:])
	if err != nil || id < 0 {
		return queue{}, fmt.Errorf("qid %q is not brokerName:queueId", s)
	}
	return queue{broker: s[:i], id: id}, nil
}

func compareQueues(a, b queue) int {
	if c := strings.Compare(a.broker, b.broker); c != 0 {
		return c
	}
	return a.id - b.id
}

// route is where a topic's queues live. Partition p of the topic is
// read[p] (consuming) or write[p] (producing): queues in broker-name, then
// queue-id order, the order RocketMQ's own allocation strategies sort by.
type route struct {
	read, write []queue
	addrs       map[string]string // broker name -> master address
	at          time.Time
	// auto marks the route a topic will have once a broker creates it on
	// its first send (see produceRoute).
	auto bool
}

// partition returns the index of q among the read queues, or -1.
func (r *route) partition(q queue) int32 {
	i, ok := slices.BinarySearchFunc(r.read, q, compareQueues)
	if !ok {
		return -1
	}
	return int32(i)
}

// topicRouteData is the name server's answer to GET_ROUTEINFO_BY_TOPIC.
type topicRouteData struct {
	QueueDatas []struct {
		BrokerName     string `json:"brokerName"`
		ReadQueueNums  int    `json:"readQueueNums"`
		WriteQueueNums int    `json:"writeQueueNums"`
		Perm           int    `json:"perm"`
	} `json:"queueDatas"`
	BrokerDatas []brokerData `json:"brokerDatas"`
}

type brokerData struct {
	Cluster     string            `json:"cluster"`
	BrokerName  string            `json:"brokerName"`
	BrokerAddrs map[string]string `json:"brokerAddrs"` // broker id ("0" = master) -> address
}

const (
	permWrite = 1 << 1
	permRead  = 1 << 2
)

// quoteIntKeys rewrites object keys that are bare integers ({0:"a"}), as
// Java name servers write broker ids, into JSON strings. It leaves string
// contents alone.
func quoteIntKeys(b []byte) []byte {
	out := make([]byte, 0, len(b)+16)
	inString, escaped := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		out = append(out, c)
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == ',':
			j := i + 1
			for j < len(b) && (b[j] == ' ' || b[j] == '\n' || b[j] == '\t' || b[j] == '\r') {
				j++
			}
			k := j
			for k < len(b) && (b[k] >= '0' && b[k] <= '9' || b[k] == '-') {
				k++
			}
			e := k
			for e < len(b) && (b[e] == ' ' || b[e] == '\n' || b[e] == '\t' || b[e] == '\r') {
				e++
			}
			if k > j && e < len(b) && b[e] == ':' {
				out = append(out, b[i+1:j]...)
				out = append(out, '"')
				out = append(out, b[j:k]...)
				out = append(out, '"')
				i = k - 1
			}
		}
	}
	return out
}

func parseRoute(body []byte) (*route, error) {
	var d topicRouteData
	if err := json.Unmarshal(quoteIntKeys(body), &d); err != nil {
		return nil, fmt.Errorf("bad route data: %w", err)
	}
	r := &route{addrs: map[string]string{}, at: time.Now()}
	for _, b := range d.BrokerDatas {
		if a := b.BrokerAddrs["0"]; a != "" {
			r.addrs[b.BrokerName] = a
		}
	}
	for _, q := range d.QueueDatas {
		if r.addrs[q.BrokerName] == "" {
			continue // no master: neither readable nor writable here
		}
		if q.Perm&permRead != 0 {
			for i := range q.ReadQueueNums {
				r.read = append(r.read, queue{q.BrokerName, i})
			}
		}
		if q.Perm&permWrite != 0 {
			for i := range q.WriteQueueNums {
				r.write = append(r.write, queue{q.BrokerName, i})
			}
		}
	}
	slices.SortFunc(r.read, compareQueues)
	slices.SortFunc(r.write, compareQueues)
	return r, nil
}

// pool holds connections to name servers and brokers. Requests on them are
// signed when the config has credentials.
type pool struct {
	cfg config
	// handler receives requests brokers send on these connections.
	handler func(*remoting.Command)
	// onDial, when set, is told of every new connection.
	onDial func(addr string)

	mu    sync.Mutex
	conns map[string]*remoting.Conn
}

func newPool(cfg config, handler func(*remoting.Command)) *pool {
	return &pool{cfg: cfg, handler: handler, conns: map[string]*remoting.Conn{}}
}

// invoke sends req to addr, dialling when there is no live connection.
// Network failures are CodeUnavailable.
func (p *pool) invoke(ctx context.Context, addr string, req *remoting.Command) (*remoting.Command, error) {
	c, err := p.conn(ctx, addr)
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeUnavailable, "rocketmq: dialling %s: %v", addr, err)
	}
	p.sign(req)
	resp, err := c.Invoke(ctx, req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, sdk.Errorf(sdk.CodeTimeout, "rocketmq: %s: %v", addr, err)
		}
		return nil, sdk.Errorf(sdk.CodeUnavailable, "rocketmq: %s: %v", addr, err)
	}
	return resp, nil
}

// oneway sends req to addr without waiting for an answer.
func (p *pool) oneway(ctx context.Context, addr string, req *remoting.Command) error {
	c, err := p.conn(ctx, addr)
	if err != nil {
		return sdk.Errorf(sdk.CodeUnavailable, "rocketmq: dialling %s: %v", addr, err)
	}
	p.sign(req)
	return c.Send(ctx, req)
}

func (p *pool) conn(ctx context.Context, addr string) (*remoting.Conn, error) {
	p.mu.Lock()
	c := p.conns[addr]
	p.mu.Unlock()
	if c != nil && c.Err() == nil {
		return c, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nc, err := remoting.Dial(dctx, addr, p.handler)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		nc.Close()
		return nil, remoting.ErrClosed
	}
	if old := p.conns[addr]; old != nil && old.Err() == nil {
		nc.Close() // another caller dialled first
		return old, nil
	}
	p.conns[addr] = nc
	if p.onDial != nil {
		go p.onDial(addr)
	}
	return nc, nil
}

// close ends every connection; later calls fail.
func (p *pool) close() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// sign adds RocketMQ's ACL signature: HMAC-SHA1 over the header fields'
// values in key order, then the body, keyed by the secret key.
func (p *pool) sign(req *remoting.Command) {
	if p.cfg.accessKey == "" {
		return
	}
	if req.ExtFields == nil {
		req.ExtFields = map[string]string{}
	}
	delete(req.ExtFields, "Signature")
	req.ExtFields["AccessKey"] = p.cfg.accessKey
	keys := make([]string, 0, len(req.ExtFields))
	for k := range req.ExtFields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	mac := hmac.New(sha1.New, []byte(p.cfg.secretKey))
	for _, k := range keys {
		mac.Write([]byte(req.ExtFields[k]))
	}
	mac.Write(req.Body)
	req.ExtFields["Signature"] = base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// nameserver sends req to the first name server that answers.
func (p *pool) nameserver(ctx context.Context, req *remoting.Command) (*remoting.Command, error) {
	var errs []string
	for _, addr := range p.cfg.nameservers {
		resp, err := p.invoke(ctx, addr, req)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	return nil, sdk.Errorf(sdk.CodeUnavailable, "rocketmq name servers unreachable: %s", strings.Join(errs, "; "))
}

// routes caches topic routes from the name servers.
type routes struct {
	pool *pool
	mu   sync.Mutex
	m    map[string]*route
}

// get returns the route of topic (already namespaced), asking the name
// server when the cached one is older than routeTTL or refresh is set. A
// topic the name server does not know is CodeTopicNotExist.
func (rs *routes) get(ctx context.Context, topic string, refresh bool) (*route, error) {
	rs.mu.Lock()
	r := rs.m[topic]
	rs.mu.Unlock()
	if r != nil && !refresh && time.Since(r.at) < routeTTL {
		return r, nil
	}
	resp, err := rs.pool.nameserver(ctx, remoting.NewRequest(remoting.GetRouteInfoByTopic, map[string]string{"topic": topic}, nil))
	if err != nil {
		if r != nil {
			return r, nil // a stale route beats none while the name server is away
		}
		return nil, err
	}
	switch resp.Code {
	case remoting.Success:
	case remoting.TopicNotExist:
		rs.mu.Lock()
		delete(rs.m, topic)
		rs.mu.Unlock()
		return nil, sdk.Errorf(sdk.CodeTopicNotExist, "topic %s does not exist", rs.pool.cfg.unwrap(topic))
	default:
		return nil, sdk.Errorf(sdk.CodeUnavailable, "rocketmq name server: route of %s: code %d: %s", topic, resp.Code, resp.Remark)
	}
	r, err = parseRoute(resp.Body)
	if err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "rocketmq name server: route of %s: %v", topic, err)
	}
	if len(r.read) == 0 && len(r.write) == 0 {
		return nil, sdk.Errorf(sdk.CodeTopicNotExist, "topic %s has no queues on any live broker", rs.pool.cfg.unwrap(topic))
	}
	rs.mu.Lock()
	rs.m[topic] = r
	rs.mu.Unlock()
	return r, nil
}

// brokers asks the name server for every broker master: name -> address.
func (p *pool) brokers(ctx context.Context) (map[string]string, error) {
	resp, err := p.nameserver(ctx, remoting.NewRequest(remoting.GetBrokerClusterInfo, nil, nil))
	if err != nil {
		return nil, err
	}
	if resp.Code != remoting.Success {
		return nil, sdk.Errorf(sdk.CodeUnavailable, "rocketmq name server: cluster info: code %d: %s", resp.Code, resp.Remark)
	}
	var info struct {
		BrokerAddrTable map[string]brokerData `json:"brokerAddrTable"`
	}
	if err := json.Unmarshal(quoteIntKeys(resp.Body), &info); err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "rocketmq name server: bad cluster info: %v", err)
	}
	out := map[string]string{}
	for name, b := range info.BrokerAddrTable {
		if a := b.BrokerAddrs["0"]; a != "" {
			out[name] = a
		}
	}
	return out, nil
}

// brokerError turns a broker's non-success answer into an sdk error.
func brokerError(what string, resp *remoting.Command) error {
	code := sdk.CodeInternal
	switch resp.Code {
	case remoting.TopicNotExist:
		code = sdk.CodeTopicNotExist
	case remoting.SystemBusy, remoting.ServiceNotAvailable, 10, 11, 12: // flush/slave timeouts
		code = sdk.CodeUnavailable
	case remoting.MessageIllegal:
		code = sdk.CodeIllegal
	case 16: // NO_PERMISSION
		code = sdk.CodeNotAllowed
	}
	return sdk.Errorf(code, "%s: rocketmq broker answered code %d: %s", what, resp.Code, resp.Remark)
}
