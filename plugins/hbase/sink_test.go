package hbase

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mqgate/mqgate/internal/hbasefake"
	"github.com/mqgate/mqgate/internal/testcert"
	"github.com/mqgate/mqgate/sdk"
)

func TestMappingLandsExactly(t *testing.T) {
	for _, enc := range []string{"protobuf", "json"} {
		t.Run(enc, func(t *testing.T) {
			f := startFake(t, hbasefake.Config{})
			s := newSink(t, userConfig([]string{f.URL()}, "encoding", enc, "timestamp", "json.ts ?? timestamp_ms",
				"columns", map[string]string{
					"info:name":        "json.name",
					"info:email":       "json?.email",
					"info:age":         "json.age",
					"info:tags":        "json.tags",
					"info:vip":         "json.vip",
					"events:last_seen": "timestamp_ms",
				}))
			recs := []sdk.Record{
				record("user-events", 1, map[string]any{"user_id": "u1", "name": "Ann", "email": "ann@example.com", "age": 41, "tags": []string{"a", "b"}, "vip": true, "ts": 1234}),
				record("user-events", 2, map[string]any{"user_id": "u2", "name": "Bo", "age": 2.5}),
				record("user-events", 3, map[string]any{"user_id": "u3", "name": "Cy\x00\xff"}),
			}
			for i, err := range write(t, s, recs...) {
				if err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
			}
			want := map[string]map[string]string{
				"u1": {"info:name": "Ann", "info:email": "ann@example.com", "info:age": "41", "info:tags": `["a","b"]`,
					"info:vip": "true", "events:last_seen": "1700000000001"},
				"u2": {"info:name": "Bo", "info:age": "2.5", "events:last_seen": "1700000000002"},
				"u3": {"info:name": "Cy\x00\ufffd", "events:last_seen": "1700000000003"},
			}
			for row, cols := range want {
				got := f.Row("users", row)
				if len(got) != len(cols) {
					t.Errorf("row %s has columns %q; want exactly %q", row, got, cols)
				}
				for col, v := range cols {
					if string(got[col]) != v {
						t.Errorf("row %s %s = %q; want %q", row, col, got[col], v)
					}
				}
			}
			// The timestamp expression stamps the cells.
			if vs := f.Versions("users", "u1", "info:name"); len(vs) != 1 || vs[0].Timestamp != 1234 {
				t.Errorf("u1 info:name versions %+v; want one at 1234", vs)
			}
			if vs := f.Versions("users", "u2", "info:name"); len(vs) != 1 || vs[0].Timestamp != 1_700_000_000_002 {
				t.Errorf("u2 info:name versions %+v; want one at the record's timestamp", vs)
			}
			reqs := f.Requests()
			wantType := map[string]string{"protobuf": "application/x-protobuf", "json": "application/json"}[enc]
			if len(reqs) != 1 || reqs[0].Method != "PUT" || reqs[0].Path != "/users/fakerow" || reqs[0].ContentType != wantType {
				t.Errorf("requests %+v; want one multi-row PUT of %s", reqs, wantType)
			}
		})
	}
}

