package router

import (
	"strings"
	"testing"

	"github.com/mqgate/mqgate/sdk"
)

func TestValidateTopic(t *testing.T) {
	for _, tc := range []struct {
		topic   string
		wantMsg string // empty: valid
	}{
		{"orders", ""},
		{"a.b_c-D9", ""},
		{strings.Repeat("x", 249), ""},
		{"", "must not be empty"},
		{".", "not a legal name"},
		{"..", "not a legal name"},
		{strings.Repeat("x", 250), "limit of 249"},
		{"with space", "illegal character ' ' at position 4"},
		{"slash/es", "illegal character '/'"},
		{"ünïcode", "illegal character"},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			err := ValidateTopic(tc.topic)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("ValidateTopic(%q) = %v, want nil", tc.topic, err)
				}
				return
			}
			if sdk.CodeOf(err) != sdk.CodeIllegal || !strings.Contains(err.Error(), tc.wantMsg) || !strings.HasPrefix(err.Error(), "topic: ") {
				t.Fatalf("ValidateTopic(%q) = %v, want code 11 naming topic with %q", tc.topic, err, tc.wantMsg)
			}
		})
	}
}
