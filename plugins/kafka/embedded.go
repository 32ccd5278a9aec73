package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/mqgate/mqgate/internal/dirlock"
	"github.com/mqgate/mqgate/sdk"
)

// takeoverWait bounds how long a starting embedded broker waits for the
// process before it (a gateway or plugin being restarted, still saving its
// data) to let go of the data directory and the port.
const takeoverWait = 10 * time.Second

// startEmbedded starts the kfake broker described by cfg: it locks the data
// directory, binds the listen address and loads the data. Its listener
// outlasts descriptor shortages, and its log reports them to fds. A directory or
// port still held by another process is waited for, up to takeoverWait or
// ctx's end, so that a restarted gateway takes over from its predecessor
// instead of failing; past that the error names the holder.
func startEmbedded(ctx context.Context, cfg config, logger *slog.Logger, fds *fdWatch) (*kfake.Cluster, *dirlock.Lock, error) {
	wait, cancel := takeoverContext(ctx)
	defer cancel()
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return nil, nil, &sdk.ConfigError{Key: "data_dir", Msg: err.Error()}
	}
	var lock *dirlock.Lock
	err := whileBusy(wait, logger, "data_dir", func() (err error) {
		lock, err = dirlock.Acquire(cfg.dataDir)
		return err
	}, func(err error) bool {
		_, held := errors.AsType[*dirlock.HeldError](err)
		return held
	})
	if err != nil {
		return nil, nil, &sdk.ConfigError{Key: "data_dir", Msg: err.Error()}
	}
	var ln net.Listener
	err = whileBusy(wait, logger, "listen", func() (err error) {
		ln, err = net.Listen("tcp", cfg.listen)
		return err
	}, func(err error) bool { return errors.Is(err, syscall.EADDRINUSE) })
	if err != nil {
		lock.Release()
		return nil, nil, &sdk.ConfigError{Key: "listen", Msg: fmt.Sprintf("starting embedded broker on %s: %v", cfg.listen, err)}
	}
	_, portStr, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(portStr)
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(port),
		// The listener bound above, on the configured host; kfake would
		// ask for 127.0.0.1:port.
		kfake.ListenFn(func(string, string) (net.Listener, error) { return newPatientListener(ln, fds, logger), nil }),
		// No kfake.AllowAutoTopicCreation: kfake does not persist a
		// topic made by a metadata request until Close, so a crash
		// would lose it and its records. Produce creates topics with
		// CreateTopics instead, which kfake persists at once.
		kfake.DefaultNumPartitions(int(cfg.defaultPartitions)),
		kfake.DataDir(cfg.dataDir),
		kfake.BrokerConfigs(map[string]string{
			"log.retention.ms":  strconv.FormatInt(cfg.retention.Milliseconds(), 10),
			"message.max.bytes": strconv.Itoa(embeddedMaxMessageBytes),
		}),
		kfake.WithLogger(kfakeLogger{logger.With("component", "embedded-broker"), fds}),
	)
	if err != nil {
		ln.Close()
		lock.Release()
		// Everything kfake does at start besides listening is loading
		// the data directory.
		return nil, nil, &sdk.ConfigError{Key: "data_dir", Msg: fmt.Sprintf("starting embedded broker with data_dir %s: %v", cfg.dataDir, err)}
	}
	return cluster, lock, nil
}

// takeoverContext is ctx bounded by takeoverWait, and by ctx's deadline
// less the time to answer.
func takeoverContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := answerContext(ctx, maxAnswerReserve)
	wait, cancelWait := context.WithTimeout(ctx, takeoverWait)
	return wait, func() { cancelWait(); cancel() }
}

// whileBusy runs try until it succeeds, fails otherwise than busy says, or
// ctx ends; it then returns try's last error. The first busy failure is
// logged, naming key.
func whileBusy(ctx context.Context, logger *slog.Logger, key string, try func() error, busy func(error) bool) error {
	for logged := false; ; {
		err := try()
		if err == nil || !busy(err) {
			return err
		}
		if !logged {
			logger.Warn("embedded broker waiting for its "+key+" to be let go", "error", err, "up_to", takeoverWait.String())
			logged = true
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}
