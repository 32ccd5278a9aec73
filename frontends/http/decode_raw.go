package httpapi

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/push"
	"github.com/mqgate/mqgate/sdk"
)

// rawContentType is the Content-Type of a produce body that is one
// message's value, its other fields in request headers.
const rawContentType = "application/octet-stream"

// Request headers of a raw produce besides those push deliveries carry
// (push.HeaderKey, push.HeaderKeyBase64, push.HeaderTags,
// push.HeaderPropPrefix, push.HeaderPropEncoded).
const (
	headerPartition = "X-Mqgate-Partition"
	headerHashID    = "X-Mqgate-Hash-Id"
)

// mqgateHeaderPrefix starts every header the gateway reads or writes.
const mqgateHeaderPrefix = "X-Mqgate-"

// rawHeaders are the X-Mqgate- headers a raw produce may carry besides
// push.HeaderPropPrefix ones, for the error naming an unknown one.
var rawHeaders = []string{push.HeaderKey, push.HeaderKeyBase64, push.HeaderTags, headerPartition, headerHashID, push.HeaderPropEncoded}

// decodeRaw decodes a raw produce: body is the value of one message (empty
// is an empty value), and its other fields come from h, read the way push
// deliveries write them:
//
//   - X-Mqgate-Key: the key as text, or X-Mqgate-Key-Base64 in standard
//     padded base64 for a binary key, or the query parameter key (as
//     kafka-pixy takes it); at most one of the three;
//   - X-Mqgate-Tags, X-Mqgate-Partition and X-Mqgate-Hash-Id: as the JSON
//     fields tags, partition and hash_id;
//   - X-Mqgate-Prop-NAME: VALUE, a message header NAME in lower case (HTTP
//     header names are case-insensitive); then each X-Mqgate-Prop-Encoded
//     value, base64(name) ":" base64(value) (several per header separated by
//     commas), for names or values an HTTP header cannot carry or whose case
//     must be kept.
//
// Message headers from X-Mqgate-Prop-NAME come in the order of their
// names, a repeated name in the order sent, then the encoded ones in the
// order sent. Any other X-Mqgate- header, and any of these given twice,
// is an error. Every error is an *sdk.Error with CodeIllegal naming the
// header.
func decodeRaw(h http.Header, query url.Values, body []byte) ([]produce.Message, error) {
	// Clipped: an append to the value must not write into the body's
	// buffer, whose room past the body is another request's to use.
	m := produce.Message{Value: nonNil(slices.Clip(body)), Partition: sdk.PartitionHash}
	var props []sdk.Header
	var encoded []string
	// In sorted order, so the headers come out sorted by name (a name's
	// values in the order sent) and, of two bad headers, the error always
	// names the same one.
	var names []string
	for name := range h {
		if strings.HasPrefix(name, mqgateHeaderPrefix) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		values := h[name]
		switch {
		case name == push.HeaderPropEncoded:
			encoded = values
			continue
		case strings.HasPrefix(name, push.HeaderPropPrefix):
			key := strings.ToLower(name[len(push.HeaderPropPrefix):])
			for _, v := range values {
				props = append(props, sdk.Header{Key: key, Value: []byte(v)})
			}
			continue
		case !slices.Contains(rawHeaders, name):
			return nil, illegalf("unknown header %s; a raw produce (%s) takes %s and %sNAME", name, rawContentType,
				strings.Join(rawHeaders, ", "), push.HeaderPropPrefix)
		case len(values) > 1:
			return nil, illegalf("%s: given twice", name)
		}
		if err := rawField(&m, name, values[0]); err != nil {
			return nil, err
		}
	}
	if key, ok := query["key"]; ok {
		if m.Key != nil {
			return nil, illegalf("key: the query parameter is not allowed together with %s or %s", push.HeaderKey, push.HeaderKeyBase64)
		}
		if len(key) > 1 {
			return nil, illegalf("key: the query parameter is given twice")
		}
		m.Key = []byte(key[0])
	}
	for _, v := range encoded {
		for field := range strings.SplitSeq(v, ",") {
			p, err := decodeEncodedProp(strings.TrimSpace(field))
			if err != nil {
				return nil, err
			}
			props = append(props, p)
		}
	}
	m.Headers = props
	return []produce.Message{m}, nil
}

// rawField sets the field of m that header name (one of rawHeaders but
// push.HeaderPropEncoded) carries.
func rawField(m *produce.Message, name, v string) error {
	switch name {
	case push.HeaderKey, push.HeaderKeyBase64:
		if m.Key != nil {
			return illegalf("%s: not allowed together with %s; send exactly one of the two", push.HeaderKeyBase64, push.HeaderKey)
		}
		if name == push.HeaderKey {
			m.Key = []byte(v)
			return nil
		}
		k, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return illegalf("%s: not standard padded base64: %v", name, err)
		}
		m.Key = nonNil(k)
	case push.HeaderTags:
		m.Tags = v
	case headerPartition:
		p, err := headerInt(v, 32, name)
		if err != nil {
			return err
		}
		if p < int64(sdk.PartitionRandom) {
			return illegalf("%s: must be -1 (by hash), -2 (random) or a partition >= 0; got %d", name, p)
		}
		m.Partition = int32(p)
	case headerHashID:
		n, err := headerInt(v, 64, name)
		if err != nil {
			return err
		}
		m.HashID = &n
	}
	return nil
}

// headerInt decodes a header's value as an integer of bits bits, with the
// JSON fields' errors.
func headerInt(v string, bits int, name string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, illegalf("%s: must be an integer; got an empty value", name)
	}
	return decodeInt([]byte(v), bits, name)
}

// decodeEncodedProp decodes one X-Mqgate-Prop-Encoded field:
// base64(name) ":" base64(value).
func decodeEncodedProp(field string) (sdk.Header, error) {
	name, value, ok := strings.Cut(field, ":")
	if !ok {
		return sdk.Header{}, illegalf("%s: %q is not base64(name):base64(value)", push.HeaderPropEncoded, truncate(field))
	}
	k, err := base64.StdEncoding.DecodeString(name)
	if err != nil {
		return sdk.Header{}, illegalf("%s: the name of %q is not standard padded base64: %v", push.HeaderPropEncoded, truncate(field), err)
	}
	v, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return sdk.Header{}, illegalf("%s: the value of %q is not standard padded base64: %v", push.HeaderPropEncoded, truncate(field), err)
	}
	return sdk.Header{Key: string(k), Value: nonNil(v)}, nil
}

// decodeProduceBody decodes a produce body by its Content-Type:
// application/octet-stream is a raw produce (decodeRaw),
// application/x-ndjson one message object per line (decodeNDJSON),
// application/x-protobuf a ProduceRequest (decodeProtobuf), and anything
// else, or none, JSON (decodeMessages); every format within lim.
func decodeProduceBody(r *http.Request, body []byte, lim bodyLimits) ([]produce.Message, error) {
	switch mediaType(r.Header.Get("Content-Type")) {
	case rawContentType:
		return decodeRaw(r.Header, r.URL.Query(), body)
	case ndjsonContentType:
		return decodeNDJSONWithin(body, lim)
	case protobufContentType:
		return decodeProtobuf(body, lim)
	}
	return decodeMessagesWithin(body, lim)
}

// mediaType is the media type of a Content-Type, in lower case, without
// parameters.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct)) // no copy when already lower
}
