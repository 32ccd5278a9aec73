package httpapi

import (
	"bytes"
	"errors"
	"slices"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mqgate/mqgate/core/topicname"
)

// The bodies of the consume routes are small objects decoded by the
// package's tokenizer (bodyDecoder) with the produce decoder's rules:
// exact field names, unknown or repeated fields are errors, null counts as
// absent, and every error is code 11 naming the field.

// pullBody is a decoded POST .../pull body. Nil fields were absent.
type pullBody struct {
	maxMessages *int64
	maxWaitMs   *int64
	ack         *ackBody
}

// ackBody is a decoded ack: the body of POST .../ack, or a pull's "ack".
type ackBody struct {
	qid           string
	success, fail []int64
}

// fetchBody is a decoded POST /v1/fetch body.
type fetchBody struct {
	cluster, group string
	offsets        map[string]map[string]int64
	maxMessages    *int64
	maxWaitMs      *int64
}

// commitBody is a decoded POST /v1/commit body.
type commitBody struct {
	cluster, group string
	offsets        map[string]map[string]int64
}

// decodePullBody decodes {"max_messages": N, "max_wait_ms": W, "ack":
// {...}}; every field is optional, and an empty body is {}.
// max_messages must be >= 1 and max_wait_ms >= 0; caps are the caller's.
func decodePullBody(body []byte) (pullBody, error) {
	var out pullBody
	if len(bytes.TrimSpace(body)) == 0 {
		return out, nil
	}
	err := decodeObjectBody(body, []string{"max_messages", "max_wait_ms", "ack"}, func(d *bodyDecoder, name string, k jsontext.Kind) error {
		var err error
		switch name {
		case "max_messages":
			out.maxMessages, err = d.positiveInt(name)
		case "max_wait_ms":
			out.maxWaitMs, err = d.nonNegativeInt(name)
		case "ack":
			var a ackBody
			a, err = d.ack(name, k)
			out.ack = &a
		}
		return err
	})
	return out, err
}

// decodeAckBody decodes {"qid": Q, "success": [...], "fail": [...]}: qid
// is required, and at least one offset.
func decodeAckBody(body []byte) (ackBody, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return ackBody{}, illegalf(`request body is empty; want {"qid": Q, "success": [offsets], "fail": [offsets]}`)
	}
	d := newBodyDecoder(body)
	k, err := d.peek()
	if err != nil {
		return ackBody{}, d.explain(err)
	}
	a, err := d.ack("", k)
	if err == nil {
		err = d.end()
	}
	if err != nil {
		return ackBody{}, d.explain(err)
	}
	if len(a.success)+len(a.fail) == 0 {
		return ackBody{}, illegalf("success or fail: at least one offset is required")
	}
	return a, nil
}

// decodeFetchBody decodes {"cluster": C, "group": G, "consumer_id": I,
// "offsets": {topic: {qid: offset}}, "max_messages": N, "max_wait_ms": W}.
// offsets is required; cluster ("" for the default), group (checked when
// given, unused by a fetch) and consumer_id (ignored) are optional.
func decodeFetchBody(body []byte) (fetchBody, error) {
	var out fetchBody
	if len(bytes.TrimSpace(body)) == 0 {
		return out, illegalf(`request body is empty; want {"offsets": {topic: {qid: offset}}, ...}`)
	}
	err := decodeObjectBody(body, []string{"cluster", "group", "consumer_id", "offsets", "max_messages", "max_wait_ms"},
		func(d *bodyDecoder, name string, k jsontext.Kind) error {
			var err error
			switch name {
			case "cluster":
				out.cluster, err = d.text(name, k)
			case "group":
				if out.group, err = d.text(name, k); err == nil {
					err = topicname.ValidateGroup(out.group)
				}
			case "consumer_id":
				_, err = d.text(name, k)
			case "offsets":
				out.offsets, err = d.offsetMap(name, k)
			case "max_messages":
				out.maxMessages, err = d.positiveInt(name)
			case "max_wait_ms":
				out.maxWaitMs, err = d.nonNegativeInt(name)
			}
			return err
		})
	if err == nil && out.offsets == nil && out.group == "" {
		// With a group, no offsets asks for the group's queues.
		err = illegalf("offsets: required without a group: {topic: {qid: offset}}")
	}
	return out, err
}

