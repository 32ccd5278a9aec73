package bytebudget

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A charge past the limit waits, then fails with ErrFull and counts a
// refusal; what a released charge held is room for the next one.
func TestBudget(t *testing.T) {
	held := prometheus.NewGauge(prometheus.GaugeOpts{Name: "held"})
	refused := prometheus.NewCounter(prometheus.CounterOpts{Name: "refused"})
	b := New(100, 10*time.Millisecond, held, refused)
	first := Charge{Budget: b}
	if err := first.Grow(context.Background(), 60); err != nil {
		t.Fatal(err)
	}
	second := Charge{Budget: b}
	if err := second.Grow(context.Background(), 50); !errors.Is(err, ErrFull) {
		t.Fatalf("Grow past the limit = %v; want ErrFull", err)
	}
	if n := testutil.ToFloat64(refused); n != 1 {
		t.Errorf("refused = %v; want 1", n)
	}
	if n := testutil.ToFloat64(held); n != 60 {
		t.Errorf("held = %v; want 60", n)
	}
	first.Release()
	first.Release() // a second release gives back nothing more
	if err := second.Grow(context.Background(), 100); err != nil {
		t.Fatalf("Grow after the release = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	third := Charge{Budget: b}
	if err := third.Grow(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Grow with an ended context = %v; want its error", err)
	}
	second.Release()
	if n := testutil.ToFloat64(held); n != 0 {
		t.Errorf("held after every release = %v; want 0", n)
	}
}

// TryGrow charges what fits now, refuses the rest without waiting or
// counting a refusal, and what it charged is released with the rest.
func TestTryGrow(t *testing.T) {
	held := prometheus.NewGauge(prometheus.GaugeOpts{Name: "held"})
	refused := prometheus.NewCounter(prometheus.CounterOpts{Name: "refused"})
	b := New(100, time.Hour, held, refused)
	c := Charge{Budget: b}
	if !c.TryGrow(70) {
		t.Fatal("TryGrow(70) of 100 refused")
	}
	if c.TryGrow(40) {
		t.Fatal("TryGrow(40) with 30 left charged")
	}
	if n := testutil.ToFloat64(refused); n != 0 {
		t.Errorf("refused = %v; want 0: TryGrow's refusal is not a request refused", n)
	}
	if n := testutil.ToFloat64(held); n != 70 {
		t.Errorf("held = %v; want 70", n)
	}
	c.Release()
	if n := testutil.ToFloat64(held); n != 0 {
		t.Errorf("held after Release = %v; want 0", n)
	}
	if !c.TryGrow(100) {
		t.Error("TryGrow(100) after Release refused")
	}
}
