package pluginhost

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
)

// goPluginHealthService is the name go-plugin registers its gRPC health
// service under in every plugin process.
const goPluginHealthService = "plugin"

// The host's channel to a plugin is TLS with a certificate on each side:
// the plugin presents one, and a caller without the host's certificate,
// over plaintext or TLS, gets no answer from the plugin's socket.
func TestPluginChannelIsMutualTLS(t *testing.T) {
	h, _ := newTestHost(t)
	startChild(t, h)
	h.mu.Lock()
	inst := h.instances[0]
	h.mu.Unlock()
	gen, err := inst.current()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := &healthpb.HealthCheckRequest{Service: goPluginHealthService}

	var p peer.Peer
	if _, err := healthpb.NewHealthClient(gen.conn).Check(ctx, req, grpc.Peer(&p)); err != nil {
		t.Fatalf("health check over the host's channel: %v", err)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || !info.State.HandshakeComplete || len(info.State.PeerCertificates) == 0 {
		t.Fatalf("the host's channel to the plugin has auth info %#v; want TLS with the plugin's certificate", p.AuthInfo)
	}

	addr := gen.client.ReattachConfig().Addr
	for _, tc := range []struct {
		name  string
		creds credentials.TransportCredentials
	}{
		{"plaintext", insecure.NewCredentials()},
		{"tls without the host's certificate", credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := grpc.NewClient("passthrough:///plugin",
				grpc.WithTransportCredentials(tc.creds),
				grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, addr.Network(), addr.String())
				}))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			cctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if _, err := healthpb.NewHealthClient(conn).Check(cctx, req); err == nil {
				t.Fatalf("the plugin answered a caller with %s", tc.name)
			}
		})
	}
}
