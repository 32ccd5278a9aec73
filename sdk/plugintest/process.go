package plugintest

import (
	"os/exec"
	"path"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/mqgate/mqgate/internal/syncbuf"
	"github.com/mqgate/mqgate/sdk"
)

// StartBackendProcess runs cmd (a plugin binary built with sdk.ServeBackend)
// as the gateway does: a separate process, the mqgate handshake, gRPC with
// the gateway's message limits. It returns the plugin's Backend, not yet
// configured, so the suite can run through the process boundary:
//
//	b := plugintest.StartBackendProcess(t, exec.Command(bin))
//	if err := b.Configure(ctx, cfg); err != nil { t.Fatal(err) }
//	plugintest.RunBackend(t, func(*testing.T) sdk.Backend { return b })
//
// The process is stopped when t ends; its log is shown if t failed.
func StartBackendProcess(t *testing.T, cmd *exec.Cmd) sdk.Backend {
	t.Helper()
	raw := startProcess(t, cmd, sdk.KindBackend)
	b, ok := raw.(sdk.Backend)
	if !ok {
		t.Fatalf("dispensed a %T, not an sdk.Backend", raw)
	}
	return b
}

// startProcess starts the plugin process and dispenses kind from it.
func startProcess(t *testing.T, cmd *exec.Cmd, kind string) any {
	t.Helper()
	logs := &syncbuf.Buffer{}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.PluginSets(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true, // as the gateway's host: a plugin must serve over it
		GRPCDialOptions:  sdk.DialOptions(),
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "plugin", Output: logs, Level: hclog.Debug}),
	})
	t.Cleanup(func() {
		client.Kill()
		if t.Failed() {
			t.Logf("plugin log:\n%s", logs)
		}
	})
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	raw, err := rpc.Dispense(kind)
	if err != nil {
		t.Fatalf("dispensing the %s: %v", kind, err)
	}
	return raw
}

// BuildPlugin builds the main package pkg (an import path) into a
// temporary directory, with -race when the test binary has it, and returns
// the binary's path, for StartBackendProcess and StartSinkProcess.
func BuildPlugin(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), path.Base(pkg))
	args := []string{"build", "-o", bin}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	args = append(args, pkg)
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}
