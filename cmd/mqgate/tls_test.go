package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/internal/testcert"
	"github.com/mqgate/mqgate/internal/tlsreload"
)

// tlsGateway is a gateway whose listeners all speak TLS with the
// certificate in certFile and keyFile, issued by ca.
type tlsGateway struct {
	*gateway
	ca                *testcert.CA
	first             *testcert.Pair // the certificate it started with
	certFile, keyFile string
}

// startTLSGateway runs a gateway on an embedded Kafka with http.tls and
// thrift.tls set; with mutual, both require client certificates from the
// same CA, and client is one.
func startTLSGateway(t *testing.T, mutual bool, extra ...string) (tg *tlsGateway, client *testcert.Pair) {
	t.Helper()
	dir := t.TempDir()
	ca := testcert.NewCA(t, "gateway")
	first := ca.Server(dir, "first")
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	first.CopyTo(t, certFile, keyFile)
	section := fmt.Sprintf("tls: {cert_file: %q, key_file: %q", certFile, keyFile)
	clientTLS := &tls.Config{RootCAs: ca.Pool}
	if mutual {
		section += fmt.Sprintf(", client_ca_file: %q", ca.CertFile)
		client = ca.Client(dir, "alice")
		clientTLS.Certificates = []tls.Certificate{client.TLS}
	}
	section += "}"
	s := writeConfig(t, dir, embeddedKafka(t, dir), options{httpExtra: section, thrift: section, extra: strings.Join(extra, "")})
	s.https = &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}, Timeout: 30 * time.Second}
	t.Cleanup(s.https.CloseIdleConnections)
	g := startGateway(t, s)
	return &tlsGateway{gateway: g, ca: ca, first: first, certFile: certFile, keyFile: keyFile}, client
}

// handshake opens a new TLS connection to addr with cfg (RootCAs set to
// the gateway's CA when nil) and returns the serial of the certificate the
// gateway presented.
func (tg *tlsGateway) handshake(addr string, cfg *tls.Config) (*big.Int, error) {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	cfg.RootCAs = tg.ca.Pool
	d := &tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// thriftSend sends one message with sendSync to the ProducerService over
// TLS with cfg, through the generated client, and returns the result code.
func thriftSend(addr string, cfg *tls.Config) (int32, error) {
	conf := &thrift.TConfiguration{ConnectTimeout: 10 * time.Second, SocketTimeout: 30 * time.Second, TLSConfig: cfg}
	trans := thrift.NewTFramedTransportConf(thrift.NewTSSLSocketConf(addr, conf), conf)
	if err := trans.Open(); err != nil {
		return 0, err
	}
	defer trans.Close()
	client := producer.NewProducerServiceClientFactory(trans, thrift.NewTCompactProtocolFactoryConf(conf))
	m := producer.NewMessage()
	m.Topic, m.Value = "secure", "over tls"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := client.SendSync(ctx, m, 10000)
	if err != nil {
		return 0, err
	}
	return r.Code, nil
}

// HTTPS and Thrift over TLS with the gateway's CA; plaintext to a TLS port
// fails; replacing the files serves the new certificate to new
// connections without a restart.
func TestTLSListeners(t *testing.T) {
	tg, _ := startTLSGateway(t, false)

	t.Run("https produce", func(t *testing.T) {
		if rs := tg.produceOK("secure", `{"value": "over https"}`); len(rs) != 1 || rs[0].Code != 0 {
			t.Fatalf("produce over HTTPS = %+v; want one result, code 0", rs)
		}
	})
	t.Run("plain http to the https port", func(t *testing.T) {
		resp, err := http.Get("http://" + tg.httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("plaintext HTTP was answered 200 on the TLS listener")
			}
		}
	})
	t.Run("thrift sendSync over tls", func(t *testing.T) {
		code, err := thriftSend(tg.thriftAddr, &tls.Config{RootCAs: tg.ca.Pool})
		if err != nil || code != 0 {
			t.Fatalf("sendSync over TLS = code %d, %v; want 0", code, err)
		}
	})
	t.Run("plaintext thrift to the tls port", func(t *testing.T) {
		conf := &thrift.TConfiguration{ConnectTimeout: 10 * time.Second, SocketTimeout: 10 * time.Second}
		trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(tg.thriftAddr, conf), conf)
		if err := trans.Open(); err != nil {
			t.Fatal(err)
		}
		defer trans.Close()
		m := producer.NewMessage()
		m.Topic, m.Value = "secure", "plaintext"
		if r, err := producer.NewProducerServiceClientFactory(trans, thrift.NewTCompactProtocolFactoryConf(conf)).SendSync(context.Background(), m, 5000); err == nil {
			t.Fatalf("plaintext sendSync on the TLS listener answered %+v", r)
		}
	})
	t.Run("rotation", func(t *testing.T) {
		// A pooled HTTPS connection, opened on the first certificate.
		if code := tg.status("/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz = %d", code)
		}
		second := tg.ca.Server(t.TempDir(), "second")
		second.CopyTo(t, tg.certFile, tg.keyFile)
		for _, l := range []struct{ name, addr string }{{"http", tg.httpAddr}, {"thrift", tg.thriftAddr}, {"thrift consumer", tg.consumerAddr}} {
			waitFor(t, l.name+" to present the second certificate", func() bool {
				serial, err := tg.handshake(l.addr, nil)
				if err != nil {
					t.Fatalf("%s handshake: %v", l.name, err)
				}
				return serial.Cmp(second.Serial) == 0
			})
		}
		if code := tg.status("/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz after the rotation = %d", code)
		}
		if rs := tg.produceOK("secure", `{"value": "after rotation"}`); rs[0].Code != 0 {
			t.Fatalf("produce after the rotation = %+v", rs)
		}
	})
}

