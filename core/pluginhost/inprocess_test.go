package pluginhost

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/mqgate/mqgate/sdk"
)

// inProcessBackend is childBackend run in the test's own process, as a
// bundled plugin with in_process: true is: it counts its Closes, and
// refuses Configure with code 17 (no broker yet) while unreachable is
// above zero.
type inProcessBackend struct {
	childBackend
	closes      *atomic.Int32
	unreachable *atomic.Int32
}

func (b *inProcessBackend) Configure(ctx context.Context, cfg []byte) error {
	if b.unreachable.Add(-1) >= 0 {
		return &sdk.Error{Code: sdk.CodeUnavailable, Msg: "no broker answers yet"}
	}
	return b.childBackend.Configure(ctx, cfg)
}

func (b *inProcessBackend) Close() error {
	b.closes.Add(1)
	return nil
}

// inProcessSpec is a spec whose plugin runs in the test's process; made
// counts the plugins its factory made.
func inProcessSpec(closes, unreachable, made *atomic.Int32) Spec {
	return Spec{Name: "local", Plugin: "mem", Builtin: "mem", Config: []byte(`{"greeting":"hi"}`),
		InProcess: func(log *slog.Logger) any {
			made.Add(1)
			return &inProcessBackend{childBackend: childBackend{log: log}, closes: closes, unreachable: unreachable}
		}}
}

func TestInProcessPluginServesCallsAndIsListed(t *testing.T) {
	h, logs := newTestHost(t)
	var closes, unreachable, made atomic.Int32
	b, err := h.StartBackend(context.Background(), inProcessSpec(&closes, &unreachable, &made))
	if err != nil {
		t.Fatal(err)
	}
	st := h.Statuses()
	if len(st) != 1 || st[0].State != StateUp || !st[0].InProcess || st[0].PID != os.Getpid() || st[0].Kind != sdk.KindBackend {
		t.Fatalf("Statuses = %+v, want one backend up in process %d", st, os.Getpid())
	}
	if r, ok := logs.find("configured"); !ok || attr(r, "plugin") != "mem" || attr(r, "instance") != "local" {
		t.Errorf("the plugin's log line is missing or untagged: %v", r)
	}
	if _, ok := logs.find("plugin up in the gateway's process"); !ok {
		t.Error("the host did not say the plugin is up in the gateway's process")
	}

	for want := range int64(3) {
		res, err := b.Produce(context.Background(), []sdk.Record{{Topic: "t", Value: []byte("v")}})
		if err != nil || len(res) != 1 || res[0].Offset != want {
			t.Fatalf("Produce = %+v, %v; want offset %d", res, err, want)
		}
	}

	ctx, c := subscribe(t, b)
	ev, err := c.Poll(ctx, 10)
	if err != nil || len(ev.Assigned) != 1 {
		t.Fatalf("first Poll = %+v, %v; want the assignment", ev, err)
	}
	ev, err = c.Poll(ctx, 10)
	if err != nil || len(ev.Records) != 1 || string(ev.Records[0].Value) != "v" {
		t.Fatalf("second Poll = %+v, %v; want a record", ev, err)
	}

	if hs := h.Health(context.Background()); len(hs) != 1 || hs[0].BrokerError != "" || !hs[0].InProcess {
		t.Errorf("Health = %+v", hs)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if closes.Load() != 1 || made.Load() != 1 {
		t.Errorf("made %d plugins and closed %d, want 1 and 1", made.Load(), closes.Load())
	}
	if _, err := b.Produce(context.Background(), []sdk.Record{{Topic: "t"}}); sdk.CodeOf(err) != sdk.CodeUnavailable {
		t.Errorf("Produce after Close = %v, want code 17", err)
	}
}

// A plugin in the gateway's process that cannot reach its broker at start
// is retried as one in a process is: the gateway starts, its calls fail
// with 17, and each plugin made for a failed start is closed.
func TestInProcessPluginRetriesAnUnreachableBroker(t *testing.T) {
	h, _ := newTestHost(t)
	var closes, unreachable, made atomic.Int32
	unreachable.Store(2)
	b, err := h.StartBackend(context.Background(), inProcessSpec(&closes, &unreachable, &made))
	if err != nil {
		t.Fatalf("StartBackend = %v; an unreachable broker must not stop the gateway", err)
	}
	waitFor(t, "the plugin to come up", func() bool { return h.Statuses()[0].State == StateUp })
	res, err := b.Produce(context.Background(), []sdk.Record{{Topic: "t", Value: []byte("v")}})
	if err != nil || len(res) != 1 {
		t.Fatalf("Produce once up = %+v, %v", res, err)
	}
	if made.Load() != 3 || closes.Load() != 2 {
		t.Errorf("made %d plugins and closed %d, want 3 made and the 2 failed ones closed", made.Load(), closes.Load())
	}
	if st := h.Statuses()[0]; st.Restarts != 1 || st.PID != os.Getpid() {
		t.Errorf("status = %+v, want 1 restart, the gateway's pid", st)
	}
}

func TestInProcessPluginRefusesItsConfig(t *testing.T) {
	h, logs := newTestHost(t)
	var closes, unreachable, made atomic.Int32
	spec := inProcessSpec(&closes, &unreachable, &made)
	spec.Config = []byte(`{"greting":"hi","zone":1}`)

	errs, err := h.Validate(context.Background(), spec)
	if err != nil || !slices.Equal(keysOf(errs), []string{"greting", "zone"}) {
		t.Fatalf("Validate = %v, %v; want the keys greting and zone", errs, err)
	}
	if _, ok := logs.find("configured"); ok {
		t.Error("Validate configured the plugin")
	}
	if closes.Load() != 1 || len(h.Statuses()) != 0 {
		t.Errorf("Validate closed %d plugins and left %d instances; want 1 and none", closes.Load(), len(h.Statuses()))
	}

	_, err = h.StartBackend(context.Background(), spec)
	if got := keysOf(sdk.ConfigErrorsOf(err)); !slices.Equal(got, []string{"greting", "zone"}) {
		t.Fatalf("StartBackend = %v, want the keys greting and zone", err)
	}
	if closes.Load() != 2 {
		t.Errorf("the refused plugin was not closed (%d closes)", closes.Load())
	}
}
