package webhdfsfake_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/internal/webhdfsfake"
)

// client never follows redirects, so tests see the namenode's 307.
var client = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func start(t *testing.T, opts webhdfsfake.Options) *webhdfsfake.Server {
	t.Helper()
	s, err := webhdfsfake.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// answer is a response read in full.
type answer struct {
	status   int
	location string
	body     []byte
}

// remote decodes the body as a RemoteException.
func (a answer) remote(t *testing.T) webhdfsfake.RemoteException {
	t.Helper()
	var v struct{ RemoteException webhdfsfake.RemoteException }
	if err := json.Unmarshal(a.body, &v); err != nil || v.RemoteException.Exception == "" {
		t.Fatalf("answer %d %q is not a RemoteException: %v", a.status, a.body, err)
	}
	return v.RemoteException
}

func do(t *testing.T, method, url string, body []byte) answer {
	t.Helper()
	a, err := try(method, url, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return a
}

func try(method, url string, body []byte) (answer, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Location"), b}, err
}

// write runs both steps of CREATE or APPEND and returns the datanode's
// answer.
func write(t *testing.T, method, url string, data []byte) answer {
	t.Helper()
	a := do(t, method, url, nil)
	if a.status != http.StatusTemporaryRedirect {
		return a
	}
	return do(t, method, a.location, data)
}

func open(t *testing.T, url string) answer {
	t.Helper()
	a := do(t, http.MethodGet, url, nil)
	if a.status != http.StatusTemporaryRedirect {
		t.Fatalf("OPEN step one: %d %s", a.status, a.body)
	}
	return do(t, http.MethodGet, a.location, nil)
}

func TestWriteAndReadThroughTheDatanode(t *testing.T) {
	s := start(t, webhdfsfake.Options{})
	base := s.URL() + "/webhdfs/v1/logs/day%201/a.txt"

	step1 := do(t, http.MethodPut, base+"?op=CREATE&user.name=etl", nil)
	if step1.status != http.StatusTemporaryRedirect || !strings.HasPrefix(step1.location, s.DatanodeURL()+"/webhdfs/v1/logs/day%201/a.txt?") {
		t.Fatalf("CREATE step one = %d Location %q; want 307 to the datanode", step1.status, step1.location)
	}
	if got := s.Files("/"); len(got) != 0 {
		t.Fatalf("step one created %v; a namenode only redirects", got)
	}
	if a := do(t, http.MethodPut, step1.location, []byte("one\n")); a.status != http.StatusCreated || a.location != "hdfs://"+strings.TrimPrefix(s.URL(), "http://")+"/logs/day 1/a.txt" {
		t.Fatalf("CREATE step two = %d Location %q; want 201 with the file's URI", a.status, a.location)
	}
	if a := write(t, http.MethodPost, base+"?op=APPEND", []byte("two\n")); a.status != http.StatusOK || len(a.body) != 0 {
		t.Fatalf("APPEND = %d %q; want an empty 200", a.status, a.body)
	}
	if a := open(t, base+"?op=OPEN"); string(a.body) != "one\ntwo\n" {
		t.Fatalf("OPEN = %q", a.body)
	}
	if a := open(t, base+"?op=OPEN&offset=2&length=3"); string(a.body) != "e\nt" {
		t.Fatalf("OPEN offset 2 length 3 = %q", a.body)
	}
	if a := do(t, http.MethodPost, base+"?op=APPEND&noredirect=true", nil); a.status != http.StatusOK || !bytes.Contains(a.body, []byte(`"Location":"`+s.DatanodeURL())) {
		t.Fatalf("APPEND noredirect = %d %s; want 200 with the Location in JSON", a.status, a.body)
	}
	st := do(t, http.MethodGet, base+"?op=GETFILESTATUS", nil)
	var fs struct{ FileStatus map[string]any }
	if err := json.Unmarshal(st.body, &fs); err != nil || fs.FileStatus["type"] != "FILE" || fs.FileStatus["length"] != 8.0 || fs.FileStatus["owner"] != "etl" || fs.FileStatus["permission"] != "644" {
		t.Fatalf("GETFILESTATUS = %s (%v)", st.body, err)
	}
}

func TestCreateOverAnExistingFile(t *testing.T) {
	s := start(t, webhdfsfake.Options{})
	url := s.URL() + "/webhdfs/v1/a"
	write(t, http.MethodPut, url+"?op=CREATE", []byte("old"))

	a := write(t, http.MethodPut, url+"?op=CREATE", []byte("new"))
	if e := a.remote(t); a.status != http.StatusForbidden || e.Exception != "FileAlreadyExistsException" || e.JavaClassName != "org.apache.hadoop.fs.FileAlreadyExistsException" {
		t.Fatalf("CREATE over a file = %d %s; want 403 FileAlreadyExistsException", a.status, a.body)
	}
	if got, _ := s.ReadFile("/a"); string(got) != "old" {
		t.Fatalf("the refused CREATE changed the file to %q", got)
	}
	if a := write(t, http.MethodPut, url+"?op=CREATE&overwrite=true", []byte("new")); a.status != http.StatusCreated {
		t.Fatalf("CREATE overwrite=true = %d %s", a.status, a.body)
	}
	if a := write(t, http.MethodPost, s.URL()+"/webhdfs/v1/missing?op=APPEND", []byte("x")); a.status != http.StatusNotFound || a.remote(t).Exception != "FileNotFoundException" {
		t.Fatalf("APPEND to a missing file = %d %s; want 404 FileNotFoundException", a.status, a.body)
	}
}

func TestNamespaceOperations(t *testing.T) {
	s := start(t, webhdfsfake.Options{BlockSize: 4})
	nn := s.URL() + "/webhdfs/v1"
	for _, p := range []string{"/d/b", "/d/a", "/d/sub/c", "/e"} {
		if err := s.WriteFile(p, []byte("12345678")); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, method, url string
		status            int
		body              string // the JSON answer, or the exception's name
	}{
		{"list sorted", http.MethodGet, nn + "/d?op=LISTSTATUS", 200, `a,b,sub`},
		{"list a file", http.MethodGet, nn + "/e?op=LISTSTATUS", 200, ``},
		{"list missing", http.MethodGet, nn + "/nope?op=LISTSTATUS", 404, "FileNotFoundException"},
		{"status missing", http.MethodGet, nn + "/nope?op=GETFILESTATUS", 404, "FileNotFoundException"},
		{"mkdirs", http.MethodPut, nn + "/x/y?op=MKDIRS&permission=750", 200, `{"boolean":true}`},
		{"mkdirs under a file", http.MethodPut, nn + "/e/y?op=MKDIRS", 403, "ParentNotDirectoryException"},
		{"rename", http.MethodPut, nn + "/d/a?op=RENAME&destination=/d/a2", 200, `{"boolean":true}`},
		{"rename missing source", http.MethodPut, nn + "/d/a?op=RENAME&destination=/d/a3", 200, `{"boolean":false}`},
		{"rename onto a file", http.MethodPut, nn + "/d/b?op=RENAME&destination=/e", 200, `{"boolean":false}`},
		{"rename into a directory", http.MethodPut, nn + "/d/b?op=RENAME&destination=/x", 200, `{"boolean":true}`},
		{"rename without parent", http.MethodPut, nn + "/e?op=RENAME&destination=/no/parent", 200, `{"boolean":false}`},
		{"rename into itself", http.MethodPut, nn + "/d?op=RENAME&destination=/d/sub/d", 200, `{"boolean":false}`},
		{"delete non-empty", http.MethodDelete, nn + "/d?op=DELETE", 403, "PathIsNotEmptyDirectoryException"},
		{"delete missing", http.MethodDelete, nn + "/nope?op=DELETE", 200, `{"boolean":false}`},
		{"delete recursive", http.MethodDelete, nn + "/d?op=DELETE&recursive=true", 200, `{"boolean":true}`},
		{"truncate off a block boundary", http.MethodPost, nn + "/e?op=TRUNCATE&newlength=6", 200, `{"boolean":false}`},
		{"truncate on a block boundary", http.MethodPost, nn + "/e?op=TRUNCATE&newlength=4", 200, `{"boolean":true}`},
		{"truncate to a larger size", http.MethodPost, nn + "/e?op=TRUNCATE&newlength=5", 400, "HadoopIllegalArgumentException"},
		{"truncate a directory", http.MethodPost, nn + "/x?op=TRUNCATE&newlength=0", 404, "FileNotFoundException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, tc.method, tc.url, nil)
			if a.status != tc.status {
				t.Fatalf("status %d %s; want %d", a.status, a.body, tc.status)
			}
			switch {
			case a.status != 200:
				if e := a.remote(t); e.Exception != tc.body {
					t.Fatalf("exception %s; want %s", e.Exception, tc.body)
				}
			case strings.Contains(tc.url, "LISTSTATUS"):
				var l struct {
					FileStatuses struct{ FileStatus []struct{ PathSuffix string } }
				}
				if err := json.Unmarshal(a.body, &l); err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, f := range l.FileStatuses.FileStatus {
					names = append(names, f.PathSuffix)
				}
				if strings.Join(names, ",") != tc.body {
					t.Fatalf("listed %q; want %q", names, tc.body)
				}
			case strings.ReplaceAll(string(a.body), " ", "") != tc.body:
				t.Fatalf("answer %s; want %s", a.body, tc.body)
			}
		})
	}
	var got []string
	for _, f := range s.Files("/") {
		got = append(got, f.Path)
	}
	if strings.Join(got, " ") != "/e /x/b" {
		t.Fatalf("files after the operations: %v", got)
	}
	if data, _ := s.ReadFile("/e"); string(data) != "1234" {
		t.Fatalf("/e after truncating = %q", data)
	}
}

// Malformed requests are refused with the reference's errors, never
// applied.
func TestMalformedRequests(t *testing.T) {
	s := start(t, webhdfsfake.Options{})
	nn, dn := s.URL(), s.DatanodeURL()
	if err := s.WriteFile("/f", []byte("data")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, url string
		status            int
		exception, msg    string
	}{
		{"no op", http.MethodGet, nn + "/webhdfs/v1/f", 400, "IllegalArgumentException", `"op": null`},
		{"unknown op", http.MethodGet, nn + "/webhdfs/v1/f?op=FROB", 400, "IllegalArgumentException", "No enum constant"},
		{"op of another method", http.MethodGet, nn + "/webhdfs/v1/f?op=CREATE", 400, "IllegalArgumentException", "GetOpParam.Op.CREATE"},
		{"method without ops", http.MethodPatch, nn + "/webhdfs/v1/f?op=CREATE", 400, "IllegalArgumentException", "PATCH"},
		{"not a webhdfs path", http.MethodGet, nn + "/other/f?op=OPEN", 400, "IllegalArgumentException", "/webhdfs/v1/"},
		{"prefix without slash", http.MethodGet, nn + "/webhdfs/v1f?op=OPEN", 400, "IllegalArgumentException", "/webhdfs/v1/"},
		{"bad query escape", http.MethodGet, nn + "/webhdfs/v1/f?op=OPEN&x=%zz", 400, "IllegalArgumentException", "Invalid query"},
		{"dot-dot in path", http.MethodGet, nn + "/webhdfs/v1/a/%2E%2E/f?op=GETFILESTATUS", 400, "HadoopIllegalArgumentException", "Invalid path name"},
		{"rename without destination", http.MethodPut, nn + "/webhdfs/v1/f?op=RENAME", 400, "IllegalArgumentException", `"destination"`},
		{"relative destination", http.MethodPut, nn + "/webhdfs/v1/f?op=RENAME&destination=g", 400, "IllegalArgumentException", "not absolute"},
		{"bad boolean", http.MethodPut, nn + "/webhdfs/v1/g?op=CREATE&overwrite=yes", 400, "IllegalArgumentException", `"overwrite"`},
		{"bad number", http.MethodPut, nn + "/webhdfs/v1/g?op=CREATE&buffersize=abc", 400, "IllegalArgumentException", `"buffersize"`},
		{"zero replication", http.MethodPut, nn + "/webhdfs/v1/g?op=CREATE&replication=0", 400, "IllegalArgumentException", `"replication"`},
		{"bad permission", http.MethodPut, nn + "/webhdfs/v1/g?op=MKDIRS&permission=999", 400, "IllegalArgumentException", `"permission"`},
		{"negative offset", http.MethodGet, nn + "/webhdfs/v1/f?op=OPEN&offset=-1", 400, "IllegalArgumentException", `"offset"`},
		{"truncate without length", http.MethodPost, nn + "/webhdfs/v1/f?op=TRUNCATE", 400, "IllegalArgumentException", `"newlength"`},
		{"negative newlength", http.MethodPost, nn + "/webhdfs/v1/f?op=TRUNCATE&newlength=-1", 400, "IllegalArgumentException", `"newlength"`},
		{"recursive not boolean", http.MethodDelete, nn + "/webhdfs/v1/f?op=DELETE&recursive=1", 400, "IllegalArgumentException", `"recursive"`},
		{"datanode without namenode", http.MethodPut, dn + "/webhdfs/v1/g?op=CREATE", 400, "IllegalArgumentException", "namenoderpcaddress"},
		{"datanode namespace op", http.MethodPut, dn + "/webhdfs/v1/g?op=MKDIRS&namenoderpcaddress=x", 400, "IllegalArgumentException", "Invalid operation MKDIRS"},
		{"datanode offset past the end", http.MethodGet, dn + "/webhdfs/v1/f?op=OPEN&offset=5&namenoderpcaddress=x", 403, "IOException", "beyond the end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, tc.method, tc.url, nil)
			if a.status != tc.status {
				t.Fatalf("status %d %s; want %d", a.status, a.body, tc.status)
			}
			if e := a.remote(t); e.Exception != tc.exception || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("%s: %s; want %s saying %q", e.Exception, e.Message, tc.exception, tc.msg)
			}
		})
	}
	if got := s.Files("/"); len(got) != 1 {
		t.Fatalf("malformed requests left files %v", got)
	}
	// Parameter names are matched regardless of case, as a real server
	// matches them; an op's value too.
	if a := do(t, http.MethodGet, nn+"/webhdfs/v1/f?OP=getfilestatus", nil); a.status != 200 {
		t.Fatalf("OP=getfilestatus = %d %s", a.status, a.body)
	}
}

