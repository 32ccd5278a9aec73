package rmqfake_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/mqgate/mqgate/plugins/rocketmq/internal/remoting"
	"github.com/mqgate/mqgate/plugins/rocketmq/rmqfake"
)

func dial(t testing.TB, f *rmqfake.Fake, handler func(*remoting.Command)) *remoting.Conn {
	t.Helper()
	c, err := remoting.Dial(context.Background(), f.Addr(), handler)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func invoke(t testing.TB, c *remoting.Conn, code int16, fields map[string]string, body []byte) *remoting.Command {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Invoke(ctx, remoting.NewRequest(code, fields, body))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func sendV2(t *testing.T, c *remoting.Conn, topic, tag string) *remoting.Command {
	t.Helper()
	return invoke(t, c, remoting.SendMessageV2, map[string]string{
		"a": "pg", "b": topic, "e": "0", "i": "TAGS\x01" + tag + "\x02",
	}, []byte("body-"+tag))
}

func pullFields(topic string, offset int64, sysFlag int, sub string) map[string]string {
	return map[string]string{
		"consumerGroup": "g", "topic": topic, "queueId": "0", "queueOffset": strconv.FormatInt(offset, 10),
		"maxMsgNums": "32", "sysFlag": strconv.Itoa(sysFlag), "commitOffset": "0",
		"suspendTimeoutMillis": "15000", "subscription": sub, "expressionType": "TAG",
	}
}

func TestPullStatuses(t *testing.T) {
	f := startFake(t, rmqfake.Options{})
	f.CreateTopic("PT", 1)
	c := dial(t, f, nil)
	for _, tag := range []string{"a", "c", "c", "a", "c"} {
		if r := sendV2(t, c, "PT", tag); r.Code != remoting.Success {
			t.Fatalf("send: %d %s", r.Code, r.Remark)
		}
	}
	const sub = 4
	check := func(offset int64, sysFlag int, expr string, code int16, next string, offsets ...int64) []*primitive.MessageExt {
		t.Helper()
		r := invoke(t, c, remoting.PullMessage, pullFields("PT", offset, sysFlag, expr), nil)
		if r.Code != code || (next != "" && r.ExtFields["nextBeginOffset"] != next) {
			t.Fatalf("pull at %d %q: code %d next %s (%s), want %d next %s", offset, expr, r.Code, r.ExtFields["nextBeginOffset"], r.Remark, code, next)
		}
		msgs := primitive.DecodeMessage(r.Body)
		if len(msgs) != len(offsets) {
			t.Fatalf("pull at %d %q: %d messages, want %v", offset, expr, len(msgs), offsets)
		}
		for i, m := range msgs {
			if m.QueueOffset != offsets[i] {
				t.Fatalf("pull at %d %q: message %d at offset %d, want %d", offset, expr, i, m.QueueOffset, offsets[i])
			}
		}
		return msgs
	}
	msgs := check(0, sub, "a", remoting.Success, "5", 0, 3)
	stored := f.Messages("PT", 0)
	if m := msgs[1]; string(m.Body) != "body-a" || m.GetTags() != "a" || m.StoreHost != f.Addr() ||
		m.OffsetMsgId != stored[3].MsgID || m.CommitLogOffset != stored[3].CommitLogOffset || m.Topic != "PT" {
		t.Fatalf("decoded %v, stored %+v", m, stored[3])
	}
	check(0, sub, "*", remoting.Success, "5", 0, 1, 2, 3, 4)
	check(4, sub, "a", remoting.PullRetryImmediately, "5") // filtered out: skip ahead
	check(5, sub, "a", remoting.PullNotFound, "5")         // at the end, no suspend flag
	check(9, sub, "a", remoting.PullOffsetMoved, "0")      // beyond the end
	check(0, 0, "", remoting.SubscriptionNotExist, "")     // no heartbeat, no subscription
	check(0, sub|1, "a", remoting.Success, "5", 0, 3)      // commit flag
	if off, ok := f.ConsumerOffset("g", "PT", 0); !ok || off != 0 {
		t.Fatalf("offset %d %v: commitOffset 0 should be stored", off, ok)
	}

	// A long poll wakes when a message arrives, and does not hold up other
	// requests on the connection.
	got := make(chan *remoting.Command, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
		defer cancel()
		r, _ := c.Invoke(ctx, remoting.NewRequest(remoting.PullMessage, pullFields("PT", 5, sub|2, "b"), nil))
		got <- r
	}()
	time.Sleep(50 * time.Millisecond)
	if r := invoke(t, c, remoting.GetMaxOffset, map[string]string{"topic": "PT", "queueId": "0"}, nil); r.ExtFields["offset"] != "5" {
		t.Fatalf("max offset %v", r.ExtFields)
	}
	sendV2(t, c, "PT", "b")
	if r := <-got; r == nil || r.Code != remoting.Success || len(primitive.DecodeMessage(r.Body)) != 1 {
		t.Fatalf("long poll answered %+v", r)
	}
}

func TestMalformedRequests(t *testing.T) {
	f := startFake(t, rmqfake.Options{})
	f.CreateTopic("MT", 1)
	c := dial(t, f, nil)
	for _, tc := range []struct {
		code   int16
		fields map[string]string
		body   string
		want   int16
		remark string
	}{
		{9999, nil, "", remoting.RequestCodeNotSupported, "9999"},
		{remoting.SendMessageV2, map[string]string{"e": "0"}, "x", remoting.SystemError, `"b"`},
		{remoting.SendMessageV2, map[string]string{"b": "MT", "e": "7"}, "x", remoting.SystemError, "queueId[7]"},
		{remoting.SendMessageV2, map[string]string{"b": "nope", "e": "0"}, "x", remoting.TopicNotExist, "nope"},
		{remoting.SendBatchMessage, map[string]string{"b": "MT", "e": "0"}, "\x00\x00\x00\x30short", remoting.MessageIllegal, "batch"},
		{remoting.PullMessage, map[string]string{"consumerGroup": "g", "topic": "MT", "queueId": "x"}, "", remoting.SystemError, `"queueId"`},
		{remoting.HeartBeat, nil, "{not json", remoting.SystemError, "heartbeat"},
		{remoting.GetRouteInfoByTopic, map[string]string{"topic": "nope"}, "", remoting.TopicNotExist, "nope"},
		{remoting.QueryConsumerOffset, map[string]string{"consumerGroup": "g", "topic": "MT", "queueId": "0"}, "", remoting.QueryNotFound, ""},
		{remoting.ConsumerSendMsgBack, map[string]string{"group": "g", "offset": "12345"}, "", remoting.SystemError, "12345"},
		{remoting.UpdateAndCreateTopic, map[string]string{"topic": "bad topic!", "readQueueNums": "1", "writeQueueNums": "1"}, "", remoting.SystemError, "bad topic"},
	} {
		r := invoke(t, c, tc.code, tc.fields, []byte(tc.body))
		if r.Code != tc.want || !strings.Contains(r.Remark, tc.remark) {
			t.Errorf("code %d %v: answered %d %q, want %d mentioning %s", tc.code, tc.fields, r.Code, r.Remark, tc.want, tc.remark)
		}
	}
	// One-way requests get no answer, even unknown ones; the next request
	// is answered normally.
	if err := c.Send(context.Background(), remoting.NewRequest(9999, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if r := invoke(t, c, remoting.GetRouteInfoByTopic, map[string]string{"topic": "MT"}, nil); r.Code != remoting.Success {
		t.Fatalf("route after one-way: %d %s", r.Code, r.Remark)
	}

	// Frames that do not decode end the connection, not the fake.
	for _, frame := range [][]byte{
		{0, 0, 0, 2, 0, 0},                                 // length below 4
		{0, 0, 0, 8, 1, 0, 0, 0, 0, 0, 0, 0},               // serialization 1
		{0, 0, 0, 6, 0, 0, 0, 2, '{', 'x'},                 // bad JSON header
		{0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0},               // oversized
		append([]byte{0, 0, 0, 9, 0, 0, 0, 5}, "[1,2]"...), // header not an object
	} {
		nc, err := net.Dial("tcp", f.Addr())
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(frame)
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := nc.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("frame %q: read %d, %v; want the fake to hang up", frame, n, err)
		}
		nc.Close()
	}
	if r := invoke(t, dial(t, f, nil), remoting.GetRouteInfoByTopic, map[string]string{"topic": "MT"}, nil); r.Code != remoting.Success {
		t.Fatalf("route after bad frames: %d %s", r.Code, r.Remark)
	}
}

func TestConsumerIDsChanged(t *testing.T) {
	// An expiry no test step can outlast; the test expires client-a
	// itself, with ExpireAsOf.
	const expiry = time.Minute
	f := startFake(t, rmqfake.Options{ClientExpiry: expiry})
	notified := make(chan string, 10)
	heartbeat := func(c *remoting.Conn, id string) {
		body := `{"clientID":"` + id + `","producerDataSet":[],"consumerDataSet":[{"groupName":"G","consumeType":"CONSUME_PASSIVELY",` +
			`"messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","subscriptionDataSet":[{"topic":"T","subString":"*"}]}]}`
		if r := invoke(t, c, remoting.HeartBeat, nil, []byte(body)); r.Code != remoting.Success {
			t.Fatalf("heartbeat: %d %s", r.Code, r.Remark)
		}
	}
	expectNotified := func(why string) {
		t.Helper()
		select {
		case g := <-notified:
			if g != "G" {
				t.Fatalf("notified for %q when %s", g, why)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("client-a was not notified when %s", why)
		}
	}
	a := dial(t, f, func(cmd *remoting.Command) {
		if cmd.Code == remoting.NotifyConsumerIDsChanged && cmd.IsOneway() {
			notified <- cmd.ExtFields["consumerGroup"]
		}
	})
	heartbeat(a, "client-a")
	b := dial(t, f, nil)
	heartbeat(b, "client-b")
	expectNotified("client-b joined")
	r := invoke(t, a, remoting.GetConsumerListByGroup, map[string]string{"consumerGroup": "G"}, nil)
	if string(r.Body) != `{"consumerIdList":["client-a","client-b"]}` {
		t.Fatalf("consumer list %s", r.Body)
	}
	b.Close()
	expectNotified("client-b hung up")
	waitFor(t, 10*time.Second, "client-b dropped", func() bool { return len(f.Consumers("G")) == 1 })
	// Without heartbeats client-a expires too: not within the expiry,
	// but past it.
	f.ExpireAsOf(time.Now())
	if got := f.Consumers("G"); !slices.Equal(got, []string{"client-a"}) {
		t.Fatalf("consumers %q within the client expiry; want client-a", got)
	}
	f.ExpireAsOf(time.Now().Add(expiry + time.Second))
	if got := f.Consumers("G"); len(got) != 0 {
		t.Fatalf("consumers %q past the client expiry; want none", got)
	}
}

// FuzzServe feeds arbitrary bytes to a connection: the fake must answer or
// hang up, and keep serving others.
func FuzzServe(f *testing.F) {
	for _, cmd := range []*remoting.Command{
		remoting.NewRequest(remoting.SendMessageV2, map[string]string{"b": "FT", "e": "0", "i": "TAGS\x01a\x02DELAY\x012\x02"}, []byte("x")),
		remoting.NewRequest(remoting.PullMessage, pullFields("FT", 0, 7, "a || b"), nil),
		remoting.NewRequest(remoting.HeartBeat, nil, []byte(`{"clientID":"c","consumerDataSet":[{"groupName":"G","subscriptionDataSet":[{"topic":"FT","subString":"*"}]}]}`)),
		remoting.NewRequest(remoting.UpdateAndCreateTopic, map[string]string{"topic": "FT2", "readQueueNums": "2", "writeQueueNums": "3"}, nil),
		remoting.NewRequest(remoting.ConsumerSendMsgBack, map[string]string{"group": "G", "offset": "0", "delayLevel": "0"}, nil),
		remoting.NewRequest(remoting.LockBatchMQ, nil, []byte(`{"consumerGroup":"G","clientId":"c","mqSet":[{"topic":"FT","queueId":0}]}`)),
		remoting.NewRequest(remoting.SendBatchMessage, map[string]string{"b": "FT", "e": "0"}, batchBody("one", "two")),
	} {
		frame, err := cmd.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame)
	}
	fake, err := rmqfake.Start(rmqfake.Options{RetryDelay: func(int) time.Duration { return time.Millisecond }})
	if err != nil {
		f.Fatal(err)
	}
	defer fake.Close()
	fake.CreateTopic("FT", 2)
	f.Fuzz(func(t *testing.T, data []byte) {
		nc, err := net.Dial("tcp", fake.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.Write(data)
		nc.(*net.TCPConn).CloseWrite()
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(nc)
		for {
			if _, err := remoting.ReadCommand(r, remoting.MaxFrame); err != nil {
				if err != io.EOF {
					t.Fatalf("reading answers: %v", err)
				}
				break
			}
		}
		c := dial(t, fake, nil)
		if r := invoke(t, c, remoting.GetRouteInfoByTopic, map[string]string{"topic": "FT"}, nil); r.Code != remoting.Success {
			t.Fatalf("fake stopped serving: %d %s", r.Code, r.Remark)
		}
	})
}

// batchBody encodes messages as the client's MarshalMessageBatch does.
func batchBody(bodies ...string) []byte {
	var b []byte
	for _, body := range bodies {
		props := "TAGS\x01t\x02"
		size := 20 + len(body) + 2 + len(props)
		b = binary.BigEndian.AppendUint32(b, uint32(size))
		b = append(b, make([]byte, 12)...) // magic, bodyCRC, flag
		b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
		b = append(b, body...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(props)))
		b = append(b, props...)
	}
	return b
}
