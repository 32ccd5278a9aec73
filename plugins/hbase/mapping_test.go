package hbase

import (
	"strings"
	"testing"

	"github.com/mqgate/mqgate/sdk"
)

// mappingOf compiles the mapping of a config, failing on its problems.
func mappingOf(t *testing.T, config []byte) *mapping {
	t.Helper()
	c, errs := parseConfig(config)
	if len(errs) > 0 {
		t.Fatalf("parseConfig(%s): %v", config, errs)
	}
	return c.mapping
}

func TestMappingRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config []byte
		value  any
		key    string // the key the error must name
	}{
		{"every column nil", with("columns", map[string]string{"info:a": "json?.a"}), map[string]any{"user_id": "u"}, "columns:"},
		{"column not JSON-able", with("columns", map[string]string{"info:a": "1.0 / 0"}), map[string]any{"user_id": "u"}, "columns.info:a"},
		{"table not a string", with("table", "json.n"), map[string]any{"user_id": "u", "n": 3}, "table:"},
		{"table not a name", with("table", "'a b'"), map[string]any{"user_id": "u"}, "table:"},
		{"row too long", with("row", "json.user_id + json.user_id"), map[string]any{"user_id": strings.Repeat("x", 20000)}, "row:"},
		{"op not an op", with("op", "json.op", "delete_columns", []string{"info"}), map[string]any{"user_id": "u", "op": "upsert"}, "op:"},
		{"op check without check", with("op", "json.op"), map[string]any{"user_id": "u", "op": "check_and_put"}, "op:"},
		{"delete of a glob row", with("op", "delete", "columns", nil), map[string]any{"user_id": "a*b"}, "row:"},
		{"delete of a dot row", with("op", "delete", "columns", nil), map[string]any{"user_id": ".."}, "row:"},
		{"timestamp text", with("timestamp", "json.ts"), map[string]any{"user_id": "u", "ts": "soon"}, "timestamp:"},
		{"timestamp zero", with("timestamp", "json.ts"), map[string]any{"user_id": "u", "ts": 0}, "timestamp:"},
		{"timestamp fraction", with("timestamp", "json.ts"), map[string]any{"user_id": "u", "ts": 1.5}, "timestamp:"},
		{"check column nil", with("op", "check_and_put", "columns", map[string]string{"info:v": "json?.v", "info:name": "'n'"},
			"check", map[string]string{"column": "info:v", "value": "'1'"}), map[string]any{"user_id": "u"}, "check.column:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mappingOf(t, tc.config)
			r := record("topic-a", 42, tc.value)
			_, err := m.mapRecord(&r)
			if sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), tc.key) ||
				!strings.Contains(err.Error(), "record topic-a qid 0 offset 42") {
				t.Errorf("mapRecord = %v; want code 11 naming %q and the record", err, tc.key)
			}
		})
	}
}

func TestMappingValues(t *testing.T) {
	m := mappingOf(t, with("timestamp", "json.ts", "columns", map[string]string{
		"info:s": "json.s", "info:i": "json.i", "info:f": "json.f", "info:b": "json.b",
		"info:o": "json.o", "info:nil": "json.missing", "info:bytes": "key",
	}))
	r := record("t", 1, map[string]any{"user_id": 12, "s": "text", "i": -3, "f": 0.25, "b": false,
		"o": map[string]any{"k": []int{1}}, "ts": "1700000000000"})
	r.Key = []byte{0xff, 0x00}
	mu, err := m.mapRecord(&r)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range mu.cells {
		got[c.column] = string(c.value)
	}
	want := map[string]string{"info:s": "text", "info:i": "-3", "info:f": "0.25", "info:b": "false",
		"info:o": `{"k":[1]}`, "info:bytes": "\xff\x00"} // binary keys pass through
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q; want %q", k, got[k], v)
		}
	}
	if _, ok := got["info:nil"]; ok {
		t.Error("a column whose expression gave nil was written")
	}
	if string(mu.row) != "12" || mu.ts != 1_700_000_000_000 || mu.table != "users" {
		t.Errorf("row %q ts %d table %q", mu.row, mu.ts, mu.table)
	}
}

// The mapping evaluates all its expressions at once; when that fails, a
// record is mapped expression by expression, so a delete is not failed by
// a column expression it does not need, and a put's error names its key.
func TestMappingFallsBackToEachExpression(t *testing.T) {
	m := mappingOf(t, with("op", "json.op", "delete_columns", []string{"info"},
		"columns", map[string]string{"info:first": "json.name.first"}))
	if m.all == nil {
		t.Fatal("the expressions were not combined")
	}
	del := record("t", 1, map[string]any{"user_id": "u", "op": "delete"})
	if mu, err := m.mapRecord(&del); err != nil || mu.op != opDelete {
		t.Errorf("a delete whose column expressions fail: %+v, %v; want a delete", mu, err)
	}
	put := record("t", 2, map[string]any{"user_id": "u", "op": "put"})
	if _, err := m.mapRecord(&put); sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), "columns.info:first") {
		t.Errorf("a put whose column expression fails: %v; want code 11 naming columns.info:first", err)
	}
	ok := record("t", 3, map[string]any{"user_id": "u", "op": "put", "name": map[string]any{"first": "Ann"}})
	if mu, err := m.mapRecord(&ok); err != nil || len(mu.cells) != 1 || string(mu.cells[0].value) != "Ann" {
		t.Errorf("a put that maps: %+v, %v", mu, err)
	}
}
