package thriftapi

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/sdk"
)

// holdingProducer is a releasingProducer that says it still holds every
// produce's messages.
type holdingProducer struct{ fakeProducer }

func (h *holdingProducer) ProduceReleasing(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, bool, error) {
	results, err := h.Produce(ctx, topic, msgs)
	return results, false, err
}

// A sendBatchSync's messages are its frame's bytes: a frame whose
// messages the producer did not let go of is never reused, so the bodies
// of a first call are as they were after later calls on the connection,
// with a producer that says it holds them and with one that says
// nothing.
func TestBatchFrameKeptWhileHeld(t *testing.T) {
	for name, p := range map[string]interface {
		Producer
		Calls() []produceCall
	}{
		"a producer holding them": &holdingProducer{},
		"a producer not saying":   &fakeProducer{},
	} {
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, Options{}, p)
			client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
			batch := func(fill byte) []*producer.Message {
				return batchOf(10, func(i int, m *producer.Message) {
					m.Topic, m.Key, m.Body = "t", fmt.Sprint(i), bytes.Repeat([]byte{fill}, 1000)
				})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, fill := range []byte{'a', 'b', 'c'} {
				if r, err := client.SendBatchSync(ctx, batch(fill)); err != nil || r.Code != 0 {
					t.Fatalf("sendBatchSync = %+v, %v", r, err)
				}
			}
			first := p.Calls()[0].msgs
			for i, m := range first {
				if !bytes.Equal(m.Value, bytes.Repeat([]byte{'a'}, 1000)) {
					t.Fatalf("message %d of the first call is now %.20q...: its frame was reused while held", i, m.Value)
				}
			}
		})
	}
}

// Arguments the fast decoder leaves to the generated code (here, a field
// the IDL does not have) are answered as before.
func TestBatchWithUnknownFieldAnswered(t *testing.T) {
	p := &fakeProducer{}
	srv := startServer(t, Options{}, p)
	trans, pf := openTransport(t, srv.addr, TransportFramed, ProtocolCompact, nil)
	prot := pf.GetProtocol(trans)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	args := withUnknownField(encodeBatchArgs(t, true, []*producer.Message{newMessage("t", "k", "v")}))
	sendBatchCall(t, trans, prot, args, 7)
	if _, _, seq, err := prot.ReadMessageBegin(ctx); err != nil || seq != 7 {
		t.Fatalf("answer header: seq %d, %v", seq, err)
	}
	res := &producer.ProducerServiceSendBatchSyncResult{}
	if err := res.Read(ctx, prot); err != nil || res.Success == nil || res.Success.Code != 0 {
		t.Fatalf("answer = %+v, %v; want code 0", res.Success, err)
	}
	calls := p.Calls()
	if len(calls) != 1 || len(calls[0].msgs) != 1 || string(calls[0].msgs[0].Value) != "v" {
		t.Fatalf("produced %+v; want the one message", calls)
	}
}

// A framed sendBatchSync's bodies reach the producer as the frame's own
// bytes, at the distances apart they are on the wire, not as copies: the
// server reads it with batchProcessor, not the generated code.
func TestBatchBodiesAreTheFramesBytes(t *testing.T) {
	p := &holdingProducer{}
	srv := startServer(t, Options{}, p)
	client := dial(t, srv.addr, TransportFramed, ProtocolCompact)
	msgs := batchOf(3, func(i int, m *producer.Message) {
		m.Topic, m.Key, m.Body = "t", fmt.Sprint(i), bytes.Repeat([]byte{'x' + byte(i)}, 1000)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := client.SendBatchSync(ctx, msgs); err != nil || r.Code != 0 {
		t.Fatalf("sendBatchSync = %+v, %v", r, err)
	}
	wire := encodeBatchArgs(t, true, msgs)
	got := p.Calls()[0].msgs
	for i := 1; i < len(msgs); i++ {
		onWire := bytes.Index(wire, msgs[i].Body) - bytes.Index(wire, msgs[i-1].Body)
		apart := int(uintptr(unsafe.Pointer(unsafe.SliceData(got[i].Value))) - uintptr(unsafe.Pointer(unsafe.SliceData(got[i-1].Value))))
		if apart != onWire {
			t.Fatalf("bodies %d and %d are %d bytes apart in memory, %d on the wire: copies, not the frame's bytes", i-1, i, apart, onWire)
		}
	}
}

// A sendBatchSync whose client has gone is cancelled, whether the fast
// decoder read it or left it to the generated code (a field the IDL does
// not have).
func TestBatchOfAGoneClientIsCancelled(t *testing.T) {
	for name, unknownField := range map[string]bool{"decoded": false, "left to the generated code": true} {
		t.Run(name, func(t *testing.T) {
			ended := make(chan error, 1)
			p := &fakeProducer{produce: func(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
				<-ctx.Done()
				ended <- ctx.Err()
				return nil, ctx.Err()
			}}
			// Nothing but the client's going ends the call while the test runs.
			srv := startServer(t, Options{DefaultTimeout: time.Hour}, p)
			trans, pf := openTransport(t, srv.addr, TransportFramed, ProtocolCompact, nil)
			args := encodeBatchArgs(t, true, []*producer.Message{newMessage("t", "k", "v")})
			if unknownField {
				args = withUnknownField(args)
			}
			sendBatchCall(t, trans, pf.GetProtocol(trans), args, 7)
			leaveAndExpectCancelled(t, "produce", trans, func() bool { return len(p.Calls()) > 0 }, ended)
		})
	}
}

// withUnknownField returns sendBatchSync's encoded compact arguments with
// a field the IDL does not have (2, an i32 of 7) after the list: what the
// fast decoder leaves to the generated code.
func withUnknownField(args []byte) []byte {
	return append(args[:len(args)-1:len(args)-1], 0x15, 0x0e, 0x00)
}

// sendBatchCall writes a sendBatchSync call of sequence id seq whose
// arguments are the bytes args, as they are.
func sendBatchCall(t *testing.T, trans thrift.TTransport, prot thrift.TProtocol, args []byte, seq int32) {
	t.Helper()
	ctx := context.Background()
	if err := prot.WriteMessageBegin(ctx, methodSendBatchSync, thrift.CALL, seq); err != nil {
		t.Fatal(err)
	}
	if _, err := trans.Write(args); err != nil {
		t.Fatal(err)
	}
	if err := prot.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}
