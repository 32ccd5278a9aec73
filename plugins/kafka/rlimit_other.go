//go:build !unix

package kafka

import "errors"

// noFileLimit reports no limit where there is no RLIMIT_NOFILE.
func noFileLimit() (soft, hard uint64, ok bool) { return 0, 0, false }

// raiseNoFileLimit does nothing where there is no RLIMIT_NOFILE.
func raiseNoFileLimit() (before, after uint64, err error) {
	return 0, 0, errors.New("no RLIMIT_NOFILE on this system")
}
