package hbase

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/mqgate/mqgate/internal/hbasefake"
	"github.com/mqgate/mqgate/internal/testcert"
	"github.com/mqgate/mqgate/sdk"
)

// TestMain serves the sink as a plugin when the test binary is started by
// a plugin host (the handshake cookie is set), so that the process tests
// run the real plugin protocol without building another binary.
func TestMain(m *testing.M) {
	if os.Getenv(sdk.Handshake.MagicCookieKey) == sdk.Handshake.MagicCookieValue {
		sdk.ServeSink(New(sdk.Logger()))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// waitLimit turns a hang into a failure; nothing asserts how long a call
// takes.
const waitLimit = 30 * time.Second

// startFake runs a fake REST gateway holding table "users" (families info
// and events), closed when t ends.
func startFake(t testing.TB, cfg hbasefake.Config) *hbasefake.Server {
	t.Helper()
	f, err := hbasefake.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("closing the fake: %v", err)
		}
	})
	if err := f.CreateTable("users", hbasefake.Families("info", "events")...); err != nil {
		t.Fatal(err)
	}
	return f
}

// userConfig is the docs' example mapping against the given gateways,
// with kv setting or (nil) deleting further keys.
func userConfig(urls []string, kv ...any) []byte {
	m := map[string]any{
		"urls":  urls,
		"table": "'users'",
		"row":   "json.user_id",
		"columns": map[string]string{
			"info:name":        "json.name",
			"info:email":       "json?.email",
			"events:last_seen": "timestamp_ms",
		},
	}
	return configJSON(m, kv...)
}

// configJSON is m as JSON, with kv (key, value pairs) set first; a nil
// value deletes its key.
func configJSON(m map[string]any, kv ...any) []byte {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(m, kv[i].(string))
		} else {
			m[kv[i].(string)] = kv[i+1]
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// newSink configures a sink with config, closed when t ends.
func newSink(t testing.TB, config []byte) *Sink {
	t.Helper()
	s := New(nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := s.Configure(ctx, config); err != nil {
		t.Fatalf("Configure(%s): %v", config, err)
	}
	t.Cleanup(func() { _ = s.Close() }) // Close never fails
	return s
}

// record is a consumed record of topic at offset with a JSON value.
func record(topic string, offset int64, value any) sdk.Record {
	b, ok := value.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(value); err != nil {
			panic(err)
		}
	}
	return sdk.Record{Topic: topic, Qid: "0", Offset: offset, Value: b,
		Timestamp: time.UnixMilli(1_700_000_000_000 + offset)}
}

// write writes records and returns their results, failing on a
// whole-call error.
func write(t testing.TB, s sdk.Sink, records ...sdk.Record) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	res, err := s.Write(ctx, records)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if len(res) != len(records) {
		t.Fatalf("Write of %d records gave %d results", len(records), len(res))
	}
	return res
}

// codes are the codes of results.
func codes(res []error) []sdk.Code {
	out := make([]sdk.Code, len(res))
	for i, err := range res {
		out[i] = sdk.CodeOf(err)
	}
	return out
}

// deadURL is the URL of a loopback port nothing listens on.
func deadURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// puts counts the fake's PUT requests.
func puts(f *hbasefake.Server) int {
	n := 0
	for _, r := range f.Requests() {
		if r.Method == "PUT" {
			n++
		}
	}
	return n
}

// tlsServerConfig serves p.
func tlsServerConfig(p *testcert.Pair) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.TLS}, MinVersion: tls.VersionTLS12}
}

// errorsAs is errors.As, for a test file that has no other use of errors.
func errorsAs(err error, target any) bool { return errors.As(err, target) }
