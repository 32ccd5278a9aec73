// Package hdfs is the HDFS sink plugin: it writes consumed records into
// files on HDFS through WebHDFS (or HttpFS), as newline-delimited text or
// Avro object container files, in directories named from a template of
// group, topic and time. A record is reported written only once the
// datanode answered the request that carried it, which it does after the
// bytes reached every datanode of the pipeline (see docs/sink-hdfs.md).
//
// A file is written under an in-progress name Hive and Spark skip
// (_part-...inprogress) and renamed to its final name when it rolls: by
// size, by age, or when idle. A marker per in-progress file, in a state
// directory, lets any instance of the sink find a file whose writer died,
// cut it back to its last whole record and give it its final name.
package hdfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

var (
	_ sdk.Sink            = (*Sink)(nil)
	_ sdk.ConfigValidator = (*Sink)(nil)
)

// Sink is the HDFS sink. Configure it once; Write and Close may then be
// called from any goroutine.
type Sink struct {
	log *slog.Logger
	// now is the clock of rolls, arrival times, file names and the age of
	// orphans.
	now func() time.Time
	// background runs the loop that closes idle and old files and
	// recovers orphans; tests that drive the clock turn it off and call
	// sweep and recoverOrphans themselves.
	background bool

	// mu guards the fields below and is held across the HDFS requests of
	// a Write, a roll or Close, so that files change in one place at a
	// time.
	mu         sync.Mutex
	cfg        config
	fs         *webhdfs
	format     fileFormat
	configured bool
	closed     bool
	files      map[string]*openFile // by directory
	// stamp is this instance's start time in file names; seq numbers its
	// files.
	stamp string
	seq   int

	stop chan struct{} // closed by Close to end the loop
	done chan struct{} // closed when the loop has ended
}

// New returns an unconfigured sink logging to logger.
func New(logger *slog.Logger) *Sink {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Sink{log: logger, now: time.Now, background: true, files: map[string]*openFile{}}
}

// ValidateConfig returns every problem of config without connecting to
// anything.
func (s *Sink) ValidateConfig(config []byte) sdk.ConfigErrors {
	_, errs := parseConfig(config)
	return errs
}

// Configure applies config and starts the loop that rolls idle and old
// files and, right away and then every recover_after, finalises the files
// of writers that died. It does not reach HDFS itself: a cluster that is
// down shows as failing writes, not as a config error.
func (s *Sink) Configure(_ context.Context, config []byte) error {
	cfg, errs := parseConfig(config)
	if len(errs) > 0 {
		return errs
	}
	if cfg.path.usesGroup && cfg.info.Group == "" {
		return sdk.ConfigErrors{{Key: "path", Msg: "uses ${group}, but the gateway gave no group (mqgate.group)"}}
	}
	if cfg.info.Sink == "" {
		cfg.info.Sink = "hdfs"
	}
	if cfg.info.Gateway == "" {
		host, _ := os.Hostname() // an empty host still leaves the pid
		cfg.info.Gateway = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.configured {
		return sdk.Errorf(sdk.CodeIllegal, "the hdfs sink is configured already")
	}
	s.cfg, s.configured = cfg, true
	s.fs = newWebHDFS(cfg)
	s.format = formatOf(cfg)
	s.stamp = s.now().In(cfg.loc).Format("20060102150405")
	s.log.Info("hdfs sink configured", "namenodes", strings.Join(cfg.namenodes, ","), "path", cfg.path.src,
		"format", cfg.format, "state_dir", cfg.stateDir, "sink", cfg.info.Sink)
	if s.background {
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.loop(s.stop, s.done, sweepInterval(cfg.idle, cfg.maxAge), cfg.recoverAfter)
	}
	return nil
}

// formatOf is the format cfg asks for.
func formatOf(cfg config) fileFormat {
	if cfg.format == formatAvro {
		return avroFormat{codec: cfg.codec}
	}
	return textFormat{}
}

// Write appends the records to the open file of their directory, one
// request per file, and reports a record written once the request that
// carried it succeeded. A record the format cannot hold, or whose topic
// cannot name a directory, fails alone with code 11; records whose request
// failed fail with code 17 and their file is closed at what was written
// before them.
func (s *Sink) Write(ctx context.Context, records []sdk.Record) ([]error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.configured:
		return nil, sdk.Errorf(sdk.CodeUnavailable, "the hdfs sink is not configured")
	case s.closed:
		return nil, sdk.Errorf(sdk.CodeUnavailable, "the hdfs sink is closed")
	}
	results := make([]error, len(records))
	now := s.now()
	for _, b := range s.route(records, results, now) {
		s.writeDir(ctx, b, records, results, now)
	}
	return results, nil
}

// Close stops the loop and gives every open file its final name. A file
// it cannot rename stays in progress, for recovery.
func (s *Sink) Close() error {
	s.mu.Lock()
	stop, done := s.stop, s.done
	s.stop = nil
	s.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.configured || s.closed {
		return nil
	}
	s.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 4*s.cfg.requestTimeout)
	defer cancel()
	var errs []error
	for _, f := range s.files {
		if err := s.finish(ctx, f, "close"); err != nil {
			errs = append(errs, err)
		}
	}
	s.fs.close()
	return errors.Join(errs...)
}

// loop rolls files that are due, every sweep, and recovers orphans, at
// once and then every recoverEvery, until stop is closed; then it closes
// done.
func (s *Sink) loop(stop <-chan struct{}, done chan<- struct{}, sweep, recoverEvery time.Duration) {
	defer close(done)
	// Close cancels a recovery in flight (it may be reading a large file;
	// another run finishes it) but waits for a sweep, so that no file it
	// is renaming is left half done.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	tick := time.NewTicker(sweep)
	defer tick.Stop()
	var lastRecovery time.Time
	for {
		if time.Since(lastRecovery) >= recoverEvery {
			lastRecovery = time.Now()
			if _, err := s.recoverOrphans(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("recovering in-progress files of dead writers", "error", err)
			}
		}
		select {
		case <-stop:
			return
		case <-tick.C:
			s.sweep(context.WithoutCancel(ctx))
		}
	}
}

// sweepInterval is how often the loop looks for files to roll: a quarter
// of the shorter of idle and max_age, within 1 s to 30 s.
func sweepInterval(idle, maxAge time.Duration) time.Duration {
	return min(max(min(idle, maxAge)/4, time.Second), 30*time.Second)
}
