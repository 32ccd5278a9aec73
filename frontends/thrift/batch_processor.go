package thriftapi

import (
	"bytes"
	"context"
	"io"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/internal/bufpool"
)

// batchProcessor answers sendBatchSync in place of the generated
// processor function, as it does, with the call's arguments read by
// decodeBatchArgs from its frame, copied whole into a buffer of
// framePool: the messages' bodies are that buffer's bytes, not copies,
// and the buffer goes back to the pool once the producer says nothing
// holds them (sendBatchSyncReleasing). Calls on an unframed transport,
// and arguments decodeBatchArgs leaves alone, are read by the generated
// code, as before.
type batchProcessor struct {
	gen thrift.TProcessorFunction // the generated one
	h   *producerService
}

// framePool holds the buffers of sendBatchSync frames whose messages
// nothing holds any more.
var framePool bufpool.Pool

// maxPooledFrame is the largest frame read into a buffer of framePool;
// larger ones are read into a buffer of their own, and left to the
// collector, rather than kept idle.
const maxPooledFrame = 4 << 20

func (p *batchProcessor) Process(ctx context.Context, seqID int32, iprot, oprot thrift.TProtocol) (bool, thrift.TException) {
	g, ok := iprot.(*guardedProtocol)
	if !ok {
		return p.gen.Process(ctx, seqID, iprot, oprot)
	}
	t := g.Transport()
	n := t.RemainingBytes()
	if n == unknownRemaining || n > uint64(g.maxBytes) {
		// Unframed: the arguments' length is not known before they are
		// read.
		return p.gen.Process(ctx, seqID, iprot, oprot)
	}
	buf, pooled := p.frameBuffer(g, int(n))
	if _, err := io.ReadFull(t, *buf); err != nil {
		// The frame is in memory already: this does not happen.
		return p.gen.Process(ctx, seqID, g.over(nil), oprot)
	}
	msgs, ok := decodeBatchArgs(*buf, g.compact, g.maxElems, g.maxBytes)
	if !ok {
		// The generated code reads copies of what it keeps.
		defer p.recycle(buf, pooled)
		return p.gen.Process(ctx, seqID, g.over(*buf), oprot)
	}
	_ = g.ReadMessageEnd(ctx) // the compact and binary protocols' never fails
	callCtx, stop := watchConnection(ctx, t)
	res, released := p.h.sendBatchSyncReleasing(callCtx, msgs)
	stop()
	if released {
		p.recycle(buf, pooled)
	}
	return writeReply(ctx, oprot, methodSendBatchSync, seqID, &producer.ProducerServiceSendBatchSyncResult{Success: res})
}

// frameBuffer returns a buffer of n bytes for the rest of a frame: from
// framePool, with the part of its capacity past n charged to the
// connection's requests in flight (the n bytes themselves were charged
// as they were read), or one of exactly n bytes when the frame is larger
// than maxPooledFrame or the budget has no room now for the rest.
func (p *batchProcessor) frameBuffer(g *guardedProtocol, n int) (buf *[]byte, pooled bool) {
	if n <= maxPooledFrame {
		buf := framePool.Get(n)
		if spare := cap(*buf) - n; spare == 0 || g.rc.charge.TryGrow(int64(spare)) {
			return buf, true
		}
		framePool.Put(buf)
	}
	b := make([]byte, n)
	return &b, false
}

func (p *batchProcessor) recycle(buf *[]byte, pooled bool) {
	if pooled {
		framePool.Put(buf)
	}
}

// over returns a protocol like g reading frame, the rest of a frame read
// from g's transport, for the generated code.
func (g *guardedProtocol) over(frame []byte) *guardedProtocol {
	mem := frameTransport{&thrift.TMemoryBuffer{Buffer: bytes.NewBuffer(frame)}, g.Transport()}
	return &guardedProtocol{
		TProtocol: g.c.s.protocol.GetProtocol(mem),
		c:         g.c,
		maxElems:  g.maxElems,
		rc:        g.rc,
		compact:   g.compact,
		maxBytes:  g.maxBytes,
	}
}

// frameTransport is a frame read from conn: the generated processor's
// connectivity check, polling IsOpen while the handler runs, looks at
// conn.
type frameTransport struct {
	*thrift.TMemoryBuffer
	conn thrift.TTransport
}

func (f frameTransport) IsOpen() bool { return f.conn.IsOpen() }

// watchConnection cancels the returned context once trans closes, polled
// every thrift.ServerConnectivityCheckInterval, as the generated
// processors do while a call's handler runs; stop ends the polling.
func watchConnection(ctx context.Context, trans thrift.TTransport) (_ context.Context, stop func()) {
	if thrift.ServerConnectivityCheckInterval <= 0 {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		ticker := time.NewTicker(thrift.ServerConnectivityCheckInterval)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
				if !trans.IsOpen() {
					cancel()
					return
				}
			}
		}
	}()
	return ctx, func() {
		close(done)
		cancel()
	}
}

// writeReply writes a call's answer, as the generated processors do.
func writeReply(ctx context.Context, oprot thrift.TProtocol, method string, seqID int32, result thrift.TStruct) (bool, thrift.TException) {
	err := oprot.WriteMessageBegin(ctx, method, thrift.REPLY, seqID)
	if err == nil {
		err = result.Write(ctx, oprot)
	}
	if err == nil {
		err = oprot.WriteMessageEnd(ctx)
	}
	if err == nil {
		err = oprot.Flush(ctx)
	}
	if err != nil {
		return false, thrift.WrapTException(err)
	}
	return true, nil
}
