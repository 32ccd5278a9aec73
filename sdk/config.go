package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DecodeConfig decodes a plugin's JSON config into v, a pointer to a struct
// whose fields carry `json` tags. It reports every problem at once, as
// ConfigErrors with one *ConfigError per key: each unknown key (naming the
// known key it is likely a misspelling of, or listing them all), and each
// value of the wrong JSON type. The keys without a problem are decoded and
// the others leave their fields untouched, so a plugin can go on to check
// the values it got and report their problems too, once each.
// Validation of values is the plugin's own.
func DecodeConfig(data []byte, v any) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return ConfigErrors{{Msg: fmt.Sprintf("config must be a JSON object: %v", err)}}
	}
	rv := reflect.ValueOf(v).Elem()
	fields := jsonFields(rv.Type())
	known := make([]string, 0, len(fields))
	for _, f := range fields {
		known = append(known, f.name)
	}
	var errs ConfigErrors
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		i := slices.IndexFunc(fields, func(f jsonField) bool { return f.name == k })
		if i < 0 {
			errs.Addf(k, "unknown key; %s", SuggestKey(k, known))
			continue
		}
		// Decoded into a copy, so that a value of the wrong type leaves the
		// field as it was (json would allocate a nil pointer's target).
		fv := rv.Field(fields[i].index)
		nv := reflect.New(fv.Type())
		nv.Elem().Set(fv)
		dec := json.NewDecoder(bytes.NewReader(keys[k]))
		dec.DisallowUnknownFields() // inside a value that is a struct
		if err := dec.Decode(nv.Interface()); err != nil {
			errs = append(errs, decodeError(k, err))
			continue
		}
		fv.Set(nv.Elem())
	}
	return errs.Err()
}

// decodeError describes why the value of key did not decode.
func decodeError(key string, err error) *ConfigError {
	te, ok := errors.AsType[*json.UnmarshalTypeError](err)
	if !ok {
		return &ConfigError{Key: key, Msg: err.Error()}
	}
	if te.Field != "" { // a key or element inside the value
		key += "." + te.Field
	}
	return &ConfigError{Key: key, Msg: fmt.Sprintf("want a %s, got a JSON %s", te.Type, te.Value)}
}

// jsonField is a struct field a config key decodes into.
type jsonField struct {
	name  string
	index int
}

// jsonFields lists the JSON names of t's fields, in field order.
func jsonFields(t reflect.Type) []jsonField {
	var fs []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" && f.IsExported() {
			fs = append(fs, jsonField{name: name, index: i})
		}
	}
	return fs
}

// SuggestKey names the known key an unknown one is likely a misspelling
// of ("did you mean data_dir?"), or lists the known keys ("known keys are
// brokers, listen"): the end of an "unknown key" message, worded alike for
// plugins.yaml and for every plugin's config.
func SuggestKey(key string, known []string) string {
	best, bestDist := "", 3 // more than two edits away is not a typo
	for _, k := range known {
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return "did you mean " + best + "?"
	}
	return "known keys are " + strings.Join(known, ", ")
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
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
