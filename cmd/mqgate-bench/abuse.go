package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/consumer"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/sdk"
)

// abuseScenario is -scenario abuse: not a comparison with a direct client
// but what a hostile or buggy client tries, replayed against a fresh
// gateway with bounded loops. Each probe prints whether the gateway held
// (refused with the documented code, lost nothing, stayed within its
// bounds) and the figures behind the verdict. It runs alone.
const abuseScenario = "abuse"

// probe is one thing a client tries.
type probe struct {
	name string
	run  func(e *env) (held bool, figures string, err error)
}

var probes = []probe{
	{"join a delay tier's consumer group", probeTierGroup},
	{"forge a cancel, inject into a tier, send reserved headers", probeForgery},
	{"declare 64 MiB bodies, send 10 bytes (100 connections)", probeDeclaredBodies},
	{"cancel with 512 KiB delay ids over Thrift (100 calls)", probeLongIDs},
	{"submit ConsumeResult chains 4,001 deep (20 calls)", probeDeepChains},
	{"commit far past the end offset", probeCommitPastEnd},
	{"pull once in each of 10,000 consumer groups from one anonymous client while producing", probeManyGroups},
	{"produce to 400 new topics with max_topics 300", probeManyTopics},
	{"run the embedded broker out of descriptors, then send async", probeDescriptors},
	{"replace a plugin binary run by path with its sha256, kill the plugin", probeReplacedPlugin},
	{"hold 20,000 idle connections over HTTP and both Thrift listeners, plus a slowloris on each", probeConnectionFlood},
	{"flood produce as one principal past its quota while another produces", probeQuotaFlood},
}

// runAbuse runs every probe and prints a table; it fails when a probe
// could not run at all.
// Only the probes whose name contains only are run.
func runAbuse(e *env, only string) error {
	if e.backend != "kafka" {
		return fmt.Errorf("-scenario abuse runs with -backend kafka only")
	}
	fmt.Println("| probe | held | figures |")
	fmt.Println("|---|---|---|")
	failed := 0
	ran := 0
	for _, p := range probes {
		if !strings.Contains(p.name, only) {
			continue
		}
		ran++
		held, figures, err := p.run(e)
		verdict := "held"
		switch {
		case err != nil:
			verdict, figures = "could not run", err.Error()
			failed++
		case !held:
			verdict = "**FAILED**"
			failed++
		}
		fmt.Printf("| %s | %s | %s |\n", p.name, verdict, figures)
	}
	if ran == 0 {
		return fmt.Errorf("no probe's name contains %q", only)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d probes did not hold", failed, ran)
	}
	return nil
}

// answer is an HTTP answer: its status and the error code of its body.
type answer struct {
	status int
	code   int
	body   string
	// retryAfter is the Retry-After header, "" when there is none.
	retryAfter string
}

