package hdfs

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqgate/mqgate/internal/webhdfsfake"
	"github.com/mqgate/mqgate/sdk"
)

// inProgress returns the paths of the in-progress files under root.
func inProgress(fake *webhdfsfake.Server, root string) []string {
	var out []string
	for _, f := range fake.Files(root) {
		if _, ok := finalOf(path.Base(f.Path)); ok && !strings.Contains(f.Path, "/"+stateDirName+"/") {
			out = append(out, f.Path)
		}
	}
	return out
}

// A gateway dies mid-file, its last append torn; a second instance of the
// same sink, on another gateway, finds the file through its marker once
// nothing touched it for recover_after, cuts the torn tail and gives it
// its final name. Every record the dead writer acknowledged is in it.
func TestRecoversFileOfDeadWriter(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			c := newClock()
			fake := startFake(t, webhdfsfake.Options{Now: c.Now, BlockSize: 1 << 20})
			dead := newSink(t, c, testConfig(t, fake, "rec", "host-a-1", f.over))
			var acked []string
			for i := range 6 {
				r := record("t", i, c.Now())
				writeOK(t, dead, []sdk.Record{r})
				acked = append(acked, string(r.Value))
			}
			// The gateway is killed: no Close. Its last append was torn
			// by a datanode failing mid-request.
			files := inProgress(fake, "/data")
			if len(files) != 1 {
				t.Fatalf("in-progress files %v; want one", files)
			}
			tmp := files[0]
			whole, _ := fake.ReadFile(tmp)
			torn := []byte("torn-valu") // a line without its newline
			if f.name == "avro" {
				torn = []byte{0x02, 0x80, 0x01, 'x', 'y'} // one record of 64 bytes, 2 of them written
			}
			if err := fake.WriteFile(tmp, append(whole, torn...)); err != nil {
				t.Fatal(err)
			}

			c.Advance(time.Minute)
			heir := newSink(t, c, testConfig(t, fake, "rec", "host-b-2", f.over))
			writeOK(t, heir, []sdk.Record{record("t", 100, c.Now())}) // its own file, open
			n, err := heir.recoverOrphans(t.Context())
			if err != nil || n != 0 {
				t.Fatalf("recovery a minute after the last write: %d files, %v; want none: the writer may be alive", n, err)
			}
			if got := inProgress(fake, "/data"); len(got) != 2 {
				t.Fatalf("in-progress files %v; want both still", got)
			}

			c.Advance(defaultRecoverAfter)
			n, err = heir.recoverOrphans(t.Context())
			if err != nil || n != 1 {
				t.Fatalf("recovery after recover_after: %d files, %v; want 1", n, err)
			}
			final := path.Join(path.Dir(tmp), strings.TrimSuffix(strings.TrimPrefix(path.Base(tmp), "_"), inProgressSuffix))
			data, err := fake.ReadFile(final)
			if err != nil {
				t.Fatalf("the recovered file is not at %s: %v (files %v)", final, err, fileNames(fake, "/data"))
			}
			if len(data) != len(whole) {
				t.Errorf("recovered file has %d bytes; want the %d acknowledged ones", len(data), len(whole))
			}
			if got := values(decodeFile(t, final, data)); !slices.Equal(got, acked) {
				t.Errorf("recovered records %q; want %q", got, acked)
			}
			if got := inProgress(fake, "/data"); len(got) != 1 || !strings.Contains(got[0], "host-b-2") {
				t.Errorf("in-progress files %v; want only the live writer's", got)
			}
			if m := markers(fake); len(m) != 1 || !strings.Contains(m[0], "host-b-2") {
				t.Errorf("markers %v; want only the live writer's", m)
			}
			if err := heir.Close(); err != nil {
				t.Fatal(err)
			}
			if got := values(readStore(t, fake, "/data")); len(got) != len(acked)+1 {
				t.Errorf("store holds %q; want the dead writer's records and the heir's", got)
			}
		})
	}
}

