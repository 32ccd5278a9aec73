package consume

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Bounds of mqgate_consume_lag_messages. Stats may be asked of any group
// name, so the series they set are bounded: a (group, topic) pair's series
// go when no stats have set them for lagSeriesTTL, and past lagSeriesPairs
// pairs the pair set longest ago goes first.
const (
	lagSeriesTTL   = 10 * time.Minute
	lagSeriesPairs = 1000
)

// lagGauges keeps mqgate_consume_lag_messages within its bounds.
type lagGauges struct {
	vec *prometheus.GaugeVec
	now func() time.Time

	mu    sync.Mutex
	pairs map[lagPair]*lagSeries
}

type lagPair struct{ group, topic string }

// lagSeries is what one pair has set: its qids, and when.
type lagSeries struct {
	qids []string
	set  time.Time
}

func newLagGauges(vec *prometheus.GaugeVec) *lagGauges {
	return &lagGauges{vec: vec, now: time.Now, pairs: map[lagPair]*lagSeries{}}
}

// set sets the lag of every qid of group on topic, and drops the series
// of the pair's qids that lag leaves out, of pairs not set within
// lagSeriesTTL, and of the pair set longest ago while there are more than
// lagSeriesPairs.
func (g *lagGauges) set(group, topic string, lag map[string]int64) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	p := lagPair{group, topic}
	s := g.pairs[p]
	if s == nil {
		s = &lagSeries{}
		g.pairs[p] = s
	}
	for _, q := range s.qids {
		if _, ok := lag[q]; !ok {
			g.vec.DeleteLabelValues(group, topic, q)
		}
	}
	s.qids, s.set = s.qids[:0], now
	for q, n := range lag {
		s.qids = append(s.qids, q)
		g.vec.WithLabelValues(group, topic, q).Set(float64(n))
	}
	var oldest lagPair
	for op, os := range g.pairs {
		if now.Sub(os.set) > lagSeriesTTL {
			g.dropLocked(op)
			continue
		}
		if oldest == (lagPair{}) || os.set.Before(g.pairs[oldest].set) {
			oldest = op
		}
	}
	if len(g.pairs) > lagSeriesPairs {
		g.dropLocked(oldest)
	}
}

func (g *lagGauges) dropLocked(p lagPair) {
	for _, q := range g.pairs[p].qids {
		g.vec.DeleteLabelValues(p.group, p.topic, q)
	}
	delete(g.pairs, p)
}