func call(method, url, body string) (answer, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct {
		Error struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return answer{resp.StatusCode, e.Error.Code, strings.TrimSpace(string(b)), resp.Header.Get("Retry-After")}, nil
}

// probeTierGroup pulls and acks as a tier worker's group, then checks that
// every delay added meanwhile is delivered.
func probeTierGroup(e *env) (bool, string, error) {
	base := "http://" + e.httpAddr
	const n = 20
	for i := range n {
		a, err := call("POST", base+"/v1/topics/abuse-delays/delayed", fmt.Sprintf(`{"value":"d%d","delay_ms":2000}`, i))
		if err != nil || a.status != 200 {
			return false, "", fmt.Errorf("adding a delay: %v %s", err, a.body)
		}
	}
	join, err := call("POST", base+"/v1/groups/mqgate_delay_1s/topics/mqgate_delay_1s/pull", `{"max_messages":100,"max_wait_ms":100}`)
	if err != nil {
		return false, "", err
	}
	got := 0
	deadline := time.Now().Add(60 * time.Second)
	for got < n && time.Now().Before(deadline) {
		a, err := call("POST", base+"/v1/groups/abuse-check/topics/abuse-delays/pull", `{"max_messages":100,"max_wait_ms":1000}`)
		if err != nil {
			return false, "", err
		}
		var b struct {
			Context  json.RawMessage   `json:"context"`
			Messages []json.RawMessage `json:"messages"`
		}
		if json.Unmarshal([]byte(a.body), &b) == nil && len(b.Messages) > 0 {
			got += len(b.Messages)
			var ctx struct {
				Qid string `json:"qid"`
			}
			_ = json.Unmarshal(b.Context, &ctx)
			var offs []string
			for _, m := range b.Messages {
				var o struct {
					Offset int64 `json:"offset"`
				}
				_ = json.Unmarshal(m, &o)
				offs = append(offs, strconv.FormatInt(o.Offset, 10))
			}
			_, _ = call("POST", base+"/v1/groups/abuse-check/topics/abuse-delays/ack",
				fmt.Sprintf(`{"qid":%q,"success":[%s]}`, ctx.Qid, strings.Join(offs, ",")))
		}
	}
	held := join.status == 403 && join.code == 13 && got == n
	return held, fmt.Sprintf("pull as mqgate_delay_1s: %d/%d; delays delivered %d of %d", join.status, join.code, got, n), nil
}

// probeForgery produces what only the gateway may write.
func probeForgery(e *env) (bool, string, error) {
	base := "http://" + e.httpAddr
	cancel, err := call("POST", base+"/v1/topics/mqgate_delay_cancel/messages", `{"key":"orders/any-id","value":"32503680000000"}`)
	if err != nil {
		return false, "", err
	}
	inject, err := call("POST", base+"/v1/topics/mqgate_delay_1s/messages", `{"value":"x","headers":{"mqgate-delay-topic":"orders"}}`)
	if err != nil {
		return false, "", err
	}
	header, err := call("POST", base+"/v1/topics/orders/messages", `{"value":"x","headers":{"mqgate-delay-id":"fake"}}`)
	if err != nil {
		return false, "", err
	}
	held := cancel.code == 13 && inject.code == 13 && header.code == 11
	return held, fmt.Sprintf("cancel topic %d/%d, tier topic %d/%d, reserved header %d/%d",
		cancel.status, cancel.code, inject.status, inject.code, header.status, header.code), nil
}

// probeDeclaredBodies opens connections that declare the largest body
// allowed and send a few bytes of it, on the produce and the ack routes,
// and compares the gateway's resident memory before and while they wait.
func probeDeclaredBodies(e *env) (bool, string, error) {
	before := rssMiB(e.cmd.Process.Pid)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 100 {
		path := "/v1/topics/abuse-bodies/messages"
		if i%2 == 1 {
			path = "/v1/groups/g/topics/abuse-bodies/ack"
		}
		c, err := net.Dial("tcp", e.httpAddr)
		if err != nil {
			return false, "", err
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{\"value\":", path, 64<<20)
	}
	time.Sleep(2 * time.Second) // let the gateway read what was sent
	during := rssMiB(e.cmd.Process.Pid)
	ok, err := call("POST", "http://"+e.httpAddr+"/v1/topics/abuse-bodies/messages", `{"value":"v"}`)
	if err != nil {
		return false, "", err
	}
	const bound = 200 // MiB: 100 connections at the 256 KiB a body starts with, and room
	held := during-before < bound && ok.status == 200
	return held, fmt.Sprintf("gateway RSS %d MiB before, %d MiB with 100 bodies of 6.4 GiB declared (bound +%d MiB); a produce meanwhile: %d",
		before, during, bound, ok.status), nil
}

// probeLongIDs cancels with ids far over the limit through Thrift.
func probeLongIDs(e *env) (bool, string, error) {
	sock := thrift.NewTSocketConf(e.thriftAddr, &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: 30 * time.Second})
	trans := thrift.NewTFramedTransportConf(sock, &thrift.TConfiguration{})
	if err := trans.Open(); err != nil {
		return false, "", err
	}
	defer trans.Close()
	client := producer.NewProducerServiceClientFactory(trans, thrift.NewTCompactProtocolFactoryConf(&thrift.TConfiguration{}))
	before := rssMiB(e.cmd.Process.Pid)
	id := strings.Repeat("i", 512<<10)
	refused, echoed := 0, 0
	for range 100 {
		res, err := client.SendDelaySync(context.Background(), &producer.DelayMessage{Topic: "orders", Action: 2, UniqDelayMsgId: &id}, 5000)
		if err != nil {
			return false, "", err
		}
		if res.Code == int32(sdk.CodeDelayID) { // DDMQ's code for an id not in Chronos's format
			refused++
		}
		echoed += len(res.UniqDelayMsgId)
	}
	after := rssMiB(e.cmd.Process.Pid)
	held := refused == 100 && echoed == 0 && after-before < 100
	return held, fmt.Sprintf("refused %d of 100 with code 30; %d bytes of id echoed; gateway RSS %d -> %d MiB", refused, echoed, before, after), nil
}

// probeDeepChains sends submits whose ConsumeResult chains nest 4,001
// deep, and measures what they cost the gateway.
func probeDeepChains(e *env) (bool, string, error) {
	var head *consumer.ConsumeResult_
	for i := 4000; i >= 0; i-- {
		head = &consumer.ConsumeResult_{Context: &consumer.Context{GroupId: "g", Topic: "t", Qid: "0"}, SuccessOffsets: []int64{int64(i)}, NextResult_: head}
	}
	mem := thrift.NewTMemoryBuffer()
	proto := thrift.NewTCompactProtocolConf(mem, nil)
	ctx := context.Background()
	if err := proto.WriteMessageBegin(ctx, "submit", thrift.CALL, 1); err != nil {
		return false, "", err
	}
	if err := (&consumer.ConsumerServiceSubmitArgs{Result_: head}).Write(ctx, proto); err != nil {
		return false, "", err
	}
	if err := proto.WriteMessageEnd(ctx); err != nil {
		return false, "", err
	}
	frame := binary.BigEndian.AppendUint32(nil, uint32(mem.Len()))
	frame = append(frame, mem.Bytes()...)
	cpu0 := procCPU(e.cmd.Process.Pid)
	answered := 0
	for range 20 {
		c, err := net.Dial("tcp", e.consumerAddr)
		if err != nil {
			return false, "", err
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(frame); err != nil {
			c.Close()
			return false, "", err
		}
		b, _ := io.ReadAll(c)
		answered += len(b)
		c.Close()
	}
	cpu := procCPU(e.cmd.Process.Pid) - cpu0
	held := answered == 0 && cpu < 2*time.Second
	return held, fmt.Sprintf("%d KiB each; connections closed with %d bytes of answer; gateway CPU %s for all 20",
		len(frame)>>10, answered, cpu), nil
}

// probeCommitPastEnd commits an offset far past a topic's end.
func probeCommitPastEnd(e *env) (bool, string, error) {
	base := "http://" + e.httpAddr
	a, err := call("POST", base+"/v1/topics/abuse-commit/messages", `{"messages":[`+strings.TrimSuffix(strings.Repeat(`{"value":"m","partition":0},`, 11), ",")+`]}`)
	if err != nil || a.status != 200 {
		return false, "", fmt.Errorf("producing: %v %s", err, a.body)
	}
	c, err := call("POST", base+"/v1/commit", `{"group":"abuse-commit","offsets":{"abuse-commit":{"0":1000000}}}`)
	if err != nil {
		return false, "", err
	}
	held := c.status == 400 && c.code == 11
	return held, fmt.Sprintf("commit of offset 1,000,000 on 11 messages: %d/%d", c.status, c.code), nil
}

// rssMiB is a process's resident memory in MiB, from /proc.
func rssMiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(rest)), " kB"), 10, 64)
			return kb >> 10
		}
	}
	return 0
}