// Recovery deletes what holds no whole record and markers whose file is
// gone, and leaves alone what is not its own.
func TestRecoveryCleansUp(t *testing.T) {
	c := newClock()
	fake := startFake(t, webhdfsfake.Options{Now: c.Now})
	const markerDir = "/data/" + stateDirName + "/clean/"
	for p, content := range map[string]string{
		markerDir + "_part-clean-dead-20261206000000-000001.avro.inprogress": "/data/x",
		"/data/x/_part-clean-dead-20261206000000-000001.avro.inprogress":     "Obj\x01\x04", // a header cut short
		markerDir + "_part-clean-dead-20261206000000-000002.txt.inprogress":  "/data/x",
		"/data/x/_part-clean-dead-20261206000000-000002.txt.inprogress":      "no newline yet",
		markerDir + "_part-clean-dead-20261206000000-000003.txt.inprogress":  "/data/gone", // finalised; marker left
		markerDir + "_part-clean-dead-20261206000000-000004.txt.inprogress":  "not a directory",
		markerDir + "notes.txt": "someone else's",
		"/data/x/_part-other-dead-20261206000000-000001.txt.inprogress": "another sink's\n",
	} {
		if err := fake.WriteFile(p, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(defaultRecoverAfter)
	s := newSink(t, c, testConfig(t, fake, "clean", "gw", map[string]any{"path": "/data/${topic}"}))
	n, err := s.recoverOrphans(t.Context())
	if err != nil || n != 4 {
		t.Fatalf("recovered %d, %v; want 4", n, err)
	}
	var left []string
	for _, f := range fake.Files("/data") {
		left = append(left, f.Path)
	}
	want := []string{markerDir + "notes.txt", "/data/x/_part-other-dead-20261206000000-000001.txt.inprogress"}
	if !slices.Equal(left, want) {
		t.Fatalf("left %v; want %v", left, want)
	}
}

// A request that fails (a datanode answering 500 after writing part of
// the body, a datanode down) fails its records with code 17 and nothing
// of them stays: the file is cut back to what earlier requests wrote and
// closed; the next records go to a new file.
func TestFailedWritesAreNotAcknowledged(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			c := newClock()
			fake := startFake(t, webhdfsfake.Options{Now: c.Now, BlockSize: 1 << 20})
			s := newSink(t, c, testConfig(t, fake, "fail", "gw", f.over))
			batch := func(from int) []sdk.Record {
				var rs []sdk.Record
				for i := from; i < from+3; i++ {
					rs = append(rs, record("t", i, c.Now()))
				}
				return rs
			}
			failed := func(what string, rs []sdk.Record) {
				t.Helper()
				for i, err := range write(t, s, rs) {
					if sdk.CodeOf(err) != sdk.CodeUnavailable || !sdk.CodeOf(err).Retriable() {
						t.Fatalf("%s: record %d: %v (code %d); want code 17", what, i, err, sdk.CodeOf(err))
					}
				}
			}
			writeOK(t, s, batch(0))
			fake.Inject(webhdfsfake.Fault{Node: webhdfsfake.Datanode, Op: "APPEND", Status: 500, Partial: true})
			failed("a torn APPEND", batch(10))
			if got := inProgress(fake, "/data"); len(got) != 0 {
				t.Fatalf("in-progress files after a failed append: %v; want the file closed", got)
			}
			fake.Inject(webhdfsfake.Fault{Node: webhdfsfake.Datanode, Op: "CREATE", Path: "/g1/", Status: 500, Partial: true})
			failed("a torn CREATE", batch(20))
			fake.Inject(webhdfsfake.Fault{Node: webhdfsfake.Datanode, Op: "CREATE", Path: stateDirName, Status: 500, Partial: true})
			failed("a torn CREATE of a marker", batch(25))
			fake.SetDown(webhdfsfake.Datanode, 0, true)
			failed("a datanode down", batch(30))
			fake.SetDown(webhdfsfake.Datanode, 0, false)
			writeOK(t, s, batch(40))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			want := []string{"value-0", "value-1", "value-2", "value-40", "value-41", "value-42"}
			if got := values(readStore(t, fake, "/data")); !slices.Equal(got, want) {
				t.Fatalf("store holds %q; want %q", got, want)
			}
			if got := inProgress(fake, "/data"); len(got) != 0 {
				t.Fatalf("in-progress files left: %v", got)
			}
			if m := markers(fake); len(m) != 0 {
				t.Fatalf("markers left: %v", m)
			}
		})
	}
}

// With two namenodes, the standby's StandbyException or a namenode that
// is down sends the sink to the other; a write succeeds either way.
func TestNamenodeFailover(t *testing.T) {
	c := newClock()
	fake := startFake(t, webhdfsfake.Options{Now: c.Now, Namenodes: 2})
	s := newSink(t, c, testConfig(t, fake, "ha", "gw", nil))
	i := 0
	next := func() []sdk.Record { i++; return []sdk.Record{record("t", i, c.Now())} }

	fake.SetActive(1)
	writeOK(t, s, next())
	standby := fake.Requests(webhdfsfake.Namenode, "GETFILESTATUS")
	writeOK(t, s, next())
	if got := fake.Requests(webhdfsfake.Namenode, "APPEND"); got != 1 {
		t.Fatalf("%d APPEND requests at the namenodes; want 1: the sink sticks to the one that answered", got)
	}
	fake.SetActive(0)
	writeOK(t, s, next())
	fake.SetActive(1)
	fake.SetDown(webhdfsfake.Namenode, 0, true)
	writeOK(t, s, next())
	fake.SetDown(webhdfsfake.Namenode, 1, true)
	for _, err := range write(t, s, next()) {
		if sdk.CodeOf(err) != sdk.CodeUnavailable || !strings.Contains(err.Error(), "no namenode answered") {
			t.Fatalf("with both namenodes down: %v; want code 17 saying no namenode answered", err)
		}
	}
	fake.SetDown(webhdfsfake.Namenode, 1, false)
	writeOK(t, s, next())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := values(readStore(t, fake, "/data")); len(got) != 5 {
		t.Fatalf("store holds %q; want the 5 acknowledged records", got)
	}
	if standby < 2 {
		t.Fatalf("%d GETFILESTATUS requests for the first file; want the standby's and the active's", standby)
	}
}