func TestBodyBound(t *testing.T) {
	s := start(t, webhdfsfake.Options{MaxBody: 10})
	a := write(t, http.MethodPut, s.URL()+"/webhdfs/v1/big?op=CREATE", make([]byte, 11))
	if a.status != http.StatusRequestEntityTooLarge || !strings.Contains(a.remote(t).Message, "10 bytes") {
		t.Fatalf("11-byte CREATE = %d %s; want 413 naming the limit", a.status, a.body)
	}
	if got := s.Files("/"); len(got) != 0 {
		t.Fatalf("a refused body created %v", got)
	}
	if a := write(t, http.MethodPut, s.URL()+"/webhdfs/v1/small?op=CREATE", make([]byte, 10)); a.status != http.StatusCreated {
		t.Fatalf("10-byte CREATE = %d %s", a.status, a.body)
	}
}

func TestAuthentication(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      webhdfsfake.Options
		query     string
		status    int
		exception string
	}{
		{"simple: no user", webhdfsfake.Options{User: "etl"}, "", 401, "SecurityException"},
		{"simple: another user", webhdfsfake.Options{User: "etl"}, "&user.name=bob", 403, "AccessControlException"},
		{"simple: the user", webhdfsfake.Options{User: "etl"}, "&user.name=etl", 201, ""},
		{"token: none", webhdfsfake.Options{Token: "tok-123456789"}, "&user.name=etl", 401, "SecurityException"},
		{"token: another", webhdfsfake.Options{Token: "tok-123456789"}, "&delegation=tok-999999999", 403, "InvalidToken"},
		{"token: the token", webhdfsfake.Options{Token: "tok-123456789"}, "&delegation=tok-123456789", 201, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, tc.opts)
			// The namenode only redirects: the datanode checks the
			// credentials the redirect carried over.
			a := write(t, http.MethodPut, s.URL()+"/webhdfs/v1/f?op=CREATE"+tc.query, []byte("x"))
			if a.status != tc.status {
				t.Fatalf("CREATE = %d %s; want %d", a.status, a.body, tc.status)
			}
			if tc.exception != "" {
				if e := a.remote(t); e.Exception != tc.exception || strings.Contains(e.Message, "123456789") || strings.Contains(e.Message, "999999999") {
					t.Fatalf("exception %s %q; want %s, without the token", e.Exception, e.Message, tc.exception)
				}
				if a := do(t, http.MethodGet, s.URL()+"/webhdfs/v1/?op=LISTSTATUS"+tc.query, nil); a.status != tc.status {
					t.Fatalf("namenode LISTSTATUS = %d; want %d like the datanode", a.status, tc.status)
				}
			}
		})
	}
}

