package hbasefake

import (
	"bytes"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Family is a column family of a table the fake holds.
type Family struct {
	// Name is the family's name, the part of a column before the colon.
	Name string
	// Versions is how many versions of a cell reads return and the fake
	// keeps: HBase's VERSIONS, 1 when 0.
	Versions int
	// NewVersionBehavior is HBase's NEW_VERSION_BEHAVIOR: a delete masks
	// only the cells written before it. Without it, as by default in
	// HBase, a delete masks every cell of its column or family whose
	// timestamp is not after the delete's, even one written later; so a
	// put landing in the same millisecond as a delete of its row is lost.
	NewVersionBehavior bool
}

// Cell is one version of a cell, as reads of the fake return it.
type Cell struct {
	// Column is "family:qualifier".
	Column    string
	Timestamp int64
	Value     []byte
}

// table is one table: its families and its rows by key.
type table struct {
	families map[string]Family
	rows     map[string]*row
}

// row holds a row's cells by column, each column's versions newest first,
// and the delete markers that still mask cells put later.
type row struct {
	cells map[string][]version
	// familyMarks and columnMarks are the newest delete marker of each
	// family and column; only families without NewVersionBehavior keep
	// them, since there a marker masks later puts too.
	familyMarks map[string]int64
	columnMarks map[string]int64
}

// version is one stored value of a cell.
type version struct {
	ts    int64
	value []byte
}

// store is the fake's tables. The Server's mutex guards it.
type store struct {
	tables map[string]*table
}

func newStore() *store { return &store{tables: map[string]*table{}} }

// splitColumn splits "family:qualifier" at its first colon, as HBase
// does; ok is false without a colon.
func splitColumn(col string) (family, qualifier string, ok bool) {
	return strings.Cut(col, ":")
}

// put stores value at ts in column of key, unless a delete marker masks
// it. The family must exist.
func (t *table) put(key, column string, ts int64, value []byte) {
	fam, _, _ := splitColumn(column)
	f := t.families[fam]
	r := t.rows[key]
	if r == nil {
		r = &row{cells: map[string][]version{}}
		t.rows[key] = r
	}
	if !f.NewVersionBehavior && (ts <= r.familyMarks[fam] || ts <= r.columnMarks[column]) {
		return // masked by a delete whose timestamp is not before it
	}
	vs := r.cells[column]
	i := sort.Search(len(vs), func(i int) bool { return vs[i].ts <= ts })
	if i < len(vs) && vs[i].ts == ts {
		vs[i].value = value // same timestamp: the later write wins
	} else {
		vs = slices.Insert(vs, i, version{ts: ts, value: value})
	}
	r.cells[column] = vs[:min(len(vs), maxVersions(f))]
}

func maxVersions(f Family) int {
	if f.Versions <= 0 {
		return 1
	}
	return f.Versions
}

// deleteColumns removes the versions at or before ts of the columns a
// delete names: "family" for a whole family, "family:qualifier" for one
// column, nothing for the whole row. It leaves a marker where HBase's
// default version behaviour lets a delete mask later puts.
func (t *table) deleteColumns(key string, columns []string, ts int64) {
	r := t.rows[key]
	if r == nil {
		r = &row{cells: map[string][]version{}}
		t.rows[key] = r
	}
	if len(columns) == 0 {
		for fam := range t.families {
			columns = append(columns, fam)
		}
	}
	for _, c := range columns {
		fam, _, isColumn := splitColumn(c)
		nvb := t.families[fam].NewVersionBehavior
		for col, vs := range r.cells {
			cf, _, _ := splitColumn(col)
			if cf != fam || (isColumn && col != c) {
				continue
			}
			vs = slices.DeleteFunc(vs, func(v version) bool { return v.ts <= ts })
			if len(vs) == 0 {
				delete(r.cells, col)
			} else {
				r.cells[col] = vs
			}
		}
		if nvb {
			continue
		}
		marks := &r.familyMarks
		if isColumn {
			marks = &r.columnMarks
		}
		if *marks == nil {
			*marks = map[string]int64{}
		}
		(*marks)[c] = max((*marks)[c], ts)
	}
	if len(r.cells) == 0 && r.familyMarks == nil && r.columnMarks == nil {
		delete(t.rows, key)
	}
}

// read returns the cells of key, at most versions per column (each
// family's own limit applies too), columns in byte order and each
// column's versions newest first. columns, when not empty, selects
// families ("info") and columns ("info:name").
func (t *table) read(key string, columns []string, versions int) []Cell {
	r := t.rows[key]
	if r == nil {
		return nil
	}
	var out []Cell
	for _, col := range slices.Sorted(maps.Keys(r.cells)) {
		if !selected(col, columns) {
			continue
		}
		vs := r.cells[col]
		for _, v := range vs[:min(len(vs), versions)] {
			out = append(out, Cell{Column: col, Timestamp: v.ts, Value: bytes.Clone(v.value)})
		}
	}
	return out
}

// selected reports whether col is among columns (families or columns);
// no columns selects all.
func selected(col string, columns []string) bool {
	if len(columns) == 0 {
		return true
	}
	fam, _, _ := splitColumn(col)
	for _, c := range columns {
		if c == col || c == fam {
			return true
		}
	}
	return false
}
