package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/mqgate/mqgate/core/config"
)

// cgroupMemoryShare is the part of the cgroup's memory limit the gateway
// takes as its Go memory limit when runtime.memory_limit is not set. The
// plugin processes run in the same cgroup (the embedded Kafka broker
// keeps its data there), so the gateway leaves them a quarter.
const cgroupMemoryShare = 0.75

// setMemoryLimit sets the Go soft memory limit: GOMEMLIMIT when set (the
// runtime has applied it already), else runtime.memory_limit, else
// cgroupMemoryShare of the cgroup's memory limit found under root, else
// none. It logs the limit in force and where it came from.
//
// With a limit, the collector works harder as the heap nears it, which
// keeps the high GC target (tuneGatewayGC) from growing the heap into the
// container's OOM kill under a burst of large requests.
func setMemoryLimit(rc config.Runtime, root fs.FS, log *slog.Logger) {
	gogc := os.Getenv("GOGC")
	if gogc == "" {
		gogc = fmt.Sprintf("%d-%d, following the heap", defaultGCPercent, gatewayGCPercentMax)
	}
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		log.Info("memory limit", "limit", limitText(debug.SetMemoryLimit(-1)), "from", "GOMEMLIMIT", "gogc", gogc)
		return
	}
	limit, from := rc.MemoryLimit, "runtime.memory_limit"
	if limit == 0 {
		cg, ok := cgroupMemoryLimit(root)
		if !ok {
			log.Info("memory limit", "limit", "none", "from", "no runtime.memory_limit, GOMEMLIMIT or cgroup memory limit", "gogc", gogc)
			return
		}
		limit = int64(float64(cg) * cgroupMemoryShare)
		from = "75% of the cgroup memory limit of " + strconv.FormatInt(cg, 10) + " bytes"
	}
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "limit", limitText(limit), "bytes", limit, "from", from, "gogc", gogc)
}

// limitText writes a memory limit in MiB, or "none".
func limitText(n int64) string {
	if n == math.MaxInt64 {
		return "none"
	}
	return strconv.FormatInt(n>>20, 10) + "MiB"
}

// cgroupMemoryLimit returns the memory limit of this process's cgroup and
// of its ancestors, the smallest, read under root (the file system's
// root): cgroup v2's memory.max, or v1's memory.limit_in_bytes. It
// reports false when none is set.
func cgroupMemoryLimit(root fs.FS) (int64, bool) {
	data, err := fs.ReadFile(root, "proc/self/cgroup")
	if err != nil {
		return 0, false // not Linux, or no /proc: no cgroup limit known
	}
	var limits []int64
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// hierarchy-ID:controllers:path
		id, rest, ok1 := strings.Cut(sc.Text(), ":")
		controllers, cgPath, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			continue
		}
		switch {
		case id == "0" && controllers == "":
			limits = append(limits, readLimits(root, "sys/fs/cgroup", cgPath, "memory.max")...)
		case slices.Contains(strings.Split(controllers, ","), "memory"):
			limits = append(limits, readLimits(root, "sys/fs/cgroup/memory", cgPath, "memory.limit_in_bytes")...)
		}
	}
	if len(limits) == 0 {
		return 0, false
	}
	return slices.Min(limits), true
}

// readLimits reads file in the cgroup directory at cgPath under mount and
// in each of its ancestors, and returns the limits set there. Values
// meaning no limit ("max", or v1's near-MaxInt64) are left out.
func readLimits(root fs.FS, mount, cgPath, file string) []int64 {
	var out []int64
	dir := path.Clean("/" + cgPath)
	for {
		if data, err := fs.ReadFile(root, path.Join(mount, dir, file)); err == nil {
			n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
			if err == nil && n > 0 && n < 1<<62 {
				out = append(out, n)
			}
		}
		if dir == "/" {
			return out
		}
		dir = path.Dir(dir)
	}
}
