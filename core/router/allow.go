package router

import (
	"github.com/mqgate/mqgate/sdk"
)

// Allowlist holds the only topics clients may produce to when the gateway
// does not take any topic (topics.auto_create: false): those with an entry
// under topics:. DDMQ's producer proxy refuses a topic outside its white
// list the same way, with code 13 (pproxy ProducerPool.send answers
// FAIL_TOPIC_NOT_ALLOWED when TopicConfigManager names no cluster for it).
type Allowlist struct {
	topics map[string]bool
}

// NewAllowlist returns the allowlist of topics.
func NewAllowlist(topics ...string) *Allowlist {
	a := &Allowlist{topics: make(map[string]bool, len(topics))}
	for _, t := range topics {
		a.topics[t] = true
	}
	return a
}

// Permit refuses a topic not on the list with code 13 naming the setting;
// a nil Allowlist permits every topic.
func (a *Allowlist) Permit(topic string) error {
	if a == nil || a.topics[topic] {
		return nil
	}
	return sdk.Errorf(sdk.CodeNotAllowed,
		"topic %q is not allowed: it has no entry under topics: and topics.auto_create is false", topic)
}
