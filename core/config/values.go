package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
)

// checkHostPort accepts a listen address: host:port with a numeric port,
// where host may be empty (all interfaces) and port may be 0 (any free port).
func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("%s; want host:port, like 127.0.0.1:8080", ae.Err)
		}
		return errors.New("want host:port, like 127.0.0.1:8080")
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

var sizeUnits = map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}

var sizeRe = regexp.MustCompile(`^([0-9]+) ?([A-Za-z]*)$`)

// parseSize parses a byte size: an integer with an optional unit B, KiB, MiB
// or GiB. Decimal units (KB, MB) are refused as ambiguous.
func parseSize(s string) (int64, error) {
	m := sizeRe.FindStringSubmatch(s)
	if m == nil {
		return 0, errors.New("want an integer with an optional unit B, KiB, MiB or GiB, like 512KiB")
	}
	unit, ok := sizeUnits[m[2]]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q; want B, KiB, MiB or GiB", m[2])
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > math.MaxInt64/unit {
		return 0, errors.New("too large")
	}
	return n * unit, nil
}