func TestStandbyNamenode(t *testing.T) {
	s := start(t, webhdfsfake.Options{Namenodes: 2})
	urls := s.NamenodeURLs()
	status := func(i int) answer { return do(t, http.MethodGet, urls[i]+"/webhdfs/v1/?op=GETFILESTATUS", nil) }
	if a := status(1); a.status != 403 || a.remote(t).Exception != "StandbyException" || a.remote(t).JavaClassName != "org.apache.hadoop.ipc.StandbyException" {
		t.Fatalf("standby answered %d %s; want 403 StandbyException", a.status, a.body)
	}
	if a := status(0); a.status != 200 {
		t.Fatalf("active answered %d %s", a.status, a.body)
	}
	s.SetActive(1)
	if a := status(0); a.status != 403 || !strings.Contains(a.remote(t).Message, "READ") {
		t.Fatalf("old active answered %d %s; want a standby's 403 naming READ", a.status, a.body)
	}
	if a := status(1); a.status != 200 {
		t.Fatalf("new active answered %d %s", a.status, a.body)
	}
	if s.Requests(webhdfsfake.Namenode, "GETFILESTATUS") != 4 {
		t.Fatalf("counted %d GETFILESTATUS requests; want 4", s.Requests(webhdfsfake.Namenode, "GETFILESTATUS"))
	}
}

