package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mqgate/mqgate/sdk"
)

// checkFor calls fn every `every` until it returns nil or total has passed,
// then fails with fn's last error.
func checkFor(t *testing.T, total, every time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(every)
	}
}

// heapInuse is the heap in use after a collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// openBody sends a request's head declaring length bytes of body, and the
// first bytes of it, on a new connection.
func openBody(t *testing.T, addr, path string, length int64, first string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", path, length)
	if _, err := io.WriteString(conn, head+first); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readAnswer reads the response on conn.
func readAnswer(t *testing.T, conn net.Conn) (int, []byte) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// Clients that declare large bodies and send a few bytes cost the gateway
// memory for the bytes they send, not for what they declare: 50
// connections declaring 64 MiB each grew the heap by 3.2 GB when the
// buffer was sized from Content-Length.
func TestDeclaredLengthDoesNotAllocate(t *testing.T) {
	const (
		conns    = 50
		declared = 64 << 20
		// Per connection: the first buffer plus the connection's own
		// buffers and goroutine, far below what is declared.
		perConnBound = 1 << 20
	)
	for _, path := range []string{"/v1/topics/orders/messages", "/v1/groups/g/topics/orders/ack"} {
		t.Run(path, func(t *testing.T) {
			s := newTestServer(t, Options{MaxBodyBytes: declared, RequestTimeout: time.Minute, Consumer: &fakeConsumer{}}, &fakeProducer{}, nil)
			addr := serve(t, s)
			before := heapInuse()

			open := make([]net.Conn, conns)
			for i := range open {
				open[i] = openBody(t, addr, path, declared, `{"value": "`)
			}
			// Every request has started reading its body.
			checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
				if got := testutil.ToFloat64(s.metrics.bodyBytesInFlight); got < conns*initialBodyBytes {
					return fmt.Errorf("%v body bytes in flight; want %d", got, conns*initialBodyBytes)
				}
				return nil
			})
			if got := testutil.ToFloat64(s.metrics.bodyBytesInFlight); got > conns*initialBodyBytes {
				t.Errorf("%v body bytes in flight for %d bodies of 11 bytes; want %d", got, conns, conns*initialBodyBytes)
			}
			after := heapInuse()
			grown := int64(after) - int64(before)
			t.Logf("heap in use grew %.1f MiB for %d connections declaring %d MiB each", float64(grown)/(1<<20), conns, declared>>20)
			if grown > conns*perConnBound {
				t.Errorf("heap grew %d MiB for %d connections declaring %d MiB each; want under %d MiB",
					grown>>20, conns, declared>>20, conns*perConnBound>>20)
			}
			for _, c := range open {
				c.Close()
			}
			checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
				if got := testutil.ToFloat64(s.metrics.bodyBytesInFlight); got != 0 {
					return fmt.Errorf("%v body bytes in flight after every client left; want 0", got)
				}
				return nil
			})
		})
	}
}

// A request that finds http.max_body_bytes_in_flight taken waits, then is
// answered code 17 naming the limit; once the bytes are released, the
// next one goes through.
func TestBodiesInFlightRefused(t *testing.T) {
	const limit = 1 << 20
	fp := &fakeProducer{}
	s := newTestServer(t, Options{MaxBodyBytes: limit, MaxBodyBytesInFlight: limit, RequestTimeout: time.Minute, Consumer: &fakeConsumer{}}, fp, nil)
	addr := serve(t, s)

	// One body of exactly the limit, all but its last byte sent, holds
	// the whole budget.
	value := strings.Repeat("x", limit-len(`{"value": ""}`))
	full := `{"value": "` + value + `"}`
	holder := openBody(t, addr, "/v1/topics/orders/messages", limit, full[:limit-1])
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := testutil.ToFloat64(s.metrics.bodyBytesInFlight); got != limit {
			return fmt.Errorf("%v body bytes in flight; want %d", got, limit)
		}
		return nil
	})

	for _, path := range []string{"/v1/topics/orders/messages", "/v1/kafka/send", "/v1/groups/g/topics/orders/ack"} {
		small := openBody(t, addr, path, 2, "{}")
		status, body := readAnswer(t, small)
		if path == "/v1/kafka/send" {
			// mqproxy's reply carries the error body's field beside its own.
			var r kafkaSendReply
			if err := json.Unmarshal(body, &r); err != nil || r.Error == nil {
				t.Fatalf("%s: answer %s: %v", path, body, err)
			}
			var err error
			if body, err = json.Marshal(errorBody{Error: *r.Error}); err != nil {
				t.Fatal(err)
			}
		}
		checkError(t, status, body, http.StatusServiceUnavailable, sdk.CodeUnavailable,
			fmt.Sprintf("http.max_body_bytes_in_flight (%d bytes)", limit))
	}
	if got := testutil.ToFloat64(s.metrics.bodiesRefused.WithLabelValues(refusedInFlight)); got != 3 {
		t.Errorf("%v refusals counted; want 3", got)
	}

	if _, err := io.WriteString(holder, full[limit-1:]); err != nil {
		t.Fatal(err)
	}
	if status, body := readAnswer(t, holder); status != http.StatusOK {
		t.Fatalf("the body holding the budget: %d %s", status, body)
	}
	after := openBody(t, addr, "/v1/topics/orders/messages", 13, `{"value": ""}`)
	if status, body := readAnswer(t, after); status != http.StatusOK {
		t.Fatalf("a body after the budget was released: %d %s", status, body)
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := testutil.ToFloat64(s.metrics.bodyBytesInFlight); got != 0 {
			return fmt.Errorf("%v body bytes in flight after every answer; want 0", got)
		}
		return nil
	})
}

