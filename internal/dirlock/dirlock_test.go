package dirlock

import (
	"errors"
	"os"
	"testing"
)

func TestSecondLockNamesTheHolder(t *testing.T) {
	dir := t.TempDir()
	first, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir)
	var held *HeldError
	if !errors.As(err, &held) || held.PID != os.Getpid() {
		t.Fatalf("second Acquire = %v; want a *HeldError naming pid %d", err, os.Getpid())
	}
	if want := "another mqgate process holds " + dir + " (pid "; err.Error()[:len(want)] != want {
		t.Fatalf("message %q; want it to start %q", err, want)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	again.Release()
}

func TestMissingDirectory(t *testing.T) {
	_, err := Acquire(t.TempDir() + "/nope")
	var held *HeldError
	if err == nil || errors.As(err, &held) {
		t.Fatalf("Acquire of a missing directory = %v; want an error that is not HeldError", err)
	}
}

// AcquireFile locks one file, so that stores sharing a directory each
// have a lock of their own.
func TestAcquireFileLocksOneFile(t *testing.T) {
	dir := t.TempDir()
	a, err := AcquireFile(dir + "/a.lock")
	if err != nil {
		t.Fatal(err)
	}
	b, err := AcquireFile(dir + "/b.lock")
	if err != nil {
		t.Fatalf("a second file in the same directory: %v", err)
	}
	_, err = AcquireFile(dir + "/a.lock")
	var held *HeldError
	if !errors.As(err, &held) || held.Dir != dir+"/a.lock" {
		t.Fatalf("a.lock again = %v; want a *HeldError naming it", err)
	}
	a.Release()
	b.Release()
}