func TestFaults(t *testing.T) {
	s := start(t, webhdfsfake.Options{})
	url := s.URL() + "/webhdfs/v1/f"
	write(t, http.MethodPut, url+"?op=CREATE", []byte("ab\n"))

	s.Inject(webhdfsfake.Fault{Node: webhdfsfake.Namenode, Op: "APPEND", Status: 503, Times: 2})
	for range 2 {
		if a := do(t, http.MethodPost, url+"?op=APPEND", nil); a.status != 503 || a.remote(t).Exception != "RetriableException" {
			t.Fatalf("APPEND under a 503 fault = %d %s", a.status, a.body)
		}
	}
	s.Inject(webhdfsfake.Fault{Node: webhdfsfake.Datanode, Op: "APPEND", Status: 500, Partial: true})
	if a := write(t, http.MethodPost, url+"?op=APPEND", []byte("cdef\n")); a.status != 500 || a.remote(t).Exception != "RuntimeException" {
		t.Fatalf("APPEND under a partial fault = %d %s", a.status, a.body)
	}
	if got, _ := s.ReadFile("/f"); string(got) != "ab\ncd" {
		t.Fatalf("after a partial append the file holds %q; want half the body added", got)
	}
	s.Inject(webhdfsfake.Fault{Node: webhdfsfake.Datanode, Status: 0})
	if loc := do(t, http.MethodPost, url+"?op=APPEND", nil).location; loc == "" {
		t.Fatal("no redirect")
	} else if _, err := try(http.MethodPost, loc, []byte("x")); err == nil {
		t.Fatal("a hang-up fault answered")
	}
	s.SetDown(webhdfsfake.Namenode, 0, true)
	if _, err := try(http.MethodGet, url+"?op=GETFILESTATUS", nil); err == nil {
		t.Fatal("a namenode that is down answered")
	}
	s.SetDown(webhdfsfake.Namenode, 0, false)
	if a := write(t, http.MethodPost, url+"?op=APPEND", []byte("g\n")); a.status != 200 {
		t.Fatalf("APPEND after the faults = %d %s", a.status, a.body)
	}
	if got, _ := s.ReadFile("/f"); string(got) != "ab\ncdg\n" {
		t.Fatalf("file = %q", got)
	}
}

