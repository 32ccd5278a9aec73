package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/internal/tlsreload"
)

// loadTLS reads the certificate of a tls: section (key names it, like
// http.tls); nil when the section is absent: the listeners speak
// plaintext.
func loadTLS(key string, tc *config.TLSConfig, nextProtos []string, log *slog.Logger) (*tlsreload.Certificate, error) {
	if tc == nil {
		return nil, nil
	}
	minVersion := uint16(tls.VersionTLS12)
	if tc.MinVersion == "1.3" {
		minVersion = tls.VersionTLS13
	}
	c, err := tlsreload.New(tlsreload.Options{
		CertFile:     tc.CertFile,
		KeyFile:      tc.KeyFile,
		ClientCAFile: tc.ClientCAFile,
		MinVersion:   minVersion,
		NextProtos:   nextProtos,
		Name:         key,
		Logger:       log,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return c, nil
}

// listen listens on addr, the value of listenKey, with TLS when certs is
// not nil. limit wraps the TCP listener, under TLS, so that connections
// are counted and refused before any handshake; it is told whether the
// listener speaks plaintext. A plaintext listener that other hosts can
// reach is warned about, naming tlsKey, the section that would encrypt it.
func listen(listenKey, addr string, certs *tlsreload.Certificate, tlsKey string, limit func(l net.Listener, plaintext bool) net.Listener, log *slog.Logger) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", listenKey, err)
	}
	l = limit(l, certs == nil)
	if certs != nil {
		return tls.NewListener(l, certs.Config()), nil
	}
	if ta, ok := l.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
		log.Warn("listening in plaintext on an address other hosts can reach; set "+tlsKey+" to encrypt it",
			"key", listenKey, "addr", l.Addr().String())
	}
	return l, nil
}
