package pluginhost

import (
	"context"
	"io"
	"log"
	"log/slog"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter feeds go-plugin's logging, including every line a plugin
// writes to stderr, into the gateway's slog logger. The logger it wraps
// already carries the plugin's name, so go-plugin's own naming is dropped.
type hclogAdapter struct {
	l    *slog.Logger
	args []any
	// ending is set once the host is ending the process itself (one it
	// declared dead, or one that failed to start): go-plugin's complaints
	// about killing it are then only debug.
	ending *atomic.Bool
}

var _ hclog.Logger = (*hclogAdapter)(nil)

// goPluginExited is go-plugin's line when a plugin process ends, at
// error level when it did not exit cleanly. The host says so itself, once,
// with the pid, how the process ended and what it does about it, so
// go-plugin's line is only debug.
const goPluginExited = "plugin process exited"

// goPluginKilling are go-plugin's lines when Kill finds the process does
// not answer, as one the host already gave up on does not.
var goPluginKilling = map[string]bool{
	"plugin failed to exit gracefully": true,
	"error closing client during Kill": true,
	"client":                           true,
}

func newHCLogAdapter(l *slog.Logger) *hclogAdapter {
	return &hclogAdapter{l: l, ending: new(atomic.Bool)}
}

// endingProcess demotes go-plugin's lines about killing the process.
func (a *hclogAdapter) endingProcess() { a.ending.Store(true) }

func (a *hclogAdapter) emit(level slog.Level, msg string, args []any) {
	if msg == goPluginExited || (goPluginKilling[msg] && a.ending.Load()) {
		level = slog.LevelDebug
	}
	if !a.l.Enabled(context.Background(), level) {
		return
	}
	in := make([]any, 0, len(a.args)+len(args))
	in = append(in, a.args...)
	in = append(in, args...)
	all := in[:0]
	for i := 0; i < len(in); i += 2 {
		if i+1 == len(in) {
			all = append(all, in[i])
			break
		}
		switch in[i] {
		case "timestamp":
			// The plugin's own time of a line it wrote to stderr: the
			// gateway's time of the line says the same a moment later.
			continue
		case "plugin":
			// go-plugin names the binary "plugin"; the logger already
			// carries the plugin's configured name under that key.
			all = append(all, "path", in[i+1])
			continue
		}
		all = append(all, in[i], in[i+1])
	}
	a.l.Log(context.Background(), level, msg, all...)
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	a.emit(slogLevel(level), msg, args)
}
func (a *hclogAdapter) Trace(msg string, args ...any) { a.emit(slog.LevelDebug-4, msg, args) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.emit(slog.LevelDebug, msg, args) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.emit(slog.LevelInfo, msg, args) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.emit(slog.LevelWarn, msg, args) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.emit(slog.LevelError, msg, args) }

func (a *hclogAdapter) IsTrace() bool { return false }
func (a *hclogAdapter) IsDebug() bool { return a.l.Enabled(context.Background(), slog.LevelDebug) }
func (a *hclogAdapter) IsInfo() bool  { return a.l.Enabled(context.Background(), slog.LevelInfo) }
func (a *hclogAdapter) IsWarn() bool  { return a.l.Enabled(context.Background(), slog.LevelWarn) }
func (a *hclogAdapter) IsError() bool { return a.l.Enabled(context.Background(), slog.LevelError) }

func (a *hclogAdapter) ImpliedArgs() []any { return a.args }
func (a *hclogAdapter) With(args ...any) hclog.Logger {
	return &hclogAdapter{l: a.l, args: append(append([]any{}, a.args...), args...), ending: a.ending}
}
func (a *hclogAdapter) Name() string                   { return "" }
func (a *hclogAdapter) Named(string) hclog.Logger      { return a }
func (a *hclogAdapter) ResetNamed(string) hclog.Logger { return a }
func (a *hclogAdapter) SetLevel(hclog.Level)           {}
func (a *hclogAdapter) GetLevel() hclog.Level {
	switch {
	case a.IsDebug():
		return hclog.Debug
	case a.IsInfo():
		return hclog.Info
	case a.IsWarn():
		return hclog.Warn
	default:
		return hclog.Error
	}
}
func (a *hclogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(a.l.Handler(), slog.LevelInfo)
}
func (a *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return log.Writer()
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
