package hbasefake

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/mqgate/mqgate/plugins/hbase/cellsetpb"
)

// The media types of the gateway's CellSet bodies.
const (
	mimeProtobuf     = "application/x-protobuf"
	mimeProtobufIETF = "application/protobuf"
	mimeJSON         = "application/json"
)

// cellSet is a decoded CellSet body, in either encoding.
type cellSet struct {
	rows []rowModel
}

// rowModel is one row of a CellSet. key is nil when the body left it out
// (JSON only: protobuf requires it); the gateway then takes the row of
// the request's path.
type rowModel struct {
	key   []byte
	cells []cellModel
}

// cellModel is one cell of a row. column is nil when left out; hasTS is
// false when the timestamp was left out, and the server's clock decides.
type cellModel struct {
	column []byte
	ts     int64
	hasTS  bool
	value  []byte
}

// jsonCellSet is a CellSet as the gateway's JSON provider reads it:
// {"Row":[{"key":b64,"Cell":[{"column":b64,"timestamp":n,"$":b64}]}]}.
type jsonCellSet struct {
	Row []jsonRow `json:"Row"`
}

type jsonRow struct {
	Key  *string    `json:"key,omitempty"`
	Cell []jsonCell `json:"Cell"`
}

type jsonCell struct {
	Column    *string `json:"column,omitempty"`
	Timestamp *int64  `json:"timestamp,omitempty"`
	Value     *string `json:"$,omitempty"`
}

// decodeCellSetJSON decodes a JSON CellSet. Unknown fields, base64 that
// does not decode, and trailing data are errors.
func decodeCellSetJSON(body []byte) (cellSet, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var j jsonCellSet
	if err := dec.Decode(&j); err != nil {
		return cellSet{}, fmt.Errorf("decoding the JSON CellSet: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return cellSet{}, errors.New("decoding the JSON CellSet: data after the object")
	}
	cs := cellSet{rows: make([]rowModel, 0, len(j.Row))}
	for i, r := range j.Row {
		key, err := decodeB64(r.Key)
		if err != nil {
			return cellSet{}, fmt.Errorf("Row[%d].key: %w", i, err)
		}
		rm := rowModel{key: key, cells: make([]cellModel, 0, len(r.Cell))}
		for k, c := range r.Cell {
			col, err := decodeB64(c.Column)
			if err != nil {
				return cellSet{}, fmt.Errorf("Row[%d].Cell[%d].column: %w", i, k, err)
			}
			val, err := decodeB64(c.Value)
			if err != nil {
				return cellSet{}, fmt.Errorf("Row[%d].Cell[%d].$: %w", i, k, err)
			}
			cm := cellModel{column: col, value: val}
			if c.Timestamp != nil {
				cm.ts, cm.hasTS = *c.Timestamp, true
			}
			rm.cells = append(rm.cells, cm)
		}
		cs.rows = append(cs.rows, rm)
	}
	return cs, nil
}

// decodeB64 decodes an optional base64 string; nil stays nil.
func decodeB64(s *string) ([]byte, error) {
	if s == nil {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(*s)
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// decodeCellSetProtobuf decodes a protobuf CellSet; a row without its
// required key is an error.
func decodeCellSetProtobuf(body []byte) (cellSet, error) {
	var m cellsetpb.CellSet
	if err := proto.Unmarshal(body, &m); err != nil {
		return cellSet{}, fmt.Errorf("decoding the protobuf CellSet: %w", err)
	}
	cs := cellSet{rows: make([]rowModel, 0, len(m.Rows))}
	for _, r := range m.Rows {
		rm := rowModel{key: nonNil(r.Key), cells: make([]cellModel, 0, len(r.Values))}
		for _, c := range r.Values {
			rm.cells = append(rm.cells, cellModel{
				column: nonNil(c.Column), value: nonNil(c.Data),
				ts: c.GetTimestamp(), hasTS: c.Timestamp != nil,
			})
		}
		cs.rows = append(cs.rows, rm)
	}
	return cs, nil
}

// nonNil makes a present but empty field an empty slice: protobuf's Java
// runtime gives an empty array for a bytes field left out, never null.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// encodeCellSet encodes the cells of one row as a CellSet in mime's
// encoding, as a row's GET answers.
func encodeCellSet(mime string, key []byte, cells []Cell) ([]byte, error) {
	if mime == mimeJSON {
		k := base64.StdEncoding.EncodeToString(key)
		r := jsonRow{Key: &k}
		for _, c := range cells {
			col := base64.StdEncoding.EncodeToString([]byte(c.Column))
			val := base64.StdEncoding.EncodeToString(c.Value)
			r.Cell = append(r.Cell, jsonCell{Column: &col, Timestamp: &c.Timestamp, Value: &val})
		}
		return json.Marshal(jsonCellSet{Row: []jsonRow{r}})
	}
	r := &cellsetpb.CellSet_Row{Key: key}
	for _, c := range cells {
		r.Values = append(r.Values, &cellsetpb.Cell{
			Column: []byte(c.Column), Timestamp: proto.Int64(c.Timestamp), Data: c.Value,
		})
	}
	return proto.Marshal(&cellsetpb.CellSet{Rows: []*cellsetpb.CellSet_Row{r}})
}