// The sink authenticates with user.name or a delegation token; a cluster
// refusing them fails the records with a lasting code 17.
func TestCredentials(t *testing.T) {
	for _, tc := range []struct {
		name string
		fake webhdfsfake.Options
		over map[string]any
		ok   bool
	}{
		{"user", webhdfsfake.Options{User: "etl"}, map[string]any{"user": "etl"}, true},
		{"wrong user", webhdfsfake.Options{User: "etl"}, map[string]any{"user": "bob"}, false},
		{"no user", webhdfsfake.Options{User: "etl"}, nil, false},
		{"token", webhdfsfake.Options{Token: "tok-0123456789"}, map[string]any{"delegation_token": "tok-0123456789"}, true},
		{"wrong token", webhdfsfake.Options{Token: "tok-0123456789"}, map[string]any{"delegation_token": "tok-9876543210"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			tc.fake.Now = c.Now
			fake := startFake(t, tc.fake)
			s := newSink(t, c, testConfig(t, fake, "auth", "gw", tc.over))
			err := write(t, s, []sdk.Record{record("t", 0, c.Now())})[0]
			switch {
			case tc.ok && err != nil:
				t.Fatalf("Write: %v", err)
			case !tc.ok && (sdk.CodeOf(err) != sdk.CodeUnavailable || !errors.Is(err, sdk.ErrLasting)):
				t.Fatalf("Write: %v (code %d); want a lasting code 17", err, sdk.CodeOf(err))
			case !tc.ok && strings.Contains(fmt.Sprint(err), "0123456789"):
				t.Fatalf("the error %q shows the token", err)
			}
			// A request that fails in transport names its URL, but not
			// the token in its query.
			fake.SetDown(webhdfsfake.Namenode, 0, true)
			err = write(t, s, []sdk.Record{record("t", 1, c.Now())})[0]
			if err == nil || strings.Contains(err.Error(), "0123456789") || strings.Contains(err.Error(), "9876543210") {
				t.Fatalf("with the namenode down: %v; want an error without the token", err)
			}
		})
	}
}

// waitFor polls cond until it holds, failing t after waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %s for %s", waitLimit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A sink started the way the gateway starts it, with its own loop and
// the real clock, recovers the files of dead writers right away.
func TestStartRecoversOrphans(t *testing.T) {
	hourAgo := func() time.Time { return time.Now().Add(-time.Hour) }
	fake := startFake(t, webhdfsfake.Options{Now: hourAgo})
	const tmp = "/data/t/_part-boot-dead-20261206000000-000001.txt.inprogress"
	for p, content := range map[string]string{
		"/data/" + stateDirName + "/boot/" + path.Base(tmp): "/data/t",
		tmp: "one\ntwo\nthr",
	} {
		if err := fake.WriteFile(p, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	s := New(nil)
	if err := s.Configure(t.Context(), testConfig(t, fake, "boot", "gw", map[string]any{"path": "/data/${topic}"})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	const final = "/data/t/part-boot-dead-20261206000000-000001.txt"
	waitFor(t, "the orphan's recovery", func() bool {
		data, err := fake.ReadFile(final)
		return err == nil && string(data) == "one\ntwo\n"
	})
	waitFor(t, "its marker's deletion", func() bool { return len(markers(fake)) == 0 })
}

// Through HttpFS, which serves the data itself, the sink writes, rolls
// and recovers alike.
func TestHttpFS(t *testing.T) {
	c := newClock()
	fake := startFake(t, webhdfsfake.Options{Now: c.Now, HttpFS: true})
	over := map[string]any{"path": "/data/${topic}", "format": "avro"}
	dead := newSink(t, c, testConfig(t, fake, "httpfs", "gw-1", over))
	writeOK(t, dead, []sdk.Record{record("t", 0, c.Now())})
	writeOK(t, dead, []sdk.Record{record("t", 1, c.Now())})
	c.Advance(defaultRecoverAfter)
	heir := newSink(t, c, testConfig(t, fake, "httpfs", "gw-2", over))
	if n, err := heir.recoverOrphans(t.Context()); n != 1 || err != nil {
		t.Fatalf("recovered %d, %v; want 1", n, err)
	}
	writeOK(t, heir, []sdk.Record{record("t", 2, c.Now())})
	if err := heir.Close(); err != nil {
		t.Fatal(err)
	}
	if got := values(readStore(t, fake, "/data")); !slices.Equal(got, []string{"value-0", "value-1", "value-2"}) {
		t.Fatalf("store holds %q", got)
	}
	if n := fake.Requests(webhdfsfake.Datanode, "APPEND") + fake.Requests(webhdfsfake.Datanode, "OPEN"); n != 0 {
		t.Fatalf("%d requests reached the datanode; HttpFS serves the data itself", n)
	}
	if got := inProgress(fake, "/data"); len(got) != 0 {
		t.Fatalf("in-progress files left: %v", got)
	}
}
