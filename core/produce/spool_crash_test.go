package produce

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// spoolCrashDirEnv, when set, makes the test binary the child of
// TestSpoolSurvivesKill9: it spools into that directory until killed.
const spoolCrashDirEnv = "MQGATE_SPOOL_CRASH_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(spoolCrashDirEnv); dir != "" {
		spoolCrashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// spoolCrashChild appends records from several goroutines and forwards
// them to a "broker" that is its stdout, until it is killed. It prints
// "a ID" once the Append of record ID returned nil, and "d ID" when the
// broker acknowledges ID; each line is one write, made before the spool
// hears of the outcome.
func spoolCrashChild(dir string) {
	s, err := OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	line := func(kind byte, id int) {
		out.Lock()
		defer out.Unlock()
		// os.Stdout is unbuffered: the line is in the pipe when this
		// returns.
		if _, err := fmt.Fprintf(os.Stdout, "%c %d\n", kind, id); err != nil {
			os.Exit(3)
		}
	}
	// accepted and delivered count the records printed as such.
	var accepted, delivered atomic.Int64
	go s.Run(context.Background(), func(_ context.Context, _ string, rs []sdk.Record) ([]sdk.ProduceResult, error) {
		// A broker that takes a batch only while it leaves a backlog of
		// accepted records behind, so that one is spooled when the kill
		// comes however fast each side runs. The appenders never stop,
		// so the wait ends.
		for accepted.Load()-delivered.Load() < int64(len(rs))+spoolCrashBacklog {
			time.Sleep(time.Millisecond)
		}
		for _, r := range rs {
			line('d', spoolRecID(r))
		}
		delivered.Add(int64(len(rs)))
		return make([]sdk.ProduceResult, len(rs)), nil
	})
	var next atomic.Int64
	for w := range 8 {
		go func() {
			cluster := []string{"a", "b"}[w%2]
			for {
				n := 1 + w%3 // some Appends carry several records
				first := int(next.Add(int64(n))) - n
				rs := make([]sdk.Record, n)
				for i := range rs {
					rs[i] = spoolRec("t", first+i)
					rs[i].Key = []byte{byte(w)} // which appender: its records keep their order
					rs[i].Value = append(rs[i].Value, make([]byte, 1024)...)
				}
				if err := s.Append(context.Background(), cluster, rs); err != nil {
					continue
				}
				for i := range rs {
					line('a', first+i)
				}
				accepted.Add(int64(n))
			}
		}()
	}
	select {}
}

// spoolCrashBacklog is how many accepted records the child's broker
// leaves undelivered at least.
const spoolCrashBacklog = 300

func TestSpoolSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), spoolCrashDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	var (
		mu              sync.Mutex
		accepted        = map[int]bool{}
		deliveredBefore = map[int]int{}
	)
	readDone := make(chan error, 1)
	go func() {
		r := bufio.NewReader(stdout)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				// A line cut by the kill has no newline: it does not
				// count.
				if err == io.EOF {
					err = nil
				}
				readDone <- err
				return
			}
			kind, idText, _ := strings.Cut(strings.TrimSuffix(l, "\n"), " ")
			id, err := strconv.Atoi(idText)
			if err != nil {
				readDone <- fmt.Errorf("child wrote %q", l)
				return
			}
			mu.Lock()
			switch kind {
			case "a":
				accepted[id] = true
			case "d":
				deliveredBefore[id]++
			}
			mu.Unlock()
		}
	}()
	// Kill the child mid-stream, once it has accepted and forwarded a
	// good number of records and holds a backlog of accepted records not
	// forwarded yet (its broker keeps one). How long that takes depends on
	// the machine (a -race child on a loaded one is slow); the bound only
	// guards against a hang.
	spoolWaitFor(t, 120*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		backlog := 0
		for id := range accepted {
			if deliveredBefore[id] == 0 {
				backlog++
			}
		}
		if len(accepted) < 2000 || len(deliveredBefore) < 500 || backlog < 200 {
			return fmt.Errorf("child accepted %d records, forwarded %d, holds %d accepted and not forwarded", len(accepted), len(deliveredBefore), backlog)
		}
		return nil
	})
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed" is the point

	s, reg := openTestSpool(t, dir, 0)
	left := int(spoolMetric(t, reg, "mqgate_spool_depth_messages"))
	b := newSpoolBroker()
	runSpool(t, s, b.send)
	spoolWaitFor(t, 20*time.Second, func() error {
		if d := spoolMetric(t, reg, "mqgate_spool_depth_messages"); d != 0 {
			return fmt.Errorf("spool still holds %v records", d)
		}
		return nil
	})
	deliveredAfter := map[int]int{}
	b.mu.Lock()
	for _, cluster := range []string{"a", "b"} {
		// Each appender's records come in the order it appended them.
		prev := map[byte]int{}
		for _, r := range b.acked[cluster] {
			id, w := spoolRecID(r), r.Key[0]
			deliveredAfter[id]++
			if p, ok := prev[w]; ok && id <= p {
				t.Errorf("cluster %s: after restart, appender %d's record %d came after its %d", cluster, w, id, p)
			}
			prev[w] = id
		}
	}
	b.mu.Unlock()

	mu.Lock()
	defer mu.Unlock()
	var lost []int
	duplicates, unconfirmed := 0, 0
	for id := range accepted {
		if deliveredBefore[id]+deliveredAfter[id] == 0 {
			lost = append(lost, id)
		}
	}
	for id, n := range deliveredAfter {
		if deliveredBefore[id] > 0 {
			duplicates++
		}
		if n > 1 {
			duplicates += n - 1
		}
		if !accepted[id] {
			unconfirmed++
		}
	}
	t.Logf("child accepted %d records (%d forwarded before the kill); %d left in the spool, forwarded after restart: %d duplicates, %d whose Append the kill cut short",
		len(accepted), len(deliveredBefore), left, duplicates, unconfirmed)
	if len(lost) > 0 {
		t.Fatalf("%d accepted records were lost, e.g. %v", len(lost), lost[:min(len(lost), 10)])
	}
}
