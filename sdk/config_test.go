package sdk_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/mqgate/mqgate/sdk"
)

// decodedConfig is a plugin config for DecodeConfig's tests.
type decodedConfig struct {
	Listen  string   `json:"listen"`
	DataDir *string  `json:"data_dir"`
	Ports   []int    `json:"ports"`
	Brokers []string `json:"brokers"`
}

func TestDecodeConfigReportsEveryProblem(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		// want holds "key: text the message contains", in order.
		want []string
		// listen is what the keys without a problem decode to.
		listen string
	}{
		{"valid", `{"listen": "a:1", "ports": [1, 2]}`, nil, "a:1"},
		{"unknown keys, one close to a known key", `{"data_dri": "x", "zzz": 1, "listen": "a:1"}`,
			[]string{"data_dri: unknown key; did you mean data_dir?", "zzz: unknown key; known keys are listen, data_dir, ports, brokers"}, "a:1"},
		{"wrong types", `{"listen": 5, "data_dir": ["x"], "ports": "80", "brokers": ["a:1", 2]}`,
			[]string{"brokers: want a string, got a JSON number", "data_dir: want a string, got a JSON array",
				"listen: want a string, got a JSON number", "ports: want a []int, got a JSON string"}, ""},
		{"unknown keys and wrong types together", `{"listn": "a:1", "ports": [true], "listen": "b:2"}`,
			[]string{"listn: unknown key; did you mean listen?", "ports: want a int, got a JSON bool"}, "b:2"},
		{"not an object", `["listen"]`, []string{": config must be a JSON object"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c decodedConfig
			errs := sdk.ConfigErrorsOf(sdk.DecodeConfig([]byte(tc.config), &c))
			if len(errs) != len(tc.want) {
				t.Fatalf("DecodeConfig(%s) = %v; want %d problems %q", tc.config, errs, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				key, text, _ := strings.Cut(w, ": ")
				if errs[i].Key != key || !strings.Contains(errs[i].Msg, text) {
					t.Errorf("problem %d = %q: %q; want %q containing %q", i, errs[i].Key, errs[i].Msg, key, text)
				}
			}
			if c.Listen != tc.listen {
				t.Errorf("listen decoded as %q, want %q", c.Listen, tc.listen)
			}
		})
	}
}

func TestDecodeConfigValidIsNil(t *testing.T) {
	var c decodedConfig
	if err := sdk.DecodeConfig([]byte(`{"ports": [1], "brokers": ["a:1"]}`), &c); err != nil {
		t.Fatalf("DecodeConfig of a valid config = %#v, want a nil error", err)
	}
	if !slices.Equal(c.Ports, []int{1}) || !slices.Equal(c.Brokers, []string{"a:1"}) {
		t.Fatalf("decoded %+v", c)
	}
}

// A value of the wrong type leaves its field as it was, so the plugin's own
// rules do not report the key a second time.
func TestDecodeConfigLeavesWronglyTypedFields(t *testing.T) {
	c := decodedConfig{Listen: "default:1"}
	err := sdk.DecodeConfig([]byte(`{"listen": 5, "data_dir": 7, "ports": [1, "2"]}`), &c)
	if len(sdk.ConfigErrorsOf(err)) != 3 {
		t.Fatalf("DecodeConfig = %v, want three problems", err)
	}
	if c.Listen != "default:1" || c.DataDir != nil || c.Ports != nil {
		t.Fatalf("wrongly typed values changed the fields: %+v", c)
	}
}
