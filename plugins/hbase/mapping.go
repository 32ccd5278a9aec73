package hbase

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/mqgate/mqgate/core/transform"
	"github.com/mqgate/mqgate/sdk"
)

// opKind is what a record does to its row.
type opKind string

// The ops a record's mapping can give.
const (
	opPut         opKind = "put"
	opDelete      opKind = "delete"
	opCheckAndPut opKind = "check_and_put"
)

// maxRowKeyBytes is HBase's longest row key (Short.MAX_VALUE).
const maxRowKeyBytes = 32767

// tableName is what HBase accepts as a table name: an optional namespace
// and a qualifier of word characters, dots and dashes, not starting with
// a dot or dash.
var tableName = regexp.MustCompile(`^(?:[A-Za-z0-9_]+:)?[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// mapping turns a record into a mutation of one row. It is compiled once,
// at Configure, and safe for concurrent use.
type mapping struct {
	table, row *transform.Expr
	timestamp  *transform.Expr // nil: the gateway's clock stamps cells
	columns    []columnExpr    // in column order
	families   []string        // of columns, in column order
	op         opKind          // when opExpr is nil
	opExpr     *transform.Expr
	// deleteColumns are what a delete removes ("family" or
	// "family:qualifier"); empty for the whole row.
	deleteColumns []string
	check         *checkSpec
	// all evaluates every expression above at once, as a list, so that a
	// record's variables (its JSON above all) are built once rather than
	// once per expression; slot gives each expression's place in the
	// list. nil when the combination does not compile.
	all  *transform.Expr
	slot map[*transform.Expr]int
}

// combine compiles the mapping's expressions into one list expression.
// Each is parenthesized on lines of its own, so that a line comment in
// one ends there.
func (m *mapping) combine() {
	exprs := []*transform.Expr{m.table, m.row, m.timestamp, m.opExpr}
	for _, c := range m.columns {
		exprs = append(exprs, c.expr)
	}
	if m.check != nil {
		exprs = append(exprs, m.check.value)
	}
	var src strings.Builder
	slot := map[*transform.Expr]int{}
	src.WriteString("[")
	for _, e := range exprs {
		if e == nil {
			continue
		}
		if len(slot) > 0 {
			src.WriteString(",")
		}
		slot[e] = len(slot)
		src.WriteString("(\n" + e.String() + "\n)")
	}
	src.WriteString("]")
	all, err := transform.CompileExpr(src.String())
	if err != nil {
		return // each expression is evaluated on its own
	}
	m.all, m.slot = all, slot
}

// columnExpr is one entry of `columns:`.
type columnExpr struct {
	column string
	expr   *transform.Expr
}

// checkSpec is the `check:` block of a check_and_put.
type checkSpec struct {
	column string
	value  *transform.Expr
}

// mutation is what one record does to one row.
type mutation struct {
	table string
	row   []byte
	op    opKind
	// cells are the columns a put or check_and_put writes.
	cells []cellValue
	ts    int64 // 0: the gateway's clock decides
	// deleteColumns are what a delete removes; empty for the whole row.
	deleteColumns []string
	// checkValue is what a check_and_put expects in its check column;
	// empty means "absent or empty".
	checkValue []byte
}

// cellValue is one column a record writes.
type cellValue struct {
	column string
	value  []byte
}

// mapRecord evaluates the mapping for r. A record it cannot map gets a
// CodeIllegal error naming the key and the record.
func (m *mapping) mapRecord(r *sdk.Record) (mutation, error) {
	in := transform.RecordInput(r)
	// One evaluation of everything; when it fails, each expression is
	// evaluated on its own (and only where the op needs it) to say which
	// key failed.
	var all []any
	if m.all != nil {
		if v, err := m.all.Eval(in); err == nil {
			all, _ = v.([]any)
		}
	}
	eval := func(e *transform.Expr) (any, error) {
		if i, ok := m.slot[e]; ok && len(all) == len(m.slot) {
			return all[i], nil
		}
		return e.Eval(in)
	}
	fail := func(key, format string, args ...any) (mutation, error) {
		return mutation{}, sdk.Errorf(sdk.CodeIllegal, "hbase sink: %s: %s (record %s qid %s offset %d)",
			key, fmt.Sprintf(format, args...), r.Topic, r.Qid, r.Offset)
	}
	var mu mutation
	op := m.op
	if m.opExpr != nil {
		v, err := eval(m.opExpr)
		if err != nil {
			return fail("op", "%v", err)
		}
		s, _ := v.(string)
		switch opKind(s) {
		case opPut, opDelete, opCheckAndPut:
			op = opKind(s)
		default:
			return fail("op", "gave %s; want \"put\", \"delete\" or \"check_and_put\"", describe(v))
		}
	}
	mu.op = op

	v, err := eval(m.table)
	if err != nil {
		return fail("table", "%v", err)
	}
	name, ok := v.(string)
	if !ok || !tableName.MatchString(name) {
		return fail("table", "gave %s; want an HBase table name ([namespace:]name of letters, digits, _, . and -)", describe(v))
	}
	mu.table = name

	v, err = eval(m.row)
	if err != nil {
		return fail("row", "%v", err)
	}
	if v == nil {
		return fail("row", "gave nil; a row key is required")
	}
	if mu.row, err = cellBytes(v); err != nil {
		return fail("row", "%v", err)
	}
	switch {
	case len(mu.row) == 0:
		return fail("row", "gave an empty row key; HBase needs one of at least a byte")
	case len(mu.row) > maxRowKeyBytes:
		return fail("row", "gave a row key of %d bytes; HBase allows at most %d", len(mu.row), maxRowKeyBytes)
	case op == opDelete && !plainRow(mu.row):
		// A delete names its row in the URL, which the gateway decodes
		// as UTF-8 and reads '*' in as a glob.
		return fail("row", "a row key deleted through the REST gateway must be UTF-8, without '*', and not \".\" or \"..\"")
	}

	if m.timestamp != nil {
		v, err := eval(m.timestamp)
		if err != nil {
			return fail("timestamp", "%v", err)
		}
		if mu.ts, err = timestampOf(v); err != nil {
			return fail("timestamp", "%v", err)
		}
	}

	switch op {
	case opDelete:
		mu.deleteColumns = m.deleteColumns
		if len(mu.deleteColumns) == 0 && mu.ts != 0 {
			// The gateway's path cannot carry a timestamp without
			// naming columns: the families of columns stand for the row.
			mu.deleteColumns = m.families
		}
		return mu, nil
	case opCheckAndPut:
		if m.check == nil {
			return fail("op", "gave check_and_put, but the sink has no check block")
		}
	}
	for _, c := range m.columns {
		v, err := eval(c.expr)
		if err != nil {
			return fail("columns."+c.column, "%v", err)
		}
		if v == nil {
			continue // a column whose expression gives nil is left out
		}
		b, err := cellBytes(v)
		if err != nil {
			return fail("columns."+c.column, "%v", err)
		}
		mu.cells = append(mu.cells, cellValue{column: c.column, value: b})
	}
	if op == opPut && len(mu.cells) == 0 {
		return fail("columns", "every column's expression gave nil: there is nothing to put")
	}
	if op == opCheckAndPut {
		if !slices.ContainsFunc(mu.cells, func(c cellValue) bool { return c.column == m.check.column }) {
			return fail("check.column", "%s gave nil, but the REST gateway puts the checked column along with the others", m.check.column)
		}
		v, err := eval(m.check.value)
		if err != nil {
			return fail("check.value", "%v", err)
		}
		if v != nil {
			if mu.checkValue, err = cellBytes(v); err != nil {
				return fail("check.value", "%v", err)
			}
		}
	}
	return mu, nil
}
