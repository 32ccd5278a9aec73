//go:build !unix

package main

import "errors"

// raiseNoFileLimit has no descriptor limit to raise on this system.
func raiseNoFileLimit() (before, after uint64, err error) {
	return 0, 0, errors.New("no RLIMIT_NOFILE on this system")
}