// Bodies that end early, have no declared length, or pass the limit are
// answered as such, over a real connection.
func TestBodyShapes(t *testing.T) {
	const limit = 4096
	for _, tc := range []struct {
		name string
		// head follows the request line; body is what is sent after it.
		head, body string
		// closeWrite ends the client's side after body.
		closeWrite bool
		status     int
		code       sdk.Code
		msg        string
	}{
		{name: "short", head: "Content-Length: 100\r\n", body: `{"value": "x"}`, closeWrite: true,
			status: 400, code: sdk.CodeIllegal, msg: "reading the request body: unexpected EOF"},
		{name: "declared over the limit", head: fmt.Sprintf("Content-Length: %d\r\n", limit+1),
			status: 413, code: sdk.CodeTooLarge, msg: fmt.Sprintf("request body exceeds http.max_body_bytes (%d bytes)", limit)},
		{name: "chunked over the limit", head: "Transfer-Encoding: chunked\r\n",
			body:   chunked(`{"value": "` + strings.Repeat("x", limit) + `"}`),
			status: 413, code: sdk.CodeTooLarge, msg: fmt.Sprintf("request body exceeds http.max_body_bytes (%d bytes)", limit)},
		{name: "chunked", head: "Transfer-Encoding: chunked\r\n", body: chunked(`{"value": "x"}`), status: 200},
		{name: "exactly the limit", head: fmt.Sprintf("Content-Length: %d\r\n", limit),
			body: `{"value": "` + strings.Repeat("x", limit-len(`{"value": ""}`)) + `"}`, status: 200},
		{name: "empty", head: "Content-Length: 0\r\n",
			status: 400, code: sdk.CodeIllegal, msg: "body"},
		{name: "malformed", head: "Content-Length: 9\r\n", body: `{"value":`,
			status: 400, code: sdk.CodeIllegal, msg: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, Options{MaxBodyBytes: limit, MaxMessageBytes: limit, RequestTimeout: 10 * time.Second}, &fakeProducer{}, nil)
			addr := serve(t, s)
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			req := "POST /v1/topics/orders/messages HTTP/1.1\r\nHost: x\r\n" + tc.head + "\r\n" + tc.body
			if _, err := io.WriteString(conn, req); err != nil {
				t.Fatal(err)
			}
			if tc.closeWrite {
				if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			status, body := readAnswer(t, conn)
			if tc.status == http.StatusOK {
				if status != http.StatusOK {
					t.Fatalf("got %d %s; want 200", status, body)
				}
			} else {
				checkError(t, status, body, tc.status, tc.code, tc.msg)
			}
			checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
				if got := testutil.ToFloat64(s.metrics.bodyBytesInFlight); got != 0 {
					return fmt.Errorf("%v body bytes in flight after the answer; want 0", got)
				}
				return nil
			})
		})
	}
}

// chunked encodes s as one chunk of a chunked body.
func chunked(s string) string {
	return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(s), s)
}

