package hbase

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// cellBytes turns what an expression gave into the bytes HBase stores:
// a string or []byte as it is, a bool or an integer as its text, a
// float as its shortest text, anything else (a map, a list) as JSON.
// Numbers are text, not HBase's Bytes.toBytes binary forms.
func cellBytes(v any) ([]byte, error) {
	switch t := v.(type) {
	case string:
		return []byte(t), nil
	case []byte:
		return t, nil
	case bool:
		return strconv.AppendBool(nil, t), nil
	case int:
		return strconv.AppendInt(nil, int64(t), 10), nil
	case int64:
		return strconv.AppendInt(nil, t, 10), nil
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return nil, fmt.Errorf("gave %v, which has no text form", t)
		}
		return strconv.AppendFloat(nil, t, 'g', -1, 64), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("gave a %T that does not encode as JSON: %w", v, err)
	}
	return b, nil
}

// errTimestamp is a timestamp expression's result that is not a time.
var errTimestamp = errors.New("want milliseconds since the epoch, above 0")

// timestampOf reads a cell timestamp in milliseconds from what an
// expression gave: an integer, an integral float, or a string of digits.
// nil means none: the gateway's clock decides.
func timestampOf(v any) (int64, error) {
	var ts int64
	switch t := v.(type) {
	case nil:
		return 0, nil
	case int:
		ts = int64(t)
	case int64:
		ts = t
	case float64:
		if t != math.Trunc(t) || t < 1 || t > math.MaxInt64/2 {
			return 0, fmt.Errorf("gave %v; %w", t, errTimestamp)
		}
		ts = int64(t)
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("gave %q; %w", t, errTimestamp)
		}
		ts = n
	default:
		return 0, fmt.Errorf("gave %s; %w", describe(v), errTimestamp)
	}
	if ts < 1 {
		return 0, fmt.Errorf("gave %d; %w", ts, errTimestamp)
	}
	return ts, nil
}

// describe names a value in an error, briefly: its type, and the value
// itself when it is short.
func describe(v any) string {
	if v == nil {
		return "nil"
	}
	s := fmt.Sprintf("%v", v)
	if len(s) > 40 {
		return fmt.Sprintf("a %T", v)
	}
	return fmt.Sprintf("%T %q", v, s)
}
