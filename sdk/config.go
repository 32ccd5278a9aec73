package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DecodeConfig decodes a plugin's JSON config into v, a pointer to a struct
// whose fields carry `json` tags. Every problem is a *ConfigError naming the
// key: an unknown key (listing the known ones), or a value of the wrong JSON
// type. Validation of values is the plugin's own.
func DecodeConfig(data []byte, v any) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return &ConfigError{Msg: fmt.Sprintf("config must be a JSON object: %v", err)}
	}
	known := jsonKeys(reflect.TypeOf(v).Elem())
	var unknown []string
	for k := range keys {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return &ConfigError{Key: unknown[0], Msg: fmt.Sprintf("unknown key; known keys are %v", known)}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return &ConfigError{Key: te.Field, Msg: fmt.Sprintf("want a %s, got a JSON %s", te.Type, te.Value)}
		}
		return &ConfigError{Msg: err.Error()}
	}
	return nil
}

// jsonKeys lists the JSON names of t's fields, in field order.
func jsonKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

// ConfigDuration parses a config value that must be a positive Go duration
// ("30s", "168h"), naming key in the error.
func ConfigDuration(key, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, &ConfigError{Key: key, Msg: fmt.Sprintf("want a duration like \"168h\" or \"30s\", got %q", s)}
	}
	if d <= 0 {
		return 0, &ConfigError{Key: key, Msg: fmt.Sprintf("must be positive, got %q", s)}
	}
	return d, nil
}

// CheckHostPort validates "host:port". Port 0 (let the OS pick) and an
// empty host are allowed only for a listen address.
func CheckHostPort(hp string, listen bool) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", hp)
	}
	if !listen && host == "" {
		return fmt.Errorf("missing host in %q", hp)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !listen) {
		return fmt.Errorf("bad port in %q", hp)
	}
	return nil
}
