package hbasefake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// jsonSchema is a TableSchema as the gateway's JSON provider reads it:
// {"name":"t","ColumnSchema":[{"name":"cf","VERSIONS":"3"}]}. Attributes
// the fake does not use are accepted and ignored.
type jsonSchema struct {
	Name    string       `json:"name"`
	Columns []jsonFamily `json:"ColumnSchema"`
}

type jsonFamily map[string]any

// family reads a ColumnSchema's name, VERSIONS and NEW_VERSION_BEHAVIOR.
func (f jsonFamily) family() (Family, error) {
	name, _ := f["name"].(string)
	if name == "" || strings.ContainsAny(name, ":") {
		return Family{}, fmt.Errorf("bad column family name %q", name)
	}
	fam := Family{Name: name}
	if v, ok := f["VERSIONS"]; ok {
		n, err := strconv.Atoi(fmt.Sprint(v))
		if err != nil || n < 1 {
			return Family{}, fmt.Errorf("family %s: bad VERSIONS %v", name, v)
		}
		fam.Versions = n
	}
	if v, ok := f["NEW_VERSION_BEHAVIOR"]; ok {
		b, err := strconv.ParseBool(fmt.Sprint(v))
		if err != nil {
			return Family{}, fmt.Errorf("family %s: bad NEW_VERSION_BEHAVIOR %v", name, v)
		}
		fam.NewVersionBehavior = b
	}
	return fam, nil
}

// schema answers /TABLE/schema: PUT creates a table or replaces its
// families, POST creates it or adds and changes families, GET describes
// it, DELETE drops it.
func (s *Server) schema(method, tableName string, body []byte) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.store.tables[tableName]
	switch method {
	case http.MethodGet:
		if t == nil {
			return tableNotFound(tableName)
		}
		return describe(tableName, t)
	case http.MethodDelete:
		if t == nil {
			return tableNotFound(tableName)
		}
		delete(s.store.tables, tableName)
		return replyOK
	case http.MethodPut, http.MethodPost:
	default:
		return text(http.StatusMethodNotAllowed, "Method not allowed")
	}
	var js jsonSchema
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&js); err != nil {
		return badRequest("decoding the JSON TableSchema: " + err.Error())
	}
	fams := make([]Family, 0, len(js.Columns))
	for _, c := range js.Columns {
		f, err := c.family()
		if err != nil {
			return badRequest(err.Error())
		}
		fams = append(fams, f)
	}
	if len(fams) == 0 {
		return badRequest("a table needs at least one column family")
	}
	if t == nil {
		t = &table{families: map[string]Family{}, rows: map[string]*row{}}
		for _, f := range fams {
			t.families[f.Name] = f
		}
		s.store.tables[tableName] = t
		return reply{status: http.StatusCreated}
	}
	if method == http.MethodPut {
		t.families = map[string]Family{}
	}
	for _, f := range fams {
		t.families[f.Name] = f
	}
	return replyOK
}

// describe answers a schema GET in JSON.
func describe(name string, t *table) reply {
	js := map[string]any{"name": name}
	var cols []map[string]any
	for _, n := range slices.Sorted(maps.Keys(t.families)) {
		f := t.families[n]
		cols = append(cols, map[string]any{"name": n, "VERSIONS": strconv.Itoa(maxVersions(f)),
			"NEW_VERSION_BEHAVIOR": strconv.FormatBool(f.NewVersionBehavior)})
	}
	js["ColumnSchema"] = cols
	b, err := json.Marshal(js)
	if err != nil {
		return text(http.StatusInternalServerError, err.Error())
	}
	return reply{status: http.StatusOK, body: b, contentType: mimeJSON}
}