// With client_ca_file, a client without a certificate from that CA is
// refused at the handshake; one with it is served.
func TestMutualTLSListeners(t *testing.T) {
	tg, alice := startTLSGateway(t, true)
	stranger := testcert.NewCA(t, "stranger").Client(t.TempDir(), "mallory")
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{
		{"no client certificate", nil, false},
		{"a certificate from another CA", []tls.Certificate{stranger.TLS}, false},
		{"a certificate from the client CA", []tls.Certificate{alice.TLS}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &tls.Config{RootCAs: tg.ca.Pool, Certificates: tc.certs}
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
			defer hc.CloseIdleConnections()
			resp, err := hc.Post("https://"+tg.httpAddr+"/v1/topics/secure/messages", "application/json", strings.NewReader(`{"value": "mtls"}`))
			if err == nil {
				resp.Body.Close()
			}
			if httpOK := err == nil && resp.StatusCode == http.StatusOK; httpOK != tc.ok {
				t.Fatalf("HTTPS produce: %v; want success %v", err, tc.ok)
			}
			code, err := thriftSend(tg.thriftAddr, cfg)
			if thriftOK := err == nil && code == 0; thriftOK != tc.ok {
				t.Fatalf("Thrift sendSync: code %d, %v; want success %v", code, err, tc.ok)
			}
		})
	}
	if !tg.eventuallyLogged("thrift TLS handshake failed") {
		t.Error("no thrift handshake failure logged for the refused clients")
	}
}

// A listener other hosts can reach is warned about when it speaks
// plaintext, naming the key that would encrypt it.
func TestPlaintextBeyondLoopbackWarns(t *testing.T) {
	ca := testcert.NewCA(t, "warn")
	pair := ca.Server(t.TempDir(), "gateway")
	certs, err := tlsreload.New(tlsreload.Options{CertFile: pair.CertFile, KeyFile: pair.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		addr  string
		certs *tlsreload.Certificate
		warn  bool
	}{
		{"loopback", "127.0.0.1:0", nil, false},
		{"all interfaces", "0.0.0.0:0", nil, true},
		{"all interfaces with tls", "0.0.0.0:0", certs, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := listen("thrift.producer_listen", tc.addr, tc.certs, "thrift.tls", func(l net.Listener, _ bool) net.Listener { return l }, slog.New(slog.NewTextHandler(&buf, nil)))
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			warned := strings.Contains(buf.String(), "level=WARN") && strings.Contains(buf.String(), "set thrift.tls")
			if warned != tc.warn {
				t.Fatalf("warned %v, want %v; log: %s", warned, tc.warn, buf.String())
			}
		})
	}
}

// With auth.mtls, a verified client certificate's common name is the
// principal, over HTTPS and Thrift alike, and the ACL applies to it.
func TestClientCertificateIsThePrincipal(t *testing.T) {
	tg, alice := startTLSGateway(t, true, "auth: {mtls: {principal: cn}}\nacl: [{principal: alice, operations: [produce], topics: [secure]}]\n")
	bob := tg.ca.Client(t.TempDir(), "bob")
	for _, tc := range []struct {
		who           string
		cert          tls.Certificate
		topic         string
		status        int
		code          int32
		names         string
		thriftAllowed bool
	}{
		{"alice", alice.TLS, "secure", 200, 0, "", true},
		{"alice", alice.TLS, "other", 403, 13, `produce on topic "other" to principal "alice"`, true},
		{"bob", bob.TLS, "secure", 403, 13, `principal "bob"`, false},
	} {
		cfg := &tls.Config{RootCAs: tg.ca.Pool, Certificates: []tls.Certificate{tc.cert}}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
		resp, err := hc.Post("https://"+tg.httpAddr+"/v1/topics/"+tc.topic+"/messages", "application/json", strings.NewReader(`{"value": "v"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		hc.CloseIdleConnections()
		if resp.StatusCode != tc.status || !strings.Contains(strings.ReplaceAll(string(body), `\"`, `"`), tc.names) {
			t.Errorf("%s producing to %s over HTTPS: %d %s; want %d naming %q", tc.who, tc.topic, resp.StatusCode, body, tc.status, tc.names)
		}
		code, err := thriftSend(tg.thriftAddr, cfg) // to "secure"
		if want := map[bool]int32{true: 0, false: 13}[tc.thriftAllowed]; err != nil || code != want {
			t.Errorf("%s sendSync to secure over Thrift: code %d, %v; want %d", tc.who, code, err, want)
		}
	}
}
