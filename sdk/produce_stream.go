package sdk

import (
	"context"
	"errors"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// maxStreamBatches bounds the batches of one ProduceStream a plugin
// produces at once; the stream's next batch waits for one to finish. The
// gateway's own bounds keep it far below this.
const maxStreamBatches = 4096

// defaultCallTimeout is a batch's time limit when the gateway gives none,
// as for a commit on a Consume stream.
const defaultCallTimeout = 30 * time.Second

// ProduceStream serves Produce calls sent as messages of one stream. Each
// batch is produced in a goroutine of its own and answered when done, in
// any order; the stream's context bounds them all.
func (s *backendServer) ProduceStream(stream pb.Backend_ProduceStreamServer) error {
	ctx := stream.Context()
	var sendMu sync.Mutex
	batches := newBatchRunner(s)
	// gRPC forbids Send once the handler has returned.
	defer batches.wait()
	for {
		batch, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		err = batches.run(ctx, produceBatchFromPB(batch), func(res *pb.ProduceBatchResult) {
			sendMu.Lock()
			defer sendMu.Unlock()
			_ = stream.Send(res) // a failed Send means the stream is gone, which Recv reports
		})
		if err != nil {
			return err
		}
	}
}

// batchRunner produces the batches of one stream or plugin connection,
// each in a goroutine of its own, at most maxStreamBatches at once.
type batchRunner struct {
	s     *backendServer
	wg    sync.WaitGroup
	slots chan struct{}
	// release says the backend is a ProduceReleaser: batches are read into
	// the pool's buffers, given back once produced.
	release bool
}

func newBatchRunner(s *backendServer) *batchRunner {
	r, ok := s.impl.(ProduceReleaser)
	return &batchRunner{s: s, slots: make(chan struct{}, maxStreamBatches), release: ok && r.ReleasesProducedRecords()}
}

// run produces batch in a goroutine of its own once there is room, within
// its time limit and ctx, and hands its result to answer. It fails only if
// ctx ends first.
func (r *batchRunner) run(ctx context.Context, batch *produceBatch, answer func(*pb.ProduceBatchResult)) error {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() { <-r.slots }()
		timeout := time.Duration(batch.timeoutMs) * time.Millisecond
		if timeout <= 0 {
			timeout = defaultCallTimeout
		}
		bctx, cancel := context.WithTimeout(ctx, timeout)
		results, err := r.s.produce(bctx, batch.records)
		cancel()
		answer(&pb.ProduceBatchResult{Id: batch.id, Results: results, Error: errorToPB(err)})
		if err == nil && batch.buf != nil {
			// The backend let go of the records (ProduceReleaser), and
			// the answer is written.
			pool.Put(batch.buf)
		}
	}()
	return nil
}

// wait waits for every batch run to be answered.
func (r *batchRunner) wait() { r.wg.Wait() }

// produceStream is the gateway's end of a plugin's ProduceStream: one
// stream, opened on the first Produce and again after it ends, carrying
// every Produce call as a message. A plugin that does not serve it gets
// unary Produce calls instead, from then on.
type produceStream struct {
	c pb.BackendClient

	// sendSlot, of capacity 1, is the right to Send: a caller waits for
	// it as long as its context lasts, never longer. Never taken with mu
	// held.
	sendSlot chan struct{}

	mu          sync.Mutex
	stream      pb.Backend_ProduceStreamClient // nil when none is open
	cancel      context.CancelFunc
	pending     map[uint64]chan streamAnswer
	nextID      uint64
	unsupported bool
	// stalled is a stream given up on because a Send in it outlasted its
	// caller: the plugin stopped reading it.
	stalled pb.Backend_ProduceStreamClient
	// opening is closed when the stream being opened is open or failed.
	opening chan struct{}
}

func newProduceStream(c pb.BackendClient) *produceStream {
	return &produceStream{c: c, sendSlot: make(chan struct{}, 1)}
}

// streamAnswer is a batch's result, or why the stream could not give it.
type streamAnswer struct {
	res *pb.ProduceBatchResult
	err error
}

// results is the batch's results, or the error that took their place.
func (a streamAnswer) results() ([]*pb.ProduceResult, error) {
	if a.err != nil {
		return nil, a.err
	}
	if e := errorFromPB(a.res.Error); e != nil {
		return nil, e
	}
	return a.res.Results, nil
}

// errUseUnary tells a waiting call that the plugin does not serve
// ProduceStream, so it must go as a unary call.
var errUseUnary = errors.New("ProduceStream not served")

// produce sends records as one batch on the stream and waits for its
// result; ok is false when the call must go as a unary Produce instead.
func (p *produceStream) produce(ctx context.Context, records []*pb.Record) (results []*pb.ProduceResult, ok bool, err error) {
	batch := &pb.ProduceBatch{Records: records, Id: math.MaxUint64, TimeoutMs: math.MaxInt64}
	if batch.SizeVT() > MaxMessageBytes { // sized with the largest id and time limit
		// Too large for one message: a unary call refuses it with the
		// code of a batch too large, where a Send would end the stream.
		return nil, false, nil
	}
	batch.TimeoutMs = 0
	stream, ch, err := p.register(ctx, batch)
	if errors.Is(err, errUseUnary) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	if err := p.send(ctx, stream, batch); err != nil {
		p.forget(batch.Id)
		return nil, true, err
	}
	select {
	case a := <-ch:
		if errors.Is(a.err, errUseUnary) {
			return nil, false, nil
		}
		results, err := a.results()
		return results, true, err
	case <-ctx.Done():
		p.forget(batch.Id)
		return nil, true, ctxError(ctx)
	}
}

