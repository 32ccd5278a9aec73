package pluginhost

import (
	"context"
	"sync"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// healthTTL is how long a plugin's answer to Health is reused: readiness
// probes polling /readyz do not each ask every plugin again.
const healthTTL = time.Second

// health is an instance's last answer to Health.
type health struct {
	mu  sync.Mutex
	at  time.Time // zero before the first answer
	gen *generation
	err string
}

// Health reports every plugin instance, in start order, as Statuses does,
// and asks each one that is up whether it can reach its brokers
// (sdk.Health), filling in BrokerError. The instances are asked at once;
// each answer is reused for a second, and one that takes longer than the
// health timeout is reported as such.
func (h *Host) Health(ctx context.Context) []Status {
	h.mu.Lock()
	insts := append([]*instance(nil), h.instances...)
	h.mu.Unlock()
	out := make([]Status, len(insts))
	var wg sync.WaitGroup
	for i, inst := range insts {
		out[i] = inst.status()
		if out[i].State != StateUp {
			continue
		}
		wg.Go(func() { out[i].BrokerError = inst.brokerError(ctx) })
	}
	wg.Wait()
	return out
}

// brokerError asks the live process whether it reaches its brokers, or
// reuses an answer of its from the last healthTTL.
func (i *instance) brokerError(ctx context.Context) string {
	gen, err := i.current()
	if err != nil {
		return "" // went down meanwhile: its state says so
	}
	hc := &i.health
	hc.mu.Lock()
	defer hc.mu.Unlock() // one question at a time; the others wait for its answer
	if hc.gen == gen && time.Since(hc.at) < healthTTL {
		return hc.err
	}
	ctx, cancel := context.WithTimeout(ctx, i.host.opts.HealthTimeout)
	defer cancel()
	msg := ""
	if err := sdk.Health(ctx, gen.impl); err != nil {
		msg = err.Error()
		if sdk.CodeOf(err) == sdk.CodeTimeout && ctx.Err() != nil {
			msg = "the plugin did not answer a health check within " + i.host.opts.HealthTimeout.String()
		}
	}
	hc.gen, hc.at, hc.err = gen, time.Now(), msg
	return msg
}