// With HttpFS set, the server the client called takes and serves the data.
func TestHttpFSMode(t *testing.T) {
	s := start(t, webhdfsfake.Options{HttpFS: true})
	url := s.URL() + "/webhdfs/v1/h/f"
	step1 := do(t, http.MethodPut, url+"?op=CREATE", nil)
	if step1.status != http.StatusTemporaryRedirect || !strings.HasPrefix(step1.location, url+"?") || !strings.Contains(step1.location, "data=true") {
		t.Fatalf("CREATE step one = %d %q; want 307 to the same URL with data=true", step1.status, step1.location)
	}
	if a := do(t, http.MethodPut, step1.location, []byte("x")); a.status != 400 || !strings.Contains(a.remote(t).Message, "application/octet-stream") {
		t.Fatalf("data without its content type = %d %s; want 400", a.status, a.body)
	}
	req, _ := http.NewRequest(http.MethodPut, step1.location, strings.NewReader("hello\n"))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("CREATE with data = %d", resp.StatusCode)
	}
	if a := do(t, http.MethodGet, url+"?op=OPEN", nil); a.status != 200 || string(a.body) != "hello\n" {
		t.Fatalf("OPEN = %d %q; want the data at once", a.status, a.body)
	}
	if s.Requests(webhdfsfake.Datanode, "CREATE")+s.Requests(webhdfsfake.Datanode, "OPEN") != 0 {
		t.Fatal("the datanode was used")
	}
}
