package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// childEnv makes the test binary serve childBackend as a plugin instead of
// running tests, so the host starts real plugin processes.
const childEnv = "MQGATE_PLUGINHOST_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "1":
		sdk.ServeBackend(&childBackend{log: sdk.Logger()})
		os.Exit(0)
	case "sink":
		sdk.ServeSink(&childSink{})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childBackend runs in the plugin process. Producing to topic "hang" makes
// the process stop itself (SIGSTOP), as a plugin wedged in a deadlock would.
type childBackend struct {
	log *slog.Logger
	mu  sync.Mutex
	n   int64
}

// checkGreeting reports every key of cfg but greeting.
func checkGreeting(cfg []byte) (greeting any, errs sdk.ConfigErrors) {
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil {
		return nil, sdk.ConfigErrors{{Msg: err.Error()}}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if k != "greeting" {
			errs.Addf(k, "unknown key")
		}
	}
	return m["greeting"], errs
}

func (c *childBackend) Configure(_ context.Context, cfg []byte) error {
	greeting, errs := checkGreeting(cfg)
	if len(errs) > 0 {
		return errs
	}
	c.log.Info("configured", "greeting", greeting)
	return nil
}

func (c *childBackend) ValidateConfig(cfg []byte) sdk.ConfigErrors {
	_, errs := checkGreeting(cfg)
	c.log.Info("validated", "problems", len(errs))
	return errs
}
func (c *childBackend) EnsureTopics(context.Context, []sdk.TopicSpec) error { return nil }
func (c *childBackend) Produce(_ context.Context, rs []sdk.Record) ([]sdk.ProduceResult, error) {
	out := make([]sdk.ProduceResult, len(rs))
	for i, r := range rs {
		if r.Topic == "hang" {
			// SIGSTOP to oneself lands asynchronously; block so the reply
			// cannot slip out before the process stops.
			_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
			select {}
		}
		c.mu.Lock()
		out[i] = sdk.ProduceResult{Qid: "0", Offset: c.n}
		c.n++
		c.mu.Unlock()
	}
	return out, nil
}
func (c *childBackend) Consume(context.Context, sdk.Subscription) (sdk.Consumer, error) {
	return &childConsumer{}, nil
}
func (c *childBackend) Commit(context.Context, string, []sdk.Offset) error { return nil }
func (c *childBackend) Fetch(context.Context, sdk.FetchRequest) ([]sdk.FetchResult, error) {
	return nil, nil
}
func (c *childBackend) ListOffsets(context.Context, []string, string) ([]sdk.QidOffsets, error) {
	return nil, nil
}
func (c *childBackend) Close() error { return nil }

// childConsumer owns qid "0" and hands out one record per Poll, counting
// from 0 in each process.
type childConsumer struct {
	assigned bool
	next     int64
}

func (c *childConsumer) Poll(ctx context.Context, _ int) (sdk.ConsumeEvent, error) {
	if !c.assigned {
		c.assigned = true
		return sdk.ConsumeEvent{Assigned: []sdk.Offset{{Topic: "t", Qid: "0", Offset: 0}}}, nil
	}
	select {
	case <-ctx.Done():
		return sdk.ConsumeEvent{}, ctx.Err()
	case <-time.After(time.Millisecond):
	}
	r := sdk.Record{Topic: "t", Qid: "0", Offset: c.next, Value: []byte("v")}
	c.next++
	return sdk.ConsumeEvent{Records: []sdk.Record{r}}, nil
}
func (c *childConsumer) Commit(context.Context, []sdk.Offset) error { return nil }
func (c *childConsumer) Close() error                               { return nil }

// captureHandler keeps every log record for assertions.
type captureHandler struct {
	mu      sync.Mutex
	records []slog.Record
	attrs   []slog.Attr
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	h.mu.Lock()
	h.records = append(h.records, r)
	h.mu.Unlock()
	return nil
}
func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &shared{h, append(append([]slog.Attr{}, h.attrs...), as...)}
}
func (h *captureHandler) WithGroup(string) slog.Handler { return h }

