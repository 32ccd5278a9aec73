package tlsreload

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mqgate/mqgate/internal/testcert"
)

// echoServer serves c on a loopback TLS listener: every line a client
// sends comes back. It returns the listener's address.
func echoServer(t *testing.T, c *Certificate) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := tls.NewListener(l, c.Config())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		tl.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := tl.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := conn.Write([]byte(line)); err != nil {
						return
					}
				}
			})
		}
	})
	return l.Addr().String()
}

// client is one TLS connection to an echoServer.
type client struct {
	conn *tls.Conn
	r    *bufio.Reader
}

func dial(addr string, cfg *tls.Config) (*client, error) {
	d := &tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &client{conn: conn.(*tls.Conn), r: bufio.NewReader(conn)}
	// In TLS 1.3 the server checks the client's certificate after the
	// client's side of the handshake is done: a round trip tells.
	if err := c.echo("hello"); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *client) echo(s string) error {
	if _, err := c.conn.Write([]byte(s + "\n")); err != nil {
		return err
	}
	got, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	if got != s+"\n" {
		return errors.New("echo garbled: " + got)
	}
	return nil
}

func (c *client) serial() *big.Int { return c.conn.ConnectionState().PeerCertificates[0].SerialNumber }

// serialOfNew opens a connection, reads the serial of the server's
// certificate and closes it.
func serialOfNew(t *testing.T, addr string, cfg *tls.Config) *big.Int {
	t.Helper()
	c, err := dial(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.conn.Close()
	return c.serial()
}

// waitFor polls cond until it holds, for at most 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logCounter counts log records by message.
type logCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = map[string]int{}
	}
	l.n[r.Message]++
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }
func (l *logCounter) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[msg]
}

const (
	msgReloaded = "TLS files reloaded; new handshakes get the new certificate"
	msgKept     = "new TLS files cannot be used; handshakes keep the previous certificate until they can"
)

// setup issues two server pairs from one CA and serves the first from
// cert.pem and key.pem, read again at every handshake.
func setup(t *testing.T, clientCA bool) (ca *testcert.CA, first, second *testcert.Pair, certFile, keyFile string, c *Certificate, logs *logCounter) {
	t.Helper()
	dir := t.TempDir()
	ca = testcert.NewCA(t, "reload")
	first, second = ca.Server(dir, "first"), ca.Server(dir, "second")
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first.CopyTo(t, certFile, keyFile)
	logs = &logCounter{}
	opts := Options{CertFile: certFile, KeyFile: keyFile, Interval: time.Nanosecond, Name: "test.tls", Logger: slog.New(logs)}
	if clientCA {
		opts.ClientCAFile = ca.CertFile
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return ca, first, second, certFile, keyFile, c, logs
}

func TestRotatedFilesServeNewHandshakesAndKeepOpenConnections(t *testing.T) {
	ca, first, second, certFile, keyFile, c, logs := setup(t, false)
	addr := echoServer(t, c)
	cfg := &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"}

	open, err := dial(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer open.conn.Close()
	if open.serial().Cmp(first.Serial) != 0 {
		t.Fatalf("serial %v, want the first certificate's %v", open.serial(), first.Serial)
	}

	second.CopyTo(t, certFile, keyFile)
	waitFor(t, "a new handshake to get the second certificate", func() bool {
		return serialOfNew(t, addr, cfg).Cmp(second.Serial) == 0
	})
	if err := open.echo("still here"); err != nil {
		t.Fatalf("the connection opened before the rotation: %v", err)
	}
	if open.serial().Cmp(first.Serial) != 0 {
		t.Fatalf("the open connection's serial became %v", open.serial())
	}
	if c.Leaf().SerialNumber.Cmp(second.Serial) != 0 {
		t.Fatalf("Leaf serial %v, want %v", c.Leaf().SerialNumber, second.Serial)
	}
	if n := logs.count(msgReloaded); n != 1 {
		t.Fatalf("%d reload lines, want 1", n)
	}
}

func TestHalfWrittenFilesKeepTheOldCertificateAndWarnOnce(t *testing.T) {
	ca, first, second, certFile, keyFile, c, logs := setup(t, false)
	addr := echoServer(t, c)
	cfg := &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"}

	// The new certificate is in place, its key not yet: they do not pair.
	certPEM, err := os.ReadFile(second.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if got := serialOfNew(t, addr, cfg); got.Cmp(first.Serial) != 0 {
			t.Fatalf("handshake got serial %v, want the first certificate's %v", got, first.Serial)
		}
	}
	if n := logs.count(msgKept); n != 1 {
		t.Fatalf("%d warnings after 5 handshakes on half-written files, want 1", n)
	}

	second.CopyTo(t, certFile, keyFile)
	waitFor(t, "a new handshake to get the second certificate", func() bool {
		return serialOfNew(t, addr, cfg).Cmp(second.Serial) == 0
	})
	if n := logs.count(msgKept); n != 1 {
		t.Fatalf("%d warnings, want still 1", n)
	}
}

func TestClientCertificatesAreRequiredWithAClientCA(t *testing.T) {
	ca, _, _, _, _, c, _ := setup(t, true)
	addr := echoServer(t, c)
	alice := ca.Client(t.TempDir(), "alice")
	stranger := testcert.NewCA(t, "stranger").Client(t.TempDir(), "mallory")
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{
		{"none", nil, false},
		{"from another CA", []tls.Certificate{stranger.TLS}, false},
		{"from the client CA", []tls.Certificate{alice.TLS}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := dial(addr, &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1", Certificates: tc.certs})
			if err == nil {
				cl.conn.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("dial: %v; want success %v", err, tc.ok)
			}
		})
	}
}

func TestNewRefusesFilesThatDoNotPair(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "pair")
	a, b := ca.Server(dir, "a"), ca.Server(dir, "b")
	if _, err := New(Options{CertFile: a.CertFile, KeyFile: b.KeyFile}); err == nil {
		t.Fatal("New took a certificate with another's key")
	}
	if _, err := New(Options{CertFile: a.CertFile, KeyFile: a.KeyFile, ClientCAFile: a.KeyFile}); err == nil {
		t.Fatal("New took a key file as the client CA")
	}
}