func TestOneRequestPerTablePerBatch(t *testing.T) {
	f := startFake(t, hbasefake.Config{})
	for _, tb := range []string{"orders_eu", "orders_us"} {
		if err := f.CreateTable(tb, hbasefake.Families("o")...); err != nil {
			t.Fatal(err)
		}
	}
	s := newSink(t, userConfig([]string{f.URL()}, "table", "'orders_' + topic", "row", "json.id",
		"columns", map[string]string{"o:total": "json.total"}))
	var recs []sdk.Record
	for i := range 50 {
		recs = append(recs, record([]string{"eu", "us"}[i%2], int64(i), map[string]any{"id": fmt.Sprint("o", i%10), "total": i}))
	}
	for i, err := range write(t, s, recs...) {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if n := puts(f); n != 2 {
		t.Errorf("%d PUT requests for a batch over 2 tables; want 2", n)
	}
	// The last record of each row wins: o8 was last written by record 48.
	if got := f.Row("orders_eu", "o8"); string(got["o:total"]) != "48" {
		t.Errorf("orders_eu o8 = %q; want the last record's 48", got)
	}
}

func TestMappingFailureFailsOnlyThatRecord(t *testing.T) {
	f := startFake(t, hbasefake.Config{})
	s := newSink(t, userConfig([]string{f.URL()}))
	res := write(t, s,
		record("user-events", 10, map[string]any{"user_id": "u1", "name": "Ann"}),
		record("user-events", 11, []byte("not json")),
		record("user-events", 12, []any{"user_id", "u9"}),
		record("user-events", 13, map[string]any{"user_id": "", "name": "x"}),
		record("user-events", 14, map[string]any{"user_id": "u2", "name": "Bo"}),
	)
	if got, want := codes(res), []sdk.Code{0, 11, 11, 11, 0}; !slices.Equal(got, want) {
		t.Fatalf("codes %v; want %v (%v)", got, want, res)
	}
	for i, key := range map[int]string{1: "row:", 2: "row:", 3: "row:"} {
		msg := res[i].Error()
		if !strings.Contains(msg, key) || !strings.Contains(msg, fmt.Sprintf("record user-events qid 0 offset %d", 10+i)) {
			t.Errorf("result %d: %q; want it to name %q and the record", i, msg, key)
		}
	}
	if f.Row("users", "u1") == nil || f.Row("users", "u2") == nil {
		t.Error("the records around the refused ones did not land")
	}
}

func TestUnknownTableFailsOnlyItsRecords(t *testing.T) {
	f := startFake(t, hbasefake.Config{})
	if err := f.CreateTable("orders_eu", hbasefake.Families("o")...); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, userConfig([]string{f.URL()}, "table", "'orders_' + topic", "row", "json.id",
		"columns", map[string]string{"o:total": "json.total"}))
	res := write(t, s,
		record("eu", 1, map[string]any{"id": "a", "total": 1}),
		record("us", 2, map[string]any{"id": "b", "total": 2}),
		record("eu", 3, map[string]any{"id": "c", "total": 3}),
	)
	if got, want := codes(res), []sdk.Code{0, 14, 0}; !slices.Equal(got, want) {
		t.Fatalf("codes %v; want %v (%v)", got, want, res)
	}
	if !strings.Contains(res[1].Error(), "table orders_us does not exist") {
		t.Errorf("error %q does not name the table", res[1])
	}
	if f.Row("orders_eu", "a") == nil || f.Row("orders_eu", "c") == nil {
		t.Error("the other table's records did not land")
	}
	// A family the table lacks is the same lasting fault.
	s2 := newSink(t, userConfig([]string{f.URL()}, "table", "'orders_eu'", "row", "json.id",
		"columns", map[string]string{"nope:x": "json.total"}))
	res = write(t, s2, record("eu", 4, map[string]any{"id": "d", "total": 4}))
	if sdk.CodeOf(res[0]) != sdk.CodeTopicNotExist || !strings.Contains(res[0].Error(), "column family") {
		t.Errorf("put into a missing family: %v; want code 14 naming the family", res[0])
	}
}

func TestGatewayFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		code   sdk.Code
	}{
		{"503", 503, sdk.CodeUnavailable},
		{"500", 500, sdk.CodeUnavailable},
		{"509 throttled", 509, sdk.CodeUnavailable},
		{"400", 400, sdk.CodeIllegal},
		{"403", 403, sdk.CodeNotAllowed},
		{"413", 413, sdk.CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, hbasefake.Config{})
			s := newSink(t, userConfig([]string{f.URL()}))
			f.FailNext(1, tc.status)
			recs := []sdk.Record{
				record("user-events", 1, map[string]any{"user_id": "u1", "name": "Ann"}),
				record("user-events", 2, map[string]any{"user_id": "u2", "name": "Bo"}),
			}
			res := write(t, s, recs...)
			if got := codes(res); got[0] != tc.code || got[1] != tc.code {
				t.Fatalf("codes %v; want both %d (%v)", got, tc.code, res)
			}
			// The gateway recovered: the same records go through.
			for i, err := range write(t, s, recs...) {
				if err != nil {
					t.Fatalf("record %d after the failure: %v", i, err)
				}
			}
		})
	}
	t.Run("down", func(t *testing.T) {
		f := startFake(t, hbasefake.Config{})
		s := newSink(t, userConfig([]string{f.URL()}))
		if err := f.Down(); err != nil {
			t.Fatal(err)
		}
		res := write(t, s, record("user-events", 1, map[string]any{"user_id": "u1", "name": "Ann"}))
		if sdk.CodeOf(res[0]) != sdk.CodeUnavailable {
			t.Fatalf("gateway down: %v; want code 17", res[0])
		}
		if err := f.Up(); err != nil {
			t.Fatal(err)
		}
		if res := write(t, s, record("user-events", 1, map[string]any{"user_id": "u1", "name": "Ann"})); res[0] != nil {
			t.Fatalf("gateway up again: %v", res[0])
		}
	})
	t.Run("basic auth refused", func(t *testing.T) {
		f := startFake(t, hbasefake.Config{Username: "mqgate", Password: "right"})
		s := newSink(t, userConfig([]string{f.URL()}, "username", "mqgate", "password", "wrong"))
		res := write(t, s, record("user-events", 1, map[string]any{"user_id": "u1", "name": "Ann"}))
		if sdk.CodeOf(res[0]) != sdk.CodeUnauthenticated || strings.Contains(res[0].Error(), "wrong") {
			t.Fatalf("wrong password: %v; want code 18 without the password", res[0])
		}
	})
}

