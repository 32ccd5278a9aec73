package acl

import (
	"regexp"
	"strings"
	"testing"
)

func TestPatternMatch(t *testing.T) {
	for _, c := range []struct {
		pattern string
		yes, no []string
	}{
		{"orders", []string{"orders"}, []string{"orders2", "order", "", "Orders"}},
		{"*", []string{"a", "orders", ""}, nil},
		{"orders.*", []string{"orders.", "orders.eu", "orders.eu.x"}, []string{"orders", "orders-eu", "xorders.eu"}},
		{"*-audit", []string{"-audit", "pay-audit"}, []string{"pay-audit2", "audit"}},
		{"team-?-orders", []string{"team-a-orders"}, []string{"team--orders", "team-ab-orders"}},
		{"a*b*c", []string{"abc", "aXbYc", "abbc", "acbc"}, []string{"ab", "acb", "aXbY"}},
		{"a*a", []string{"aa", "aba"}, []string{"a"}},
	} {
		p, err := ParsePattern(c.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", c.pattern, err)
		}
		for _, s := range c.yes {
			if !p.Match(s) {
				t.Errorf("%q does not match %q", c.pattern, s)
			}
		}
		for _, s := range c.no {
			if p.Match(s) {
				t.Errorf("%q matches %q", c.pattern, s)
			}
		}
	}
}

func TestParsePatternRefuses(t *testing.T) {
	for _, s := range []string{"", "a b", strings.Repeat("a", maxPatternBytes+1)} {
		if _, err := ParsePattern(s); err == nil {
			t.Errorf("ParsePattern(%.20q) = nil error", s)
		}
	}
	if _, err := ParseOp("write"); err == nil || !strings.Contains(err.Error(), "produce, produce-delayed") {
		t.Errorf("ParseOp(write) = %v; want an error listing the operations", err)
	}
}

func rule(deny bool, principal string, ops []Op, topics, groups []string) Rule {
	r := Rule{Deny: deny, Principal: MustPattern(principal), Ops: ops, Source: "acl[x]"}
	for _, s := range topics {
		r.Topics = append(r.Topics, MustPattern(s))
	}
	for _, s := range groups {
		r.Groups = append(r.Groups, MustPattern(s))
	}
	return r
}

