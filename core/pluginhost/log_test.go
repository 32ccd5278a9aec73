package pluginhost

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A plugin's stderr line arrives with the gateway's time only (not the
// plugin's as well), and go-plugin's "plugin" (the binary) as "path", so
// that plugin= stays the configured plugin name.
func TestPluginLinesCarryOneTime(t *testing.T) {
	var out bytes.Buffer
	a := newHCLogAdapter(slog.New(slog.NewTextHandler(&out, nil)).With("plugin", "kafka"))
	a.Info("configured", "plugin", "/usr/bin/mqgate", "timestamp", "2026-12-05T20:36:17.337Z", "embedded", true, "odd")
	line := out.String()
	for _, want := range []string{"plugin=kafka", "path=/usr/bin/mqgate", "embedded=true", "!BADKEY=odd"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %s", line, want)
		}
	}
	if strings.Contains(line, "timestamp=") {
		t.Errorf("line %q carries the plugin's timestamp besides time=", line)
	}
}
