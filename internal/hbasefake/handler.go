package hbasefake

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// crlf ends the gateway's plain-text bodies.
const crlf = "\r\n"

// reply is a status and a plain-text body, or a body of another type.
type reply struct {
	status      int
	body        []byte
	contentType string
}

func text(status int, msg string) reply {
	return reply{status: status, body: []byte(msg + crlf), contentType: "text/plain"}
}

// The gateway's answers, worded as it words them.
var (
	replyOK         = reply{status: http.StatusOK}
	replyNotFound   = text(http.StatusNotFound, "Not found")
	replyBadRequest = text(http.StatusBadRequest, "Bad request")
)

func tableNotFound(name string) reply {
	return text(http.StatusNotFound, "Not found"+crlf+
		"org.apache.hadoop.hbase.TableNotFoundException: "+name)
}

func noSuchFamily(table, family string) reply {
	return text(http.StatusNotFound, "Not found"+crlf+
		"org.apache.hadoop.hbase.regionserver.NoSuchColumnFamilyException: Column family "+
		family+" does not exist in region of table "+table)
}

func badRequest(detail string) reply {
	return text(http.StatusBadRequest, "Bad request: "+detail)
}

// ServeHTTP answers one request of the REST API the fake implements.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := s.answer(w, r)
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.EscapedPath(),
		Query: r.URL.RawQuery, ContentType: r.Header.Get("Content-Type"), Status: rep.status})
	s.mu.Unlock()
	if rep.contentType != "" {
		w.Header().Set("Content-Type", rep.contentType)
	}
	if rep.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="hbase-rest"`)
	}
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body) // a client gone away is not the fake's concern
}

// answer decides the reply to r.
func (s *Server) answer(w http.ResponseWriter, r *http.Request) reply {
	if s.cfg.Username != "" && !s.authorized(r) {
		return text(http.StatusUnauthorized, "Unauthorized")
	}
	s.mu.Lock()
	if len(s.failures) > 0 {
		status := s.failures[0]
		s.failures = s.failures[1:]
		s.mu.Unlock()
		return text(status, http.StatusText(status))
	}
	s.mu.Unlock()

	tableName, rest, err := splitPath(r.URL.EscapedPath())
	if err != nil {
		return replyBadRequest
	}
	var body []byte
	if r.Method == http.MethodPut || r.Method == http.MethodPost {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
		if errors.As(err, new(*http.MaxBytesError)) {
			return text(http.StatusRequestEntityTooLarge,
				fmt.Sprintf("Request body over %d bytes", s.cfg.MaxBodyBytes))
		}
		if err != nil {
			return replyBadRequest
		}
	}
	if rest == "schema" {
		return s.schema(r.Method, tableName, body)
	}
	switch r.Method {
	case http.MethodPut, http.MethodPost:
		return s.update(r, tableName, rest, body)
	case http.MethodGet:
		return s.get(r, tableName, rest)
	case http.MethodDelete:
		return s.delete(tableName, rest)
	}
	return text(http.StatusMethodNotAllowed, "Method not allowed")
}

// authorized checks r's basic authentication against the configured
// user.
func (s *Server) authorized(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	return ok && subtle.ConstantTimeCompare([]byte(u), []byte(s.cfg.Username)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(s.cfg.Password)) == 1
}

// splitPath splits "/TABLE/REST" into the decoded table name and the
// still escaped rest.
func splitPath(escaped string) (tableName, rest string, err error) {
	t, rest, _ := strings.Cut(strings.TrimPrefix(escaped, "/"), "/")
	tableName, err = url.PathUnescape(t)
	if err != nil || tableName == "" {
		return "", "", errRowSpec
	}
	return tableName, rest, nil
}

// update is a PUT or POST of a CellSet to a row resource: a multi-row
// put, or a check-and-put with ?check=put.
func (s *Server) update(r *http.Request, tableName, rest string, body []byte) reply {
	cs, rep := decodeBody(r.Header.Get("Content-Type"), body)
	if rep.status != 0 {
		return rep
	}
	spec, err := parseRowSpec(rest)
	if err != nil {
		return replyBadRequest
	}
	check := r.URL.Query().Get("check")
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.store.tables[tableName]
	if t == nil {
		return tableNotFound(tableName)
	}
	switch {
	case strings.EqualFold(check, "put"):
		return s.checkAndPut(t, tableName, spec, cs)
	case check != "":
		return badRequest("the fake does not implement check=" + check)
	}
	// Every row is checked before any is written, so that a refused body
	// changes nothing.
	type write struct {
		key string
		c   cellModel
	}
	var writes []write
	for _, row := range cs.rows {
		key := row.key
		if key == nil {
			key = []byte(spec.row)
		}
		if len(key) == 0 {
			return badRequest("Row key not specified.")
		}
		for _, c := range row.cells {
			if rep := s.checkColumn(t, tableName, c.column); rep.status != 0 {
				return rep
			}
			writes = append(writes, write{string(key), c})
		}
	}
	for _, w := range writes {
		t.put(w.key, string(w.c.column), s.cellTime(w.c), w.c.value)
	}
	return replyOK
}

// checkColumn refuses a cell's column that is missing, has no colon, or
// names a family the table lacks.
func (s *Server) checkColumn(t *table, tableName string, column []byte) reply {
	if column == nil {
		return badRequest("Column found to be null.")
	}
	fam, _, ok := splitColumn(string(column))
	if !ok {
		return replyBadRequest
	}
	if _, ok := t.families[fam]; !ok {
		return noSuchFamily(tableName, fam)
	}
	return reply{}
}

// cellTime is a cell's own timestamp, or the server clock's. s.mu must be
// held.
func (s *Server) cellTime(c cellModel) int64 {
	if c.hasTS {
		return c.ts
	}
	return s.now()
}

// checkAndPut puts the cells of the body's single row, all but the last,
// if the check column (the last cell's) holds the last cell's value: the
// newest version equals it, or, for an empty value, there is none or it
// is empty. s.mu must be held.
func (s *Server) checkAndPut(t *table, tableName string, spec rowSpec, cs cellSet) reply {
	if len(cs.rows) != 1 {
		return badRequest("Number of rows specified is not 1.")
	}
	row := cs.rows[0]
	key := row.key
	if key == nil {
		key = []byte(spec.row)
	}
	if len(key) == 0 || len(row.cells) <= 1 {
		return badRequest("Either row key is null or no data found for columns specified.")
	}
	check := row.cells[len(row.cells)-1]
	_, qual, ok := splitColumn(string(check.column))
	if !ok || qual == "" {
		return badRequest("Column incorrectly specified.")
	}
	puts := row.cells[:len(row.cells)-1]
	found := false
	for _, c := range puts {
		if rep := s.checkColumn(t, tableName, c.column); rep.status != 0 {
			return rep
		}
		found = found || bytes.Equal(c.column, check.column)
	}
	if !found {
		return badRequest("The column to put and check do not match.")
	}
	var current []byte
	if cells := t.read(string(key), []string{string(check.column)}, 1); len(cells) > 0 {
		current = cells[0].Value
	}
	if !bytes.Equal(current, check.value) { // nil and empty are equal: "absent or empty"
		return text(http.StatusNotModified, "Value not Modified")
	}
	for _, c := range puts {
		t.put(string(key), string(c.column), s.cellTime(c), c.value)
	}
	return replyOK
}

// decodeBody decodes a CellSet body after its Content-Type.
func decodeBody(contentType string, body []byte) (cellSet, reply) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return cellSet{}, text(http.StatusUnsupportedMediaType, "Unsupported media type")
	}
	var cs cellSet
	switch mt {
	case mimeProtobuf, mimeProtobufIETF:
		cs, err = decodeCellSetProtobuf(body)
	case mimeJSON:
		cs, err = decodeCellSetJSON(body)
	default:
		return cellSet{}, text(http.StatusUnsupportedMediaType,
			"Unsupported media type "+mt+" (the fake takes protobuf and JSON)")
	}
	if err != nil {
		return cellSet{}, badRequest(err.Error())
	}
	return cs, reply{}
}

// get answers a row's GET with its cells, in the encoding Accept asks
// for.
func (s *Server) get(r *http.Request, tableName, rest string) reply {
	spec, err := parseRowSpec(rest)
	if err != nil || strings.HasSuffix(strings.SplitN(rest, "/", 2)[0], "*") {
		return badRequest("the fake reads single rows only")
	}
	versions := 1
	if v := r.URL.Query().Get("v"); v != "" {
		if versions, err = strconv.Atoi(v); err != nil || versions < 1 {
			return replyBadRequest
		}
	}
	mt := acceptedType(r.Header.Get("Accept"))
	if mt == "" {
		return text(http.StatusNotAcceptable, "Not acceptable (the fake answers protobuf and JSON)")
	}
	s.mu.Lock()
	t := s.store.tables[tableName]
	var cells []Cell
	if t != nil {
		cells = t.read(spec.row, spec.columns, versions)
	}
	s.mu.Unlock()
	if t == nil {
		return tableNotFound(tableName)
	}
	if len(cells) == 0 {
		return replyNotFound
	}
	body, err := encodeCellSet(mt, []byte(spec.row), cells)
	if err != nil {
		return text(http.StatusInternalServerError, err.Error())
	}
	return reply{status: http.StatusOK, body: body, contentType: mt}
}

// acceptedType picks the encoding of a GET's answer: protobuf or JSON as
// Accept names them, JSON when it names anything at all; "" when it asks
// only for what the fake does not produce.
func acceptedType(accept string) string {
	if accept == "" {
		return mimeJSON
	}
	for part := range strings.SplitSeq(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case mimeProtobuf, mimeProtobufIETF:
			return mimeProtobuf
		case mimeJSON, "*/*", "application/*":
			return mimeJSON
		}
	}
	return ""
}

// delete answers DELETE /TABLE/ROW[/COLUMNS[/TIMESTAMP]].
func (s *Server) delete(tableName, rest string) reply {
	spec, err := parseRowSpec(rest)
	if err != nil {
		return replyBadRequest
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.store.tables[tableName]
	if t == nil {
		return tableNotFound(tableName)
	}
	for _, c := range spec.columns {
		fam, _, _ := splitColumn(c)
		if _, ok := t.families[fam]; !ok {
			return noSuchFamily(tableName, fam)
		}
	}
	ts := spec.ts
	if ts == 0 {
		ts = s.now()
	}
	t.deleteColumns(spec.row, spec.columns, ts)
	return replyOK
}
