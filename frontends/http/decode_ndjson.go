package httpapi

import (
	"bytes"
	"errors"
	"io"

	"github.com/mqgate/mqgate/core/produce"
)

// ndjsonContentType is the Content-Type of a produce body holding one
// message object per line.
const ndjsonContentType = "application/x-ndjson"

// decodeNDJSON decodes an application/x-ndjson produce body: one message
// object per line, each what an element of {"messages": [...]} is, under
// decodeMessages's rules. Lines holding only whitespace are skipped; "\r\n"
// ends a line as "\n" does. Every error is an *sdk.Error with CodeIllegal
// naming the line (counted from 1) and the field, or the line and column
// of a JSON syntax error.
func decodeNDJSON(body []byte) ([]produce.Message, error) {
	return decodeNDJSONWithin(body, bodyLimits{})
}

// decodeNDJSONWithin is decodeNDJSON within lim, as decodeMessagesWithin
// keeps to it.
func decodeNDJSONWithin(body []byte, lim bodyLimits) ([]produce.Message, error) {
	d := newBodyDecoder(body)
	d.lines, d.isBatch, d.lim = true, true, lim
	msgs, err := d.ndjson()
	if err != nil {
		return nil, d.explain(err)
	}
	return msgs, d.withinLimits()
}

func (d *bodyDecoder) ndjson() ([]produce.Message, error) {
	var msgs []produce.Message
	line, counted := 1, 0 // line is the line of body[counted]
	for {
		end := int(d.dec.InputOffset()) // after the previous object
		k := d.dec.PeekKind()
		if k == 0 {
			if _, err := d.dec.ReadToken(); !errors.Is(err, io.EOF) {
				return nil, err // a syntax error
			}
			break
		}
		start := len(d.body) - len(bytes.TrimLeft(d.body[end:], " \t\r\n"))
		line += bytes.Count(d.body[counted:start], []byte{'\n'})
		counted = start
		if len(msgs) > 0 && bytes.IndexByte(d.body[end:start], '\n') < 0 {
			return nil, illegalf("line %d: holds more than one JSON value; want one message object per line", line)
		}
		if k != '{' {
			return nil, d.wrongType("line %d: must be a message object", line)
		}
		m, err := d.object(line)
		if err != nil {
			return nil, err
		}
		if bytes.IndexByte(d.body[start:d.dec.InputOffset()], '\n') >= 0 {
			return nil, illegalf("line %d: the message object continues on the next line; want one message object per line", line)
		}
		msgs = d.add(msgs, m)
	}
	if len(msgs) == 0 {
		return nil, illegalf("request body holds no message; want one JSON message object per line (%s)", ndjsonContentType)
	}
	return msgs, nil
}
