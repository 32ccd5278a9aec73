// Package dirlock keeps two processes from using one data directory at
// once: the first takes an advisory lock on a file in the directory, with
// its pid in it, and holds it until it releases it or exits. The kernel
// drops the lock of a process that dies, so a crash never leaves a stale
// lock behind.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// FileName is the lock file made in a locked directory.
const FileName = "mqgate.lock"

// HeldError is the error of Acquire and AcquireFile when another process
// holds the lock.
type HeldError struct {
	// Dir is the directory locked, or the lock file for AcquireFile.
	Dir string
	// PID is the holder's process id, 0 when it could not be read.
	PID int
}

func (e *HeldError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("another mqgate process holds %s", e.Dir)
	}
	return fmt.Sprintf("another mqgate process holds %s (pid %d)", e.Dir, e.PID)
}

// Lock is a held directory lock.
type Lock struct {
	f *os.File
}

// Acquire locks dir, which must exist, without waiting. It fails with a
// *HeldError when another process (or another Lock of this one) holds it.
func Acquire(dir string) (*Lock, error) {
	return acquire(filepath.Join(dir, FileName), dir)
}

// AcquireFile locks the lock file at path (creating it; its directory must
// exist), for what is finer than a directory: one of several stores that
// share one. It fails with a *HeldError when another process (or another
// Lock of this one) holds it.
func AcquireFile(path string) (*Lock, error) {
	return acquire(path, path)
}

// acquire locks the file at path; name is what errors call it.
func acquire(path, name string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &HeldError{Dir: name, PID: holder(path)}
		}
		return nil, fmt.Errorf("locking %s: %w", name, err)
	}
	// The pid is for the message another process shows; the lock is the
	// flock, not the file's content.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0) // best effort, see above
	}
	return &Lock{f: f}, nil
}

// holder reads the pid the holder wrote, or 0.
func holder(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// Release lets the directory go. It is safe to call on a nil Lock.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	// Closing the file drops the flock; the file stays, so that a
	// process racing to lock the directory never locks a file another
	// one is about to remove.
	return l.f.Close()
}