// send sends batch on stream once it may, with the time its caller has
// left. A caller whose context ends first does not send it and gets what
// a unary call whose context ends gives. If the plugin stops reading the
// stream, a Send blocks on gRPC's flow control; once its caller's context
// ends the stream is given up (stall), which ends the Send and fails the
// batches pending on it with code 17, so no caller waits past its
// context.
func (p *produceStream) send(ctx context.Context, stream pb.Backend_ProduceStreamClient, batch *pb.ProduceBatch) error {
	select {
	case p.sendSlot <- struct{}{}:
	case <-ctx.Done():
		return ctxError(ctx)
	}
	defer func() { <-p.sendSlot }()
	if ctx.Err() != nil {
		return ctxError(ctx)
	}
	if d, has := ctx.Deadline(); has {
		batch.TimeoutMs = max(1, time.Until(d).Milliseconds())
	}
	var sending atomic.Bool
	sending.Store(true)
	stop := context.AfterFunc(ctx, func() {
		if sending.Load() {
			p.stall(stream)
		}
	})
	// A failed Send has ended the stream (gRPC finishes a client stream
	// on any Send error), so Recv fails too, with the stream's status,
	// and the receiving goroutine answers every pending batch with it,
	// this one included.
	_ = stream.Send(batch)
	sending.Store(false)
	stop()
	return nil
}

// ctxError is what a unary call whose context ended gives.
func ctxError(ctx context.Context) error {
	return fromStatus(status.FromContextError(ctx.Err()).Err())
}

// stall gives stream up: its Send outlasted the caller's context, so the
// plugin is not reading it.
func (p *produceStream) stall(stream pb.Backend_ProduceStreamClient) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stream == stream {
		p.stalled = stream
		p.cancel()
	}
}

// register opens the stream if none is, and notes batch as pending on it.
// Opening may wait while gRPC connects; it happens outside mu, bounded by
// ctx, and concurrent callers wait for the one opening, as long as their
// own ctx lasts.
func (p *produceStream) register(ctx context.Context, batch *pb.ProduceBatch) (pb.Backend_ProduceStreamClient, chan streamAnswer, error) {
	for {
		p.mu.Lock()
		switch {
		case p.unsupported:
			p.mu.Unlock()
			return nil, nil, errUseUnary
		case p.stream != nil:
			p.nextID++
			batch.Id = p.nextID
			ch := make(chan streamAnswer, 1)
			p.pending[batch.Id] = ch
			stream := p.stream
			p.mu.Unlock()
			return stream, ch, nil
		case p.opening != nil:
			opening := p.opening
			p.mu.Unlock()
			select {
			case <-opening:
				continue
			case <-ctx.Done():
				return nil, nil, ctxError(ctx)
			}
		}
		p.opening = make(chan struct{})
		p.mu.Unlock()
		err := p.open(ctx)
		p.mu.Lock()
		close(p.opening)
		p.opening = nil
		p.mu.Unlock()
		if err != nil {
			return nil, nil, err
		}
	}
}

// open opens a stream, which outlives ctx; ctx bounds only the opening.
func (p *produceStream) open(ctx context.Context) error {
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	stream, err := p.c.ProduceStream(sctx)
	if !stop() { // ctx ended while opening: the stream, if any, is cancelled
		cancel()
		return ctxError(ctx)
	}
	if err != nil {
		cancel()
		return fromStatus(err)
	}
	p.mu.Lock()
	p.stream, p.cancel = stream, cancel
	p.pending = make(map[uint64]chan streamAnswer)
	p.mu.Unlock()
	go p.receive(stream)
	return nil
}

func (p *produceStream) forget(id uint64) {
	p.mu.Lock()
	delete(p.pending, id)
	p.mu.Unlock()
}

// receive hands each result to its caller until the stream ends.
func (p *produceStream) receive(stream pb.Backend_ProduceStreamClient) {
	for {
		res, err := stream.Recv()
		if err != nil {
			p.ended(stream, err)
			return
		}
		answer(&p.mu, &p.pending, res)
	}
}

// answer hands res to the caller waiting for its batch in *pending, which
// mu guards (the map too: it is replaced when its stream ends); a batch
// whose caller is gone is dropped.
func answer(mu *sync.Mutex, pending *map[uint64]chan streamAnswer, res *pb.ProduceBatchResult) {
	mu.Lock()
	ch := (*pending)[res.Id]
	delete(*pending, res.Id)
	mu.Unlock()
	if ch != nil {
		ch <- streamAnswer{res: res}
	}
}

// ended forgets stream, which failed with err, and answers every batch
// pending on it: with errUseUnary if the plugin does not serve the
// stream, else with what a unary call would have given. The next call
// opens a new stream.
func (p *produceStream) ended(stream pb.Backend_ProduceStreamClient, err error) {
	p.mu.Lock()
	if p.stream != stream {
		p.mu.Unlock()
		return // already handled
	}
	pending := p.pending
	p.stream, p.pending = nil, nil
	p.cancel()
	switch {
	case p.stalled == stream:
		p.stalled = nil
		err = Errorf(CodeUnavailable, "backend unavailable: the plugin stopped reading its produce stream")
	case status.Code(err) == codes.Unimplemented:
		p.unsupported = true
		err = errUseUnary
	case errors.Is(err, io.EOF):
		err = Errorf(CodeUnavailable, "backend unavailable: produce stream closed by the plugin")
	default:
		err = fromStatus(err)
	}
	p.mu.Unlock()
	for _, ch := range pending {
		ch <- streamAnswer{err: err}
	}
}
