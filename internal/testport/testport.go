// Package testport gives tests loopback ports that no other process can
// take while the test holds them.
package testport

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
)

// Reserved is a loopback port the OS picked, bound but not listening: dials
// to it are refused, no other socket can bind it, and Listen turns it into
// a listener without letting go of it. A test that needs "a broker that is
// down" that comes up later at the same address uses one.
type Reserved struct {
	t  testing.TB
	fd int
	// Addr is "127.0.0.1:PORT".
	Addr string
}

// Reserve binds a new loopback port; the test's cleanup releases it.
func Reserve(t testing.TB) *Reserved {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	r := &Reserved{t: t, fd: fd, Addr: fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)}
	t.Cleanup(func() {
		if r.fd >= 0 {
			syscall.Close(r.fd)
		}
	})
	return r
}

// Listen starts listening on the reserved port. The listener owns the port
// from then on; closing it releases the port.
func (r *Reserved) Listen() net.Listener {
	r.t.Helper()
	if r.fd < 0 {
		r.t.Fatal("testport: Listen called twice")
	}
	if err := syscall.Listen(r.fd, syscall.SOMAXCONN); err != nil {
		r.t.Fatal(err)
	}
	f := os.NewFile(uintptr(r.fd), r.Addr)
	r.fd = -1
	defer f.Close()
	l, err := net.FileListener(f) // takes a duplicate of the socket
	if err != nil {
		r.t.Fatal(err)
	}
	return l
}
