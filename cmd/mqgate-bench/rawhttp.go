package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// rawHTTP is a lean HTTP/1.1 client for the load of one-message requests,
// as wrk or h2load drive a server: each worker has one keep-alive
// connection of its own, writes a request in one write, and reads the
// answer's status and Content-Length, nothing more. net/http's client
// costs about what the gateway's server does per request (a goroutine
// hand-over each way, its header maps); on two shared cores that CPU is
// taken from the servers measured, and squeezes every rate ratio towards
// 1. It is for -http-client raw; answers must carry a Content-Length, as
// mqgate's and kafka-pixy's do.
type rawHTTP struct {
	addr  string // host:port
	conns []*rawConn
}

// rawCallTimeout bounds one request and its answer.
const rawCallTimeout = time.Minute

type rawConn struct {
	c   net.Conn
	r   *bufio.Reader
	out []byte
	in  []byte
}

func newRawHTTP(addr string, workers int) *rawHTTP {
	return &rawHTTP{addr: addr, conns: make([]*rawConn, workers)}
}

// post sends body to path as ctype with the extra headers hdr, on
// worker's connection, and returns the answer's status and body (valid
// until the worker's next call).
func (h *rawHTTP) post(worker int, path, ctype string, hdr http.Header, body []byte) (int, []byte, error) {
	rc := h.conns[worker]
	if rc == nil {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			return 0, nil, err
		}
		rc = &rawConn{c: c, r: bufio.NewReaderSize(c, 16<<10)}
		h.conns[worker] = rc
	}
	out := append(rc.out[:0], "POST "...)
	out = append(out, path...)
	out = append(out, " HTTP/1.1\r\nHost: "...)
	out = append(out, h.addr...)
	out = append(out, "\r\nContent-Type: "...)
	out = append(out, ctype...)
	for k, vs := range hdr {
		for _, v := range vs {
			out = append(out, "\r\n"...)
			out = append(out, k...)
			out = append(out, ": "...)
			out = append(out, v...)
		}
	}
	out = append(out, "\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, "\r\n\r\n"...)
	out = append(out, body...)
	rc.out = out
	status, answer, closing, err := rc.roundTrip(out)
	if err != nil || closing {
		rc.c.Close()
		h.conns[worker] = nil
	}
	return status, answer, err
}

// roundTrip writes req and reads the answer: its status, its body, and
// whether the server closes the connection after it.
func (rc *rawConn) roundTrip(req []byte) (status int, body []byte, closing bool, err error) {
	// A server that stops answering fails the call rather than hanging
	// its worker.
	if err := rc.c.SetDeadline(time.Now().Add(rawCallTimeout)); err != nil {
		return 0, nil, true, err
	}
	if _, err := rc.c.Write(req); err != nil {
		return 0, nil, true, err
	}
	line, err := rc.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, true, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, true, fmt.Errorf("not an HTTP/1.x status line: %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, true, fmt.Errorf("status line %q: %w", line, err)
	}
	// HTTP/1.0 closes after each answer unless it says keep-alive.
	closing = line[7] == '0'
	length := -1
	for {
		line, err := rc.r.ReadSlice('\n')
		if err != nil {
			return status, nil, true, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return status, nil, true, fmt.Errorf("a header line without a colon: %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return status, nil, true, fmt.Errorf("Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Connection")):
			for _, opt := range bytes.Split(value, []byte(",")) {
				switch opt = bytes.TrimSpace(opt); {
				case bytes.EqualFold(opt, []byte("close")):
					closing = true
				case bytes.EqualFold(opt, []byte("keep-alive")):
					closing = false
				}
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return status, nil, true, errors.New("a chunked answer: -http-client raw reads only answers with a Content-Length")
		}
	}
	switch {
	case status < 200:
		return status, nil, true, fmt.Errorf("an interim answer %d: the raw client sends no Expect", status)
	case status == http.StatusNoContent || status == http.StatusNotModified:
		length = 0 // no body, whatever the headers say
	}
	if length < 0 {
		return status, nil, true, errors.New("an answer without a Content-Length")
	}
	if cap(rc.in) < length {
		rc.in = make([]byte, length)
	}
	body = rc.in[:length]
	if _, err := io.ReadFull(rc.r, body); err != nil {
		return status, nil, true, err
	}
	return status, body, closing, nil
}

// close closes the client's connections.
func (h *rawHTTP) close() {
	for i, rc := range h.conns {
		if rc != nil {
			rc.c.Close()
			h.conns[i] = nil
		}
	}
}
