package produce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mqgate/mqgate/internal/dirlock"
	"github.com/mqgate/mqgate/sdk"
)

// Spool defaults, as docs/configuration.md documents them.
const (
	DefaultSpoolDir      = "data/spool"
	DefaultSpoolMaxBytes = 1 << 30
)

const (
	// spoolStoreDir is the pebble database inside Dir.
	spoolStoreDir = "store"
	// spoolGroupBytes bounds one group commit: Appends queued beyond it
	// wait for the next group.
	spoolGroupBytes = 16 << 20
	// spoolQueueLen bounds Appends waiting for the writer.
	spoolQueueLen = 1024
	// spoolMaxAppendBytes bounds one Append, well under the store's 4 GiB
	// batch limit.
	spoolMaxAppendBytes = 1 << 30
)

// SpoolOptions configure a Spool. Zero values take the defaults of
// docs/configuration.md (producer.spool_dir, producer.spool_max_bytes).
type SpoolOptions struct {
	// Dir holds the spool's files (producer.spool_dir).
	Dir string
	// MaxBytes bounds the bytes the spool holds (producer.spool_max_bytes):
	// the encoded records and their keys, counted from Append until the
	// broker has acknowledged them. When full, Append fails at once.
	MaxBytes int64
	Logger   *slog.Logger
	// Registerer, when not nil, gets the mqgate_spool_* metrics.
	Registerer prometheus.Registerer
}

// Spool keeps async records durably on local disk until the broker has
// acknowledged them. Append returns only once records are fsynced; Run
// forwards them, per cluster in append order, and deletes only what the
// broker acknowledged. What a process accepted survives its crash (kill -9
// included): the next OpenSpool on the same Dir forwards it.
//
// Lock order: appendMu, then dbMu, then mu.
type Spool struct {
	opts    SpoolOptions
	log     *slog.Logger
	lock    *dirlock.Lock // the spool directory, while open
	db      *pebble.DB
	rejects spoolRejects
	metrics spoolMetrics

	// appendMu guards closing appendq: Appends hold it shared while they
	// queue, Close exclusively to close the queue.
	appendMu sync.RWMutex
	appendq  chan *spoolAppend // Appends, to the writer
	syncq    chan *spoolGroup  // applied groups, writer to syncer
	synced   chan struct{}     // closed when the syncer has finished

	// bytes counts the bytes stored, including those reserved by Appends
	// not yet written; it never exceeds opts.MaxBytes.
	bytes atomic.Int64
	// depth counts the durable records not yet acknowledged or rejected.
	depth atomic.Int64
	// durable is the highest seq known fsynced: forwarders read no further,
	// so nothing is sent that a crash could still take back.
	durable atomic.Uint64
	// nextSeq is the seq the writer gives the next record; writer only.
	nextSeq uint64
	// fsyncs is the store's histogram of WAL fsync latencies: its count is
	// the number of fsyncs.
	fsyncs prometheus.Histogram
	// reclaimBytes and reclaimIdleBytes are spoolReclaimBytes and
	// spoolReclaimIdleBytes; tests lower them.
	reclaimBytes, reclaimIdleBytes int64

	// stop ends forwarders when the spool closes.
	stop     context.Context
	stopRuns context.CancelFunc
	runs     sync.WaitGroup

	// dbMu guards db against use after Close: users hold it shared and
	// check dbClosed.
	dbMu     sync.RWMutex
	dbClosed bool

	// mu guards the fields below.
	mu       sync.Mutex
	closed   bool
	running  bool // a Run is forwarding
	clusters map[string]*spoolCluster
	// clustersChanged wakes Run when a cluster gets its first records.
	clustersChanged chan struct{}
}

