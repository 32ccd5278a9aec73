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
		return sdk.Errorf(sdk.CodeIllegal, "topic: %d characters is longer than the limit of %d", len(name), MaxTopicLength)
	case name == "." || name == "..":
		return sdk.Errorf(sdk.CodeIllegal, "topic: %q is not a legal name", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return sdk.Errorf(sdk.CodeIllegal, "topic: illegal character %q at position %d (allowed: letters, digits, '.', '_', '-')", c, i)
		}
	}
	return nil
}