// decodeCommitBody decodes {"cluster": C, "group": G, "consumer_id": I,
// "offsets": {topic: {qid: offset}}}: group and offsets are required.
func decodeCommitBody(body []byte) (commitBody, error) {
	var out commitBody
	if len(bytes.TrimSpace(body)) == 0 {
		return out, illegalf(`request body is empty; want {"group": G, "offsets": {topic: {qid: offset}}}`)
	}
	sawGroup := false
	err := decodeObjectBody(body, []string{"cluster", "group", "consumer_id", "offsets"},
		func(d *bodyDecoder, name string, k jsontext.Kind) error {
			var err error
			switch name {
			case "cluster":
				out.cluster, err = d.text(name, k)
			case "group":
				sawGroup = true
				if out.group, err = d.text(name, k); err == nil {
					err = topicname.ValidateGroup(out.group)
				}
			case "consumer_id":
				_, err = d.text(name, k)
			case "offsets":
				out.offsets, err = d.offsetMap(name, k)
			}
			return err
		})
	switch {
	case err != nil:
	case !sawGroup:
		err = illegalf("group: required")
	case out.offsets == nil:
		err = illegalf("offsets: required: {topic: {qid: offset}}")
	}
	return out, err
}

// decodeBatchAckBody decodes {"ack_batch_id": K}, K required.
func decodeBatchAckBody(body []byte) (int64, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return 0, illegalf(`request body is empty; want {"ack_batch_id": K}`)
	}
	var id *int64
	err := decodeObjectBody(body, []string{"ack_batch_id"}, func(d *bodyDecoder, name string, k jsontext.Kind) error {
		var err error
		id, err = d.integer(name)
		return err
	})
	if err == nil && id == nil {
		err = illegalf("ack_batch_id: required")
	}
	if err != nil {
		return 0, err
	}
	return *id, nil
}

// decodeObjectBody decodes a body that is one JSON object of the given
// fields, calling each for every member that is not null.
func decodeObjectBody(body []byte, fields []string, each func(d *bodyDecoder, name string, k jsontext.Kind) error) error {
	d := newBodyDecoder(body)
	k, err := d.peek()
	if err == nil {
		err = d.members("", k, fields, func(name string, k jsontext.Kind) error { return each(d, name, k) })
	}
	if err == nil {
		err = d.end()
	}
	if err != nil {
		return d.explain(err)
	}
	return nil
}