func TestFailover(t *testing.T) {
	f := startFake(t, hbasefake.Config{})
	// A gateway that refuses connections, then one answering 503, then a
	// good one: records land, and later batches go to the good one first.
	other := strings.Replace(f.URL(), "127.0.0.1", "localhost", 1)
	s := newSink(t, userConfig([]string{deadURL(t), f.URL(), other}))
	f.FailNext(1, 503)
	if res := write(t, s, record("user-events", 1, map[string]any{"user_id": "u1", "name": "Ann"})); res[0] != nil {
		t.Fatalf("with a dead gateway and a failing one first: %v", res[0])
	}
	if n := puts(f); n != 2 {
		t.Errorf("%d PUTs reached the fake; want 2 (the 503, then the retry)", n)
	}
	if res := write(t, s, record("user-events", 2, map[string]any{"user_id": "u2", "name": "Bo"})); res[0] != nil {
		t.Fatal(res[0])
	}
	if n := puts(f); n != 3 {
		t.Errorf("%d PUTs after a second batch; want 3: the gateway that answered is tried first", n)
	}
}

func TestCheckAndPut(t *testing.T) {
	for _, enc := range []string{"protobuf", "json"} {
		t.Run(enc, func(t *testing.T) {
			f := startFake(t, hbasefake.Config{})
			s := newSink(t, userConfig([]string{f.URL()}, "encoding", enc, "op", "check_and_put",
				"columns", map[string]string{"info:version": "json.version", "info:name": "json.name"},
				"check", map[string]string{"column": "info:version", "value": "json.prev"}))
			res := write(t, s,
				// prev nil: the column must be absent.
				record("user-events", 1, map[string]any{"user_id": "u1", "name": "Ann", "version": 1}),
				// Same row, same batch: applied after the first.
				record("user-events", 2, map[string]any{"user_id": "u1", "name": "Ann B", "version": 2, "prev": 1}),
				// A stale check.
				record("user-events", 3, map[string]any{"user_id": "u1", "name": "Ann C", "version": 3, "prev": 1}),
				record("user-events", 4, map[string]any{"user_id": "u2", "name": "Bo", "version": 5, "prev": 4}),
			)
			if got, want := codes(res), []sdk.Code{0, 0, 11, 11}; !slices.Equal(got, want) {
				t.Fatalf("codes %v; want %v (%v)", got, want, res)
			}
			if msg := res[2].Error(); !strings.Contains(msg, "info:version") || !strings.Contains(msg, "offset 3") {
				t.Errorf("a failed check says %q; want it to name the check column and the record", msg)
			}
			if got := f.Row("users", "u1"); string(got["info:version"]) != "2" || string(got["info:name"]) != "Ann B" {
				t.Errorf("u1 = %q; want version 2 by Ann B", got)
			}
			if got := f.Row("users", "u2"); got != nil {
				t.Errorf("u2 = %q; want nothing, its check failed", got)
			}
			for _, r := range f.Requests() {
				if r.Query != "check=put" || !strings.HasPrefix(r.Path, "/users/u") {
					t.Errorf("request %+v; want PUT /users/ROW?check=put", r)
				}
			}
		})
	}
}

