package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A peer is another HTTP gateway to Kafka, run by the bench against the
// same broker with the same load, so a comparison with it can be rerun.
// It must speak kafka-pixy's HTTP API:
//
//	POST /topics/{topic}/messages?key=K&sync    body: the value; 200 once written
//	GET  /topics/{topic}/messages?group=G[&ackPartition=P&ackOffset=O]
//	     200 {"key": base64, "value": base64, "partition": P, "offset": O},
//	     404 when no message came within its long-poll timeout
//
// -peer-cmd gives its command line, in which {kafka} becomes the broker's
// address and {addr} the host:port it must serve HTTP on, e.g.
//
//	-peer-cmd 'kafka-pixy --config cmd/mqgate-bench/peers/kafka-pixy.yaml --kafkaPeers {kafka} --tcpAddr {addr} --grpcAddr 127.0.0.1:0'
//
// (peers/ holds the configs kafka-pixy needs against the embedded broker;
// check your kafka-pixy's flags: they changed between versions).
type peer struct {
	cmdline string
	addr    string
	cmd     *exec.Cmd
}

// start runs the peer against e's broker and waits until it answers HTTP.
func (pr *peer) start(e *env) error {
	if e.backend != "kafka" {
		return fmt.Errorf("-peer-cmd needs -backend kafka: a peer speaks Kafka")
	}
	pr.addr = freeAddr()
	line := strings.NewReplacer("{kafka}", e.kafkaAddr, "{addr}", pr.addr).Replace(pr.cmdline)
	pr.cmd = exec.Command("sh", "-c", "exec "+line)
	logf, err := os.Create(filepath.Join(e.dir, "peer.log"))
	if err != nil {
		return err
	}
	pr.cmd.Stdout, pr.cmd.Stderr = logf, logf
	if err := pr.cmd.Start(); err != nil {
		return fmt.Errorf("starting the peer (%s): %w", line, err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", pr.addr, time.Second); err == nil {
			c.Close()
			return nil
		}
	}
	pr.stop()
	return fmt.Errorf("the peer (%s) did not listen on %s within 30 s; its output is in %s", line, pr.addr, logf.Name())
}

func (pr *peer) stop() {
	if pr.cmd != nil && pr.cmd.Process != nil {
		stopCmd(pr.cmd)
	}
}

// meterPeer meters the peer's process, the broker's (the main gateway's
// plugin) and the bench's for the peer side of a scenario.
func (e *env) meterPeer(pr *peer) {
	brokerName, brokerPID := e.broker()
	e.cpu = newCPUMeter("peer", pr.cmd.Process.Pid, brokerName, brokerPID, "bench", os.Getpid())
	e.cpu.begin()
}

// createTopic makes topic on the broker, as the peer would not.
func (e *env) createTopic(ctx context.Context, topic string, partitions int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafkaAddr))
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), -1, nil, topic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("creating %s: %w", topic, err)
	}
	return nil
}

// peerProduce posts one message per request, as the peer's API takes
// them, with C requests in flight.
func peerProduce(ctx context.Context, e *env, pr *peer, p params) (result, error) {
	if p.batch != 1 {
		return result{}, fmt.Errorf("the peer takes one message per request: run with -batch 1")
	}
	topic := "bench-peer"
	if err := e.createTopic(ctx, topic, p.partitions); err != nil {
		return result{}, err
	}
	e.restartMeter()
	post, done, err := poster(p, pr.addr)
	if err != nil {
		return result{}, err
	}
	defer done()
	value := randomValue(p.size)
	base := "/topics/" + topic + "/messages?sync&key="
	return runCalls(p, func(worker, call int) error {
		return post(worker, base+strconv.Itoa(call), "application/json", nil, value)
	}), nil
}

// peerConsume fills a topic, then C consumers of one group take one
// message per request, each request acking the previous message, until N
// arrived.
func peerConsume(ctx context.Context, e *env, pr *peer, p params) (result, error) {
	topic := p.named("bench-consume-peer")
	if err := e.fill(ctx, topic, p); err != nil {
		return result{}, err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: p.concurrency * 2}}
	base := "http://" + pr.addr + "/topics/" + topic + "/messages?group=" + p.named("bench-peer")
	return consumeLoop(ctx, params{n: p.n, size: p.size, concurrency: p.concurrency}, func(prev *ackState) (*ackState, int, error) {
		u := base
		if prev != nil {
			u += "&ackPartition=" + url.QueryEscape(prev.qid) + "&ackOffset=" + strconv.FormatInt(prev.offsets[0], 10)
		}
		resp, err := client.Get(u)
		if err != nil {
			return nil, 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound { // nothing within the long poll
			_, _ = io.Copy(io.Discard, resp.Body)
			return nil, 0, nil
		}
		var m struct {
			Partition int32 `json:"partition"`
			Offset    int64 `json:"offset"`
		}
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&m) != nil {
			return nil, 0, fmt.Errorf("peer consume: status %d", resp.StatusCode)
		}
		return &ackState{qid: strconv.Itoa(int(m.Partition)), offsets: []int64{m.Offset}}, 1, nil
	}), nil
}

// peerSides are the scenarios a peer runs too, with the same load.
var peerSides = map[string]func(ctx context.Context, e *env, pr *peer, p params) (result, error){
	"produce-http":      peerProduce,
	"consume-pull-http": peerConsume,
}

// runPeer runs scenario s's peer side, if it has one, and prints it beside
// the gateway's figures.
func runPeer(ctx context.Context, e *env, pr *peer, s scenario, p params, g result) error {
	side, ok := peerSides[s.name]
	if !ok || pr == nil {
		return nil
	}
	if pr.cmd == nil {
		if err := pr.start(e); err != nil {
			return err
		}
	}
	e.meterPeer(pr)
	r, err := side(ctx, e, pr, p)
	if err != nil {
		return fmt.Errorf("%s via the peer: %w", s.name, err)
	}
	r.cpu = e.sideCPU()
	fmt.Printf("| %s | peer | %.0f | %.1f | %s | %s | %d |\n", s.name, r.rate(), r.mibps(),
		r.pct(0.5).Round(10*time.Microsecond), r.pct(0.99).Round(10*time.Microsecond), r.failures)
	fmt.Printf("%s: gateway/peer = %.2f\n", s.name, g.rate()/r.rate())
	fmt.Printf("%s: CPU µs per message, peer side: %s\n", s.name, r.cpu.perMessage(r.msgs))
	gs := float64(g.cpu.server().Microseconds()) / float64(g.msgs)
	ps := float64(r.cpu.server().Microseconds()) / float64(r.msgs)
	fmt.Printf("%s: server CPU µs per message: mqgate %.1f, peer %.1f (peer + broker): mqgate/peer = %.2f\n", s.name, gs, ps, gs/ps)
	return nil
}
