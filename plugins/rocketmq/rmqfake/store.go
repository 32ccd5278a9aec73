package rmqfake

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"net"
	"regexp"
	"slices"
	"strings"
)

// Limits, as a default broker has them where it has them.
const (
	maxFrame      = 16 << 20 // the broker's default frame limit
	maxQueues     = 1024     // the fake's own cap on queues per topic
	maxBody       = 4 << 20  // maxMessageSize
	maxProperties = 1<<15 - 1
	maxTopicLen   = 127
	maxPullBatch  = 32  // maxTransferCountOnMessageInMemory
	maxFilterScan = 800 // consume-queue entries one filtered pull scans
)

// Permission bits (PermName).
const (
	permInherit = 1 << 0
	permWrite   = 1 << 1
	permRead    = 1 << 2
)

// Message sysFlag bits the store encoding cares about.
const (
	sysFlagBornHostV6  = 1 << 4
	sysFlagStoreHostV6 = 1 << 5
)

// magicCode marks a message in the broker's store encoding (v1).
const magicCode uint32 = 0xDAA320A7 // -626843481

const (
	defaultTopic = "TBW102"
	retryPrefix  = "%RETRY%"
	dlqPrefix    = "%DLQ%"
)

// Property names.
const (
	propTags          = "TAGS"
	propKeys          = "KEYS"
	propDelay         = "DELAY"
	propRetryTopic    = "RETRY_TOPIC"
	propRealTopic     = "REAL_TOPIC"
	propRealQueue     = "REAL_QID"
	propOriginMsgID   = "ORIGIN_MESSAGE_ID"
	propUniqKey       = "UNIQ_KEY"
	nameValueSep      = '\x01'
	propertySep       = '\x02'
	topicNameAllowed  = `^[%|a-zA-Z0-9_-]+$`
	consumerIDsHeader = "consumerIdList"
)

var topicName = regexp.MustCompile(topicNameAllowed)

func validTopic(name string) error {
	switch {
	case name == "":
		return errors.New("topic is empty")
	case len(name) > maxTopicLen:
		return fmt.Errorf("topic %.20q... is longer than %d characters", name, maxTopicLen)
	case !topicName.MatchString(name):
		return fmt.Errorf("topic %q contains characters outside %s", name, topicNameAllowed)
	}
	return nil
}

type topic struct {
	name                    string
	readQueues, writeQueues int
	perm, sysFlag           int
	queues                  []*queue
}

type queue struct {
	msgs []*stored
	wake chan struct{} // closed and replaced when a message arrives
}

func newTopic(name string, read, write, perm int) *topic {
	t := &topic{name: name, perm: perm}
	t.grow(read, write)
	return t
}

func (t *topic) grow(read, write int) {
	t.readQueues, t.writeQueues = max(t.readQueues, read), max(t.writeQueues, write)
	for len(t.queues) < max(t.readQueues, t.writeQueues) {
		t.queues = append(t.queues, &queue{wake: make(chan struct{})})
	}
}

// createTopic creates or grows a topic. f.mu must be held.
func (f *Fake) createTopic(name string, read, write, perm int) *topic {
	t := f.topics[name]
	if t == nil {
		t = newTopic(name, read, write, perm)
		f.topics[name] = t
	} else {
		t.grow(read, write)
	}
	return t
}

// Message is a stored message as a test sees it.
type Message struct {
	Topic           string
	QueueID         int
	QueueOffset     int64
	CommitLogOffset int64
	// MsgID is the broker's message id (offsetMsgId): store host, port and
	// commit-log offset in hex. The producer's id is Properties["UNIQ_KEY"].
	MsgID          string
	Body           []byte // as sent: compressed if SysFlag&1
	Flag           int32
	SysFlag        int32
	Properties     map[string]string
	BornTimestamp  int64 // ms
	StoreTimestamp int64 // ms
	BornHost       string
	ReconsumeTimes int32
}

// Tags is the message's TAGS property.
func (m *Message) Tags() string { return m.Properties[propTags] }

// Keys is the message's KEYS property (space-separated keys).
func (m *Message) Keys() string { return m.Properties[propKeys] }

// stored is a message in the store.
type stored struct {
	Message
	props    string // Properties as on the wire
	bornHost [8]byte
}

func (s *stored) copy() Message {
	m := s.Message
	m.Body = append([]byte(nil), s.Body...)
	m.Properties = maps.Clone(s.Properties)
	return m
}

// setProps replaces the properties and their wire form.
func (s *stored) setProps(p map[string]string) {
	s.Properties = p
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(p)) {
		b.WriteString(k)
		b.WriteByte(nameValueSep)
		b.WriteString(p[k])
		b.WriteByte(propertySep)
	}
	s.props = b.String()
}

// parseProps decodes "k\x01v\x02" pairs, skipping malformed ones as the
// client does.
func parseProps(s string) map[string]string {
	p := map[string]string{}
	for item := range strings.SplitSeq(s, string(propertySep)) {
		if k, v, ok := strings.Cut(item, string(nameValueSep)); ok && !strings.ContainsRune(v, nameValueSep) {
			p[k] = v
		}
	}
	return p
}