func TestDeletesKeepTheRowsOrder(t *testing.T) {
	f := startFake(t, hbasefake.Config{})
	// NEW_VERSION_BEHAVIOR, so that a put in the same millisecond as a
	// delete of its row is not masked by it (HBase's default rule).
	if err := f.CreateTable("profiles", hbasefake.Family{Name: "info", NewVersionBehavior: true}); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, userConfig([]string{f.URL()}, "table", "'profiles'", "op", "json.op ?? 'put'",
		"columns", map[string]string{"info:name": "json?.name", "info:email": "json?.email"}))
	res := write(t, s,
		record("p", 1, map[string]any{"user_id": "u1", "name": "Ann"}),
		record("p", 2, map[string]any{"user_id": "u2", "name": "Bo"}),
		record("p", 3, map[string]any{"user_id": "u1", "op": "delete"}),
		record("p", 4, map[string]any{"user_id": "u1", "email": "ann@new"}),
		record("p", 5, map[string]any{"user_id": "u2", "email": "bo@example.com"}),
	)
	for i, err := range res {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if got := f.Row("profiles", "u1"); len(got) != 1 || string(got["info:email"]) != "ann@new" {
		t.Errorf("u1 = %q; want only the email put after the delete", got)
	}
	if got := f.Row("profiles", "u2"); string(got["info:name"]) != "Bo" || string(got["info:email"]) != "bo@example.com" {
		t.Errorf("u2 = %q; want both puts", got)
	}
	var seq []string
	for _, r := range f.Requests() {
		seq = append(seq, r.Method+" "+r.Path)
	}
	want := []string{"PUT /profiles/fakerow", "DELETE /profiles/u1", "PUT /profiles/fakerow"}
	if !slices.Equal(seq, want) {
		t.Errorf("requests %q; want %q", seq, want)
	}
}

