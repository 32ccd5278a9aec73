package hbasefake

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/mqgate/mqgate/plugins/hbase/cellsetpb"
)

// start runs a fake with table "t" (families f and nvb, the latter with
// NEW_VERSION_BEHAVIOR), closed when t ends.
func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing the fake: %v", err)
		}
	})
	if err := s.CreateTable("t", Family{Name: "f", Versions: 3}, Family{Name: "nvb", NewVersionBehavior: true}); err != nil {
		t.Fatal(err)
	}
	return s
}

// do sends a request and returns its status and body.
func do(t *testing.T, method, url, ctype string, body []byte, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// jsonPut is a JSON CellSet of one row and its cells, given as column,
// value pairs.
func jsonPut(row string, cells ...string) []byte {
	var cs []string
	for i := 0; i+1 < len(cells); i += 2 {
		cs = append(cs, fmt.Sprintf(`{"column":%q,"$":%q}`, b64(cells[i]), b64(cells[i+1])))
	}
	return fmt.Appendf(nil, `{"Row":[{"key":%q,"Cell":[%s]}]}`, b64(row), strings.Join(cs, ","))
}

func TestMalformedBodiesAreRefused(t *testing.T) {
	s := start(t, Config{MaxBodyBytes: 1 << 10})
	pbMissingKey, err := proto.MarshalOptions{AllowPartial: true}.Marshal(&cellsetpb.CellSet{
		Rows: []*cellsetpb.CellSet_Row{{Values: []*cellsetpb.Cell{{Column: []byte("f:a"), Data: []byte("v")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ctype string
		body        []byte
		status      int
	}{
		{"not JSON", "application/json", []byte(`{"Row":[`), 400},
		{"trailing data", "application/json", []byte(`{"Row":[]} {}`), 400},
		{"unknown field", "application/json", []byte(`{"Rows":[]}`), 400},
		{"bad base64 key", "application/json", []byte(`{"Row":[{"key":"!!","Cell":[]}]}`), 400},
		{"bad base64 value", "application/json", fmt.Appendf(nil, `{"Row":[{"key":%q,"Cell":[{"column":%q,"$":"%%"}]}]}`, b64("r"), b64("f:a")), 400},
		{"timestamp not an integer", "application/json", fmt.Appendf(nil, `{"Row":[{"key":%q,"Cell":[{"column":%q,"timestamp":1.5,"$":""}]}]}`, b64("r"), b64("f:a")), 400},
		{"column without colon", "application/json", jsonPut("r", "fa", "v"), 400},
		{"column left out", "application/json", fmt.Appendf(nil, `{"Row":[{"key":%q,"Cell":[{"$":""}]}]}`, b64("r")), 400},
		{"empty row key", "application/json", fmt.Appendf(nil, `{"Row":[{"key":"","Cell":[{"column":%q,"$":""}]}]}`, b64("f:a")), 400},
		{"unknown family", "application/json", jsonPut("r", "nope:a", "v"), 404},
		{"protobuf garbage", "application/x-protobuf", []byte{0x0a, 0xff, 0xff}, 400},
		{"protobuf without the required key", "application/x-protobuf", pbMissingKey, 400},
		{"XML", "text/xml", []byte(`<CellSet/>`), 415},
		{"no content type", "", jsonPut("r", "f:a", "v"), 415},
		{"over the body bound", "application/json", jsonPut("r", "f:a", strings.Repeat("v", 2<<10)), 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do(t, "PUT", s.URL()+"/t/fakerow", tc.ctype, tc.body)
			if status != tc.status {
				t.Errorf("status %d (%s); want %d", status, body, tc.status)
			}
			if row := s.Row("t", "r"); row != nil {
				t.Errorf("a refused body stored %v", row)
			}
		})
	}
}

func TestMultiRowPutAndGet(t *testing.T) {
	s := start(t, Config{})
	body := fmt.Appendf(nil, `{"Row":[{"key":%q,"Cell":[{"column":%q,"$":%q},{"column":%q,"timestamp":5,"$":%q}]},{"key":%q,"Cell":[{"column":%q,"$":%q}]}]}`,
		b64("r1"), b64("f:a"), b64("1"), b64("f:b"), b64("2"), b64("r2"), b64("f:a"), b64("3"))
	if status, b := do(t, "PUT", s.URL()+"/t/fakerow", "application/json", body); status != 200 {
		t.Fatalf("JSON put: %d %s", status, b)
	}
	pb, err := proto.Marshal(&cellsetpb.CellSet{Rows: []*cellsetpb.CellSet_Row{{
		Key: []byte("r3"), Values: []*cellsetpb.Cell{{Column: []byte("f:a"), Data: []byte("4"), Timestamp: proto.Int64(7)}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if status, b := do(t, "PUT", s.URL()+"/t/whatever", "application/x-protobuf", pb); status != 200 {
		t.Fatalf("protobuf put: %d %s", status, b)
	}
	if got := s.Row("t", "r1"); string(got["f:a"]) != "1" || string(got["f:b"]) != "2" {
		t.Errorf("r1 = %q", got)
	}
	if vs := s.Versions("t", "r1", "f:b"); len(vs) != 1 || vs[0].Timestamp != 5 {
		t.Errorf("f:b of r1 = %+v; want one version at 5", vs)
	}

	// GET answers in the encoding asked for.
	status, b := do(t, "GET", s.URL()+"/t/r3", "", nil, "Accept", "application/x-protobuf")
	var got cellsetpb.CellSet
	if err := proto.Unmarshal(b, &got); status != 200 || err != nil {
		t.Fatalf("GET protobuf: %d %v", status, err)
	}
	if c := got.Rows[0].Values[0]; string(got.Rows[0].Key) != "r3" || string(c.Column) != "f:a" || string(c.Data) != "4" || c.GetTimestamp() != 7 {
		t.Errorf("GET protobuf = %v", &got)
	}
	status, b = do(t, "GET", s.URL()+"/t/r2", "", nil, "Accept", "application/json")
	cs, err := decodeCellSetJSON(b)
	if status != 200 || err != nil || len(cs.rows) != 1 || string(cs.rows[0].cells[0].value) != "3" {
		t.Errorf("GET JSON: %d %s (%v)", status, b, err)
	}
	if status, _ := do(t, "GET", s.URL()+"/t/none", "", nil); status != 404 {
		t.Errorf("GET of a missing row: %d; want 404", status)
	}
	if status, _ := do(t, "GET", s.URL()+"/t/r2", "", nil, "Accept", "text/xml"); status != 406 {
		t.Errorf("GET as XML: %d; want 406", status)
	}
}

func TestUnknownTableIs404(t *testing.T) {
	s := start(t, Config{})
	for _, m := range []string{"PUT", "GET", "DELETE"} {
		status, body := do(t, m, s.URL()+"/nope/r", "application/json", jsonPut("r", "f:a", "v"))
		if status != 404 || !strings.Contains(string(body), "TableNotFoundException") {
			t.Errorf("%s to an unknown table: %d %q; want 404 naming TableNotFoundException", m, status, body)
		}
	}
}

func TestCheckAndPut(t *testing.T) {
	s := start(t, Config{})
	url := s.URL() + "/t/r?check=put"
	// Absent counts as the empty expected value.
	if status, b := do(t, "PUT", url, "application/json", jsonPut("r", "f:a", "1", "f:b", "x", "f:a", "")); status != 200 {
		t.Fatalf("check against absent: %d %s", status, b)
	}
	if status, _ := do(t, "PUT", url, "application/json", jsonPut("r", "f:a", "2", "f:a", "")); status != 304 {
		t.Errorf("check against absent, now present: %d; want 304", status)
	}
	if status, _ := do(t, "PUT", url, "application/json", jsonPut("r", "f:a", "2", "f:a", "1")); status != 200 {
		t.Errorf("matching check: %d; want 200", status)
	}
	if got := s.Row("t", "r"); string(got["f:a"]) != "2" || string(got["f:b"]) != "x" {
		t.Errorf("row = %q", got)
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"check column not put", jsonPut("r", "f:b", "y", "f:a", "2")},
		{"only the check cell", jsonPut("r", "f:a", "2")},
		{"check of a family", jsonPut("r", "f:a", "3", "f:", "2")},
		{"two rows", append(jsonPut("r", "f:a", "1", "f:a", "2")[:0:0],
			fmt.Sprintf(`{"Row":[{"key":%q,"Cell":[]},{"key":%q,"Cell":[]}]}`, b64("a"), b64("b"))...)},
	} {
		if status, _ := do(t, "PUT", url, "application/json", tc.body); status != 400 {
			t.Errorf("%s: %d; want 400", tc.name, status)
		}
	}
}

func TestDeletes(t *testing.T) {
	s := start(t, Config{})
	put := func(row string, ts int64, cells ...string) {
		t.Helper()
		var cs []string
		for i := 0; i+1 < len(cells); i += 2 {
			cs = append(cs, fmt.Sprintf(`{"column":%q,"timestamp":%d,"$":%q}`, b64(cells[i]), ts, b64(cells[i+1])))
		}
		body := fmt.Appendf(nil, `{"Row":[{"key":%q,"Cell":[%s]}]}`, b64(row), strings.Join(cs, ","))
		if status, b := do(t, "PUT", s.URL()+"/t/fakerow", "application/json", body); status != 200 {
			t.Fatalf("put: %d %s", status, b)
		}
	}
	del := func(path string) {
		t.Helper()
		if status, b := do(t, "DELETE", s.URL()+"/t/"+path, "", nil); status != 200 {
			t.Fatalf("DELETE %s: %d %s", path, status, b)
		}
	}
	put("a b+c", 10, "f:a", "1", "f:b", "2", "nvb:c", "3")
	del("a+b%2Bc/f:a") // URLDecoder: '+' is a space, %2B a plus
	if got := s.Row("t", "a b+c"); got["f:a"] != nil || string(got["f:b"]) != "2" {
		t.Errorf("after deleting f:a: %q", got)
	}
	// A timestamped delete removes versions at or before it, and keeps
	// masking later puts that are not newer.
	put("r", 10, "f:a", "old")
	put("r", 20, "f:a", "new")
	del("r/f/15")
	if vs := s.Versions("t", "r", "f:a"); len(vs) != 1 || string(vs[0].Value) != "new" {
		t.Errorf("after a delete at 15: %+v; want only the version at 20", vs)
	}
	put("r", 12, "f:a", "late")
	if vs := s.Versions("t", "r", "f:a"); len(vs) != 1 {
		t.Errorf("a put at 12 after a delete at 15 is visible: %+v", vs)
	}
	// With NEW_VERSION_BEHAVIOR a put after the delete is not masked.
	put("r", 12, "nvb:a", "x")
	del("r/nvb/15")
	put("r", 12, "nvb:a", "y")
	if got := s.Row("t", "r"); string(got["nvb:a"]) != "y" {
		t.Errorf("nvb:a = %q; want y", got["nvb:a"])
	}
	del("r")
	if got := s.Row("t", "r"); got != nil {
		t.Errorf("after deleting the row: %q", got)
	}
	if status, _ := do(t, "DELETE", s.URL()+"/t/r/nope:a", "", nil); status != 404 {
		t.Errorf("delete of an unknown family: %d; want 404", status)
	}
}

func TestSchema(t *testing.T) {
	s := start(t, Config{})
	body := []byte(`{"name":"users","ColumnSchema":[{"name":"info","VERSIONS":2},{"name":"events"}]}`)
	if status, b := do(t, "PUT", s.URL()+"/users/schema", "application/json", body); status != 201 {
		t.Fatalf("create: %d %s", status, b)
	}
	if status, b := do(t, "PUT", s.URL()+"/users/fakerow", "application/json", jsonPut("u1", "info:name", "Ann")); status != 200 {
		t.Fatalf("put into the new table: %d %s", status, b)
	}
	status, b := do(t, "GET", s.URL()+"/users/schema", "", nil)
	if status != 200 || !strings.Contains(string(b), `"VERSIONS":"2"`) {
		t.Errorf("GET schema: %d %s", status, b)
	}
	for _, bad := range []string{`{`, `{"name":"x","ColumnSchema":[]}`, `{"ColumnSchema":[{"name":"a:b"}]}`, `{"ColumnSchema":[{"name":"a","VERSIONS":"x"}]}`} {
		if status, _ := do(t, "PUT", s.URL()+"/x/schema", "application/json", []byte(bad)); status != 400 {
			t.Errorf("schema %s: %d; want 400", bad, status)
		}
	}
	if status, _ := do(t, "DELETE", s.URL()+"/users/schema", "", nil); status != 200 {
		t.Errorf("drop: %d", status)
	}
	if status, _ := do(t, "PUT", s.URL()+"/users/fakerow", "application/json", jsonPut("u1", "info:name", "Ann")); status != 404 {
		t.Errorf("put into a dropped table: %d; want 404", status)
	}
}

func TestFailuresAndDown(t *testing.T) {
	s := start(t, Config{})
	s.FailNext(2, 503)
	for range 2 {
		if status, _ := do(t, "PUT", s.URL()+"/t/x", "application/json", jsonPut("r", "f:a", "v")); status != 503 {
			t.Errorf("injected failure: %d; want 503", status)
		}
	}
	if status, _ := do(t, "PUT", s.URL()+"/t/x", "application/json", jsonPut("r", "f:a", "v")); status != 200 {
		t.Errorf("after the failures: %d; want 200", status)
	}
	if err := s.Down(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(s.URL() + "/t/r"); err == nil {
		t.Error("a request to a fake that is down succeeded")
	}
	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	if got := s.Row("t", "r"); string(got["f:a"]) != "v" {
		t.Errorf("cells lost across Down and Up: %q", got)
	}
	if status, _ := do(t, "GET", s.URL()+"/t/r", "", nil); status != 200 {
		t.Errorf("GET after Up: %d", status)
	}
}

func TestBasicAuth(t *testing.T) {
	s := start(t, Config{Username: "u", Password: "p"})
	if status, _ := do(t, "GET", s.URL()+"/t/r", "", nil); status != 401 {
		t.Errorf("without credentials: %d; want 401", status)
	}
	req, _ := http.NewRequest("PUT", s.URL()+"/t/x", bytes.NewReader(jsonPut("r", "f:a", "v")))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("u", "p")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("with credentials: %d", resp.StatusCode)
	}
}

func TestParseRowSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want rowSpec
		err  bool
	}{
		{in: "r1", want: rowSpec{row: "r1"}},
		{in: "a+b%2C/f:a,f:b/17", want: rowSpec{row: "a b,", columns: []string{"f:a", "f:b"}, ts: 17}},
		{in: "start,end", want: rowSpec{row: "start"}},
		{in: "pre*", want: rowSpec{row: "pre"}},
		{in: "r//5", want: rowSpec{row: "r", ts: 5}},
		{in: "%ff", want: rowSpec{row: "\uFFFD"}},
		{in: "", err: true},
		{in: "r%2", err: true},
		{in: "r/f:a,,f:b", err: true},
		{in: "r/f/x", err: true},
		{in: "r/f/-1", err: true},
	} {
		got, err := parseRowSpec(tc.in)
		if (err != nil) != tc.err || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("parseRowSpec(%q) = %+v, %v; want %+v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// FuzzDecodeCellSetJSON: no input makes the decoder panic, and what it
// accepts encodes back to the same cells.
func FuzzDecodeCellSetJSON(f *testing.F) {
	f.Add(jsonPut("r", "f:a", "v"))
	f.Add([]byte(`{"Row":[{"Cell":[{"column":"Zjph","timestamp":3,"$":""}]}]}`))
	f.Add([]byte(`{"Row":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		cs, err := decodeCellSetJSON(body)
		if err != nil {
			return
		}
		for _, r := range cs.rows {
			var cells []Cell
			for _, c := range r.cells {
				cells = append(cells, Cell{Column: string(c.column), Timestamp: c.ts, Value: c.value})
			}
			out, err := encodeCellSet(mimeJSON, r.key, cells)
			if err != nil {
				t.Fatal(err)
			}
			again, err := decodeCellSetJSON(out)
			if err != nil || len(again.rows) != 1 || len(again.rows[0].cells) != len(cells) {
				t.Fatalf("re-encoded %s does not decode to the same row: %v", out, err)
			}
			for i, c := range again.rows[0].cells {
				if !bytes.Equal(c.value, cells[i].Value) || string(c.column) != cells[i].Column {
					t.Fatalf("cell %d changed in a round trip: %+v", i, c)
				}
			}
		}
	})
}
