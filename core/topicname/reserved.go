package topicname

import (
	"fmt"
	"strings"

	"github.com/mqgate/mqgate/sdk"
)

// Prefix starts the names of every topic and consumer group the gateway
// keeps for itself, whatever the configuration says.
const Prefix = "mqgate_"

// DefaultDelayPrefix is the default of delay.topic_prefix: the tier
// topics, their consumer groups and the cancel topic start with it.
const DefaultDelayPrefix = "mqgate_delay_"

// Header prefixes only the gateway writes: a delayed message's id and due
// time, a tier record's routing, a dead letter's origin and attempts.
const (
	DelayHeaderPrefix      = "mqgate-delay-"
	DeadLetterHeaderPrefix = "mqgate-dlq-"
)

// Reserved is the one rule for the topics and groups the gateway owns,
// which no client call may name: the routes that produce, add or cancel
// delay messages, consume, ack, commit, fetch or read statistics all ask
// it. The gateway's own workers (the delay tiers, dead-lettering, push
// subscriptions) reach the broker without asking it.
//
// A nil *Reserved is the default rule: Prefix and DefaultDelayPrefix.
type Reserved struct {
	// DelayPrefix is delay.topic_prefix; "" is DefaultDelayPrefix.
	DelayPrefix string
	// Groups are consumer groups the gateway consumes with, mapped to the
	// config key that names them ("push[0].group"): a client joining one
	// would take partitions from the gateway's own consumer.
	Groups map[string]string
}

func (r *Reserved) delayPrefix() string {
	if r == nil || r.DelayPrefix == "" {
		return DefaultDelayPrefix
	}
	return r.DelayPrefix
}

// prefixProblem names the rule a topic or group name breaks, or "".
func (r *Reserved) prefixProblem(name string) string {
	if p := r.delayPrefix(); strings.HasPrefix(name, p) {
		return fmt.Sprintf("names starting %q are the gateway's delay tiers and cancels (delay.topic_prefix)", p)
	}
	if strings.HasPrefix(name, Prefix) {
		return fmt.Sprintf("names starting %q belong to the gateway itself (a fixed rule, not a config key)", Prefix)
	}
	return ""
}

// Topic refuses, with code 13 naming the rule, a topic a client may not
// produce to, delay messages to, cancel on, consume, fetch, commit or read
// statistics of. It does not check the syntax: Validate does.
func (r *Reserved) Topic(topic string) error {
	if p := r.prefixProblem(topic); p != "" {
		return sdk.Errorf(sdk.CodeNotAllowed, "topic %q is reserved: %s; clients may not use it", topic, p)
	}
	return nil
}

// Group refuses, with code 13 naming the rule, a consumer group a client
// may not consume, ack, commit or read statistics as.
func (r *Reserved) Group(group string) error {
	if p := r.prefixProblem(group); p != "" {
		return sdk.Errorf(sdk.CodeNotAllowed, "group %q is reserved: %s; clients may not use it", group, p)
	}
	if r != nil {
		if key, ok := r.Groups[group]; ok {
			return sdk.Errorf(sdk.CodeNotAllowed, "group %q is reserved: the gateway consumes with it (%s); use a group of your own", group, key)
		}
	}
	return nil
}

// Consume refuses a client session of group on topic: a reserved group or
// topic, or topic being deadLetter, the group's own dead-letter topic
// (consume.dead_letter_topic): what the group failed to process would go
// back into the topic it reads, round and round. Any other group may read
// a dead-letter topic.
func (r *Reserved) Consume(group, topic, deadLetter string) error {
	if err := r.Group(group); err != nil {
		return err
	}
	if err := r.Topic(topic); err != nil {
		return err
	}
	if topic == deadLetter {
		return sdk.Errorf(sdk.CodeNotAllowed,
			"topic %q is the dead-letter topic of group %q (consume.dead_letter_topic, or groups.%s.dead_letter_topic): "+
				"a group may not consume its own dead letters, which would cycle back into it; read it as another group", topic, group, group)
	}
	return nil
}

// HeaderProblem says why a client may not send a header named key, or
// returns "": headers starting DelayHeaderPrefix or
// DeadLetterHeaderPrefix, in any case, are written by the gateway alone,
// so a consumer can trust them.
func HeaderProblem(key string) string {
	lower := strings.ToLower(key)
	for _, p := range []string{DelayHeaderPrefix, DeadLetterHeaderPrefix} {
		if strings.HasPrefix(lower, p) {
			return fmt.Sprintf("%q is reserved: headers starting %q or %q are written by the gateway alone (delayed messages, dead letters)",
				key, DelayHeaderPrefix, DeadLetterHeaderPrefix)
		}
	}
	return ""
}

// CheckHeaders refuses, with code 11 naming the field, headers a client
// may not send (HeaderProblem).
func CheckHeaders(headers []sdk.Header) error {
	for _, h := range headers {
		if p := HeaderProblem(h.Key); p != "" {
			return sdk.Errorf(sdk.CodeIllegal, "headers: %s", p)
		}
	}
	return nil
}
