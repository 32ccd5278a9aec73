// Package webhdfsfake is a fake of WebHDFS written from the Apache Hadoop
// WebHDFS REST reference (hadoop-hdfs/src/site/markdown/WebHDFS.md): a FAKE
// HDFS for tests and benchmarks, not HDFS. It serves, from an in-memory
// namespace, the operations a writer of files needs: CREATE and APPEND in
// two steps (the namenode answers 307 with a Location on the datanode, the
// data goes there), OPEN (redirected likewise), GETFILESTATUS, LISTSTATUS,
// MKDIRS, RENAME, DELETE and TRUNCATE, with the reference's JSON bodies and
// its RemoteException errors.
//
// Namenodes and the datanode listen on separate loopback ports, so a
// client really follows the redirect. With Options.HttpFS the namenodes
// serve the data themselves, as an HttpFS gateway does. With several namenodes one is active
// and the others answer every request with 403 StandbyException, as the
// standby of an HA pair does, until SetActive moves the role.
//
// Authentication is the reference's two forms without Kerberos: the
// user.name parameter (security off) and a delegation token in the
// delegation parameter (security on). Tests inject faults: answers with a
// status (500, 503) for the next requests of an op, a datanode that writes
// part of a body before failing, a node that is down.
//
// Deliberate differences from HDFS:
//   - One datanode, no blocks or replicas; data is a byte slice per file.
//   - No permissions beyond the configured user; no leases: an APPEND
//     never waits for another writer's lease.
//   - TRUNCATE completes at once; its boolean answer is what HDFS would
//     say (true only when the new length is on a block boundary), so a
//     client sees both answers.
//   - A body over Options.MaxBody is refused with 413, a bound of the fake.
package webhdfsfake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Namenodes is how many namenodes listen; default 1. The first is
	// active, the others standby.
	Namenodes int
	// User, when set, is the only user.name the servers accept: a request
	// without one is answered 401, with another 403 AccessControlException,
	// as HDFS does with anonymous access off.
	User string
	// Token, when set, turns security on: every request must carry it in
	// the delegation parameter (401 without, 403 InvalidToken with another),
	// and user.name is not asked for.
	Token string
	// MaxBody bounds the body of a CREATE or APPEND; default 64 MiB.
	MaxBody int64
	// BlockSize is the block size files report and TRUNCATE answers by;
	// default 128 MiB.
	BlockSize int64
	// Now is the clock of modification times; default time.Now.
	Now func() time.Time
	// HttpFS makes the namenodes answer as an HttpFS gateway does: the
	// data of CREATE, APPEND and OPEN goes through the server the client
	// called (a redirect to the same URL with data=true for the writes),
	// not through the datanode.
	HttpFS bool
}

// Node selects which server a fault or an outage hits.
type Node int

// The servers of a fake.
const (
	Namenode Node = iota
	Datanode
)

func (n Node) String() string {
	if n == Datanode {
		return "datanode"
	}
	return "namenode"
}

// Fault is a failure Inject arms for the next requests of an op.
type Fault struct {
	Node Node
	// Op is the operation it hits (CREATE, APPEND, ...); empty for any.
	Op string
	// Path, when set, limits it to requests whose HDFS path contains it.
	Path string
	// Status is the answer's HTTP status, with a RemoteException body
	// (RetriableException for 503, RuntimeException otherwise). 0 hangs
	// up without an answer.
	Status int
	// Times is how many requests it hits; default 1.
	Times int
	// Partial, for a datanode CREATE or APPEND, first writes half the body
	// to the file, as a datanode that fails mid-write leaves it.
	Partial bool
}

// FileInfo describes a file of the fake's namespace.
type FileInfo struct {
	Path    string
	Size    int64
	ModTime time.Time
}

// Server is a running fake: its namenodes, its datanode and the namespace
// they share. Its methods are safe for concurrent use.
type Server struct {
	opts Options

	mu      sync.Mutex
	ns      *namespace
	active  int
	nnDown  []bool
	dnDown  bool
	faults  []*Fault
	counts  map[string]int // node + " " + op -> requests
	servers []*http.Server // namenodes, then the datanode
	nnURLs  []string
	dnURL   string
}

// New starts a fake on loopback ports the OS picks.
func New(opts Options) (*Server, error) {
	if opts.Namenodes <= 0 {
		opts.Namenodes = 1
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 64 << 20
	}
	if opts.BlockSize <= 0 {
		opts.BlockSize = 128 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, ns: newNamespace(opts.Now), nnDown: make([]bool, opts.Namenodes), counts: map[string]int{}}
	for i := 0; i <= opts.Namenodes; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("listening: %w", err)
		}
		url := "http://" + ln.Addr().String()
		var h http.Handler
		if i < opts.Namenodes {
			s.nnURLs = append(s.nnURLs, url)
			h = s.namenode(i)
		} else {
			s.dnURL = url
			h = http.HandlerFunc(s.serveDatanode)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
		s.servers = append(s.servers, srv)
		go func() { _ = srv.Serve(ln) }() // returns ErrServerClosed on Close
	}
	return s, nil
}

// Close stops the servers and drops their connections.
func (s *Server) Close() {
	for _, srv := range s.servers {
		_ = srv.Shutdown(canceled()) // a canceled context closes at once
		_ = srv.Close()
	}
}