// spoolCluster is what the spool tracks of one cluster's records.
type spoolCluster struct {
	name string
	// notify is signalled (never blocking) when records of the cluster
	// become durable.
	notify chan struct{}
	// low is the lowest seq of the cluster that may still be stored; the
	// forwarder advances it. Guarded by Spool.mu.
	low uint64
	// depth counts the cluster's durable records still stored. Guarded by
	// Spool.mu.
	depth int64
	// deletedBytes counts bytes deleted since the last reclaim. Guarded
	// by Spool.mu.
	deletedBytes int64
}

// spoolAppend is one Append waiting for the writer.
type spoolAppend struct {
	cluster string
	values  [][]byte
	size    int64
	done    chan error
}

// spoolGroup is Appends applied together, waiting for their shared fsync.
type spoolGroup struct {
	appends []*spoolAppend
	batch   *pebble.Batch
	first   uint64
	err     error
}

var _ Spooler = (*Spool)(nil)

// OpenSpool opens the spool in opts.Dir, creating it if needed. Records an
// earlier process accepted and did not forward, even one killed outright,
// are there again for Run. Only one process may have a Dir open.
func OpenSpool(opts SpoolOptions) (*Spool, error) {
	if opts.Dir == "" {
		opts.Dir = DefaultSpoolDir
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultSpoolMaxBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	log := opts.Logger.With("component", "spool")
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening spool: %w", err)
	}
	// One process per spool: two would forward the same records. The
	// store's own lock would say only "resource temporarily unavailable".
	lock, err := dirlock.Acquire(opts.Dir)
	if err != nil {
		return nil, err
	}
	popts := &pebble.Options{
		Logger: pebbleLogger{log},
		// The plain file system, without pebble's default disk-health
		// checker, whose ticker wakes the process every 2 s for each open
		// file to log writes slower than 5 s. syncGroups logs slow writes
		// of records itself.
		FS: vfs.Default,
	}
	// pebble's default compaction scheduler wakes every 100 ms to see
	// whether it may start more compactions, even when the store is idle.
	// This one has no timer: it grants when the store asks and when a
	// compaction ends, which is enough for one store (the timer serves a
	// process that shares a limit among many stores).
	popts.Experimental.CompactionScheduler = pebble.NewConcurrencyLimitSchedulerWithNoPeriodicGrantingForTest()
	db, err := pebble.Open(filepath.Join(opts.Dir, spoolStoreDir), popts)
	if err != nil {
		lock.Release()
		return nil, fmt.Errorf("opening spool in %s: %w", opts.Dir, err)
	}
	s := &Spool{
		opts:             opts,
		log:              log,
		lock:             lock,
		db:               db,
		rejects:          spoolRejects{path: filepath.Join(opts.Dir, spoolRejectedFile), dir: opts.Dir},
		appendq:          make(chan *spoolAppend, spoolQueueLen),
		syncq:            make(chan *spoolGroup, spoolQueueLen),
		synced:           make(chan struct{}),
		clusters:         map[string]*spoolCluster{},
		clustersChanged:  make(chan struct{}, 1),
		nextSeq:          1,
		reclaimBytes:     spoolReclaimBytes,
		reclaimIdleBytes: spoolReclaimIdleBytes,
	}
	if err := s.load(); err != nil {
		return nil, errors.Join(err, db.Close(), lock.Release())
	}
	s.metrics = newSpoolMetrics(s)
	if opts.Registerer != nil {
		if err := s.metrics.register(opts.Registerer); err != nil {
			return nil, errors.Join(fmt.Errorf("registering spool metrics: %w", err), db.Close(), lock.Release())
		}
	}
	s.fsyncs = db.Metrics().LogWriter.FsyncLatency
	s.stop, s.stopRuns = context.WithCancel(context.Background())
	go s.writeGroups(s.appendq)
	go s.syncGroups()
	if d := s.depth.Load(); d > 0 {
		log.Info("spool reopened with records to forward", "dir", opts.Dir, "records", d, "bytes", s.bytes.Load())
	}
	return s, nil
}

