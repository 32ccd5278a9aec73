package push

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// DDMQ's errno values (carrera-consumer's cproxy/actions/http/
// CarreraAsyncRequest.java, HttpErrNo).
const (
	ErrnoOK          = 0
	ErrnoSlowDown    = 1000000 // delivered; send slower for a while
	ErrnoUnprocessed = 1000001 // delivered: the receiver will not take it, and does not want it again
	ErrnoRetry       = 1000002 // send it again in a second
)

// ddmqRetrySoon is the wait CProxy gives errno 1000002 (DEFAULT_RETRY_DELAY).
const ddmqRetrySoon = time.Second

// classifyDDMQ reads a reply as CProxy's onCompleted does: a status other
// than 200 is an error, retried on retry.backoff; a 200 is judged by the
// errno of its body (ddmqOutcome).
func classifyDDMQ(resp *http.Response) outcome {
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes)) // a reply cut short reads as not JSON: delivered
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBytes))
	return ddmqOutcome(resp.StatusCode, reply)
}

// ddmqOutcome maps a status and reply body to what CProxy does with them:
//
//   - status other than 200: an error (retryBackoff); 502-504 also mark
//     the target down, as for every envelope.
//   - a blank body, a body that is not a JSON object, or one without an
//     errno (or with errno null): delivered.
//   - errno 0 and 1000001: delivered; 1000000: delivered, and the
//     subscription slows down; 1000002: retried after 1 s (retrySoon).
//   - errno that is not a number Java's Integer.parseInt takes: the
//     message is dropped by CProxy; here it is dead-lettered.
//   - any other errno: retried on ddmq.retry_intervals (retryErrno).
func ddmqOutcome(code int, reply []byte) outcome {
	if code != http.StatusOK {
		o := outcome{verdict: verdictRetry, why: replyWhy(code, reply)}
		o.unhealthy = code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
		return o
	}
	errno, found, bad := ddmqErrno(reply)
	switch {
	case bad:
		return outcome{verdict: verdictReject, why: "HTTP 200 with an errno that is not an integer: " + snippet(reply)}
	case !found:
		return outcome{verdict: verdictOK}
	}
	switch errno {
	case ErrnoOK, ErrnoUnprocessed:
		return outcome{verdict: verdictOK}
	case ErrnoSlowDown:
		return outcome{verdict: verdictOK, slowDown: true}
	case ErrnoRetry:
		return outcome{verdict: verdictRetry, rule: retrySoon, why: "errno 1000002 (retry)"}
	}
	return outcome{verdict: verdictRetry, rule: retryErrno, why: fmt.Sprintf("errno %d: %s", errno, snippet(reply))}
}

// replyWhy describes a failed reply: its code and the start of its body.
func replyWhy(code int, reply []byte) string {
	why := fmt.Sprintf("HTTP %d", code)
	if s := snippet(reply); s != "" {
		why += ": " + s
	}
	return why
}

// snippet is the start of a reply, for logs and dead-letter headers.
func snippet(reply []byte) string {
	s := strings.TrimSpace(string(reply))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// ddmqErrno finds the errno of a reply as CProxy's
// processResponseContent does with fastjson: JSONObject.parseObject, then
// getInteger("errno"). found is false when there is none to act on (a
// blank body, not a JSON object, no errno member, null, or a value
// fastjson fails to convert with an exception other than
// NumberFormatException: all of which CProxy takes as success). bad is
// true when CProxy's conversion throws NumberFormatException, which drops
// the message. The member name is matched exactly; the last of repeated
// members wins.
func ddmqErrno(reply []byte) (errno int32, found, bad bool) {
	if strings.TrimFunc(string(reply), unicode.IsSpace) == "" {
		return 0, false, false
	}
	var obj map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(reply))
	if d.Decode(&obj) != nil || obj == nil || len(bytes.TrimLeft(reply[d.InputOffset():], " \t\r\n")) > 0 {
		return 0, false, false
	}
	raw, ok := obj["errno"]
	if !ok {
		return 0, false, false
	}
	return javaInteger(raw)
}

