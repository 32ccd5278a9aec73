package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// A refused connection's answer is a response any HTTP client reads: 503
// with the error body, code 17, and the message naming the limit.
func TestRefuseConnection(t *testing.T) {
	var buf bytes.Buffer
	const msg = "too many connections: http.limits.max_connections is 3"
	if err := RefuseConnection(&buf, msg); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(&buf), nil)
	if err != nil {
		t.Fatalf("reading %q: %v", buf.String(), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body errorBody
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("body %q: %v", raw, err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || !resp.Close || body.Error.Code != 17 || body.Error.Message != msg {
		t.Fatalf("got %d (close %v) %+v; want 503, Connection: close, code 17 and the message", resp.StatusCode, resp.Close, body)
	}
}