// load counts what an earlier process left in the store.
func (s *Spool) load() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spoolEntryPrefix}, UpperBound: []byte{spoolEntryPrefix + 1}})
	if err != nil {
		return fmt.Errorf("reading spool: %w", err)
	}
	var maxSeq uint64
	for ok := it.First(); ok; ok = it.Next() {
		cluster, seq, err := parseSpoolKey(it.Key())
		if err != nil {
			return errors.Join(err, it.Close())
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return errors.Join(fmt.Errorf("reading spool: %w", err), it.Close())
		}
		c := s.clusters[cluster]
		if c == nil {
			c = &spoolCluster{name: cluster, notify: make(chan struct{}, 1), low: seq}
			s.clusters[cluster] = c
		}
		c.depth++
		s.depth.Add(1)
		s.bytes.Add(int64(len(it.Key()) + len(v)))
		maxSeq = max(maxSeq, seq)
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("reading spool: %w", err)
	}
	s.nextSeq = maxSeq + 1
	s.durable.Store(maxSeq)
	return nil
}

// Append stores records for cluster durably: it returns nil only once they
// are fsynced, and from then on they are forwarded, across restarts, until
// the broker acknowledges or refuses them. Concurrent Appends share fsyncs.
// The records are stored whole, as placed by the caller.
//
// A full spool (producer.spool_max_bytes) fails at once with
// sdk.CodeUnavailable, storing none of records; records that could not
// fit even in an empty spool fail with sdk.CodeTooLarge. When ctx ends
// first, Append returns its error and the records may still be stored.
func (s *Spool) Append(ctx context.Context, cluster string, records []sdk.Record) error {
	if len(records) == 0 {
		return nil
	}
	if cluster == "" || strings.IndexByte(cluster, 0) >= 0 {
		return sdk.Errorf(sdk.CodeIllegal, "spool: invalid cluster name %q", cluster)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("appending to spool: %w", err)
	}
	now := time.Now()
	n := 0
	for i := range records {
		n += spoolEntrySize(&records[i])
	}
	buf := make([]byte, 0, n)
	a := &spoolAppend{cluster: cluster, values: make([][]byte, len(records)), done: make(chan error, 1)}
	keyLen := int64(len(cluster) + 10)
	for i := range records {
		start := len(buf)
		buf = encodeSpoolEntry(buf, &records[i], now)
		a.values[i] = buf[start:len(buf):len(buf)]
		a.size += keyLen + int64(len(buf)-start)
	}

	if limit := min(s.opts.MaxBytes, spoolMaxAppendBytes); a.size > limit {
		// It could never fit: not a full spool, a request too large.
		return sdk.Errorf(sdk.CodeTooLarge, "%d records of %d bytes do not fit in the spool (producer.spool_max_bytes = %d; at most %d bytes per request)",
			len(records), a.size, s.opts.MaxBytes, limit)
	}
	s.appendMu.RLock()
	if s.appendq == nil {
		s.appendMu.RUnlock()
		return sdk.Errorf(sdk.CodeUnavailable, "spool is closed")
	}
	if !s.reserve(a.size) {
		s.appendMu.RUnlock()
		return sdk.Errorf(sdk.CodeUnavailable, "spool is full (producer.spool_max_bytes = %d)", s.opts.MaxBytes)
	}
	select {
	case s.appendq <- a:
		s.appendMu.RUnlock()
	case <-ctx.Done():
		s.appendMu.RUnlock()
		s.bytes.Add(-a.size)
		return fmt.Errorf("appending to spool: %w", ctx.Err())
	}
	select {
	case err := <-a.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("appending to spool: %w", ctx.Err())
	}
}

