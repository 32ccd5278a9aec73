// Package filesink is an example sink plugin for mqgate: it appends every
// record it is given to a file per topic, one JSON object per line, and
// fsyncs before it reports the records written, so the gateway acks only
// what is on disk. It is built against mqgate's sdk and the standard
// library alone; read it before writing a sink of your own.
package filesink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// Config is the sink's config: the `config:` of its sinks: entry.
type Config struct {
	// Dir holds the files, one per topic: TOPIC.ndjson.
	Dir string `json:"dir"`
	// Value is how a record's value is written: "text" (a JSON string)
	// or "json" (the value must be JSON and is written as it is; a record
	// whose value is not is refused with code 11).
	Value string `json:"value"`
	// Gateway is what the gateway adds: the sink's name and group.
	Gateway sdk.SinkInfo `json:"mqgate"`
}

// Line is one record in a file.
type Line struct {
	Topic       string          `json:"topic"`
	Qid         string          `json:"qid"`
	Offset      int64           `json:"offset"`
	Key         *string         `json:"key,omitempty"`
	Value       json.RawMessage `json:"value"`
	TimestampMs int64           `json:"timestamp_ms"`
}

// Sink appends records to files.
type Sink struct {
	log *slog.Logger

	mu    sync.Mutex
	cfg   Config
	files map[string]*os.File // by topic
}

var (
	_ sdk.Sink            = (*Sink)(nil)
	_ sdk.ConfigValidator = (*Sink)(nil)
)

// New returns an unconfigured Sink logging to log (nil: no logs).
func New(log *slog.Logger) *Sink {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{log: log, files: map[string]*os.File{}}
}

// ValidateConfig reports every problem of config without touching the disk.
func (s *Sink) ValidateConfig(config []byte) sdk.ConfigErrors {
	_, errs := parse(config)
	return errs
}

func parse(config []byte) (Config, sdk.ConfigErrors) {
	c := Config{Value: "text"}
	errs := sdk.ConfigErrorsOf(sdk.DecodeConfig(config, &c))
	if c.Dir == "" && !errs.Has("dir") {
		errs.Addf("dir", "required: the directory the files are written in")
	}
	if c.Value != "text" && c.Value != "json" && !errs.Has("value") {
		errs.Addf("value", "%q: want text or json", c.Value)
	}
	return c, errs
}

// Configure applies config and creates the directory.
func (s *Sink) Configure(_ context.Context, config []byte) error {
	c, errs := parse(config)
	if err := errs.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return sdk.Errorf(sdk.CodeUnavailable, "creating dir %s: %v", c.Dir, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg = c
	s.log.Info("writing records", "dir", c.Dir, "sink", c.Gateway.Sink, "group", c.Gateway.Group)
	return nil
}

// Write appends the records, fsyncs each file written to, and only then
// reports them written. A record refused on its own gets its error; a
// disk failure fails every record of its file.
func (s *Sink) Write(_ context.Context, records []sdk.Record) ([]error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	results := make([]error, len(records))
	bufs := map[string]*bytes.Buffer{}
	var order []string
	for i, r := range records {
		line, err := s.line(&r)
		if err != nil {
			results[i] = err
			continue
		}
		b := bufs[r.Topic]
		if b == nil {
			b = &bytes.Buffer{}
			bufs[r.Topic] = b
			order = append(order, r.Topic)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	for _, topic := range order {
		if err := s.appendSync(topic, bufs[topic].Bytes()); err != nil {
			for i, r := range records {
				if r.Topic == topic && results[i] == nil {
					results[i] = err
				}
			}
		}
	}
	return results, nil
}

// line encodes r as one line of its file.
func (s *Sink) line(r *sdk.Record) ([]byte, error) {
	l := Line{Topic: r.Topic, Qid: r.Qid, Offset: r.Offset, TimestampMs: r.Timestamp.UnixMilli()}
	if r.Timestamp.IsZero() {
		l.TimestampMs = time.Now().UnixMilli()
	}
	if r.Key != nil {
		k := string(r.Key)
		l.Key = &k
	}
	if s.cfg.Value == "json" {
		if !json.Valid(r.Value) {
			return nil, sdk.Errorf(sdk.CodeIllegal, "value of %s/%s@%d is not JSON (value: json)", r.Topic, r.Qid, r.Offset)
		}
		l.Value = r.Value
	} else {
		v, err := json.Marshal(string(r.Value))
		if err != nil {
			return nil, sdk.Errorf(sdk.CodeIllegal, "value of %s/%s@%d: %v", r.Topic, r.Qid, r.Offset, err)
		}
		l.Value = v
	}
	return json.Marshal(l)
}

// appendSync appends data to topic's file and fsyncs it.
func (s *Sink) appendSync(topic string, data []byte) error {
	f := s.files[topic]
	if f == nil {
		var err error
		f, err = os.OpenFile(Path(s.cfg.Dir, topic), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return sdk.Errorf(sdk.CodeUnavailable, "opening the file of %s: %v", topic, err)
		}
		s.files[topic] = f
	}
	if _, err := f.Write(data); err != nil {
		return sdk.Errorf(sdk.CodeUnavailable, "writing the file of %s: %v", topic, err)
	}
	if err := f.Sync(); err != nil {
		return sdk.Errorf(sdk.CodeUnavailable, "syncing the file of %s: %v", topic, err)
	}
	return nil
}

// Path is the file topic's records are written to under dir.
func Path(dir, topic string) string { return filepath.Join(dir, topic+".ndjson") }

// Close closes the files.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for topic, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = fmt.Errorf("closing the file of %s: %w", topic, err)
		}
	}
	clear(s.files)
	return first
}
