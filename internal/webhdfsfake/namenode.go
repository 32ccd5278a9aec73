package webhdfsfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// fileStatus is the reference's FileStatus JSON object.
type fileStatus struct {
	AccessTime       int64  `json:"accessTime"`
	BlockSize        int64  `json:"blockSize"`
	ChildrenNum      int    `json:"childrenNum"`
	Group            string `json:"group"`
	Length           int64  `json:"length"`
	ModificationTime int64  `json:"modificationTime"`
	Owner            string `json:"owner"`
	PathSuffix       string `json:"pathSuffix"`
	Permission       string `json:"permission"`
	Replication      int    `json:"replication"`
	Type             string `json:"type"`
}

// status describes n, pathSuffix being its name in a listing and empty
// for GETFILESTATUS.
func (s *Server) status(n *inode, pathSuffix string) fileStatus {
	st := fileStatus{
		Group: "supergroup", ModificationTime: n.mtime.UnixMilli(), Owner: n.owner,
		PathSuffix: pathSuffix, Permission: n.perm, Type: "DIRECTORY", ChildrenNum: len(n.children),
	}
	if !n.dir {
		st.Type, st.Length, st.BlockSize, st.Replication = "FILE", int64(len(n.data)), s.opts.BlockSize, 3
		st.AccessTime = st.ModificationTime
	}
	return st
}

// namenode is the handler of namenode i.
func (s *Server) namenode(i int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, rerr, op := s.receive(Namenode, r)
		s.mu.Lock()
		down, active := s.nnDown[i], s.active == i
		var f *Fault
		if !down && rerr == nil && active {
			f = s.fault(Namenode, op, req.path)
		}
		s.mu.Unlock()
		switch {
		case down:
			hangUp(w)
		case rerr != nil:
			rerr.write(w)
		case !active:
			standby(op).write(w)
		case s.opts.HttpFS && s.serveHttpFSData(w, r, req, f):
		case f != nil:
			answerFault(w, f, op)
		default:
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20)) // a namenode takes no data
			s.serveNamenodeOp(w, r, req)
		}
	})
}

// serveHttpFSData serves the data steps as HttpFS does, on the server the
// client called: OPEN answers the data; CREATE and APPEND without data=true
// redirect to the same URL with it, and with it take the data, which must
// come as application/octet-stream. It reports whether req was one of
// them.
func (s *Server) serveHttpFSData(w http.ResponseWriter, r *http.Request, req *request, f *Fault) bool {
	switch req.op {
	case opOpen:
	case opCreate, opAppend:
		data, rerr := req.boolParam("data", false)
		if rerr == nil && !data && f != nil {
			answerFault(w, f, req.op)
			return true
		}
		if rerr == nil && !data {
			q := r.URL.Query()
			q.Set("data", "true")
			u := url.URL{Path: pathPrefix + req.path, RawQuery: q.Encode()}
			w.Header().Set("Location", "http://"+r.Host+u.EscapedPath()+"?"+u.RawQuery)
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusTemporaryRedirect)
			return true
		}
		if rerr == nil && r.Header.Get("Content-Type") != "application/octet-stream" {
			rerr = illegalArgument("Data upload requests must have content-type set to 'application/octet-stream'")
		}
		if rerr != nil {
			rerr.write(w)
			return true
		}
	default:
		return false
	}
	if rerr := req.checkNumbers(); rerr != nil {
		rerr.write(w)
		return true
	}
	s.serveData(w, r, req, f)
	return true
}

// answerFault answers a request an injected fault hit.
func answerFault(w http.ResponseWriter, f *Fault, op string) {
	if f.Status == 0 {
		hangUp(w)
		return
	}
	injected(f.Status, op).write(w)
}

// serveNamenodeOp runs an authenticated namenode operation.
func (s *Server) serveNamenodeOp(w http.ResponseWriter, r *http.Request, req *request) {
	s.mu.Lock()
	user, rerr := s.authenticate(req)
	var answer any
	if rerr == nil {
		answer, rerr = s.namenodeOp(r, req, user)
	}
	s.mu.Unlock()
	switch a := answer.(type) {
	case nil:
		if rerr != nil {
			rerr.write(w)
			return
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	case redirect:
		if a.noRedirect {
			writeJSON(w, map[string]string{"Location": a.location})
			return
		}
		w.Header().Set("Location", a.location)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusTemporaryRedirect)
	default:
		writeJSON(w, a)
	}
}

// redirect is a namenode's answer sending the client to the datanode.
type redirect struct {
	location   string
	noRedirect bool
}

