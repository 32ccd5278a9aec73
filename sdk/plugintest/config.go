package plugintest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/mqgate/mqgate/sdk"
)

// Plugin is what RunConfigValidation needs of a plugin: an sdk.Backend or
// an sdk.Sink, in this process or the gateway's end of a plugin process
// (StartBackendProcess).
type Plugin interface {
	Configure(ctx context.Context, config []byte) error
	Close() error
}

// unknownKey is the key RunConfigValidation adds to a valid config; no
// plugin has it.
const unknownKey = "plugintest_no_plugin_has_this_key"

// RunConfigValidation checks, as subtests of t, that a plugin implementing
// sdk.ConfigValidator agrees with its own Configure, so that `mqgate check`
// says what the gateway will find when it starts the plugin:
//
//   - ValidateConfig accepts every config in valid, and so does Configure;
//   - both refuse the first valid config with an unknown key added, each
//     naming that key.
//
// newPlugin returns a new, unconfigured plugin each time it is called; the
// suite configures some and closes every one. The configs in valid must be
// JSON objects that Configure accepts where the test runs (a listen port
// the OS picks, a broker the test started). For a plugin that does not
// implement sdk.ConfigValidator the subtests are skipped.
func RunConfigValidation(t *testing.T, newPlugin func(t *testing.T) Plugin, valid ...[]byte) {
	t.Helper()
	if len(valid) == 0 {
		t.Fatal("RunConfigValidation needs at least one valid config")
	}
	start := func(t *testing.T) Plugin {
		p := newPlugin(t)
		t.Cleanup(func() {
			if err := p.Close(); err != nil {
				t.Errorf("closing plugin: %v", err)
			}
		})
		return p
	}
	validate := func(t *testing.T, config []byte) sdk.ConfigErrors {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		errs, err := sdk.ValidateConfig(ctx, start(t), config)
		if errors.Is(err, sdk.ErrConfigNotValidated) {
			t.Skip("the plugin does not implement sdk.ConfigValidator")
		}
		if err != nil {
			t.Fatalf("ValidateConfig(%s): %v", config, err)
		}
		return errs
	}
	configure := func(t *testing.T, config []byte) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		return start(t).Configure(ctx, config)
	}

	t.Run("AcceptsWhatConfigureAccepts", func(t *testing.T) {
		for _, config := range valid {
			if errs := validate(t, config); len(errs) > 0 {
				t.Errorf("ValidateConfig(%s) refused a valid config: %v", config, errs)
			}
			if err := configure(t, config); err != nil {
				t.Errorf("Configure(%s) refused a config given as valid: %v", config, err)
			}
		}
	})
	t.Run("RefusesUnknownKeyNamingIt", func(t *testing.T) {
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(valid[0], &keys); err != nil || keys == nil {
			t.Fatalf("the valid config %s is not a JSON object: %v", valid[0], err)
		}
		keys[unknownKey] = json.RawMessage(`1`)
		config, err := json.Marshal(keys)
		if err != nil {
			t.Fatal(err)
		}
		if errs := validate(t, config); !names(errs, unknownKey) {
			t.Errorf("ValidateConfig(%s) = %v; want a problem naming %s", config, errs, unknownKey)
		}
		if err := configure(t, config); !names(sdk.ConfigErrorsOf(err), unknownKey) {
			t.Errorf("Configure(%s) = %v; want a config error naming %s", config, err, unknownKey)
		}
	})
}

// names reports whether one of errs is about key.
func names(errs sdk.ConfigErrors, key string) bool {
	for _, e := range errs {
		if e.Key == key {
			return true
		}
	}
	return false
}
