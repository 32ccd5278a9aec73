// Package tlsreload serves a listener's certificate, and the CAs its
// clients' certificates must chain to, from PEM files that may be replaced
// while the listener runs: new handshakes get the new files, established
// connections keep what they negotiated.
package tlsreload

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often, at most, the files are read again.
const DefaultInterval = time.Second

// Options name the files and shape the tls.Config of a Certificate.
type Options struct {
	CertFile string // PEM: the certificate, then any intermediates
	KeyFile  string // PEM: its private key
	// ClientCAFile, when set, makes handshakes require a client
	// certificate that chains to one of the PEM certificates it holds.
	ClientCAFile string
	// MinVersion is the oldest TLS version accepted, tls.VersionTLS12 when
	// zero.
	MinVersion uint16
	// NextProtos is offered in ALPN, as in tls.Config.
	NextProtos []string
	// Interval is how often, at most, a handshake reads the files again
	// (DefaultInterval when zero). Nothing reads them between handshakes.
	Interval time.Duration
	// Name says which listener the files are for in logs, like http.tls.
	Name string
	// Logger receives a line when new files are taken up and a warning
	// when they cannot be. Nil means slog.Default().
	Logger *slog.Logger
}

// Certificate serves the files of Options to handshakes. It is safe for
// concurrent use.
type Certificate struct {
	opts Options
	log  *slog.Logger

	cur atomic.Pointer[loaded] // what handshakes get

	mu      sync.Mutex
	nextAt  time.Time // when the files may be read again
	reading sync.Mutex
	failing bool // the last read failed; it has been logged
}

// loaded is one reading of the files and the config built from it.
type loaded struct {
	cert, key, ca []byte // the files as read, to tell when they change
	config        *tls.Config
}

// New reads the files and returns a Certificate serving them. It fails
// when they cannot be read or do not form a certificate and its key.
func New(opts Options) (*Certificate, error) {
	if opts.MinVersion == 0 {
		opts.MinVersion = tls.VersionTLS12
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	c := &Certificate{opts: opts, log: opts.Logger}
	if c.log == nil {
		c.log = slog.Default()
	}
	l, err := c.read(nil)
	if err != nil {
		return nil, err
	}
	c.cur.Store(l)
	c.nextAt = time.Now().Add(opts.Interval)
	return c, nil
}

// Config returns the tls.Config for a listener (tls.NewListener): each
// handshake gets the files as last read, read again first when Interval
// has passed since the last time.
func (c *Certificate) Config() *tls.Config {
	return &tls.Config{
		MinVersion: c.opts.MinVersion,
		NextProtos: c.opts.NextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c.refresh()
			return c.cur.Load().config, nil
		},
	}
}

// Leaf returns the certificate handshakes get now.
func (c *Certificate) Leaf() *x509.Certificate {
	return c.cur.Load().config.Certificates[0].Leaf
}

// refresh reads the files again when Interval has passed, by one
// handshake at a time; the others go on with what was loaded. A failed
// read keeps the last good files and logs a warning, once until a read
// succeeds again: files caught half-written are read again next time.
func (c *Certificate) refresh() {
	c.mu.Lock()
	now := time.Now()
	due := !now.Before(c.nextAt)
	if due {
		c.nextAt = now.Add(c.opts.Interval)
	}
	c.mu.Unlock()
	if !due || !c.reading.TryLock() {
		return
	}
	defer c.reading.Unlock()
	old := c.cur.Load()
	l, err := c.read(old)
	switch {
	case err != nil:
		if !c.failing {
			c.failing = true
			c.log.Warn("new TLS files cannot be used; handshakes keep the previous certificate until they can",
				"tls", c.opts.Name, "error", err)
		}
	case l == old:
		c.failing = false // back to the files in use
	default:
		c.failing = false
		c.cur.Store(l)
		leaf := l.config.Certificates[0].Leaf
		c.log.Info("TLS files reloaded; new handshakes get the new certificate",
			"tls", c.opts.Name, "serial", leaf.SerialNumber.String(), "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC())
	}
}

// read reads the files. It returns old when they are as old holds them.
func (c *Certificate) read(old *loaded) (*loaded, error) {
	o := c.opts
	certPEM, err := os.ReadFile(o.CertFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(o.KeyFile)
	if err != nil {
		return nil, err
	}
	var caPEM []byte
	if o.ClientCAFile != "" {
		if caPEM, err = os.ReadFile(o.ClientCAFile); err != nil {
			return nil, err
		}
	}
	if old != nil && bytes.Equal(old.cert, certPEM) && bytes.Equal(old.key, keyPEM) && bytes.Equal(old.ca, caPEM) {
		return old, nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading %s and %s: %w", o.CertFile, o.KeyFile, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{pair},
		MinVersion:   o.MinVersion,
		NextProtos:   o.NextProtos,
	}
	if o.ClientCAFile != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("loading %s: %w", o.ClientCAFile, errNoCertificate)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return &loaded{cert: certPEM, key: keyPEM, ca: caPEM, config: cfg}, nil
}

var errNoCertificate = errors.New("no PEM certificate in the file")
