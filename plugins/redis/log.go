package redis

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/redis/go-redis/v9"
)

// goRedisLogger is where go-redis logs (failed dials, a new master from
// Sentinel). go-redis has one logger per process, so the first Sink made
// sets it; a plugin process holds one Sink.
var goRedisLogger sync.Once

// redisLog passes go-redis's log lines to a slog.Logger.
type redisLog struct{ l *slog.Logger }

// Printf logs one go-redis line at level info.
func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.l.InfoContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

// routeGoRedisLog sends go-redis's log to l, once per process.
func routeGoRedisLog(l *slog.Logger) {
	goRedisLogger.Do(func() { redis.SetLogger(redisLog{l}) })
}
