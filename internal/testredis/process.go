// Package testredis starts real redis-server processes on loopback for
// tests, end-to-end tests and benchmarks: a standalone server, a server
// that speaks only TLS, a Redis Cluster, and a Sentinel watching a master.
// Ports are picked by the OS; every server runs without persistence in a
// directory of its own and logs there.
//
// Tests use Start, StartTLS, StartCluster and StartSentinel, which skip the
// test when redis-server is not installed (and fail it when CI=true) and
// stop the servers when the test ends. Programs such as a benchmark driver
// use StartProcess and StartClusterProcess.
package testredis

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 20 * time.Second

// portAttempts is how often a server is started again on another port when
// another process took the one picked between picking and binding it.
const portAttempts = 5

// ErrNotInstalled is the error of StartProcess and StartClusterProcess
// when redis-server is not on the PATH.
var ErrNotInstalled = errors.New("redis-server is not installed (Debian: apt-get install redis-server)")

// process is one running redis-server.
type process struct {
	cmd  *exec.Cmd
	addr string
	// port is addr's port; busPort the cluster bus's, 0 outside cluster mode.
	port, busPort int
	log           string
	exited        chan struct{}
}

// serverSpec says how to start one server.
type serverSpec struct {
	// args come after the defaults (loopback, no persistence, the log).
	args []string
	// tls serves TLS only, on the port; args must name the files.
	tls bool
	// cluster also picks a cluster bus port.
	cluster bool
	// sentinel runs `redis-server CONF --sentinel` with conf, the lines of
	// a config file (the port line is added).
	sentinel []string
	// ready reports whether the server started at addr serves; nil waits
	// for the log to say "Ready to accept connections".
	ready func(addr string) bool
	// port, when not 0, is the port to listen on, instead of one the OS
	// picks; a server restarted at its address has it.
	port int
}

// launch starts a server in dir under the name, trying other ports when
// the picked one was taken meanwhile.
func launch(dir, name string, spec serverSpec) (*process, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	var lastErr error
	for range portAttempts {
		p, err := launchOnce(bin, dir, name, spec)
		if err == nil {
			return p, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) || spec.port != 0 {
			break
		}
	}
	return nil, lastErr
}

// errPortTaken marks a server that exited because its port was taken.
var errPortTaken = errors.New("port taken")

func launchOnce(bin, dir, name string, spec serverSpec) (*process, error) {
	port, err := spec.port, error(nil)
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	p := &process{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port: port,
		log: filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, port)), exited: make(chan struct{})}
	var args []string
	if spec.sentinel != nil {
		conf := filepath.Join(dir, fmt.Sprintf("%s-%d.conf", name, port))
		lines := append([]string{fmt.Sprintf("port %d", port), "bind 127.0.0.1"}, spec.sentinel...)
		if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return nil, err
		}
		args = []string{conf, "--sentinel"}
	} else {
		args = []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
			"--dbfilename", fmt.Sprintf("%s-%d.rdb", name, port)}
		if spec.tls {
			args = append(args, "--port", "0", "--tls-port", strconv.Itoa(port))
		} else {
			args = append(args, "--port", strconv.Itoa(port))
		}
		if spec.cluster {
			if p.busPort, err = freePort(); err != nil {
				return nil, err
			}
			args = append(args, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(p.busPort),
				"--cluster-config-file", fmt.Sprintf("%s-%d-nodes.conf", name, port),
				"--cluster-node-timeout", "5000")
		}
	}
	args = append(args, "--logfile", "")
	args = append(args, spec.args...)
	logFile, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	go func() {
		_ = p.cmd.Wait() // the exit is seen through exited; the log says why
		close(p.exited)
	}()
	ready := spec.ready
	if ready == nil {
		ready = func(string) bool { return logHas(p.log, "Ready to accept connections") }
	}
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-p.exited:
			if logHas(p.log, "Address already in use") {
				return nil, errPortTaken
			}
			return nil, fmt.Errorf("redis-server %s exited at start:\n%s", strings.Join(args, " "), tail(p.log))
		default:
		}
		if ready(p.addr) {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("redis-server at %s not ready after %v:\n%s", p.addr, startTimeout, tail(p.log))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop kills the server and waits until it is gone.
func (p *process) stop() {
	_ = p.cmd.Process.Kill() // an already exited process is fine
	<-p.exited
}

// freePort returns a loopback port the OS picked and released. Another
// process may take it before the server binds it; launch then retries.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logHas reports whether the log file holds s.
func logHas(file, s string) bool {
	b, err := os.ReadFile(file)
	return err == nil && bytes.Contains(b, []byte(s))
}

// tail returns the last lines of a log file, for errors.
func tail(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// answersPing reports whether a plain-text server at addr answers PING.
func answersPing(addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}
