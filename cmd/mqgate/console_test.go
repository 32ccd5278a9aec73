package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// needProgram finds an external program a test drives: a test without it
// skips, saying how to get it, and fails under CI, whose .ci/run installs
// it.
func needProgram(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; .ci/run installs it (%s)", name, install)
		}
		t.Skipf("%s is not installed (%s); skipping", name, install)
	}
	return p
}

// The web console in a real browser: Playwright drives Debian's Chromium
// through frontends/console/test/console.mjs against a gateway with API
// keys (see that file for each step). Screenshots go to
// $MQGATE_CONSOLE_SCREENSHOTS when set (make screenshots: docs/console).
func TestConsoleInABrowser(t *testing.T) {
	chromium := needProgram(t, "chromium", "apt-get install chromium")
	node := needProgram(t, "node", "apt-get install nodejs npm")
	dir, err := filepath.Abs("../../frontends/console/test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("playwright-core is not installed; .ci/run installs it (npm ci --prefix frontends/console/test)")
		}
		t.Skip("playwright-core is not installed (npm ci --prefix frontends/console/test); skipping")
	}
	shots := os.Getenv("MQGATE_CONSOLE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if shots, err = filepath.Abs(shots); err != nil {
		t.Fatal(err)
	}

	tmp := t.TempDir()
	kind := brokerKinds[0]
	g := startGateway(t, writeConfig(t, tmp, kind.local(t, tmp), options{extra: `consume: {max_retries: 0}
auth:
  api_keys:
    - {principal: ops, sha256: "` + sha256Hex("k-console") + `"}
    - {principal: viewer, sha256: "` + sha256Hex("k-viewer") + `"}
acl:
  - {principal: ops, operations: [produce, produce-delayed, cancel-delay, consume, read-stats, browse, admin, metrics]}
  - {principal: viewer, operations: [read-stats, metrics]}
`, delay: true}))

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "console.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MQGATE_URL=http://"+g.httpAddr, "MQGATE_KEY=k-console", "MQGATE_VIEWER=k-viewer",
		"CHROMIUM="+chromium, "SCREENSHOTS="+shots)
	out, err := cmd.CombinedOutput()
	t.Logf("console.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("the browser test failed: %v (screenshot of the failure: %s)", err, filepath.Join(shots, "failure.png"))
	}
}
