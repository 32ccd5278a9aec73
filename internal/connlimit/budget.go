package connlimit

import "fmt"

// The descriptor budget. A gateway needs descriptors besides its
// listeners' connections: its admin answers to /healthz, /readyz and
// /metrics, its spool files, its plugins' connections and pipes, push
// requests, refused connections being answered. Reserve keeps them out of
// the listeners' reach, so that a flood of connections is refused by a
// limit before the process runs out of descriptors.

// DefaultMaxConnectionsCap bounds the derived default of max_connections:
// past it a connection's memory, not descriptors, is what runs out.
const DefaultMaxConnectionsCap = 10000

// DefaultMaxConnectionsPerSourceCap bounds the derived default of
// max_connections_per_source.
const DefaultMaxConnectionsPerSourceCap = 1000

// Reserve is the descriptors kept for the process's own use out of a
// limit of nofile: an eighth, at least 128 and at most 1024.
func Reserve(nofile int) int {
	return min(max(nofile/8, 128), 1024)
}

// DefaultMaxConnections is the max_connections of each of listeners
// listeners under a descriptor limit of nofile: an equal share of what
// Reserve leaves, at most DefaultMaxConnectionsCap, at least 1.
func DefaultMaxConnections(nofile, listeners int) int {
	return max(1, min(DefaultMaxConnectionsCap, (nofile-Reserve(nofile))/max(listeners, 1)))
}

// DefaultMaxConnectionsPerSource is the max_connections_per_source of a
// listener with maxConnections: half of it, at most
// DefaultMaxConnectionsPerSourceCap, at least 1.
func DefaultMaxConnectionsPerSource(maxConnections int) int {
	return max(1, min(DefaultMaxConnectionsPerSourceCap, maxConnections/2))
}

// CheckBudget returns an error when the sum of the listeners'
// max_connections leaves less than Reserve(nofile) of a descriptor limit
// of nofile. keys names each listener's max_connections key, in the order
// of maxConnections.
func CheckBudget(nofile int, keys []string, maxConnections []int) error {
	sum := 0
	for _, n := range maxConnections {
		sum += n
	}
	if free := nofile - Reserve(nofile); sum > free {
		return fmt.Errorf("%v add up to %d connections, more than the %d the descriptor limit leaves (RLIMIT_NOFILE %d less a reserve of %d for the gateway's own use): lower them, or raise the limit (ulimit -n, LimitNOFILE=)",
			keys, sum, free, nofile, Reserve(nofile))
	}
	return nil
}