func TestDecide(t *testing.T) {
	rules := Rules{
		rule(false, "orders-svc", []Op{Produce, ProduceDelayed}, []string{"orders", "orders.*"}, nil),
		rule(false, "billing", []Op{Consume, Commit, ReadStats}, []string{"orders"}, []string{"billing-*"}),
		rule(false, "ops", []Op{Metrics, ReadStats}, nil, nil),
		rule(false, "*", []Op{Produce}, []string{"public"}, nil),
		rule(true, "*", []Op{Produce}, []string{"orders.frozen"}, nil),
	}
	for _, c := range []struct {
		req     Request
		allowed bool
		why     string
	}{
		{Request{"orders-svc", Produce, "orders", ""}, true, ""},
		{Request{"orders-svc", Produce, "orders.eu", ""}, true, ""},
		{Request{"orders-svc", Produce, "orders.frozen", ""}, false, "acl[x] denies produce on topic \"orders.frozen\""},
		{Request{"orders-svc", Consume, "orders", "g"}, false, "no acl rule allows consume"},
		{Request{"orders-svc", CancelDelay, "orders", ""}, false, "no acl rule allows cancel-delay"},
		{Request{"billing", Consume, "orders", "billing-eu"}, true, ""},
		{Request{"billing", Consume, "orders", "other"}, false, "group \"other\""},
		{Request{"billing", Commit, "payments", "billing-eu"}, false, ""},
		{Request{"billing", ReadStats, "", "billing-eu"}, true, ""},
		// A rule restricted to topics or groups does not open the gateway.
		{Request{"billing", Metrics, "", ""}, false, "on the gateway"},
		{Request{"ops", Metrics, "", ""}, true, ""},
		{Request{"ops", ReadStats, "", "any"}, true, ""},
		{Request{"anyone", Produce, "public", ""}, true, ""},
		{Request{"anyone", Produce, "orders", ""}, false, "principal \"anyone\""},
	} {
		err := rules.Decide(c.req)
		if (err == nil) != c.allowed || err != nil && !strings.Contains(err.Error(), c.why) {
			t.Errorf("Decide(%+v) = %v; want allowed %t, naming %q", c.req, err, c.allowed, c.why)
		}
	}
	// A rule for some groups' admin or browsing reaches those groups'
	// routes (subscriptions, dead letters), not the topics' admin routes,
	// which name no group.
	groupOps := Rules{rule(false, "team-a", []Op{Admin, Browse, Consume}, nil, []string{"a.*"})}
	for _, c := range []struct {
		req     Request
		allowed bool
	}{
		{Request{"team-a", Admin, "orders", "a.pay"}, true},
		{Request{"team-a", Browse, "a.pay-dlq", "a.pay"}, true},
		{Request{"team-a", Admin, "orders", ""}, false},
		{Request{"team-a", Browse, "orders", ""}, false},
		{Request{"team-a", Consume, "orders", ""}, true}, // as before for the other operations
	} {
		if err := groupOps.Decide(c.req); (err == nil) != c.allowed {
			t.Errorf("group rule: Decide(%+v) = %v; want allowed %t", c.req, err, c.allowed)
		}
	}
	// And a rule for some topics' admin does not reach what names a group
	// and no topic (deleting the group): that is about all its topics.
	topicOps := Rules{rule(false, "orders-admin", []Op{Admin, ReadStats}, []string{"orders"}, nil)}
	for _, c := range []struct {
		req     Request
		allowed bool
	}{
		{Request{"orders-admin", Admin, "orders", "billing"}, true},
		{Request{"orders-admin", Admin, "", "billing"}, false},
		{Request{"orders-admin", ReadStats, "", "billing"}, true}, // stats of a group, as before
	} {
		if err := topicOps.Decide(c.req); (err == nil) != c.allowed {
			t.Errorf("topic rule: Decide(%+v) = %v; want allowed %t", c.req, err, c.allowed)
		}
	}
	if err := Rules(nil).Decide(Request{"x", Admin, "", ""}); err != nil {
		t.Errorf("no rules refused: %v", err)
	}
	if err := (Rules{}).Decide(Request{"x", Produce, "t", ""}); err == nil {
		t.Errorf("an empty, non-nil rule list allowed a request")
	}
}

// FuzzPattern checks Match against a regular expression built from the
// same pattern.
func FuzzPattern(f *testing.F) {
	for _, s := range [][2]string{{"orders.*", "orders.eu"}, {"a*b*c", "aXbYc"}, {"?x*", "axyz"}, {"*", ""}, {"a*a", "a"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		p, err := ParsePattern(pattern)
		if err != nil {
			return
		}
		var re strings.Builder
		re.WriteString(`\A(?s:`)
		for _, r := range []byte(pattern) {
			switch r {
			case '*':
				re.WriteString(`.*`)
			case '?':
				re.WriteString(`.`)
			default:
				re.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		re.WriteString(`)\z`)
		want, err := regexp.Compile(re.String())
		if err != nil {
			return // bytes that are not UTF-8
		}
		// "?" matches a byte in Match and a rune in the reference: compare
		// only ASCII names, which is what topic and group names are.
		for i := 0; i < len(name); i++ {
			if name[i] >= 0x80 {
				return
			}
		}
		for i := 0; i < len(pattern); i++ {
			if pattern[i] >= 0x80 {
				return
			}
		}
		if got := p.Match(name); got != want.MatchString(name) {
			t.Fatalf("%q.Match(%q) = %t; the regexp says %t", pattern, name, got, !got)
		}
	})
}
