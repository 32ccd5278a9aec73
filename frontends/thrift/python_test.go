package thriftapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/sdk"
)

// systemPython is Debian's interpreter, the one python3-thriftpy installs
// into (a python3 earlier on PATH may not have it).
const systemPython = "/usr/bin/python3"

// needOrSkip skips the test for a missing tool, except in CI (CI=true),
// where every test must run.
func needOrSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// TestPythonThriftpyClient checks wire compatibility with a client that is
// not Go's: thriftpy loads producer.thrift at run time and calls the
// service over framed transport and compact protocol, as DDMQ's SDKs do.
func TestPythonThriftpyClient(t *testing.T) {
	if _, err := os.Stat(systemPython); err != nil {
		needOrSkip(t, "%s is missing (install python3 and python3-thriftpy): %v", systemPython, err)
	}
	if out, err := exec.Command(systemPython, "-c", "import thriftpy").CombinedOutput(); err != nil {
		needOrSkip(t, "thriftpy is not importable by %s (apt-get install python3-thriftpy): %v\n%s", systemPython, err, out)
	}

	fake := &fakeProducer{}
	srv := startServer(t, Options{}, fake)
	host, port, err := net.SplitHostPort(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, systemPython, "testdata/thriftpy_client.py", "producer.thrift", host, port)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("thriftpy client: %v\nstderr:\n%s", err, stderr.String())
	}

	type result struct {
		Code           int32   `json:"code"`
		Msg            string  `json:"msg"`
		Key            *string `json:"key"`
		UniqDelayMsgID string  `json:"uniqDelayMsgId"`
	}
	var got map[string]result
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("decoding the client's output %q: %v", out, err)
	}
	key := func(r result) string {
		if r.Key == nil {
			return "<none>"
		}
		return *r.Key
	}
	for _, tc := range []struct {
		call     string
		wantCode int32
		wantMsg  string
		wantKey  string
	}{
		{"sendSync", 0, "OK", "py-key"},
		{"sendBatchSync", 0, "OK", "<none>"},
		{"sendSyncEmptyTopic", 11, "message.topic: must not be empty", ""},
		{"sendAsync", 0, "OK", "a1"},
	} {
		r, ok := got[tc.call]
		if !ok || r.Code != tc.wantCode || r.Msg != tc.wantMsg || key(r) != tc.wantKey {
			t.Errorf("%s = %+v (key %s), want code %d msg %q key %q", tc.call, r, key(r), tc.wantCode, tc.wantMsg, tc.wantKey)
		}
	}
	if d := got["sendDelaySync"]; d.Code != 11 || d.UniqDelayMsgID != "py-delay" {
		t.Errorf("sendDelaySync = %+v, want code 11 and the id echoed", d)
	}

	// What reached the producer: sendSync, the batch's two topics, sendAsync.
	calls := fake.Calls()
	if len(calls) != 4 {
		t.Fatalf("producer got %d calls, want 4: %+v", len(calls), calls)
	}
	sync := calls[0].msgs[0]
	if calls[0].topic != "py-orders" || !bytes.Equal(sync.Value, allBytes()) || string(sync.Key) != "py-key" || sync.Tags != "py-tag" {
		t.Errorf("sendSync produced %s %+v, want py-orders with all 256 byte values, key and tags", calls[0].topic, sync)
	}
	if sync.Partition != sdk.PartitionHash || sync.HashID == nil || *sync.HashID != 42 {
		t.Errorf("sendSync placement = %d hashId %v, want -1 by hashId 42 (thriftpy sends the IDL default -1)", sync.Partition, deref(sync.HashID))
	}
	if want := []sdk.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}}; !headersEqual(sync.Headers, want) {
		t.Errorf("sendSync headers = %v, want %v", sync.Headers, want)
	}

	batch := calls[1:3]
	slices.SortFunc(batch, func(x, y produceCall) int { return strings.Compare(x.topic, y.topic) })
	if batch[0].topic != "py-orders" || batch[1].topic != "py-other" {
		t.Fatalf("batch topics = %s, %s", batch[0].topic, batch[1].topic)
	}
	// Placed as DDMQ places them: k0 by its hashId, the IDL's 0 (on
	// partition 0), k2 at random.
	want := []struct {
		key, value string
		part       int32
		hash       uint64
	}{{"k0", "v0", sdk.PartitionHash, 0}, {"k2", "v2", sdk.PartitionRandom, 0}}
	for i, m := range batch[0].msgs {
		part, hash := produce.Placement(&m)
		if i >= len(want) || string(m.Key) != want[i].key || string(m.Value) != want[i].value || part != want[i].part || hash != want[i].hash {
			t.Errorf("batch py-orders[%d] = %+v placed (%d, %d), want %+v", i, m, part, hash, want)
		}
	}
	if m := batch[1].msgs[0]; !bytes.Equal(m.Value, []byte{0, 0xff}) {
		t.Errorf("batch py-other = %+v, want body 00ff", m)
	} else if part, hash := produce.Placement(&m); part != sdk.PartitionHash || hash != 3 {
		t.Errorf("batch py-other placed (%d, %d), want partition 3 as 3 %% n", part, hash)
	}
	if !calls[3].async || string(calls[3].msgs[0].Value) != "later" {
		t.Errorf("sendAsync produced %+v", calls[3])
	}
}
