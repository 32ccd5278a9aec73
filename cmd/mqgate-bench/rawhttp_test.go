package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// The raw client sends what net/http's server reads as the request it
// was given, keeps its connection between calls, opens another when the
// server closes one, and refuses an answer it cannot read.
func TestRawHTTP(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte("a"))
			w.(http.Flusher).Flush() // no Content-Length: chunked
			w.Write([]byte("b"))
			return
		case "/close":
			w.Header().Set("Connection", "close")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
			return
		case "/missing":
			http.Error(w, "no such route", http.StatusNotFound)
			return
		}
		w.Write([]byte(r.Method + " " + r.Header.Get("Content-Type") + " " + r.Header.Get("X-Key") + " " + string(body)))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	c := newRawHTTP(strings.TrimPrefix(srv.URL, "http://"), 2)
	defer c.close()
	for i := range 3 {
		status, body, err := c.post(0, "/p", "text/plain", http.Header{"X-Key": {"k"}}, []byte("hello"))
		if err != nil || status != 200 || string(body) != "POST text/plain k hello" {
			t.Fatalf("call %d: %d %q %v", i, status, body, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for three calls of one worker; want 1", n)
	}
	if status, body, err := c.post(0, "/missing", "text/plain", nil, nil); err != nil || status != 404 || !strings.Contains(string(body), "no such route") {
		t.Fatalf("a 404: %d %q %v", status, body, err)
	}
	if status, body, err := c.post(0, "/empty", "text/plain", nil, nil); err != nil || status != 204 || len(body) != 0 {
		t.Fatalf("a 204: %d %q %v", status, body, err)
	}
	if status, _, err := c.post(0, "/close", "text/plain", nil, []byte("x")); err != nil || status != 200 {
		t.Fatalf("an answer closing the connection: %d %v", status, err)
	}
	if status, _, err := c.post(0, "/p", "text/plain", nil, []byte("again")); err != nil || status != 200 {
		t.Fatalf("after a closed connection: %d %v", status, err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections after the server closed one; want 2", n)
	}
	if _, _, err := c.post(1, "/chunked", "text/plain", nil, nil); err == nil || !strings.Contains(err.Error(), "chunked") {
		t.Fatalf("a chunked answer: err %v; want one naming it", err)
	}
}
