package webhdfsfake

import (
	"cmp"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
)

// serveDatanode is the datanode's handler: step two of CREATE and APPEND,
// which carries the data, and of OPEN, which returns it.
func (s *Server) serveDatanode(w http.ResponseWriter, r *http.Request) {
	req, rerr, op := s.receive(Datanode, r)
	s.mu.Lock()
	down := s.dnDown
	var f *Fault
	if !down && rerr == nil {
		f = s.fault(Datanode, op, req.path)
	}
	s.mu.Unlock()
	if down {
		hangUp(w)
		return
	}
	if rerr == nil {
		rerr = checkDatanodeRequest(req)
	}
	if rerr != nil {
		rerr.write(w)
		return
	}
	s.serveData(w, r, req, f)
}

// serveData applies an authenticated CREATE, APPEND or OPEN that carries
// or returns data, f being the fault that hit it, if any.
func (s *Server) serveData(w http.ResponseWriter, r *http.Request, req *request, f *Fault) {
	op := req.op
	var body []byte
	if req.op != opOpen {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBody))
		if _, over := errors.AsType[*http.MaxBytesError](err); over {
			tooLarge(s.opts.MaxBody).write(w)
			return
		}
		if err != nil { // the client went away mid-body: nothing is written
			return
		}
	}
	if f != nil && !f.Partial {
		answerFault(w, f, op)
		return
	}
	if f != nil && len(body) > 0 {
		body = body[:len(body)/2]
	}
	s.mu.Lock()
	data, rerr := s.datanodeOp(req, body)
	s.mu.Unlock()
	switch {
	case f != nil:
		answerFault(w, f, op)
	case rerr != nil:
		rerr.write(w)
	case req.op == opCreate:
		w.Header().Set("Location", "hdfs://"+cmp.Or(req.params["namenoderpcaddress"], r.Host)+req.path)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusCreated)
	case req.op == opAppend:
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(data) // the client hung up; nothing to do
	}
}

// checkDatanodeRequest refuses what a datanode does not serve: ops other
// than CREATE, APPEND and OPEN, and requests that did not come through a
// namenode's redirect (no namenoderpcaddress).
func checkDatanodeRequest(req *request) *RemoteException {
	switch req.op {
	case opCreate, opAppend, opOpen:
	default:
		return illegalArgument("Invalid operation %s", req.op)
	}
	if req.params["namenoderpcaddress"] == "" {
		return illegalArgument("namenoderpcaddress is not specified.")
	}
	return req.checkNumbers()
}

// datanodeOp applies a datanode operation after authenticating it and
// returns the data OPEN reads. s.mu must be held.
func (s *Server) datanodeOp(req *request, body []byte) ([]byte, *RemoteException) {
	user, rerr := s.authenticate(req)
	if rerr != nil {
		return nil, rerr
	}
	switch req.op {
	case opCreate:
		overwrite, rerr := req.boolParam("overwrite", false)
		if rerr != nil {
			return nil, rerr
		}
		perm, rerr := req.permissionParam("644")
		if rerr != nil {
			return nil, rerr
		}
		return nil, s.ns.create(req.parts, body, overwrite, user, perm)
	case opAppend:
		n, rerr := s.ns.file(req.parts)
		if rerr != nil {
			return nil, rerr
		}
		if len(n.data)+len(body) > cap(n.data) {
			// Doubled, not append's 1.25 of large slices: a benchmark
			// appending to a file of many MiB measures the client, not
			// the fake copying the file.
			grown := make([]byte, len(n.data), 2*(len(n.data)+len(body)))
			copy(grown, n.data)
			n.data = grown
		}
		n.data = append(n.data, body...)
		n.mtime = s.opts.Now()
		return nil, nil
	}
	n, rerr := s.ns.file(req.parts)
	if rerr != nil {
		return nil, rerr
	}
	offset, _, rerr := req.longParam("offset", 0, 0)
	if rerr != nil {
		return nil, rerr
	}
	length, bounded, rerr := req.longParam("length", 0, 0)
	if rerr != nil {
		return nil, rerr
	}
	size := int64(len(n.data))
	if offset > size {
		return nil, ioException("Offset %d is beyond the end of %s (length %d)", offset, req.path, size)
	}
	end := size
	if bounded && length < end-offset {
		end = offset + length
	}
	return slices.Clone(n.data[offset:end]), nil
}
