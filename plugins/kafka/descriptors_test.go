package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mqgate/mqgate/sdk"
)

// shortageChildEnv makes TestDescriptorShortage the child that runs out of
// descriptors: RLIMIT_NOFILE is per process, and the child's lowered limit
// and hoarded descriptors must not reach the other tests.
const shortageChildEnv = "MQGATE_KAFKA_TEST_FD_SHORTAGE"

// A plugin process out of file descriptors answers code 17 naming the
// shortage, never 100, and says so in Health, while the partitions it has
// open keep taking records; its broker keeps its listener; once
// descriptors free up it is healthy and creates topics again.
func TestDescriptorShortage(t *testing.T) {
	if os.Getenv(shortageChildEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDescriptorShortage$", "-test.v")
		cmd.Env = append(os.Environ(), shortageChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the child out of descriptors failed: %v\n%s", err, out)
		}
		return
	}

	logs := &lineLog{lines: make(chan string, 1000)}
	b := New(slog.New(slog.NewTextHandler(logs, nil)))
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := fmt.Sprintf(`{"brokers": "embedded", "listen": "127.0.0.1:0", "data_dir": %q, "default_partitions": 1}`, t.TempDir())
	if err := b.Configure(ctx, []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	produce := func(topic string) error {
		res, err := b.Produce(ctx, []sdk.Record{{Topic: topic, Partition: sdk.PartitionRandom, Value: []byte("v")}})
		if err != nil {
			return err
		}
		return res[0].Err
	}
	if err := produce("old"); err != nil {
		t.Fatal(err)
	}

	// Configure raised the soft limit to the hard one; a low soft limit
	// makes running out quick.
	lim := syscall.Rlimit{Cur: 512}
	var cur syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur); err != nil {
		t.Fatal(err)
	}
	lim.Max = cur.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var hoard []*os.File
	defer func() {
		for _, f := range hoard {
			f.Close()
		}
	}()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		hoard = append(hoard, f)
	}

	if err := produce("old"); err != nil {
		t.Errorf("producing to a partition already open, out of descriptors: %v; want it taken", err)
	}
	err := produce("new")
	t.Logf("producing to a new topic out of descriptors: %v", err)
	if sdk.CodeOf(err) != sdk.CodeUnavailable || !strings.Contains(err.Error(), "too many open files") {
		t.Errorf("producing to a new topic out of descriptors: %v (code %d); want code 17 naming too many open files", err, sdk.CodeOf(err))
	}
	health := b.Health(ctx)
	t.Logf("Health out of descriptors: %v", health)
	if err := health; sdk.CodeOf(err) != sdk.CodeUnavailable || !strings.Contains(err.Error(), "out of file descriptors") {
		t.Errorf("Health out of descriptors: %v; want code 17 saying the plugin is out of file descriptors", err)
	}

	// A connection the kernel completes while the broker cannot take a
	// descriptor for it: kfake alone would stop listening for good.
	hoard[len(hoard)-1].Close()
	hoard = hoard[:len(hoard)-1]
	conn, err := net.Dial("tcp", b.Addrs()[0])
	if err != nil {
		t.Fatalf("dialing the broker with the last descriptor: %v", err)
	}
	logs.waitFor(t, "embedded broker cannot accept connections")
	conn.Close()

	for _, f := range hoard {
		f.Close()
	}
	hoard = nil
	deadline := time.Now().Add(30 * time.Second)
	for err := b.Health(ctx); err != nil; err = b.Health(ctx) {
		if time.Now().After(deadline) {
			t.Fatalf("Health with descriptors free again: %v; want nil within 30 s", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := produce("newer"); err != nil {
		t.Errorf("producing to a new topic with descriptors free again: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		t.Errorf("a new client of the broker after the shortage: %v; want its listener still accepting", err)
	}
}