type shared struct {
	root  *captureHandler
	attrs []slog.Attr
}

func (s *shared) Enabled(context.Context, slog.Level) bool { return true }
func (s *shared) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(s.attrs...)
	s.root.mu.Lock()
	s.root.records = append(s.root.records, r)
	s.root.mu.Unlock()
	return nil
}
func (s *shared) WithAttrs(as []slog.Attr) slog.Handler {
	return &shared{s.root, append(append([]slog.Attr{}, s.attrs...), as...)}
}
func (s *shared) WithGroup(string) slog.Handler { return s }

func (h *captureHandler) find(msg string) (slog.Record, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if r.Message == msg {
			return r, true
		}
	}
	return slog.Record{}, false
}

func attr(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newTestHost starts a host that checks its plugins' health often but
// gives a check 5 s: on a loaded machine a slow answer must not count as a
// failure, or two of them restart a healthy plugin under a test that
// counts restarts.
func newTestHost(t *testing.T) (*Host, *captureHandler) {
	t.Helper()
	return newTestHostTimeout(t, 5*time.Second)
}

// newTestHostTimeout is newTestHost with the health check's timeout given,
// for a test of a plugin that stops answering.
func newTestHostTimeout(t *testing.T, healthTimeout time.Duration) (*Host, *captureHandler) {
	t.Helper()
	t.Setenv(childEnv, "1")
	logs := &captureHandler{}
	h, err := New(Options{
		SelfPath:          os.Args[0],
		HealthInterval:    100 * time.Millisecond,
		HealthTimeout:     healthTimeout,
		RestartBackoffMax: 200 * time.Millisecond,
		Logger:            slog.New(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h, logs
}

func startChild(t *testing.T, h *Host) sdk.Backend {
	t.Helper()
	b, err := h.StartBackend(context.Background(), Spec{Name: "local", Plugin: "mem", Builtin: "mem", Config: []byte(`{"greeting":"hi"}`)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func produceOne(b sdk.Backend, topic string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := b.Produce(ctx, []sdk.Record{{Topic: topic, Value: []byte("x")}})
	return err
}

func TestPluginLogsReachGatewayLogTagged(t *testing.T) {
	h, logs := newTestHost(t)
	startChild(t, h)
	var r slog.Record
	waitFor(t, "the plugin's log line", func() (ok bool) { r, ok = logs.find("configured"); return ok })
	if attr(r, "plugin") != "mem" || attr(r, "instance") != "local" || attr(r, "greeting") != "hi" || r.Level != slog.LevelInfo {
		t.Fatalf("plugin log line arrived as level %v with plugin=%q instance=%q greeting=%q", r.Level, attr(r, "plugin"), attr(r, "instance"), attr(r, "greeting"))
	}
}

func TestKilledPluginIsRestartedAndCallsFailRetriably(t *testing.T) {
	h, _ := newTestHost(t)
	b := startChild(t, h)
	if err := produceOne(b, "t", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	st := h.Statuses()[0]
	if st.State != StateUp || st.PID == 0 || st.Restarts != 0 || st.Kind != sdk.KindBackend {
		t.Fatalf("status = %+v", st)
	}
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Until the new process is up, calls fail with the retriable code;
	// none may hang.
	waitFor(t, "the restart", func() bool {
		err := produceOne(b, "t", 5*time.Second)
		if err != nil && sdk.CodeOf(err) != sdk.CodeUnavailable {
			t.Fatalf("a call during the restart failed with %v (code %d), want code 17", err, sdk.CodeOf(err))
		}
		s := h.Statuses()[0]
		return err == nil && s.State == StateUp && s.Restarts == 1
	})
	if s := h.Statuses()[0]; s.PID == st.PID || s.LastError == "" {
		t.Fatalf("after restart: %+v (old pid %d)", s, st.PID)
	}
}

// A backend plugin process produces over the plugin connection its host
// gives it rather than gRPC, and a restarted process over a new one.
func TestBackendProducesOverItsConnection(t *testing.T) {
	h, _ := newTestHost(t)
	b := startChild(t, h)
	overConn := func() bool {
		h.mu.Lock()
		i := h.instances[0]
		h.mu.Unlock()
		gen, err := i.current()
		return err == nil && sdk.UsesPluginConn(gen.impl.(sdk.Backend))
	}
	for restarts := range 2 {
		waitFor(t, "the plugin to serve its plugin connection", overConn)
		if err := produceOne(b, "t", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if !overConn() {
			t.Fatal("the plugin connection failed on a produce call")
		}
		if restarts == 0 {
			st := h.Statuses()[0]
			if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the restart", func() bool {
				s := h.Statuses()[0]
				return s.State == StateUp && s.Restarts == 1
			})
		}
	}
}

func TestWedgedPluginFailsInFlightCallsAndIsReplaced(t *testing.T) {
	// A short health timeout: the wedged plugin is found out soon.
	h, _ := newTestHostTimeout(t, 300*time.Millisecond)
	b := startChild(t, h)
	old := h.Statuses()[0].PID
	// The call's own deadline is far away: only the health check can end it.
	err := produceOne(b, "hang", time.Minute)
	if sdk.CodeOf(err) != sdk.CodeUnavailable {
		t.Fatalf("in-flight call on a wedged plugin returned %v, want code 17", err)
	}
	waitFor(t, "a new process", func() bool {
		s := h.Statuses()[0]
		return s.State == StateUp && s.PID != old && produceOne(b, "t", 5*time.Second) == nil
	})
	if !strings.Contains(h.Statuses()[0].LastError, "health") {
		t.Fatalf("last error %q does not say the health check failed", h.Statuses()[0].LastError)
	}
}

func TestConsumeStreamReopensAfterRestart(t *testing.T) {
	h, _ := newTestHost(t)
	b := startChild(t, h)
	ctx, c := subscribe(t, b)
	ev, err := c.Poll(ctx, 10)
	if err != nil || len(ev.Assigned) != 1 {
		t.Fatalf("first event = %+v, %v; want the assignment", ev, err)
	}
	if ev, err = c.Poll(ctx, 10); err != nil || len(ev.Records) != 1 {
		t.Fatalf("second event = %+v, %v; want a record", ev, err)
	}
	if err := syscall.Kill(h.Statuses()[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Records already buffered may still come; then the loss of the old
	// process must show as the revocation of what it owned, and the new
	// process must assign again and deliver.
	var revoked, reassigned bool
	for !reassigned || !revoked {
		ev, err := c.Poll(ctx, 10)
		if err != nil {
			t.Fatalf("Poll across a restart: %v", err)
		}
		if len(ev.Revoked) > 0 {
			revoked = true
		}
		if len(ev.Assigned) > 0 {
			if !revoked {
				t.Fatal("reassigned before the old process's qids were revoked")
			}
			reassigned = true
		}
	}
	if ev, err := c.Poll(ctx, 10); err != nil || len(ev.Records) != 1 || ev.Records[0].Offset != 0 {
		t.Fatalf("after restart got %+v, %v; want the new process's first record", ev, err)
	}
}

func TestConfigErrorIsReportedWithItsKey(t *testing.T) {
	h, _ := newTestHost(t)
	_, err := h.StartBackend(context.Background(), Spec{Name: "local", Plugin: "mem", Builtin: "mem", Config: []byte(`{"brokers":"x"}`)})
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "brokers" {
		t.Fatalf("StartBackend error = %v, want a ConfigError naming brokers", err)
	}
	if len(h.Statuses()) != 0 {
		t.Fatalf("a plugin that failed to start is listed: %+v", h.Statuses())
	}
	_, err = h.StartBackend(context.Background(), Spec{Name: "local", Plugin: "mem", Builtin: "mem", Config: []byte(`{"brokers":"x","zone":1}`)})
	if got := keysOf(sdk.ConfigErrorsOf(err)); !slices.Equal(got, []string{"brokers", "zone"}) {
		t.Fatalf("StartBackend error = %v, want every problem: brokers and zone", err)
	}
}

// keysOf lists the keys errs name, in order.
func keysOf(errs sdk.ConfigErrors) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Key)
	}
	return out
}

// Validate asks the plugin about a config without configuring it, and
// leaves nothing running.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		child    string // childEnv: which plugin the process serves
		spec     Spec
		wantKeys []string
		wantErr  string // a text of the error; "" for none
	}{
		{"accepted", "1", Spec{Builtin: "mem", Config: []byte(`{"greeting":"hi"}`)}, nil, ""},
		{"every problem", "1", Spec{Builtin: "mem", Config: []byte(`{"zone":1,"greting":"hi","brokers":"x"}`)}, []string{"brokers", "greting", "zone"}, ""},
		{"sink without ConfigValidator", "sink", Spec{Kind: sdk.KindSink, Builtin: "memsink", Config: []byte(`{}`)}, nil, sdk.ErrConfigNotValidated.Error()},
		{"a sink taken for a backend", "sink", Spec{Builtin: "memsink", Config: []byte(`{}`)}, nil, "does not serve a backend"},
		{"missing binary", "1", Spec{Path: "/nonexistent/plugin", Config: []byte(`{}`)}, nil, "starting plugin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, logs := newTestHost(t)
			t.Setenv(childEnv, tc.child)
			tc.spec.Name, tc.spec.Plugin = "local", "mem"
			errs, err := h.Validate(context.Background(), tc.spec)
			if got := keysOf(errs); !slices.Equal(got, tc.wantKeys) {
				t.Errorf("Validate reported keys %q (%v), want %q", got, errs, tc.wantKeys)
			}
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate error = %v, want one containing %q", err, tc.wantErr)
			}
			if tc.wantErr == sdk.ErrConfigNotValidated.Error() && !errors.Is(err, sdk.ErrConfigNotValidated) {
				t.Errorf("Validate error = %v, not sdk.ErrConfigNotValidated", err)
			}
			if tc.child == "1" && tc.wantErr == "" {
				// Validate returns after the process is gone and its log read.
				if _, ok := logs.find("validated"); !ok {
					t.Error("the plugin was not asked ValidateConfig")
				}
				if _, ok := logs.find("configured"); ok {
					t.Error("Validate configured the plugin")
				}
			}
			if st := h.Statuses(); len(st) != 0 {
				t.Errorf("Validate left instances behind: %+v", st)
			}
		})
	}
}

func TestPathPluginChecksum(t *testing.T) {
	h, _ := newTestHost(t)
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	good := hex.EncodeToString(sum[:])
	bad := strings.Repeat("0", 64)
	if _, err := h.StartBackend(context.Background(), Spec{Name: "a", Plugin: "acme", Path: os.Args[0], SHA256: bad, Config: []byte(`{}`)}); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("a binary that does not match sha256 started: err = %v", err)
	}
	b, err := h.StartBackend(context.Background(), Spec{Name: "b", Plugin: "acme", Path: os.Args[0], SHA256: good, Config: []byte(`{}`)})
	if err != nil {
		t.Fatalf("a binary matching sha256 did not start: %v", err)
	}
	if err := produceOne(b, "t", 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestCloseStopsPlugins(t *testing.T) {
	h, _ := newTestHost(t)
	startChild(t, h)
	pid := h.Statuses()[0].PID
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the plugin process to exit", func() bool {
		// Signal 0 checks existence; the host reaped the child, so it is gone.
		return syscall.Kill(pid, 0) != nil
	})
}

// The reviewer's case: each Poll(1) uses up its credit, so the first thing
// the next Poll does after the plugin dies is send a credit on a dead
// stream. That must lead to a revocation and a re-opened stream, not an
// error forever.
func TestConsumeReopensWhenCreditsAreUsedUp(t *testing.T) {
	h, _ := newTestHost(t)
	b := startChild(t, h)
	ctx, c := subscribe(t, b)
	for range 3 { // the assignment, then a record per Poll
		if _, err := c.Poll(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Kill(h.Statuses()[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var revoked bool
	for {
		ev, err := c.Poll(ctx, 1)
		if err != nil {
			t.Fatalf("Poll after the plugin died: %v (code %d)", err, sdk.CodeOf(err))
		}
		revoked = revoked || len(ev.Revoked) > 0
		if len(ev.Assigned) > 0 {
			break
		}
	}
	if !revoked {
		t.Fatal("the new stream assigned qids the old one was never said to have lost")
	}
}

func TestPollAfterCloseReturns(t *testing.T) {
	h, _ := newTestHost(t)
	b := startChild(t, h)
	c, err := b.Consume(context.Background(), sdk.Subscription{Group: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Poll(ctx, 1); err == nil || ctx.Err() != nil {
		t.Fatalf("Poll on a closed consumer = %v after its deadline %v; want an error at once", err, ctx.Err())
	}
}

// While the plugin is down, opening a subscription fails at once with the
// retriable code, as every other call does.
func TestConsumeFailsFastWhilePluginIsDown(t *testing.T) {
	h, _ := newTestHost(t)
	b := startChild(t, h)
	inst := h.instances[0]
	inst.mu.Lock()
	gen := inst.gen
	inst.mu.Unlock()
	inst.setDown(gen, "taken down by the test") // as the supervisor does before restarting
	defer gen.destroy()                         // the host no longer owns that process
	if _, err := b.Consume(context.Background(), sdk.Subscription{Group: "g", Topics: []string{"t"}}); sdk.CodeOf(err) != sdk.CodeUnavailable {
		t.Fatalf("Consume while down = %v, want code 17 at once", err)
	}
}

// subscribe opens a consumer of topic t for group g, closed when the test
// ends, and a context bounding the test's waits.
func subscribe(t *testing.T, b sdk.Backend) (context.Context, sdk.Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, err := b.Consume(ctx, sdk.Subscription{Group: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return ctx, c
}

// childSink runs in a sink plugin process and counts the records written to
// it in that process.
type childSink struct {
	mu sync.Mutex
	n  int
}

func (s *childSink) Configure(context.Context, []byte) error { return nil }
func (s *childSink) Write(_ context.Context, rs []sdk.Record) ([]error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := make([]error, len(rs))
	for i := range rs {
		s.n++
		if string(rs[i].Value) == "bad" {
			errs[i] = sdk.Errorf(sdk.CodeIllegal, "refused record %d (write %d of this process)", i, s.n)
		}
	}
	return errs, nil
}
func (s *childSink) Close() error { return nil }

func TestSinkPluginProcess(t *testing.T) {
	h, _ := newTestHost(t)
	t.Setenv(childEnv, "sink")
	s, err := h.StartSink(context.Background(), Spec{Name: "archive", Plugin: "memsink", Builtin: "memsink", Config: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	write := func() ([]error, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return s.Write(ctx, []sdk.Record{{Topic: "t", Value: []byte("ok")}, {Topic: "t", Value: []byte("bad")}})
	}
	errs, err := write()
	if err != nil || len(errs) != 2 || errs[0] != nil || sdk.CodeOf(errs[1]) != sdk.CodeIllegal {
		t.Fatalf("Write = %v, %v; want success then code 11", errs, err)
	}
	st := h.Statuses()[0]
	if st.Kind != sdk.KindSink || st.State != StateUp {
		t.Fatalf("status = %+v", st)
	}
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sink to come back", func() bool {
		_, err := write()
		if err != nil && sdk.CodeOf(err) != sdk.CodeUnavailable {
			t.Fatalf("a write during the restart failed with %v, want code 17", err)
		}
		return err == nil
	})
	if h.Statuses()[0].Restarts != 1 {
		t.Fatalf("status after restart = %+v", h.Statuses()[0])
	}
}

// atLeast returns the captured records at level or above.
func (h *captureHandler) atLeast(level slog.Level) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.records {
		if r.Level >= level {
			out = append(out, r)
		}
	}
	return out
}

// count is how many captured records have msg, at any level, and how many
// of those are at level or above.
func (h *captureHandler) count(msg string, level slog.Level) (all, above int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if r.Message == msg {
			all++
			if r.Level >= level {
				above++
			}
		}
	}
	return all, above
}

// A killed plugin is one error line naming its pid and how it ended, and
// one line when it is back; the consume streams it ended re-open without a
// line each, and go-plugin's own lines about the exit stay at debug level.
func TestKilledPluginLogsOnceNotPerStream(t *testing.T) {
	h, logs := newTestHost(t)
	b := startChild(t, h)
	const streams = 5
	type sub struct {
		ctx context.Context
		c   sdk.Consumer
	}
	var subs []sub
	for range streams {
		ctx, c := subscribe(t, b)
		if _, err := c.Poll(ctx, 10); err != nil { // the assignment
			t.Fatal(err)
		}
		subs = append(subs, sub{ctx, c})
	}
	pid := h.Statuses()[0].PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Every stream sees its loss and re-opens on the new process.
	for _, s := range subs {
		for {
			ev, err := s.c.Poll(s.ctx, 10)
			if err != nil {
				t.Fatalf("Poll across the restart: %v", err)
			}
			if len(ev.Assigned) > 0 {
				break
			}
		}
	}
	waitFor(t, "the up line", func() bool { _, ok := logs.find("plugin up again"); return ok })

	loud := logs.atLeast(slog.LevelWarn)
	if len(loud) != 1 {
		var msgs []string
		for _, r := range loud {
			msgs = append(msgs, r.Level.String()+" "+r.Message)
		}
		t.Fatalf("%d warnings and errors for one crash, want 1: %q", len(loud), msgs)
	}
	r := loud[0]
	if r.Level != slog.LevelError || r.Message != "plugin process exited; restarting it" ||
		attr(r, "pid") != strconv.Itoa(pid) || attr(r, "status") != "signal: killed" || attr(r, "streams") != strconv.Itoa(streams) {
		t.Fatalf("crash line = %v %q pid=%s status=%q streams=%s; want an error naming pid %d, signal: killed, %d streams",
			r.Level, r.Message, attr(r, "pid"), attr(r, "status"), attr(r, "streams"), pid, streams)
	}
	up, _ := logs.find("plugin up again")
	if attr(up, "restarts") != "1" || attr(up, "pid") == strconv.Itoa(pid) {
		t.Fatalf("up line says restarts=%s pid=%s; want 1 and a new pid", attr(up, "restarts"), attr(up, "pid"))
	}
}

// A restart that keeps failing the same way is one error line, not one per
// attempt; the attempts go on, and the plugin comes back once it can.
func TestFailingRestartsLogOnce(t *testing.T) {
	h, logs := newTestHost(t)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "plugin")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := h.StartBackend(context.Background(), Spec{Name: "local", Plugin: "acme", Path: bin, Config: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	away := bin + ".away"
	if err := os.Rename(bin, away); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(h.Statuses()[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three failed restarts", func() bool { n, _ := logs.count("restarting plugin failed", slog.LevelError); return n >= 3 })
	if err := os.Rename(away, bin); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the plugin to come back", func() bool { return produceOne(b, "t", 5*time.Second) == nil })
	n, loud := logs.count("restarting plugin failed", slog.LevelError)
	if loud != 1 {
		t.Fatalf("%d of %d failed restarts logged as errors; want the first only", loud, n)
	}
	if _, warned := logs.count("plugin failed to exit gracefully", slog.LevelWarn); warned != 0 {
		t.Fatalf("go-plugin's complaint about killing a process that failed to start was logged %d times above debug", warned)
	}
}

// A plugin that wedges while nothing waits on it is still noticed (by the
// slower idle health checks) and replaced.
func TestPluginWedgedWhileIdleIsReplaced(t *testing.T) {
	h, _ := newTestHost(t)
	b := startChild(t, h)
	old := h.Statuses()[0].PID
	if err := syscall.Kill(old, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new process", func() bool {
		s := h.Statuses()[0]
		return s.State == StateUp && s.PID != old
	})
	if err := produceOne(b, "t", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.Statuses()[0].LastError, "health") {
		t.Fatalf("last error %q does not say the health check failed", h.Statuses()[0].LastError)
	}
}
