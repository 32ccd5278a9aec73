package topicname

import (
	"strings"
	"testing"

	"github.com/mqgate/mqgate/sdk"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		topic   string
		wantMsg string // empty: valid
	}{
		{"orders", ""},
		{"a.b_c-D9", ""},
		{strings.Repeat("x", 249), ""},
		{"", "must not be empty"},
		{".", "not a valid topic name"},
		{"..", "not a valid topic name"},
		{strings.Repeat("x", 250), "at most 249 characters; got 250"},
		{"with space", "character ' ' at byte 4 is not allowed"},
		{"slash/es", "character '/' at byte 5"},
		{"ünïcode", "character 'ü' at byte 0"},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			err := Validate(tc.topic)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("Validate(%q) = %v, want nil", tc.topic, err)
				}
				return
			}
			if sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), tc.wantMsg) || !strings.HasPrefix(err.Error(), "topic: ") {
				t.Fatalf("Validate(%q) = %v, want code 11 naming topic with %q", tc.topic, err, tc.wantMsg)
			}
		})
	}
}

func TestValidateGroup(t *testing.T) {
	if err := ValidateGroup("billing-v2"); err != nil {
		t.Fatal(err)
	}
	err := ValidateGroup("a b")
	if sdk.CodeOf(err) != sdk.CodeIllegal || err.Error() != "group: character ' ' at byte 1 is not allowed; a group is made of [a-zA-Z0-9._-]" {
		t.Fatalf("ValidateGroup(%q) = %v", "a b", err)
	}
	if err := ValidateGroup(""); err == nil || err.Error() != "group: must not be empty" {
		t.Fatalf("ValidateGroup of an empty name = %v", err)
	}
}
