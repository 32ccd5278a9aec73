package main

import (
	"bytes"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/mqgate/mqgate/core/config"
)

func TestCgroupMemoryLimit(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  int64 // 0: none
	}{
		{name: "no proc", files: fstest.MapFS{}},
		{name: "v2 in a container", files: fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("2147483648\n"),
		}, want: 2 << 30},
		{name: "v2 unlimited", files: fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("max\n"),
		}},
		{name: "v2 the smallest of the ancestors", files: fstest.MapFS{
			"proc/self/cgroup": file("0::/system.slice/mqgate.service\n"),
			"sys/fs/cgroup/system.slice/mqgate.service/memory.max": file("max\n"),
			"sys/fs/cgroup/system.slice/memory.max":                file("1073741824\n"),
		}, want: 1 << 30},
		{name: "v1", files: fstest.MapFS{
			"proc/self/cgroup": file("9:name=systemd:/\n4:memory:/docker/abc\n0::/\n"),
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": file("536870912\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes":            file("9223372036854771712\n"),
		}, want: 512 << 20},
		{name: "v1 unlimited", files: fstest.MapFS{
			"proc/self/cgroup":                           file("4:memory:/process_api/x\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("9223372036854771712\n"),
		}},
		{name: "garbage", files: fstest.MapFS{
			"proc/self/cgroup":         file("nonsense\n0::/\n"),
			"sys/fs/cgroup/memory.max": file("lots\n"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := cgroupMemoryLimit(tc.files)
			if ok != (tc.want != 0) || got != tc.want {
				t.Errorf("cgroupMemoryLimit = %d, %t; want %d", got, ok, tc.want)
			}
		})
	}
}

// The memory limit comes from runtime.memory_limit, else from the cgroup,
// and is logged; GOMEMLIMIT wins over both.
func TestSetMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	cgroup := fstest.MapFS{
		"proc/self/cgroup":         {Data: []byte("0::/\n")},
		"sys/fs/cgroup/memory.max": {Data: []byte("4294967296\n")},
	}
	for _, tc := range []struct {
		name    string
		env     string
		rc      config.Runtime
		root    fstest.MapFS
		want    int64
		wantLog string
	}{
		{name: "configured", rc: config.Runtime{MemoryLimit: 1 << 30}, root: cgroup, want: 1 << 30, wantLog: "from=runtime.memory_limit"},
		{name: "from the cgroup", root: cgroup, want: 3 << 30, wantLog: "75% of the cgroup memory limit of 4294967296 bytes"},
		{name: "none", root: fstest.MapFS{}, want: math.MaxInt64, wantLog: "limit=none"},
		{name: "GOMEMLIMIT", env: "256MiB", rc: config.Runtime{MemoryLimit: 1 << 30}, root: cgroup, want: 256 << 20, wantLog: "from=GOMEMLIMIT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			t.Setenv("GOMEMLIMIT", tc.env)
			if tc.env != "" {
				debug.SetMemoryLimit(tc.want) // as the runtime does at start
			}
			var logs bytes.Buffer
			setMemoryLimit(tc.rc, tc.root, slog.New(slog.NewTextHandler(&logs, nil)))
			if got := debug.SetMemoryLimit(-1); got != tc.want {
				t.Errorf("memory limit = %d; want %d", got, tc.want)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log %q; want it to say %q", logs.String(), tc.wantLog)
			}
		})
	}
}
