package thriftapi

import (
	"errors"
	"slices"
	"strings"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/frontends/thrift/gen-go/producer"
	"github.com/mqgate/mqgate/sdk"
)

// decodeMessage turns a client's Thrift message into its topic and the
// message to produce (docs/thrift.md, "Message mapping"). path names the
// message in errors: "message", or "messages[3]" in a batch. strict
// places it by partitionId and hashId as DDMQ does (placeAsDDMQ); without
// it, hashId 0 means "not set" and a partitionId other than -2, -1 or a
// partition is refused.
//
// Every error is an *sdk.Error naming the offending field: code 11 for an
// illegal message, 16 for one whose Size exceeds maxBytes.
func decodeMessage(m *producer.Message, path msgPath, maxBytes int, strict bool) (string, produce.Message, error) {
	if m == nil {
		return "", produce.Message{}, sdk.Errorf(sdk.CodeIllegal, "%s: required", path)
	}
	if err := topicname.Validate(m.Topic); err != nil {
		return "", produce.Message{}, prefixed(path.String(), err)
	}
	out := produce.Message{Tags: m.Tags}
	if m.Key != "" {
		out.Key = []byte(m.Key)
	}
	// DDMQ's pproxy refuses a message of 0 bytes, body or value
	// (producer/CarreraRequest.java, checkValid).
	switch {
	case m.Body != nil && len(m.Body) == 0:
		return "", produce.Message{}, sdk.Errorf(sdk.CodeIllegal, "%s.body: empty; a message needs at least one byte", path)
	case m.Body != nil:
		out.Value = m.Body
	case m.Value != "":
		out.Value = []byte(m.Value)
	default:
		return "", produce.Message{}, sdk.Errorf(sdk.CodeIllegal, "%s.body: required; set body (binary) or value (string)", path)
	}
	if err := checkProperties(path, m.Properties); err != nil {
		return "", produce.Message{}, err
	}
	switch p := m.PartitionId; {
	case strict:
		placeAsDDMQ(&out, m)
	case p >= 0, p == sdk.PartitionRandom:
		out.Partition = p
	case p == sdk.PartitionHash:
		out.Partition = p
		// DDMQ clients that never set hashId send 0: placing all of them
		// on one partition would be a surprise, so 0 means "not set".
		if m.HashId != 0 {
			out.HashID = &m.HashId // see placeAsDDMQ
		}
	default:
		return "", produce.Message{}, sdk.Errorf(sdk.CodeIllegal,
			"%s.partitionId: must be -1 (by hashId or key), -2 (random) or a partition >= 0; got %d", path, p)
	}
	out.Headers = headersOf(m.Properties)
	if n := out.Size(); n > maxBytes {
		return "", produce.Message{}, sdk.Errorf(sdk.CodeTooLarge,
			"%s is %d bytes (key, value, tags and properties), over the limit of %d bytes (http.max_message_bytes)", path, n, maxBytes)
	}
	return m.Topic, out, nil
}

// headersOf turns a message's properties into headers sorted by name;
// nil when there are none.
func headersOf(props map[string]string) []sdk.Header {
	if len(props) == 0 {
		return nil
	}
	headers := make([]sdk.Header, 0, len(props))
	for k, v := range props {
		headers = append(headers, sdk.Header{Key: k, Value: []byte(v)})
	}
	// Go maps have no order; sorting makes records reproducible.
	slices.SortFunc(headers, func(a, b sdk.Header) int { return strings.Compare(a.Key, b.Key) })
	return headers
}

// prefixed puts path in front of an *sdk.Error's message, which starts with
// the field it names ("topic: ...").
func prefixed(path string, err error) error {
	var e *sdk.Error
	if errors.As(err, &e) {
		return &sdk.Error{Code: e.Code, Msg: path + "." + e.Msg}
	}
	return err
}
