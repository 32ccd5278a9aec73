package hbase

import (
	"encoding/base64"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/mqgate/mqgate/plugins/hbase/cellsetpb"
)

// The Content-Types of CellSet bodies.
const (
	mimeProtobuf = "application/x-protobuf"
	mimeJSON     = "application/json"
)

// putRow is one row of a CellSet: the cells the records of a batch put in
// it, merged in their order, and the indexes of those records.
type putRow struct {
	table   string
	key     []byte
	cells   []putCell
	records []int
}

// putCell is one cell of a putRow. ts 0 leaves the timestamp out, and the
// gateway's clock decides.
type putCell struct {
	column string
	value  []byte
	ts     int64
}

// add merges a record's cells into the row: a cell of a column and
// timestamp the row has replaces it, since the later record's value is
// the one that must stay; others are appended.
func (r *putRow) add(cells []cellValue, ts int64, record int) {
	for _, c := range cells {
		replaced := false
		for i := range r.cells {
			if r.cells[i].column == c.column && r.cells[i].ts == ts {
				r.cells[i].value, replaced = c.value, true
				break
			}
		}
		if !replaced {
			r.cells = append(r.cells, putCell{column: c.column, value: c.value, ts: ts})
		}
	}
	r.records = append(r.records, record)
}

// encodedSize estimates the bytes a row takes in a body of encoding, to
// keep requests under max_request_bytes.
func (r *putRow) encodedSize(encoding string) int {
	n := len(r.key) + 8
	for _, c := range r.cells {
		n += len(c.column) + len(c.value) + 24
	}
	if encoding == encodingJSON {
		n = n*4/3 + 48*len(r.cells) + 16
	}
	return n
}

// encodeCellSet encodes rows as a CellSet body and returns it with its
// Content-Type.
func encodeCellSet(encoding string, rows []*putRow) ([]byte, string, error) {
	if encoding == encodingJSON {
		return appendCellSetJSON(nil, rows), mimeJSON, nil
	}
	m := &cellsetpb.CellSet{Rows: make([]*cellsetpb.CellSet_Row, len(rows))}
	for i, r := range rows {
		pr := &cellsetpb.CellSet_Row{Key: r.key, Values: make([]*cellsetpb.Cell, len(r.cells))}
		for k, c := range r.cells {
			pc := &cellsetpb.Cell{Column: []byte(c.column), Data: c.value}
			if pc.Data == nil {
				pc.Data = []byte{} // present, so the gateway stores an empty value
			}
			if c.ts != 0 {
				pc.Timestamp = proto.Int64(c.ts)
			}
			pr.Values[k] = pc
		}
		m.Rows[i] = pr
	}
	b, err := proto.Marshal(m)
	return b, mimeProtobuf, err
}

// appendCellSetJSON appends rows as the gateway's JSON CellSet:
// {"Row":[{"key":b64,"Cell":[{"column":b64,"timestamp":n,"$":b64}]}]}.
// Base64 needs no JSON escaping.
func appendCellSetJSON(b []byte, rows []*putRow) []byte {
	enc := base64.StdEncoding
	b = append(b, `{"Row":[`...)
	for i, r := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"key":"`...)
		b = enc.AppendEncode(b, r.key)
		b = append(b, `","Cell":[`...)
		for k, c := range r.cells {
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"column":"`...)
			b = enc.AppendEncode(b, []byte(c.column))
			b = append(b, '"')
			if c.ts != 0 {
				b = append(b, `,"timestamp":`...)
				b = strconv.AppendInt(b, c.ts, 10)
			}
			b = append(b, `,"$":"`...)
			b = enc.AppendEncode(b, c.value)
			b = append(b, `"}`...)
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...)
}
