// Package acl decides what a principal may do: rules over operations and
// topic and group name patterns, where a deny wins over any allow and
// nothing is allowed that no rule allows.
//
// A rule applies to a request when its principal pattern matches the
// request's principal, it lists the request's operation, and its topic
// and group patterns match the request's topic and group, for those the
// request names. A rule without topics (or groups) matches any. A request
// that names neither (metrics, say) is matched only by rules that restrict
// neither: a rule for some topics does not open the gateway's own state.
package acl

import (
	"fmt"
	"slices"
	"strings"
)

// Op is an operation a client asks for.
type Op string

// The operations.
const (
	Produce        Op = "produce"         // send messages to a topic
	ProduceDelayed Op = "produce-delayed" // send delayed messages to a topic
	CancelDelay    Op = "cancel-delay"    // cancel a delayed message of a topic
	Consume        Op = "consume"         // pull, ack or fetch a topic as a group
	Commit         Op = "commit"          // move a group's committed offsets
	ReadStats      Op = "read-stats"      // read a group's lag and positions, a topic's ranges
	Browse         Op = "browse"          // read a topic's messages outside any group (admin browse)
	Admin          Op = "admin"           // change the gateway's or a broker's settings
	Metrics        Op = "metrics"         // read /metrics and the plugin and push status
)

// Ops lists every operation, in the order the docs give them.
var Ops = []Op{Produce, ProduceDelayed, CancelDelay, Consume, Commit, ReadStats, Browse, Admin, Metrics}

// ParseOp returns the operation named s, or an error listing the names.
func ParseOp(s string) (Op, error) {
	if slices.Contains(Ops, Op(s)) {
		return Op(s), nil
	}
	names := make([]string, len(Ops))
	for i, op := range Ops {
		names[i] = string(op)
	}
	return "", fmt.Errorf("unknown operation %q; the operations are %s", s, strings.Join(names, ", "))
}

// Rule is one entry of the rules, compiled.
type Rule struct {
	Deny      bool
	Principal Pattern
	Ops       []Op
	Topics    []Pattern // nil: any topic
	Groups    []Pattern // nil: any group
	// Source says where the rule was written (acl[3]), for messages.
	Source string
}

// Request is what a principal asks for: an operation on a topic and a
// group, either of which may be empty.
type Request struct {
	Principal string
	Op        Op
	Topic     string
	Group     string
}

// Resource describes the request's topic and group for a message.
func (r Request) Resource() string {
	switch {
	case r.Topic != "" && r.Group != "":
		return fmt.Sprintf("topic %q as group %q", r.Topic, r.Group)
	case r.Topic != "":
		return fmt.Sprintf("topic %q", r.Topic)
	case r.Group != "":
		return fmt.Sprintf("group %q", r.Group)
	}
	return "the gateway"
}

// applies reports whether rule r covers req.
func (r *Rule) applies(req Request) bool {
	if !r.Principal.Match(req.Principal) || !slices.Contains(r.Ops, req.Op) {
		return false
	}
	if req.Topic == "" && req.Group == "" {
		return r.Topics == nil && r.Groups == nil
	}
	// A rule for some groups' admin or browsing does not reach the
	// admin routes of topics, which name no group: creating or browsing
	// any topic would otherwise come with managing a group's
	// subscriptions or reading its dead letters.
	if req.Group == "" && r.Groups != nil && (req.Op == Admin || req.Op == Browse) {
		return false
	}
	// Nor does a rule for some topics' admin reach what names a group and
	// no topic (deleting a group, listing its subscriptions): it is about
	// the group's every topic.
	if req.Topic == "" && r.Topics != nil && req.Op == Admin && !r.Deny {
		return false
	}
	if req.Topic != "" && r.Topics != nil && !matchAny(r.Topics, req.Topic) {
		return false
	}
	if req.Group != "" && r.Groups != nil && !matchAny(r.Groups, req.Group) {
		return false
	}
	return true
}

func matchAny(ps []Pattern, s string) bool {
	return slices.ContainsFunc(ps, func(p Pattern) bool { return p.Match(s) })
}

// Rules is an ordered list of rules. A nil Rules allows everything: no
// rules configured is how a deployment says it does not restrict.
type Rules []Rule

// Decide returns nil when req is allowed, else why not: the deny rule that
// applies, or that no rule allows it.
func (rs Rules) Decide(req Request) error {
	if rs == nil {
		return nil
	}
	allowed := false
	for i := range rs {
		r := &rs[i]
		if !r.applies(req) {
			continue
		}
		if r.Deny {
			return fmt.Errorf("%s denies %s on %s to principal %q", r.Source, req.Op, req.Resource(), req.Principal)
		}
		allowed = true
	}
	if !allowed {
		return fmt.Errorf("no acl rule allows %s on %s to principal %q", req.Op, req.Resource(), req.Principal)
	}
	return nil
}
