//go:build unix

// Package nofile reads and raises the process's limit of open file
// descriptors (RLIMIT_NOFILE), for the gateway and its plugins alike.
package nofile

import "syscall"

// Limit returns the process's RLIMIT_NOFILE, soft and hard.
func Limit() (soft, hard uint64, ok bool) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, false
	}
	return uint64(l.Cur), uint64(l.Max), true
}

// Raise raises the soft RLIMIT_NOFILE to the hard limit and returns the
// soft limit before and after. Go (1.19 on) already does this when package
// os starts, and restores the old limit for the processes it starts (each
// plugin raises its own); doing it again keeps it true however the process
// was started and gives a figure to log and derive limits from.
func Raise() (before, after uint64, err error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, err
	}
	before = uint64(l.Cur)
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return before, before, err
		}
	}
	return before, uint64(l.Cur), nil
}
