package testport

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

func TestReservedPortRefusesThenListens(t *testing.T) {
	r := Reserve(t)
	if _, err := net.Dial("tcp", r.Addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial before Listen: %v; want connection refused", err)
	}
	if l, err := net.Listen("tcp", r.Addr); err == nil {
		l.Close()
		t.Fatal("another listener took the reserved port")
	}
	l := r.Listen()
	defer l.Close()
	if l.Addr().String() != r.Addr {
		t.Fatalf("listening on %s, want %s", l.Addr(), r.Addr)
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatalf("dial after Listen: %v", err)
	}
	c.Close()
}
