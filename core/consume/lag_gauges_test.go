package consume

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newTestLagGauges() (*lagGauges, *prometheus.GaugeVec, *time.Time) {
	vec := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lag"}, []string{"group", "topic", "qid"})
	g := newLagGauges(vec)
	now := time.Unix(1_000_000, 0)
	g.now = func() time.Time { return now }
	return g, vec, &now
}

// Stats may be asked of any group name: the lag series they leave behind
// stay bounded, and a qid no longer reported leaves no stale series.
func TestLagSeriesStayBounded(t *testing.T) {
	t.Run("qids no longer reported", func(t *testing.T) {
		g, vec, _ := newTestLagGauges()
		g.set("g", "t", map[string]int64{"0": 5, "1": 3})
		g.set("g", "t", map[string]int64{"0": 1})
		if n := testutil.CollectAndCount(vec); n != 1 {
			t.Fatalf("%d series, want the one qid last reported", n)
		}
		if v := testutil.ToFloat64(vec.WithLabelValues("g", "t", "0")); v != 1 {
			t.Fatalf("lag of qid 0 is %v, want 1", v)
		}
	})
	t.Run("pairs not asked about for a while", func(t *testing.T) {
		g, vec, now := newTestLagGauges()
		g.set("old", "t", map[string]int64{"0": 5})
		*now = now.Add(lagSeriesTTL + time.Second)
		g.set("new", "t", map[string]int64{"0": 7})
		if n := testutil.CollectAndCount(vec); n != 1 {
			t.Fatalf("%d series, want only the pair asked about within %s", n, lagSeriesTTL)
		}
	})
	t.Run("many group names", func(t *testing.T) {
		g, vec, now := newTestLagGauges()
		for i := range lagSeriesPairs + 50 {
			*now = now.Add(time.Millisecond)
			g.set(fmt.Sprintf("probe-%d", i), "t", map[string]int64{"0": 1, "1": 1})
		}
		if n := testutil.CollectAndCount(vec); n != 2*lagSeriesPairs {
			t.Fatalf("%d series after %d group names, want %d (%d pairs of 2 qids)", n, lagSeriesPairs+50, 2*lagSeriesPairs, lagSeriesPairs)
		}
		if testutil.ToFloat64(vec.WithLabelValues(fmt.Sprintf("probe-%d", lagSeriesPairs+49), "t", "0")) != 1 {
			t.Fatal("the pair asked about last was dropped")
		}
	})
}