// end refuses anything but white space after the top-level value.
func (d *bodyDecoder) end() error {
	if rest := bytes.TrimLeft(d.body[d.dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return d.malformed(int64(len(d.body)-len(rest)), errors.New("unexpected data after the top-level object"))
	}
	return nil
}

// members reads the object that is the next value (of kind k), named
// path ("" at the top level), calling each for every member that is not
// null. A name not in fields, or given twice, is an error.
func (d *bodyDecoder) members(path string, k jsontext.Kind, fields []string, each func(name string, k jsontext.Kind) error) error {
	if k != '{' {
		if path == "" {
			return d.wrongType("request body must be a JSON object")
		}
		return d.wrongType("%s: must be an object", path)
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return err
	}
	var seen []string
	for {
		name, ok, err := d.name()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		field := joinField(path, name)
		if !slices.Contains(fields, name) {
			if path == "" {
				return illegalf("unknown field %q", name)
			}
			return illegalf("%s: unknown field %q", path, name)
		}
		if slices.Contains(seen, name) {
			return illegalf("%s: given twice", field)
		}
		seen = append(seen, name)
		k, err := d.peek()
		if err != nil {
			return err
		}
		if k == 'n' { // null: as if absent
			if _, err := d.dec.ReadToken(); err != nil {
				return err
			}
			continue
		}
		if err := each(field, k); err != nil {
			return err
		}
	}
}

func joinField(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// ack decodes an ack object named path: qid (a string, or an integer
// taken as its decimal string) is required; success and fail are arrays
// of offsets >= 0.
func (d *bodyDecoder) ack(path string, k jsontext.Kind) (ackBody, error) {
	var a ackBody
	sawQid := false
	err := d.members(path, k, []string{"qid", "success", "fail"}, func(field string, k jsontext.Kind) error {
		var err error
		switch field {
		case joinField(path, "qid"):
			sawQid = true
			a.qid, err = d.qid(field, k)
		case joinField(path, "success"):
			a.success, err = d.offsets(field, k)
		case joinField(path, "fail"):
			a.fail, err = d.offsets(field, k)
		}
		return err
	})
	if err == nil && !sawQid {
		err = illegalf("%s: required", joinField(path, "qid"))
	}
	return a, err
}

// qid reads a qid: a non-empty string, or an integer >= 0.
func (d *bodyDecoder) qid(field string, k jsontext.Kind) (string, error) {
	var q string
	switch k {
	case '"':
		s, err := d.text(field, k)
		if err != nil {
			return "", err
		}
		q = s
	case '0':
		n, err := d.nonNegativeInt(field)
		if err != nil {
			return "", err
		}
		q = strconv.FormatInt(*n, 10)
	default:
		return "", d.wrongType("%s: must be a string or an integer", field)
	}
	if q == "" {
		return "", illegalf("%s: must not be empty", field)
	}
	return q, nil
}

// offsets reads an array of offsets >= 0 (never nil).
func (d *bodyDecoder) offsets(field string, k jsontext.Kind) ([]int64, error) {
	if k != '[' {
		return nil, d.wrongType("%s: must be an array of offsets", field)
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return nil, err
	}
	out := []int64{}
	for i := 0; ; i++ {
		k, err := d.peek()
		if err != nil {
			return nil, err
		}
		if k == ']' {
			_, err := d.dec.ReadToken()
			return out, err
		}
		raw, err := d.dec.ReadValue()
		if err != nil {
			return nil, err
		}
		// The element's name is built only for an error: an ack names
		// up to a pull's worth of offsets.
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil && n >= 0 {
			out = append(out, n)
			continue
		}
		at := field + "[" + strconv.Itoa(i) + "]"
		n, err := decodeInt(raw, 64, at)
		if err != nil {
			return nil, err
		}
		return nil, illegalf("%s: must be >= 0; got %d", at, n)
	}
}

// offsetMap reads {topic: {qid: offset}}: at least one offset, valid
// topic names, non-empty qids, offsets >= 0.
func (d *bodyDecoder) offsetMap(field string, k jsontext.Kind) (map[string]map[string]int64, error) {
	shape := "%s: must be an object {topic: {qid: offset}}"
	if k != '{' {
		return nil, d.wrongType(shape, field)
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return nil, err
	}
	out := make(map[string]map[string]int64)
	n := 0
	for {
		topic, ok, err := d.name()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		at := field + "[" + strconv.Quote(topic) + "]"
		if p := topicname.Problem(topic); p != "" {
			return nil, illegalf("%s: topic: %s", at, p)
		}
		if _, dup := out[topic]; dup {
			return nil, illegalf("%s: given twice", at)
		}
		k, err := d.peek()
		if err != nil {
			return nil, err
		}
		if k != '{' {
			return nil, d.wrongType("%s: must be an object {qid: offset}", at)
		}
		if _, err := d.dec.ReadToken(); err != nil {
			return nil, err
		}
		qids := make(map[string]int64)
		for {
			qid, ok, err := d.name()
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			qat := at + "[" + strconv.Quote(qid) + "]"
			if qid == "" {
				return nil, illegalf("%s: the qid must not be empty", qat)
			}
			if _, dup := qids[qid]; dup {
				return nil, illegalf("%s: given twice", qat)
			}
			o, err := d.nonNegativeInt(qat)
			if err != nil {
				return nil, err
			}
			qids[qid] = *o
			n++
		}
		out[topic] = qids
	}
	if n == 0 {
		return nil, illegalf("%s: at least one offset is required: {topic: {qid: offset}}", field)
	}
	return out, nil
}

// text reads a string value.
func (d *bodyDecoder) text(field string, k jsontext.Kind) (string, error) {
	if k != '"' {
		return "", d.wrongType("%s: must be a string", field)
	}
	raw, err := d.dec.ReadValue()
	if err != nil {
		return "", err
	}
	s, err := jsontext.AppendUnquote(nil, raw)
	if err != nil {
		return "", illegalf("%s: %v", field, err)
	}
	return string(s), nil
}

// integer reads an int64 value.
func (d *bodyDecoder) integer(field string) (*int64, error) {
	raw, err := d.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	n, err := decodeInt(raw, 64, field)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// nonNegativeInt reads an integer >= 0.
func (d *bodyDecoder) nonNegativeInt(field string) (*int64, error) {
	n, err := d.integer(field)
	if err == nil && *n < 0 {
		err = illegalf("%s: must be >= 0; got %d", field, *n)
	}
	return n, err
}

// positiveInt reads an integer >= 1.
func (d *bodyDecoder) positiveInt(field string) (*int64, error) {
	n, err := d.integer(field)
	if err == nil && *n < 1 {
		err = illegalf("%s: must be >= 1; got %d", field, *n)
	}
	return n, err
}