// put appends s to its queue, giving it offsets. f.mu must be held.
func (f *Fake) put(s *stored, q *queue) {
	s.QueueOffset = int64(len(q.msgs))
	f.allocPhysical(s)
	f.commitLog[s.CommitLogOffset] = s
	q.msgs = append(q.msgs, s)
	close(q.wake)
	q.wake = make(chan struct{})
}

// allocPhysical gives s a commit-log offset and the message id derived from
// it. f.mu must be held.
func (f *Fake) allocPhysical(s *stored) {
	s.CommitLogOffset = f.physical
	f.physical += int64(s.storeSize())
	var id [16]byte
	copy(id[:8], f.storeHost[:])
	binary.BigEndian.PutUint64(id[8:], uint64(s.CommitLogOffset))
	s.MsgID = strings.ToUpper(hex.EncodeToString(id[:]))
}

func (s *stored) storeSize() int {
	return 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 4 + len(s.Body) + 1 + len(s.Topic) + 2 + len(s.props)
}

// appendEncoded appends s in the broker's store encoding, which the client
// decodes with primitive.DecodeMessage. Hosts are IPv4.
func (f *Fake) appendEncoded(b []byte, s *stored) []byte {
	be := binary.BigEndian
	b = be.AppendUint32(b, uint32(s.storeSize()))
	b = be.AppendUint32(b, magicCode)
	b = be.AppendUint32(b, crc32.ChecksumIEEE(s.Body)&0x7FFFFFFF)
	b = be.AppendUint32(b, uint32(s.QueueID))
	b = be.AppendUint32(b, uint32(s.Flag))
	b = be.AppendUint64(b, uint64(s.QueueOffset))
	b = be.AppendUint64(b, uint64(s.CommitLogOffset))
	b = be.AppendUint32(b, uint32(s.SysFlag))
	b = be.AppendUint64(b, uint64(s.BornTimestamp))
	b = append(b, s.bornHost[:]...)
	b = be.AppendUint64(b, uint64(s.StoreTimestamp))
	b = append(b, f.storeHost[:]...)
	b = be.AppendUint32(b, uint32(s.ReconsumeTimes))
	b = be.AppendUint64(b, 0) // preparedTransactionOffset
	b = be.AppendUint32(b, uint32(len(s.Body)))
	b = append(b, s.Body...)
	b = append(b, byte(len(s.Topic)))
	b = append(b, s.Topic...)
	b = be.AppendUint16(b, uint16(len(s.props)))
	return append(b, s.props...)
}

// hostBytes is an IPv4 address and port as the store encoding has them.
func hostBytes(ip net.IP, port int) [8]byte {
	var h [8]byte
	copy(h[:4], ip.To4())
	binary.BigEndian.PutUint32(h[4:], uint32(port))
	return h
}

func remoteHost(nc net.Conn) ([8]byte, string) {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok && a.IP.To4() != nil {
		return hostBytes(a.IP, a.Port), a.String()
	}
	return hostBytes(net.IPv4(127, 0, 0, 1), 0), "127.0.0.1:0"
}

// batchItem is one message of a SEND_BATCH_MESSAGE body.
type batchItem struct {
	flag  int32
	body  []byte
	props string
}

// decodeBatch splits the client's batch encoding: per message totalSize,
// magic, bodyCRC, flag, bodyLen, body, propertiesLen (int16), properties.
func decodeBatch(b []byte) ([]batchItem, error) {
	var items []batchItem
	be := binary.BigEndian
	for len(b) > 0 {
		if len(b) < 20 {
			return nil, fmt.Errorf("batch message %d: truncated header", len(items))
		}
		total := int(be.Uint32(b))
		if total < 22 || total > len(b) {
			return nil, fmt.Errorf("batch message %d: totalSize %d outside 22..%d", len(items), total, len(b))
		}
		m, rest := b[:total], b[total:]
		bodyLen := int(be.Uint32(m[16:]))
		if bodyLen < 0 || 20+bodyLen+2 > total {
			return nil, fmt.Errorf("batch message %d: bodyLen %d exceeds totalSize %d", len(items), bodyLen, total)
		}
		propLen := int(be.Uint16(m[20+bodyLen:]))
		if 22+bodyLen+propLen != total {
			return nil, fmt.Errorf("batch message %d: sizes do not add up to totalSize %d", len(items), total)
		}
		items = append(items, batchItem{
			flag:  int32(be.Uint32(m[12:])),
			body:  m[20 : 20+bodyLen],
			props: string(m[22+bodyLen:]),
		})
		b = rest
	}
	if len(items) == 0 {
		return nil, errors.New("empty batch")
	}
	return items, nil
}

// tagFilter matches a TAG subscription expression: "*" (or empty) or
// "a || b".
type tagFilter map[string]bool

func parseTagFilter(expr string) tagFilter {
	expr = strings.TrimSpace(expr)
	if expr == "" || expr == "*" {
		return nil
	}
	f := tagFilter{}
	for tag := range strings.SplitSeq(expr, "||") {
		if tag = strings.TrimSpace(tag); tag != "" {
			f[tag] = true
		}
	}
	return f
}

func (f tagFilter) match(s *stored) bool { return f == nil || f[s.Properties[propTags]] }