// namenodeOp applies req and returns its JSON answer, a redirect, or nil
// for an empty 200. s.mu must be held.
func (s *Server) namenodeOp(r *http.Request, req *request, user string) (any, *RemoteException) {
	if rerr := req.checkNumbers(); rerr != nil {
		return nil, rerr
	}
	switch req.op {
	case opCreate, opAppend, opOpen:
		return s.redirectToDatanode(r, req)
	case opGetFileStatus:
		n := s.ns.lookup(req.parts)
		if n == nil {
			return nil, fileNotFound("File does not exist: %s", req.path)
		}
		return map[string]fileStatus{"FileStatus": s.status(n, "")}, nil
	case opListStatus:
		n := s.ns.lookup(req.parts)
		if n == nil {
			return nil, fileNotFound("File %s does not exist.", req.path)
		}
		list := []fileStatus{}
		if !n.dir {
			list = append(list, s.status(n, ""))
		}
		for _, name := range sortedNames(n.children) {
			list = append(list, s.status(n.children[name], name))
		}
		return map[string]map[string][]fileStatus{"FileStatuses": {"FileStatus": list}}, nil
	case opMkdirs:
		perm, rerr := req.permissionParam("755")
		if rerr != nil {
			return nil, rerr
		}
		if _, rerr := s.ns.mkdirs(req.parts, user, perm); rerr != nil {
			return nil, rerr
		}
		return boolean(true), nil
	case opRename:
		dst, ok := req.params["destination"]
		if !ok || dst == "" {
			return nil, illegalArgument(`Invalid value for webhdfs parameter "destination": null`)
		}
		dparts, rerr := splitPath(dst)
		if rerr != nil {
			return nil, rerr
		}
		return boolean(s.ns.rename(req.parts, dparts)), nil
	case opDelete:
		recursive, rerr := req.boolParam("recursive", false)
		if rerr != nil {
			return nil, rerr
		}
		ok, rerr := s.ns.remove(req.parts, recursive)
		if rerr != nil {
			return nil, rerr
		}
		return boolean(ok), nil
	case opTruncate:
		return s.truncate(req)
	}
	return nil, illegalArgument("op %s is not served by the fake", req.op) // opMethods and this switch list the same ops
}

// truncate applies TRUNCATE. HDFS answers true when the new length is on
// a block boundary (nothing to recover) and false when the last block is
// being adjusted in the background; the fake's data is final at once.
func (s *Server) truncate(req *request) (any, *RemoteException) {
	newLen, ok, rerr := req.longParam("newlength", 0, 0)
	if rerr != nil {
		return nil, rerr
	}
	if !ok {
		return nil, illegalArgument(`Invalid value for webhdfs parameter "newlength": null`)
	}
	n, rerr := s.ns.file(req.parts)
	if rerr != nil {
		return nil, rerr
	}
	size := int64(len(n.data))
	if newLen > size {
		return nil, hadoopIllegalArgument("Cannot truncate to a larger file size. Current size: %d, truncate size: %d.", size, newLen)
	}
	if newLen == size {
		return boolean(true), nil
	}
	n.data = n.data[:newLen:newLen]
	n.mtime = s.opts.Now()
	return boolean(newLen%s.opts.BlockSize == 0), nil
}

// redirectToDatanode answers step one of CREATE, APPEND and OPEN: the
// datanode URL for the same path and parameters, with the namenode's RPC
// address added as a real namenode adds it. Like a real namenode it does
// not look at the file: CREATE over an existing file or APPEND to a
// missing one fails at the datanode.
func (s *Server) redirectToDatanode(r *http.Request, req *request) (any, *RemoteException) {
	noRedirect, rerr := req.boolParam("noredirect", false)
	if rerr != nil {
		return nil, rerr
	}
	switch req.op {
	case opCreate:
		if _, rerr := req.boolParam("overwrite", false); rerr != nil {
			return nil, rerr
		}
		if _, rerr := req.permissionParam("644"); rerr != nil {
			return nil, rerr
		}
	case opOpen:
		for _, name := range []string{"offset", "length"} {
			if _, _, rerr := req.longParam(name, 0, 0); rerr != nil {
				return nil, rerr
			}
		}
	}
	q := r.URL.Query()
	for k := range q {
		if strings.EqualFold(k, "noredirect") {
			delete(q, k)
		}
	}
	q.Set("namenoderpcaddress", r.Host)
	u := url.URL{Path: pathPrefix + req.path, RawQuery: q.Encode()}
	return redirect{location: s.dnURL + u.EscapedPath() + "?" + u.RawQuery, noRedirect: noRedirect}, nil
}

// boolean is the reference's boolean JSON object.
func boolean(b bool) map[string]bool { return map[string]bool{"boolean": b} }

// writeJSON answers 200 with v.
func writeJSON(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		ioException("encoding the answer: %v", err).write(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // the client hung up; nothing to do
}

// sortedNames lists a directory's entries in name order, as HDFS lists
// them.
func sortedNames(children map[string]*inode) []string {
	names := make([]string, 0, len(children))
	for name := range children {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
