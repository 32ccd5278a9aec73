//go:build unix

package main

import "syscall"

// raiseNoFileLimit raises the soft RLIMIT_NOFILE to the hard limit and
// returns the soft limit before and after. Go (1.19 on) already does this
// when package os starts, and restores the old limit for the processes it
// starts (the plugins raise their own); doing it here again keeps it true
// however the gateway was started and gives the figure the connection
// limits are derived from.
func raiseNoFileLimit() (before, after uint64, err error) {
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
