package produce

import "github.com/mqgate/mqgate/sdk"

// Records turns messages for one topic into backend records with their
// placement chosen.
func Records(topic string, msgs []Message) []sdk.Record {
	out := make([]sdk.Record, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		part, hash := Placement(m)
		out[i] = sdk.Record{
			Topic:     topic,
			Partition: part,
			Hash:      hash,
			Key:       m.Key,
			Value:     m.Value,
			Headers:   m.Headers,
			Tags:      m.Tags,
		}
	}
	return out
}