// javaInteger converts a JSON value as fastjson 1.2's TypeUtils.castToInt
// does, after fastjson parsed it (integers as Integer, Long or
// BigInteger, other numbers as BigDecimal).
func javaInteger(raw json.RawMessage) (v int32, found, bad bool) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0, string(raw) == "null":
		return 0, false, false
	case string(raw) == "true":
		return 1, true, false
	case string(raw) == "false":
		return 0, true, false
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false, false
		}
		return javaParseInt(s)
	case raw[0] == '{' || raw[0] == '[':
		return 0, false, false // JSONException: "can not cast to int"
	}
	n, ok := javaNumberIntValue(string(raw))
	return n, ok, false
}

// trailingZeros is fastjson's NUMBER_WITH_TRAILING_ZEROS_PATTERN, which
// castToInt strips from a string before Integer.parseInt.
var trailingZeros = regexp.MustCompile(`\.0*$`)

// javaParseInt is castToInt of a string: "", "null" and "NULL" are null;
// commas are removed and a trailing ".0…" stripped; the rest must be a
// decimal int, else Integer.parseInt throws NumberFormatException.
func javaParseInt(s string) (v int32, found, bad bool) {
	if s == "" || s == "null" || s == "NULL" {
		return 0, false, false
	}
	s = strings.ReplaceAll(s, ",", "")
	s = trailingZeros.ReplaceAllString(s, "")
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, false, true
	}
	return int32(n), true, false
}

// maxJavaScale is the scale past which fastjson's intValue(BigDecimal)
// calls intValueExact, which throws unless the value is an int exactly.
const maxJavaScale = 100

// javaNumberIntValue is Java's intValue of a JSON number as fastjson
// parses it: the integer part, then its low 32 bits (Integer, Long,
// BigInteger and BigDecimal all wrap so). ok is false when Java throws
// (ArithmeticException from intValueExact), which CProxy takes as a
// reply without errno.
func javaNumberIntValue(lit string) (int32, bool) {
	mant, exp, found := strings.Cut(strings.ToLower(lit), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	neg := strings.HasPrefix(intPart, "-")
	digits := strings.TrimPrefix(intPart, "-") + frac
	scale := int64(len(frac))
	if found {
		// An exponent past ±2^62 (even past int64) puts the scale far
		// outside ±100 all the same; clamping keeps the sum in range.
		negExp := strings.HasPrefix(exp, "-")
		expDigits := strings.TrimLeft(strings.TrimLeft(exp, "+-"), "0")
		e := int64(1 << 62)
		if len(expDigits) <= 18 {
			e, _ = strconv.ParseInt("0"+expDigits, 10, 64)
		}
		if negExp {
			e = -e
		}
		scale -= e
	}
	unscaled, ok := new(big.Int).SetString(digits, 10)
	if !ok {
		return 0, false
	}
	if neg {
		unscaled.Neg(unscaled)
	}
	value := new(big.Int)
	switch {
	case unscaled.Sign() == 0:
		return 0, true
	case scale >= -maxJavaScale && scale <= 0:
		value.Mul(unscaled, new(big.Int).Exp(big.NewInt(10), big.NewInt(-scale), nil))
	case scale > 0 && scale <= maxJavaScale:
		value.Quo(unscaled, new(big.Int).Exp(big.NewInt(10), big.NewInt(scale), nil))
	case scale < 0:
		return 0, false // intValueExact: at least 10^101, not an int
	default:
		// intValueExact of a value with more than 100 decimals: exact
		// only when the decimals are all zeros, and the value fits.
		z := len(digits) - len(strings.TrimRight(digits, "0"))
		if int64(z) < scale {
			return 0, false
		}
		value.Quo(unscaled, new(big.Int).Exp(big.NewInt(10), big.NewInt(scale), nil))
		if !value.IsInt64() || value.Int64() != int64(int32(value.Int64())) {
			return 0, false
		}
		return int32(value.Int64()), true
	}
	// The low 32 bits, two's complement, as BigInteger.intValue.
	low := new(big.Int).And(value, big.NewInt(0xffffffff))
	return int32(uint32(low.Uint64())), true
}