// readBounded returns the body whole whatever the reader's pace and
// whatever was declared, refuses more than maxBytes, and never holds a
// buffer over twice the bytes read plus initialBodyBytes, nor over
// maxBytes.
func TestReadBounded(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 30000) // 300,000 bytes
	for _, tc := range []struct {
		name     string
		r        func([]byte) io.Reader
		data     []byte
		declared int64
		maxBytes int64
		tooLarge bool
	}{
		{name: "declared", r: plain, data: big, declared: int64(len(big)), maxBytes: 1 << 20},
		{name: "unknown", r: plain, data: big, declared: -1, maxBytes: 1 << 20},
		{name: "one byte at a time", r: oneByte, data: big[:5000], declared: 5000, maxBytes: 1 << 20},
		{name: "data with EOF", r: dataErr, data: big, declared: int64(len(big)), maxBytes: 1 << 20},
		{name: "declared less", r: plain, data: big, declared: 10, maxBytes: 1 << 20},
		{name: "declared more", r: plain, data: big[:10], declared: 64 << 20, maxBytes: 64 << 20},
		{name: "exactly the limit", r: plain, data: big, declared: -1, maxBytes: int64(len(big))},
		{name: "over the limit", r: plain, data: big, declared: -1, maxBytes: int64(len(big)) - 1, tooLarge: true},
		{name: "over the limit, declared less", r: plain, data: big, declared: 100, maxBytes: 1000, tooLarge: true},
		{name: "tiny limit", r: plain, data: big[:3], declared: -1, maxBytes: 3},
		{name: "empty", r: plain, data: nil, declared: -1, maxBytes: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, charged, err := readCharged(tc.r(tc.data), tc.declared, tc.maxBytes)
			checkBounded(t, tc.data, tc.declared, tc.maxBytes, got, charged, err)
			if tc.tooLarge != (err != nil) {
				t.Errorf("error %v; want too large: %t", err, tc.tooLarge)
			}
		})
	}
}

func plain(b []byte) io.Reader   { return bytes.NewReader(b) }
func oneByte(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }
func dataErr(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) }

// readCharged runs readBounded with a grow that adds up its charges, as
// the budget would.
func readCharged(r io.Reader, declared, maxBytes int64) ([]byte, int64, error) {
	var charged int64
	got, err := readBounded(r, declared, maxBytes, func(n int64) error {
		if n <= 0 {
			return fmt.Errorf("charged %d bytes", n)
		}
		charged += n
		return nil
	})
	if err == nil && int64(cap(got)) != charged {
		return got, charged, fmt.Errorf("charged %d bytes for a buffer of %d", charged, cap(got))
	}
	return got, charged, err
}

// checkBounded asserts what readBounded promises for data read under
// maxBytes.
func checkBounded(t *testing.T, data []byte, declared, maxBytes int64, got []byte, charged int64, err error) {
	t.Helper()
	if charged > maxBytes {
		t.Errorf("charged %d bytes, over the limit of %d", charged, maxBytes)
	}
	if bound := max(2*int64(len(data)), initialBodyBytes, bytes512); charged > bound {
		t.Errorf("charged %d bytes for %d sent (declared %d); want at most %d", charged, len(data), declared, bound)
	}
	if int64(len(data)) > maxBytes {
		var tooLarge *http.MaxBytesError
		if !errors.As(err, &tooLarge) || tooLarge.Limit != maxBytes {
			t.Errorf("%d bytes under a limit of %d: error %v; want *http.MaxBytesError", len(data), maxBytes, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("reading %d bytes (declared %d, limit %d): %v", len(data), declared, maxBytes, err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("read %d bytes, not the %d sent", len(got), len(data))
	}
}

// A grow that fails ends the read with its error.
func TestReadBoundedGrowFails(t *testing.T) {
	refused := errors.New("no room")
	calls := 0
	_, err := readBounded(bytes.NewReader(make([]byte, 1<<20)), -1, 2<<20, func(int64) error {
		calls++
		if calls == 3 {
			return refused
		}
		return nil
	})
	if !errors.Is(err, refused) {
		t.Errorf("error %v; want the grow's", err)
	}
}

func FuzzReadBounded(f *testing.F) {
	f.Add([]byte(`{"value": "x"}`), int64(14), int64(100), uint8(0))
	f.Add([]byte(`{"value": "x"}`), int64(-1), int64(5), uint8(3))
	f.Add(bytes.Repeat([]byte("x"), 1000), int64(10), int64(1000), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, declared, maxBytes int64, chunk uint8) {
		if maxBytes <= 0 || maxBytes > 1<<20 {
			t.Skip()
		}
		if declared == 0 || declared < -1 {
			declared = -1 // readBody answers an empty body itself
		}
		var r io.Reader = bytes.NewReader(data)
		if chunk > 0 {
			r = &chunkReader{r: r, n: int(chunk)}
		}
		got, charged, err := readCharged(r, declared, maxBytes)
		checkBounded(t, data, declared, maxBytes, got, charged, err)
	})
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	return c.r.Read(p[:min(len(p), c.n)])
}
