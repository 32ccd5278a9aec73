//go:build !unix

// Package nofile reads and raises the process's limit of open file
// descriptors (RLIMIT_NOFILE), for the gateway and its plugins alike.
package nofile

import "errors"

// Limit reports no limit where there is no RLIMIT_NOFILE.
func Limit() (soft, hard uint64, ok bool) { return 0, 0, false }

// Raise does nothing where there is no RLIMIT_NOFILE.
func Raise() (before, after uint64, err error) {
	return 0, 0, errors.New("no RLIMIT_NOFILE on this system")
}