// reserve counts n more bytes unless that passes MaxBytes.
func (s *Spool) reserve(n int64) bool {
	for {
		cur := s.bytes.Load()
		if cur+n > s.opts.MaxBytes {
			return false
		}
		if s.bytes.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// writeGroups is the group committer: it takes every Append queued while the
// previous group was being applied, applies them as one batch with seqs
// in queue order, and hands the batch to syncGroups without waiting for its
// fsync. Pebble's WAL syncs whatever was written while its previous fsync
// ran, so one fsync covers many Appends.
func (s *Spool) writeGroups(appendq <-chan *spoolAppend) {
	defer close(s.syncq)
	var group []*spoolAppend
	for a := range appendq {
		group = append(group[:0], a)
		size := a.size
	gather:
		for size < spoolGroupBytes {
			select {
			case a, ok := <-appendq:
				if !ok {
					break gather
				}
				group = append(group, a)
				size += a.size
			default:
				break gather
			}
		}
		g := &spoolGroup{appends: append([]*spoolAppend(nil), group...), first: s.nextSeq}
		g.batch = s.db.NewBatchWithSize(int(size) + 64*len(group))
		for _, a := range group {
			for _, v := range a.values {
				if err := g.batch.Set(spoolKey(a.cluster, s.nextSeq), v, nil); err != nil && g.err == nil {
					g.err = err
				}
				s.nextSeq++
			}
		}
		if g.err == nil {
			g.err = s.db.ApplyNoSyncWait(g.batch, pebble.Sync)
		}
		s.syncq <- g
	}
}

// spoolSlowSync is how long a group's write and fsync may take before the
// spool logs a slow disk, as pebble's disk-health checker (turned off: see
// OpenSpool) would have.
const spoolSlowSync = 5 * time.Second

// records counts the records of the group's Appends.
func (g *spoolGroup) records() int {
	n := 0
	for _, a := range g.appends {
		n += len(a.values)
	}
	return n
}

// syncGroups waits for each group's fsync, in order, then makes its records
// visible to forwarders and answers its Appends.
func (s *Spool) syncGroups() {
	defer close(s.synced)
	for g := range s.syncq {
		applied := g.err == nil
		err := g.err
		if applied {
			start := time.Now()
			err = g.batch.SyncWait()
			if took := time.Since(start); took >= spoolSlowSync {
				s.log.Warn("spool: slow disk: writing records took long", "took", took.Round(time.Millisecond), "records", g.records())
			}
		}
		_ = g.batch.Close() // only fails for a batch used after close; nothing to do about it
		last := g.first - 1 + uint64(g.records())
		if err != nil {
			s.log.Error("spool write failed", "err", err)
			if applied {
				// The records are in the store, though their fsync failed:
				// they are counted and forwarded like any others (a restart
				// would load them too). The callers hear 17 and may send
				// again: at least once, as for a send that times out.
				s.durable.Store(last)
				s.publish(g)
			} else {
				// Nothing of the group was written.
				for _, a := range g.appends {
					s.bytes.Add(-a.size)
				}
			}
			for _, a := range g.appends {
				a.done <- sdk.Errorf(sdk.CodeUnavailable, "spool: writing records: %v", err)
			}
			continue
		}
		s.durable.Store(last)
		s.publish(g)
		for _, a := range g.appends {
			a.done <- nil
		}
	}
}

// publish counts a durable group's records and wakes the forwarders of
// their clusters.
func (s *Spool) publish(g *spoolGroup) {
	seq := g.first
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range g.appends {
		c := s.clusters[a.cluster]
		if c == nil {
			c = &spoolCluster{name: a.cluster, notify: make(chan struct{}, 1), low: seq}
			s.clusters[a.cluster] = c
			select {
			case s.clustersChanged <- struct{}{}:
			default:
			}
		}
		n := int64(len(a.values))
		c.depth += n
		s.depth.Add(n)
		seq += uint64(n)
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

// Depth is the number of records stored and not yet acknowledged by the
// broker (nor rejected).
func (s *Spool) Depth() int64 { return s.depth.Load() }

// Close stops accepting Appends, waits for those queued to be answered,
// stops Run and closes the store. Records not yet forwarded stay for the
// next OpenSpool.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()

	s.appendMu.Lock()
	close(s.appendq)
	s.appendq = nil
	s.appendMu.Unlock()
	<-s.synced

	s.stopRuns()
	s.runs.Wait()
	if s.opts.Registerer != nil {
		s.metrics.unregister(s.opts.Registerer)
	}
	s.dbMu.Lock()
	s.dbClosed = true
	err := s.db.Close()
	s.dbMu.Unlock()
	if err != nil {
		err = fmt.Errorf("closing spool store: %w", err)
	}
	return errors.Join(err, s.rejects.close(), s.lock.Release())
}

// oldestAge returns how long the oldest record still stored has waited
// since its Append; 0 when the spool is empty.
func (s *Spool) oldestAge() time.Duration {
	type head struct {
		name string
		low  uint64
	}
	var heads []head
	s.mu.Lock()
	for _, c := range s.clusters {
		if c.depth > 0 {
			heads = append(heads, head{c.name, c.low})
		}
	}
	s.mu.Unlock()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.dbClosed {
		return 0
	}
	var oldest time.Time
	for _, h := range heads {
		_, upper := spoolClusterBounds(h.name)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: spoolKey(h.name, h.low), UpperBound: upper})
		if err != nil {
			continue
		}
		if it.First() {
			if v, err := it.ValueAndErr(); err == nil {
				if t, err := spoolEntryAppended(v); err == nil && (oldest.IsZero() || t.Before(oldest)) {
					oldest = t
				}
			}
		}
		_ = it.Close() // a read-only iterator's close error repeats what First saw
	}
	if oldest.IsZero() {
		return 0
	}
	return time.Since(oldest)
}

// walFsyncs returns how many fsyncs the store's log has made.
func (s *Spool) walFsyncs() uint64 {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.dbClosed {
		return 0
	}
	if s.fsyncs == nil {
		return 0
	}
	var m dto.Metric
	if err := s.fsyncs.Write(&m); err != nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}

// spoolMetrics are the spool's mqgate_spool_* metrics.
type spoolMetrics struct {
	forwarded prometheus.Counter
	rejected  prometheus.Counter
	all       []prometheus.Collector
}

func newSpoolMetrics(s *Spool) spoolMetrics {
	m := spoolMetrics{
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mqgate_spool_forwarded_total",
			Help: "Spooled records the broker acknowledged (and the spool then deleted).",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mqgate_spool_rejected_total",
			Help: "Spooled records the broker refused with a code that cannot succeed; kept in rejected.jsonl in the spool's directory.",
		}),
	}
	m.all = []prometheus.Collector{
		m.forwarded,
		m.rejected,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mqgate_spool_depth_messages",
			Help: "Records in the spool not yet acknowledged by the broker.",
		}, func() float64 { return float64(s.depth.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mqgate_spool_bytes",
			Help: "Bytes the spool holds (records and keys, as producer.spool_max_bytes counts them).",
		}, func() float64 { return float64(s.bytes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mqgate_spool_oldest_age_seconds",
			Help: "How long the oldest record not yet forwarded has been in the spool; 0 when empty.",
		}, func() float64 { return s.oldestAge().Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "mqgate_spool_append_fsyncs_total",
			Help: "fsyncs of the spool's write-ahead log; concurrent Appends share them.",
		}, func() float64 { return float64(s.walFsyncs()) }),
	}
	return m
}

func (m *spoolMetrics) register(reg prometheus.Registerer) error {
	for i, c := range m.all {
		if err := reg.Register(c); err != nil {
			for _, done := range m.all[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}

func (m *spoolMetrics) unregister(reg prometheus.Registerer) {
	for _, c := range m.all {
		reg.Unregister(c)
	}
}

// pebbleLogger sends the store's log lines to slog: its routine chatter at
// debug level.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("store: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("store: " + fmt.Sprintf(format, args...))
}

// Fatalf is how pebble reports a state it cannot continue from (a corrupt
// store); like its default logger, it does not return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("store: fatal: " + msg)
	panic("spool store: " + msg)
}
