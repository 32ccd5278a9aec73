package hbasefake

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// rowSpec is the part of a row resource's path after the table:
// row[/columns[/timestamp]], as the gateway reads it for single-row
// requests. Each part is URL-decoded the way java.net.URLDecoder does,
// so '+' is a space, and the bytes are then read as UTF-8.
type rowSpec struct {
	row     string
	columns []string // families or family:qualifier, in path order
	ts      int64    // 0 when the path gives none
}

// errRowSpec is a path the gateway cannot parse.
var errRowSpec = errors.New("malformed row path")

// parseRowSpec parses an escaped path such as "row1/info:a,info:b/1700".
// A row with a comma names a range, and the gateway then uses the part
// before it as the row; a row ending in '*' is a prefix glob, and the
// gateway uses the prefix. Both are kept here, since a delete of such a
// path hits that row.
func parseRowSpec(escaped string) (rowSpec, error) {
	escaped = strings.TrimLeft(escaped, "/")
	parts := strings.SplitN(escaped, "/", 3)
	var spec rowSpec
	rawRow, _, _ := strings.Cut(parts[0], ",")
	row, err := urlDecode(rawRow)
	if err != nil || row == "" {
		return rowSpec{}, errRowSpec
	}
	spec.row = strings.TrimSuffix(row, "*")
	if len(parts) > 1 && parts[1] != "" {
		for c := range strings.SplitSeq(parts[1], ",") {
			col, err := urlDecode(c)
			if err != nil || c == "" {
				return rowSpec{}, errRowSpec
			}
			spec.columns = append(spec.columns, col)
		}
	}
	if len(parts) > 2 && parts[2] != "" {
		stamp, _, _ := strings.Cut(parts[2], "/")
		stamp, _, _ = strings.Cut(stamp, ",") // a range: the gateway deletes up to its start
		s, err := urlDecode(stamp)
		if err != nil {
			return rowSpec{}, errRowSpec
		}
		ts, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ts < 0 {
			return rowSpec{}, errRowSpec
		}
		spec.ts = ts
	}
	return spec, nil
}

// urlDecode decodes s as java.net.URLDecoder does with UTF-8: '+' is a
// space, %XX a byte, and the bytes are read as UTF-8 with invalid
// sequences replaced. A '%' not followed by two hex digits is an error.
func urlDecode(s string) (string, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			b = append(b, ' ')
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", errRowSpec
			}
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return strings.ToValidUTF8(string(b), string(utf8.RuneError)), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