func TestDeletes(t *testing.T) {
	f := startFake(t, hbasefake.Config{})
	odd := "a b+c/d,e%f"
	put := newSink(t, userConfig([]string{f.URL()}, "timestamp", "json.ts"))
	for i, err := range write(t, put,
		record("user-events", 1, map[string]any{"user_id": odd, "name": "Ann", "email": "a@x", "ts": 100}),
		record("user-events", 2, map[string]any{"user_id": "u2", "name": "Bo", "email": "b@x", "ts": 100}),
		record("user-events", 3, map[string]any{"user_id": "u3", "name": "Cy", "ts": 100}),
	) {
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	// delete_columns: just the email, whatever the row key holds.
	delEmail := newSink(t, userConfig([]string{f.URL()}, "op", "delete", "columns", nil, "delete_columns", []string{"info:email"}))
	if res := write(t, delEmail, record("user-events", 4, map[string]any{"user_id": odd})); res[0] != nil {
		t.Fatal(res[0])
	}
	if got := f.Row("users", odd); got["info:email"] != nil || string(got["info:name"]) != "Ann" {
		t.Errorf("after deleting the email of %q: %q", odd, got)
	}
	// A timestamped delete removes the mapping's families up to it.
	delAt := newSink(t, userConfig([]string{f.URL()}, "op", "delete", "timestamp", "json.ts"))
	res := write(t, delAt,
		record("user-events", 5, map[string]any{"user_id": "u2", "ts": 99}),
		record("user-events", 6, map[string]any{"user_id": "u3", "ts": 100}),
		record("user-events", 7, map[string]any{"user_id": "bad*", "ts": 100}),
	)
	if got, want := codes(res), []sdk.Code{0, 0, 11}; !slices.Equal(got, want) {
		t.Fatalf("codes %v; want %v (%v)", got, want, res)
	}
	if got := f.Row("users", "u2"); string(got["info:name"]) != "Bo" {
		t.Errorf("u2 after a delete at 99 of cells at 100: %q; want them kept", got)
	}
	if got := f.Row("users", "u3"); got != nil {
		t.Errorf("u3 after a delete at 100: %q; want nothing", got)
	}
	// Without a timestamp the whole row goes.
	delRow := newSink(t, userConfig([]string{f.URL()}, "op", "delete", "columns", nil))
	if res := write(t, delRow, record("user-events", 8, map[string]any{"user_id": odd})); res[0] != nil {
		t.Fatal(res[0])
	}
	if got := f.Row("users", odd); got != nil {
		t.Errorf("after deleting row %q: %q", odd, got)
	}
}

func TestRetriableFailureHoldsTheRowsLaterRecords(t *testing.T) {
	f := startFake(t, hbasefake.Config{})
	s := newSink(t, userConfig([]string{f.URL()}, "op", "json.op ?? 'put'"))
	f.FailNext(1, 503)
	res := write(t, s,
		record("user-events", 1, map[string]any{"user_id": "u1", "name": "Ann"}),
		record("user-events", 2, map[string]any{"user_id": "u1", "op": "delete"}),
		record("user-events", 3, map[string]any{"user_id": "u2", "op": "delete"}),
	)
	if got, want := codes(res), []sdk.Code{17, 17, 0}; !slices.Equal(got, want) {
		t.Fatalf("codes %v; want %v (%v)", got, want, res)
	}
	if !strings.Contains(res[1].Error(), "earlier record of the same row") {
		t.Errorf("held record: %q; want it to say why it was not sent", res[1])
	}
	for _, r := range f.Requests() {
		if r.Method == "DELETE" && r.Path == "/users/u1" {
			t.Errorf("the delete of u1 was sent after the put before it failed")
		}
	}
}

func TestLargeBatchesSplitIntoRequests(t *testing.T) {
	f := startFake(t, hbasefake.Config{})
	s := newSink(t, userConfig([]string{f.URL()}, "max_request_bytes", 4096))
	var recs []sdk.Record
	for i := range 20 {
		recs = append(recs, record("user-events", int64(i), map[string]any{"user_id": fmt.Sprint("u", i), "name": strings.Repeat("n", 1000)}))
	}
	for i, err := range write(t, s, recs...) {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if n := puts(f); n < 5 {
		t.Errorf("%d PUTs for 20 KB at 4 KiB a request; want at least 5", n)
	}
	for i := range 20 {
		if f.Row("users", fmt.Sprint("u", i)) == nil {
			t.Errorf("row u%d missing", i)
		}
	}
}

func TestTLSAndBasicAuth(t *testing.T) {
	ca := testcert.NewCA(t, "hbase-ca")
	srv := ca.Server(t.TempDir(), "rest")
	f := startFake(t, hbasefake.Config{Username: "mqgate", Password: "s3cret",
		TLS: tlsServerConfig(srv)})
	s := newSink(t, userConfig([]string{f.URL()}, "username", "mqgate", "password", "s3cret",
		"tls", map[string]any{"ca_file": ca.CertFile}))
	if res := write(t, s, record("user-events", 1, map[string]any{"user_id": "u1", "name": "Ann"})); res[0] != nil {
		t.Fatal(res[0])
	}
	if got := f.Row("users", "u1"); string(got["info:name"]) != "Ann" {
		t.Errorf("u1 = %q", got)
	}
	// Without the CA the gateway's certificate is not trusted.
	untrusting := newSink(t, userConfig([]string{f.URL()}, "username", "mqgate", "password", "s3cret"))
	if res := write(t, untrusting, record("user-events", 2, map[string]any{"user_id": "u2", "name": "Bo"})); sdk.CodeOf(res[0]) != sdk.CodeUnavailable {
		t.Errorf("unknown CA: %v; want code 17", res[0])
	}
}

func TestWriteBeforeConfigureOrAfterClose(t *testing.T) {
	s := New(nil)
	if _, err := s.Write(context.Background(), []sdk.Record{record("t", 1, map[string]any{})}); err == nil {
		t.Error("Write before Configure succeeded")
	}
	f := startFake(t, hbasefake.Config{})
	s = newSink(t, userConfig([]string{f.URL()}))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(context.Background(), []sdk.Record{record("t", 1, map[string]any{})}); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func TestEscapeSegment(t *testing.T) {
	for in, want := range map[string]string{
		"u1":       "u1",
		"a b+c":    "a%20b%2Bc",
		"x/y,z*":   "x%2Fy%2Cz%2A",
		"é":        "%C3%A9",
		"info:a b": "info%3Aa%20b",
	} {
		if got := escapeSegment(in, false); got != want {
			t.Errorf("escapeSegment(%q) = %q; want %q", in, got, want)
		}
	}
	if got := escapeSegment("info:a b", true); got != "info:a%20b" {
		t.Errorf("escapeSegment of a column = %q", got)
	}
}
