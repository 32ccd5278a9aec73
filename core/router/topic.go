package router

import "github.com/mqgate/mqgate/sdk"

// MaxTopicLength is the longest topic name accepted (Kafka's limit).
const MaxTopicLength = 249

// ValidateTopic accepts the names every supported broker accepts: 1 to 249
// characters of ASCII letters, digits, '.', '_' and '-', and not "." or
// "..". The error is code 11 and names the field.
func ValidateTopic(name string) error {
	switch {
	case name == "":
		return sdk.Errorf(sdk.CodeIllegal, "topic: must not be empty")
	case len(name) > MaxTopicLength:
		return sdk.Errorf(sdk.CodeIllegal, "topic: must be at most %d characters; got %d", MaxTopicLength, len(name))
	case name == "." || name == "..":
		return sdk.Errorf(sdk.CodeIllegal, "topic: %q is not a valid topic name", name)
	}
	for i, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-') {
			return sdk.Errorf(sdk.CodeIllegal, "topic: character %q at byte %d is not allowed; a topic is made of [a-zA-Z0-9._-]", r, i)
		}
	}
	return nil
}
