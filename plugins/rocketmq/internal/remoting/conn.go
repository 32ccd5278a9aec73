package remoting

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by calls on a closed connection.
var ErrClosed = errors.New("remoting: connection closed")

// Conn is a client connection: many requests in flight, matched to their
// responses by opaque. Requests the peer sends us (a broker notifying that
// a group's members changed) go to the handler given to Dial.
type Conn struct {
	addr    string
	nc      net.Conn
	handler func(*Command)

	writeMu sync.Mutex
	opaque  atomic.Int32

	mu      sync.Mutex
	pending map[int32]chan *Command
	err     error // why the connection ended; set once
	done    chan struct{}
}

// Dial connects to addr. handler, if not nil, receives requests the peer
// initiates; it runs on the reading goroutine and must not block.
func Dial(ctx context.Context, addr string, handler func(*Command)) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &Conn{addr: addr, nc: nc, handler: handler, pending: map[int32]chan *Command{}, done: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

// Addr is the address the connection was dialled to.
func (c *Conn) Addr() string { return c.addr }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err says why the connection ended, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection; calls in flight fail with ErrClosed.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	return nil
}

func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = nil
	close(c.done)
	c.mu.Unlock()
	c.nc.Close()
	for _, ch := range pending {
		close(ch)
	}
}

func (c *Conn) readLoop() {
	r := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		cmd, err := ReadCommand(r, MaxFrame)
		if err != nil {
			c.fail(fmt.Errorf("remoting: %s: %w", c.addr, err))
			return
		}
		if !cmd.IsResponse() {
			if c.handler != nil {
				c.handler(cmd)
			}
			continue
		}
		c.mu.Lock()
		ch := c.pending[cmd.Opaque]
		delete(c.pending, cmd.Opaque)
		c.mu.Unlock()
		if ch != nil {
			ch <- cmd
		}
	}
}

// Invoke sends req and waits for its response until ctx ends.
func (c *Conn) Invoke(ctx context.Context, req *Command) (*Command, error) {
	req.Opaque = c.opaque.Add(1)
	ch := make(chan *Command, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.pending[req.Opaque] = ch
	c.mu.Unlock()
	if err := c.write(ctx, req); err != nil {
		c.forget(req.Opaque)
		return nil, err
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return nil, c.Err()
		}
		return resp, nil
	case <-ctx.Done():
		c.forget(req.Opaque)
		return nil, fmt.Errorf("remoting: %s: code %d: %w", c.addr, req.Code, ctx.Err())
	}
}

// Send writes a command that gets no response: a one-way request or an
// answer to a request the peer made.
func (c *Conn) Send(ctx context.Context, cmd *Command) error {
	if !cmd.IsResponse() {
		cmd.Flag |= FlagOneway
		cmd.Opaque = c.opaque.Add(1)
	}
	return c.write(ctx, cmd)
}

func (c *Conn) forget(opaque int32) {
	c.mu.Lock()
	if c.pending != nil {
		delete(c.pending, opaque)
	}
	c.mu.Unlock()
}

func (c *Conn) write(ctx context.Context, cmd *Command) error {
	frame, err := cmd.Encode()
	if err != nil {
		return err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetWriteDeadline(dl)
	} else {
		c.nc.SetWriteDeadline(time.Time{})
	}
	if _, err := c.nc.Write(frame); err != nil {
		// A partial frame leaves the stream unusable.
		c.fail(fmt.Errorf("remoting: %s: %w", c.addr, err))
		return err
	}
	return nil
}
