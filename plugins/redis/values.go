package redis

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Booleans as arguments, boxed once.
var (
	argTrue  any = "true"
	argFalse any = "false"
)

// keyOf turns what a key expression gave into a key: a string that is
// not empty, or a number written out.
func keyOf(v any) (string, error) {
	var k string
	switch t := v.(type) {
	case string:
		k = t
	case []byte:
		k = string(t)
	case int:
		k = strconv.Itoa(t)
	case int64:
		k = strconv.FormatInt(t, 10)
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return "", fmt.Errorf("gave %v, want a string or a number", t)
		}
		k = strconv.FormatFloat(t, 'f', -1, 64)
	default:
		return "", fmt.Errorf("gave %s, want a string or a number", describe(v))
	}
	if k == "" {
		return "", fmt.Errorf("gave an empty string")
	}
	return k, nil
}

// argOf turns what a value expression gave into an argument go-redis
// writes: strings, bytes and numbers as they are, booleans as true or
// false, times in RFC 3339, anything else (maps, lists) as JSON. nil has
// no argument: the caller decides whether that leaves the value out or is
// an error.
func argOf(v any) (any, error) {
	switch t := v.(type) {
	case nil:
		return nil, fmt.Errorf("gave nil")
	case string, []byte, int, int64, float64:
		return v, nil
	case bool:
		if t {
			return argTrue, nil
		}
		return argFalse, nil
	case time.Time:
		return t.Format(time.RFC3339Nano), nil
	case time.Duration:
		return t.String(), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("gave %s, which has no JSON form: %v", describe(v), err)
	}
	return b, nil
}

// ttlOf turns what a ttl expression gave into a time to live: a number of
// seconds (fractions allowed), a string holding one or a Go duration
// ("90s"), or a duration.
func ttlOf(v any) (time.Duration, error) {
	var d time.Duration
	switch t := v.(type) {
	case int:
		d = time.Duration(t) * time.Second
		if t > int(maxTTL/time.Second) {
			d = maxTTL + 1
		}
	case float64:
		if math.IsNaN(t) || t > maxTTL.Seconds() {
			return 0, fmt.Errorf("gave %v seconds, want 0.001 to %.0f", t, maxTTL.Seconds())
		}
		d = time.Duration(t * float64(time.Second))
	case time.Duration:
		d = t
	case string:
		dd, _, err := durationOf(strings.TrimSpace(t))
		if err != nil {
			return 0, err
		}
		return dd, nil
	default:
		return 0, fmt.Errorf("gave %s, want a number of seconds or a duration", describe(v))
	}
	if d < time.Millisecond || d > maxTTL {
		return 0, fmt.Errorf("gave %v, want a time to live from 1ms to %v", v, maxTTL)
	}
	return d, nil
}

// integerOf turns what INCRBY's by gave into an integer: an int, a float
// without a fraction, or a string holding an integer.
func integerOf(v any) (int64, error) {
	switch t := v.(type) {
	case int:
		return int64(t), nil
	case int64:
		return t, nil
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<63 {
			return int64(t), nil
		}
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64); err == nil {
			return n, nil
		}
		return 0, fmt.Errorf("gave %q, want an integer", t)
	}
	return 0, fmt.Errorf("gave %s, want an integer", describe(v))
}

// scoreOf turns what ZADD's score gave into a score: a number, or a
// string holding one ("inf" and "-inf" included, as Redis allows).
func scoreOf(v any) (float64, error) {
	switch t := v.(type) {
	case int:
		return float64(t), nil
	case int64:
		return float64(t), nil
	case float64:
		if !math.IsNaN(t) {
			return t, nil
		}
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(t), 64); err == nil && !math.IsNaN(f) {
			return f, nil
		}
		return 0, fmt.Errorf("gave %q, want a number", t)
	}
	return 0, fmt.Errorf("gave %s, want a number", describe(v))
}

// describe names the kind of a value an expression gave, for messages.
func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "nil"
	case string:
		return strconv.Quote(t)
	case bool:
		return fmt.Sprintf("a boolean (%v)", t)
	case int, int64, float64:
		return fmt.Sprintf("a number (%v)", t)
	case map[string]any, map[string]string:
		return "a map"
	case []any, []string:
		return "a list"
	}
	return fmt.Sprintf("a %T", v)
}
