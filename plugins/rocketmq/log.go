package rocketmq

import (
	"context"
	"log/slog"
	"sync"

	"github.com/apache/rocketmq-client-go/v2/rlog"
)

var libraryLogger sync.Once

// setLibraryLogger routes rocketmq-client-go's logging to logger. The
// library logs to stdout by default, which in a plugin process is the
// handshake channel. It logs routine retries as warnings and is chatty at
// info, so its warnings become debug lines here and its errors warnings.
func setLibraryLogger(logger *slog.Logger) {
	libraryLogger.Do(func() { rlog.SetLogger(libLog{logger.With("lib", "rocketmq-client-go")}) })
}

type libLog struct{ l *slog.Logger }

func (l libLog) log(level slog.Level, msg string, fields map[string]any) {
	if !l.l.Enabled(context.Background(), level) {
		return
	}
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	l.l.Log(context.Background(), level, msg, args...)
}

func (l libLog) Debug(msg string, fields map[string]any)   {}
func (l libLog) Info(msg string, fields map[string]any)    {}
func (l libLog) Warning(msg string, fields map[string]any) { l.log(slog.LevelDebug, msg, fields) }
func (l libLog) Error(msg string, fields map[string]any)   { l.log(slog.LevelWarn, msg, fields) }
func (l libLog) Fatal(msg string, fields map[string]any)   { l.log(slog.LevelError, msg, fields) }
func (l libLog) Level(string)                              {}
func (l libLog) OutputPath(string) error                   { return nil }
