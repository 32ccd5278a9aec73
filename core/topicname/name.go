// Package topicname holds the rules for topic names, which the config, the
// router and every frontend apply alike. Consumer group names follow the
// same rule. It also holds the names the gateway reserves for itself
// (Reserved) and the headers only the gateway writes (HeaderProblem).
package topicname

import (
	"fmt"
	"strings"

	"github.com/mqgate/mqgate/sdk"
)

// MaxLength is the longest topic name accepted (Kafka's limit).
const MaxLength = 249

// Problem says what is wrong with a topic name, or returns "" for a name
// every supported broker accepts: 1 to 249 characters of ASCII letters,
// digits, '.', '_' and '-', and not "." or "..".
func Problem(name string) string {
	switch {
	case name == "":
		return "must not be empty"
	case len(name) > MaxLength:
		return fmt.Sprintf("must be at most %d characters; got %d", MaxLength, len(name))
	case name == "." || name == "..":
		return fmt.Sprintf("%q is not a valid topic name", name)
	}
	for i, r := range name {
		if !NameChar(r) {
			return fmt.Sprintf("character %q at byte %d is not allowed; a topic is made of [a-zA-Z0-9._-]", r, i)
		}
	}
	return ""
}

// NameChar reports whether r may appear in a topic or group name: an ASCII
// letter or digit, '.', '_' or '-'.
func NameChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-'
}

// Validate is Problem as the error clients see: code 11 naming the field.
func Validate(name string) error {
	if p := Problem(name); p != "" {
		return sdk.Errorf(sdk.CodeIllegal, "topic: %s", p)
	}
	return nil
}

// GroupProblem is Problem for a consumer group name: groups follow the rule
// of topic names, and the message says "group".
func GroupProblem(name string) string {
	return strings.ReplaceAll(Problem(name), "topic", "group")
}

// ValidateGroup is GroupProblem as the error clients see: code 11 naming
// the field "group".
func ValidateGroup(name string) error {
	if p := GroupProblem(name); p != "" {
		return sdk.Errorf(sdk.CodeIllegal, "group: %s", p)
	}
	return nil
}
