package webhdfsfake

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// pathPrefix starts the path of every WebHDFS URL.
const pathPrefix = "/webhdfs/v1"

// The operations the fake serves, as the op parameter names them.
const (
	opCreate        = "CREATE"
	opAppend        = "APPEND"
	opOpen          = "OPEN"
	opGetFileStatus = "GETFILESTATUS"
	opListStatus    = "LISTSTATUS"
	opMkdirs        = "MKDIRS"
	opRename        = "RENAME"
	opDelete        = "DELETE"
	opTruncate      = "TRUNCATE"
)

// opMethods is the HTTP method of each operation, as the reference lists
// them.
var opMethods = map[string]string{
	opOpen: http.MethodGet, opGetFileStatus: http.MethodGet, opListStatus: http.MethodGet,
	opCreate: http.MethodPut, opMkdirs: http.MethodPut, opRename: http.MethodPut,
	opAppend: http.MethodPost, opTruncate: http.MethodPost,
	opDelete: http.MethodDelete,
}

// opEnums names the Java enum of each method's operations, which a real
// server's message for a wrong op names.
var opEnums = map[string]string{
	http.MethodGet: "GetOpParam.Op", http.MethodPut: "PutOpParam.Op",
	http.MethodPost: "PostOpParam.Op", http.MethodDelete: "DeleteOpParam.Op",
}

// request is a decoded WebHDFS request.
type request struct {
	op    string
	path  string   // as sent, after the prefix
	parts []string // its components
	// params holds the query parameters by lower-case name (a server
	// matches names regardless of case), the first value of each.
	params map[string]string
}

// parseRequest decodes what every WebHDFS request carries: a path under
// /webhdfs/v1, a query, and an op the method serves. Parameters an op
// needs are decoded by the op, with the helpers below.
func parseRequest(r *http.Request) (*request, *RemoteException) {
	p, ok := strings.CutPrefix(r.URL.Path, pathPrefix)
	if !ok || (p != "" && !strings.HasPrefix(p, "/")) {
		return nil, illegalArgument("%q is not a WebHDFS path: it must start with %s/", r.URL.Path, pathPrefix)
	}
	if p == "" {
		p = "/"
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, illegalArgument("Invalid query %q: %v", r.URL.RawQuery, err)
	}
	req := &request{path: p, params: map[string]string{}}
	for k, vs := range q {
		k = strings.ToLower(k)
		if _, dup := req.params[k]; !dup && len(vs) > 0 {
			req.params[k] = vs[0]
		}
	}
	op, ok := req.params["op"]
	if !ok || op == "" {
		return nil, illegalArgument(`Invalid value for webhdfs parameter "op": null`)
	}
	req.op = strings.ToUpper(op)
	enum, ok := opEnums[r.Method]
	if !ok {
		return nil, illegalArgument("HTTP method %s is not supported", r.Method)
	}
	if m, known := opMethods[req.op]; !known || m != r.Method {
		return nil, illegalArgument(`Invalid value for webhdfs parameter "op": No enum constant org.apache.hadoop.hdfs.web.resources.%s.%s`, enum, req.op)
	}
	parts, rerr := splitPath(p)
	if rerr != nil {
		return nil, rerr
	}
	req.parts = parts
	return req, nil
}

// boolParam decodes a boolean parameter: absent is def, otherwise "true"
// or "false" in any case.
func (req *request) boolParam(name string, def bool) (bool, *RemoteException) {
	v, ok := req.params[name]
	if !ok || v == "" {
		return def, nil
	}
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, illegalArgument(`Invalid value for webhdfs parameter "%s": Failed to parse "%s" to Boolean.`, name, v)
}

// longParam decodes an integer parameter that must be at least min:
// absent is def (ok false).
func (req *request) longParam(name string, def, min int64) (n int64, ok bool, rerr *RemoteException) {
	v, present := req.params[name]
	if !present || v == "" {
		return def, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, illegalArgument(`Invalid value for webhdfs parameter "%s": For input string: "%s"`, name, v)
	}
	if n < min {
		return 0, false, illegalArgument(`Invalid value for webhdfs parameter "%s": %s = %d < %d`, name, name, n, min)
	}
	return n, true, nil
}

// permissionParam checks the octal permission parameter, 0 to 1777, and
// returns it as a status shows it.
func (req *request) permissionParam(def string) (string, *RemoteException) {
	v, ok := req.params["permission"]
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 8, 16)
	if err != nil || n > 0o1777 {
		return "", illegalArgument(`Invalid value for webhdfs parameter "permission": Invalid permission %q: want an octal number from 0 to 1777`, v)
	}
	return strconv.FormatUint(n, 8), nil
}

// checkNumbers decodes the numeric parameters the fake does not use
// (buffersize, blocksize, replication), so that a malformed one is
// refused as a real server refuses it.
func (req *request) checkNumbers() *RemoteException {
	for _, name := range []string{"buffersize", "blocksize", "replication"} {
		if _, _, rerr := req.longParam(name, 0, 1); rerr != nil {
			return rerr
		}
	}
	return nil
}
