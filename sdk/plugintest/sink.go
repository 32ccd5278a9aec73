package plugintest

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/mqgate/mqgate/sdk"
)

// SinkCase is what RunSink needs to know of a sink: records it stores, one
// it refuses, how to tell that a record landed, and configs it must refuse.
type SinkCase struct {
	// Record returns the i-th record of a test, one the sink stores. Records
	// of different i must land as different entries of the store (distinct
	// keys, rows or lines), and each must hold at least size bytes of value
	// when size > 0 (the suite asks for 900 KiB records to build a batch
	// over 4 MiB).
	Record func(i, size int) sdk.Record
	// Poison returns a record the sink refuses on its own, whatever the
	// store's state: one its mapping cannot turn into a write (a missing
	// field, a value of the wrong type). Its result must be an error, and
	// the records around it in the batch must still land.
	Poison func(i int) sdk.Record
	// Stored reports whether the record Record(i, size) returned is in the
	// store, as the sink mapped it. It reads the store directly, not through
	// the sink.
	Stored func(t *testing.T, r sdk.Record) bool
	// Flush, when set, makes what Write acknowledged readable by Stored
	// (a sink that writes files names them in the store only on close).
	// Most sinks leave it nil.
	Flush func(t *testing.T, s sdk.Sink)
	// BadConfigs maps a key of the sink's config to a config (a JSON object)
	// whose value of that key Configure must refuse, naming the key.
	BadConfigs map[string][]byte
	// NewUnconfigured returns a sink not yet configured, for BadConfigs;
	// the suite closes it.
	NewUnconfigured func(t *testing.T) sdk.Sink
}

// RunSink runs the sink conformance suite as subtests of t: batches land in
// full with a result per record in order, a refused record fails alone, a
// batch over 4 MiB is written, an empty batch is fine, and every bad config
// is refused naming its key. newSink returns a configured sink, which all
// subtests share; RunSink closes it when t ends.
func RunSink(t *testing.T, newSink func(t *testing.T) sdk.Sink, c SinkCase) {
	t.Helper()
	s := newSink(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing sink: %v", err)
		}
	})
	next := 0
	records := func(n, size int) []sdk.Record {
		rs := make([]sdk.Record, n)
		for i := range rs {
			rs[i] = c.Record(next, size)
			next++
		}
		return rs
	}
	write := func(t *testing.T, rs []sdk.Record) []error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		res, err := s.Write(ctx, rs)
		if err != nil {
			t.Fatalf("Write of %d records: %v (code %d)", len(rs), err, sdk.CodeOf(err))
		}
		if len(res) != len(rs) {
			t.Fatalf("Write of %d records gave %d results", len(rs), len(res))
		}
		if c.Flush != nil {
			c.Flush(t, s)
		}
		return res
	}
	stored := func(t *testing.T, what string, rs []sdk.Record) {
		t.Helper()
		missing := 0
		for _, r := range rs {
			if !c.Stored(t, r) {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of %d records acknowledged by Write are not in the store", what, missing, len(rs))
		}
	}

	t.Run("BatchLandsWithResultsInOrder", func(t *testing.T) {
		rs := records(100, 0)
		for i, err := range write(t, rs) {
			if err != nil {
				t.Fatalf("record %d: %v (code %d)", i, err, sdk.CodeOf(err))
			}
		}
		stored(t, "a batch of 100", rs)
	})
	t.Run("RefusedRecordFailsAlone", func(t *testing.T) {
		if c.Poison == nil {
			t.Skip("SinkCase.Poison is not set")
		}
		good := records(4, 0)
		batch := []sdk.Record{good[0], c.Poison(0), good[1], good[2], c.Poison(1), good[3]}
		res := write(t, batch)
		for i, err := range res {
			poison := i == 1 || i == 4
			switch {
			case poison && err == nil:
				t.Errorf("result %d: the refused record succeeded", i)
			case poison && !isSdkError(err):
				t.Errorf("result %d: %v is not an *sdk.Error with a code", i, err)
			case poison && strings.TrimSpace(err.Error()) == "":
				t.Errorf("result %d: the error says nothing", i)
			case !poison && err != nil:
				t.Errorf("result %d: a good record next to a refused one failed: %v", i, err)
			}
		}
		stored(t, "the good records around refused ones", good)
	})
	t.Run("BatchOver4MiB", func(t *testing.T) {
		rs := records(6, 900<<10)
		total := 0
		for _, r := range rs {
			total += len(r.Value)
		}
		if total <= 4<<20 {
			t.Fatalf("Record(i, %d) gave %d bytes in 6 records; the test needs more than 4 MiB", 900<<10, total)
		}
		for i, err := range write(t, rs) {
			if err != nil {
				t.Fatalf("record %d of a %d-byte batch: %v", i, total, err)
			}
		}
		stored(t, "a batch over 4 MiB", rs)
	})
	t.Run("EmptyBatch", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		res, err := s.Write(ctx, nil)
		if err != nil || len(res) != 0 {
			t.Errorf("Write of no records = %v, %v; want no results and no error", res, err)
		}
	})
	t.Run("BadConfigsNameTheirKey", func(t *testing.T) {
		if len(c.BadConfigs) == 0 {
			t.Skip("SinkCase.BadConfigs is empty")
		}
		for key, config := range c.BadConfigs {
			p := c.NewUnconfigured(t)
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			err := p.Configure(ctx, config)
			cancel()
			if err := p.Close(); err != nil {
				t.Errorf("closing sink: %v", err)
			}
			if !names(sdk.ConfigErrorsOf(err), key) {
				t.Errorf("Configure(%s) = %v; want a config error naming %s", config, err, key)
			}
		}
	})
}

func isSdkError(err error) bool {
	var e *sdk.Error
	return errors.As(err, &e) && e.Code != 0
}

// WithSinkInfo returns config (a JSON object) with the SinkInfo the gateway
// adds to every sink's config, as the gateway sends it.
func WithSinkInfo(t *testing.T, config []byte, info sdk.SinkInfo) []byte {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(config, &keys); err != nil || keys == nil {
		t.Fatalf("config %s is not a JSON object: %v", config, err)
	}
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	keys[sdk.SinkInfoKey] = b
	out, err := json.Marshal(keys)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// StartSinkProcess runs cmd (a plugin binary built with sdk.ServeSink) as the
// gateway does, as StartBackendProcess does a backend, and returns the
// plugin's Sink, not yet configured.
func StartSinkProcess(t *testing.T, cmd *exec.Cmd) sdk.Sink {
	t.Helper()
	raw := startProcess(t, cmd, sdk.KindSink)
	s, ok := raw.(sdk.Sink)
	if !ok {
		t.Fatalf("dispensed a %T, not an sdk.Sink", raw)
	}
	return s
}