// canceled returns a context that is already done.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// URL is the base URL of the first namenode, "http://127.0.0.1:PORT".
func (s *Server) URL() string { return s.nnURLs[0] }

// NamenodeURLs are the base URLs of the namenodes, in order.
func (s *Server) NamenodeURLs() []string { return slices.Clone(s.nnURLs) }

// DatanodeURL is the base URL of the datanode, where namenodes redirect.
func (s *Server) DatanodeURL() string { return s.dnURL }

// SetActive makes namenode i the active one; the others become standby.
func (s *Server) SetActive(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active = i
}

// SetDown takes a server down (every connection is closed without an
// answer) or brings it back. i selects the namenode; it is ignored for the
// datanode.
func (s *Server) SetDown(n Node, i int, down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n == Datanode {
		s.dnDown = down
		return
	}
	s.nnDown[i] = down
}

// Inject arms f for the next matching requests.
func (s *Server) Inject(f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	f.Op = strings.ToUpper(f.Op)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// Requests is how many requests for op (CREATE, APPEND, ...) node has
// answered or refused, faults included.
func (s *Server) Requests(n Node, op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[n.String()+" "+strings.ToUpper(op)]
}

// receive decodes a request to node n and counts it by its op, which is
// "INVALID" when the request does not decode.
func (s *Server) receive(n Node, r *http.Request) (*request, *RemoteException, string) {
	req, rerr := parseRequest(r)
	op := "INVALID"
	if req != nil {
		op = req.op
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[n.String()+" "+op]++
	return req, rerr, op
}

// fault takes the first armed fault for op on path p at node, or nil.
// s.mu must be held.
func (s *Server) fault(n Node, op, p string) *Fault {
	for i, f := range s.faults {
		if f.Node == n && (f.Op == "" || f.Op == op) && strings.Contains(p, f.Path) {
			f.Times--
			if f.Times == 0 {
				s.faults = slices.Delete(s.faults, i, i+1)
			}
			return f
		}
	}
	return nil
}

// hangUp closes the request's connection without an answer.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil { // only HTTP/2 cannot hijack, and the fake serves HTTP/1.1
		injected(http.StatusInternalServerError, "hang-up").write(w)
		return
	}
	_ = conn.Close()
}

// authenticate checks the request's credentials against the options and
// returns the user it acts as.
func (s *Server) authenticate(req *request) (string, *RemoteException) {
	switch {
	case s.opts.Token != "":
		tok, ok := req.params["delegation"]
		if !ok || tok == "" {
			return "", securityException("Failed to obtain user group information: no delegation token, and Kerberos SPNEGO is not available")
		}
		if tok != s.opts.Token {
			return "", invalidToken("token (%s) can't be found in cache", abbreviate(tok))
		}
		if s.opts.User != "" {
			return s.opts.User, nil
		}
		return "token-user", nil
	case s.opts.User != "":
		u := req.params["user.name"]
		if u == "" {
			return "", securityException("Authentication required")
		}
		if u != s.opts.User {
			return "", accessControl("Permission denied: user=%s, access=WRITE, inode=\"%s\"", u, req.path)
		}
		return u, nil
	}
	if u := req.params["user.name"]; u != "" {
		return u, nil
	}
	return "dr.who", nil
}

// abbreviate shortens a secret for a message.
func abbreviate(s string) string {
	if len(s) <= 8 {
		return "..."
	}
	return s[:4] + "..."
}

// ReadFile returns a copy of the content of the file at path.
func (s *Server) ReadFile(path string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	parts, rerr := splitPath(path)
	if rerr != nil {
		return nil, rerr
	}
	n, rerr := s.ns.file(parts)
	if rerr != nil {
		return nil, rerr
	}
	return slices.Clone(n.data), nil
}

// WriteFile creates or replaces the file at path, and its parents, as a
// test's setup.
func (s *Server) WriteFile(path string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	parts, rerr := splitPath(path)
	if rerr != nil {
		return rerr
	}
	if rerr := s.ns.create(parts, slices.Clone(data), true, "hdfs", "644"); rerr != nil {
		return rerr
	}
	return nil
}

// Remove deletes the file or directory at path, with its content.
func (s *Server) Remove(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	parts, rerr := splitPath(path)
	if rerr != nil {
		return rerr
	}
	ok, rerr := s.ns.remove(parts, true)
	if rerr != nil {
		return rerr
	}
	if !ok {
		return errors.New("no such file or directory: " + path)
	}
	return nil
}

// Files lists the files under root, at any depth, sorted by path.
func (s *Server) Files(root string) []FileInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	parts, rerr := splitPath(root)
	if rerr != nil {
		return nil
	}
	n := s.ns.lookup(parts)
	if n == nil {
		return nil
	}
	var out []FileInfo
	var walk func(n *inode, p string)
	walk = func(n *inode, p string) {
		if !n.dir {
			out = append(out, FileInfo{Path: p, Size: int64(len(n.data)), ModTime: n.mtime})
			return
		}
		for name, c := range n.children {
			walk(c, strings.TrimSuffix(p, "/")+"/"+name)
		}
	}
	walk(n, "/"+strings.Join(parts, "/"))
	slices.SortFunc(out, func(a, b FileInfo) int { return strings.Compare(a.Path, b.Path) })
	return out
}
