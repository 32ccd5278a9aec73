package pluginhost

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter feeds go-plugin's logging, including every line a plugin
// writes to stderr, into the gateway's slog logger. The logger it wraps
// already carries the plugin's name, so go-plugin's own naming is dropped.
type hclogAdapter struct {
	l    *slog.Logger
	args []any
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHCLogAdapter(l *slog.Logger) hclog.Logger { return &hclogAdapter{l: l} }

func (a *hclogAdapter) emit(level slog.Level, msg string, args []any) {
	if !a.l.Enabled(context.Background(), level) {
		return
	}
	all := make([]any, 0, len(a.args)+len(args))
	all = append(all, a.args...)
	all = append(all, args...)
	for i := 0; i+1 < len(all); i += 2 {
		// go-plugin names the binary "plugin"; the logger already carries
		// the plugin's configured name under that key.
		if all[i] == "plugin" {
			all[i] = "path"
		}
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
	return &hclogAdapter{l: a.l, args: append(append([]any{}, a.args...), args...)}
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
