package thriftapi

import (
	"fmt"
	"strings"

	"github.com/mqgate/mqgate/sdk"
)

// CallToken says where a Thrift call carries a bearer token of its own
// (auth.thrift_token): DDMQ's SDKs send no credential, and a user can set
// only message properties and group names.
type CallToken struct {
	// Property is the producer message property that holds the token,
	// matched without regard to case. It is removed before the message
	// reaches the broker.
	Property string
	// GroupSeparator ends the token in a consumer call's group name,
	// "<token><GroupSeparator><group>"; the broker sees only <group>. It
	// holds a character no group name may (config checks it), so the last
	// one in a name ends the token.
	GroupSeparator string
}

// takeProperty removes every property of props named name, in any case,
// and returns its value; found is false when there is none. twice is true
// when names that differ only in case were both there: which one is the
// token would be a guess.
func takeProperty(props map[string]string, name string) (token string, found, twice bool) {
	for k, v := range props {
		if strings.EqualFold(k, name) {
			twice = twice || found
			token, found = v, true
			delete(props, k)
		}
	}
	return token, found, twice
}

// splitGroup splits a group name "<token><sep><group>" at its last sep;
// found is false, and group is name, when name holds no sep.
func splitGroup(name, sep string) (token, group string, found bool) {
	i := strings.LastIndex(name, sep)
	if i < 0 {
		return "", name, false
	}
	return name[:i], name[i+len(sep):], true
}

// callToken gathers the token one call carries: every field that may
// hold one must hold the same token, or none may. With no carrier
// (auth.thrift_token is off) fields hold no token and are read as they
// are.
type callToken struct {
	carrier *CallToken
	// inGroups is true for a ConsumerService call, whose tokens are in
	// group names; false for a ProducerService call's properties.
	inGroups bool
	token    string
	// first names the first field looked at; "" before any.
	first string
}

// property takes the token out of props, the properties map field names
// ("messages[2].properties"). An empty token or one given twice is code
// 11.
func (c *callToken) property(field string, props map[string]string) error {
	if c.carrier == nil {
		return nil
	}
	token, found, twice := takeProperty(props, c.carrier.Property)
	at := fmt.Sprintf("%s[%q]", field, c.carrier.Property)
	switch {
	case twice:
		return sdk.Errorf(sdk.CodeIllegal, "%s: given more than once, in names that differ only in case", at)
	case found && token == "":
		return sdk.Errorf(sdk.CodeIllegal, "%s: empty; set an API key or JWT, or leave the property out", at)
	}
	return c.record(at, token)
}

// group returns the group name field holds without its token, checked as
// a group name. Nothing before the separator is code 11.
func (c *callToken) group(field, name string) (string, error) {
	if c.carrier != nil {
		token, group, found := splitGroup(name, c.carrier.GroupSeparator)
		if found && token == "" {
			return "", sdk.Errorf(sdk.CodeIllegal, "%s: nothing before %q; send \"<API key or JWT>%s<group>\", or the group alone",
				field, c.carrier.GroupSeparator, c.carrier.GroupSeparator)
		}
		if err := c.record(field, token); err != nil {
			return "", err
		}
		name = group
	}
	if err := checkGroup(field, name); err != nil {
		return "", err
	}
	return name, nil
}

// record notes the token ("" for none) of field. Errors never hold a
// token.
func (c *callToken) record(field, token string) error {
	if c.first == "" {
		c.first, c.token = field, token
		return nil
	}
	if token == c.token {
		return nil
	}
	var differs string
	switch {
	case c.token == "":
		differs = "carries a token while " + c.first + " carries none"
	case token == "":
		differs = "carries no token while " + c.first + " does"
	default:
		differs = "carries another token than " + c.first
	}
	return sdk.Errorf(sdk.CodeIllegal, "%s: %s; every field of one call must carry the same token (auth.thrift_token), or none", field, differs)
}

// prefix is what precedes a group name in the call: "<token><separator>",
// or "" for none.
func (c *callToken) prefix() string {
	if c.token == "" {
		return ""
	}
	return c.token + c.carrier.GroupSeparator
}

// how tells a client that sent no credential how to send one.
func (c *callToken) how() string {
	switch {
	case c.carrier == nil:
		return "connect with a client certificate or from a network of auth.networks"
	case c.inGroups:
		return fmt.Sprintf("prefix the group name with an API key or JWT and %q (\"<token>%s<group>\")", c.carrier.GroupSeparator, c.carrier.GroupSeparator)
	default:
		return fmt.Sprintf("set the message property %q to an API key or JWT", c.carrier.Property)
	}
}
