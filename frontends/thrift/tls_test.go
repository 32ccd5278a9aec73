package thriftapi

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/internal/testcert"
	"github.com/mqgate/mqgate/sdk"
)

// peerRecorder is a Producer that keeps the TLS state each call's context
// carries.
type peerRecorder struct {
	fakeProducer
	mu     sync.Mutex
	states []*tls.ConnectionState
}

func newPeerRecorder() *peerRecorder {
	r := &peerRecorder{}
	r.produce = func(ctx context.Context, _ string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
		r.mu.Lock()
		r.states = append(r.states, ConnectionState(ctx))
		r.mu.Unlock()
		return okResults(msgs), nil
	}
	return r
}

func (r *peerRecorder) last() *tls.ConnectionState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.states[len(r.states)-1]
}

// The framed and buffered transports over TLS with client certificates:
// calls are answered, and handlers see the client's verified certificate.
func TestCallsOverMutualTLSSeeTheClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "thrift")
	server, alice := ca.Server(dir, "gateway"), ca.Client(dir, "alice")
	for _, w := range wireSetups {
		t.Run(w.transport+"+"+w.protocol, func(t *testing.T) {
			rec := newPeerRecorder()
			s := NewProducerServer(Options{Transport: w.transport, Protocol: w.protocol, Registry: prometheus.NewRegistry(), Logger: discardLogger()}, rec)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() {
				served <- s.Serve(tls.NewListener(l, &tls.Config{
					Certificates: []tls.Certificate{server.TLS},
					ClientCAs:    ca.Pool,
					ClientAuth:   tls.RequireAndVerifyClientCert,
				}))
			}()
			t.Cleanup(func() {
				if err := s.Stop(); err != nil {
					t.Errorf("Stop: %v", err)
				}
				if err := <-served; err != nil {
					t.Errorf("Serve: %v", err)
				}
			})

			client := dialTLS(t, l.Addr().String(), w.transport, w.protocol, &tls.Config{
				RootCAs: ca.Pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{alice.TLS},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// Two calls: the connection stays in step after the first.
			for range 2 {
				r, err := client.SendSync(ctx, newMessage("t", "k", "v"), 5000)
				if err != nil || r.Code != 0 {
					t.Fatalf("sendSync = %+v, %v; want code 0", r, err)
				}
			}
			st := rec.last()
			if st == nil || len(st.VerifiedChains) == 0 || st.PeerCertificates[0].Subject.CommonName != "alice" {
				t.Fatalf("ConnectionState in the handler = %+v; want alice's verified certificate", st)
			}
		})
	}
}

func TestConnectionStateIsNilOverPlaintext(t *testing.T) {
	rec := newPeerRecorder()
	s := startServer(t, Options{}, rec)
	client := dial(t, s.addr, TransportFramed, ProtocolCompact)
	if r, err := client.SendSync(context.Background(), newMessage("t", "k", "v"), 5000); err != nil || r.Code != 0 {
		t.Fatalf("sendSync = %+v, %v", r, err)
	}
	if st := rec.last(); st != nil {
		t.Fatalf("ConnectionState over plaintext = %+v, want nil", st)
	}
}

func dialTLS(t *testing.T, addr, transport, protocol string, tc *tls.Config) *producer.ProducerServiceClient {
	t.Helper()
	return producer.NewProducerServiceClientFactory(openTransport(t, addr, transport, protocol, tc))
}

// A client that connects to a TLS listener and never says hello is
// closed after the request timeout, rather than holding its connection.
func TestStalledTLSHandshakeIsClosed(t *testing.T) {
	ca := testcert.NewCA(t, "stall")
	server := ca.Server(t.TempDir(), "gateway")
	s := NewProducerServer(Options{DefaultTimeout: 100 * time.Millisecond, Registry: prometheus.NewRegistry(), Logger: discardLogger()}, &fakeProducer{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		served <- s.Serve(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{server.TLS}}))
	}()
	t.Cleanup(func() {
		_ = s.Stop()
		<-served
	})
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var b [1]byte
	if n, err := conn.Read(b[:]); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("read = %d, %v; want the server to close the connection", n, err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
