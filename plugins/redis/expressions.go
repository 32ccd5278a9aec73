package redis

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mqgate/mqgate/core/transform"
	"github.com/mqgate/mqgate/sdk"
)

// source is an expression as a config writes it: a string, or a number,
// which is the expression of that constant.
type source string

// UnmarshalJSON accepts a JSON string or number.
func (s *source) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = source(str)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*s = source(n)
		return nil
	}
	return errors.New("want an expression (a string) or a number")
}

// compile compiles the optional expression at key.
func compile(key string, src *source, errs *sdk.ConfigErrors) *transform.Expr {
	return compileWith(key, src, errs, transform.CompileExpr)
}

// compileWhen compiles the optional `when:` filter at key.
func compileWhen(key string, src *source, errs *sdk.ConfigErrors) *transform.Filter {
	return compileWith(key, src, errs, transform.CompileFilter)
}

// compileWith compiles src, when set, with fn, reporting a problem at key.
func compileWith[T any](key string, src *source, errs *sdk.ConfigErrors, fn func(string) (*T, error)) *T {
	if src == nil || errs.Has(key) {
		return nil
	}
	if strings.TrimSpace(string(*src)) == "" {
		errs.Addf(key, "is empty; want an expression (a literal string is quoted inside: \"'text'\")")
		return nil
	}
	e, err := fn(string(*src))
	if err != nil {
		errs.Addf(key, "does not compile: %s%s", firstLine(err), quoteHint(string(*src), err))
		return nil
	}
	return e
}

// firstLine keeps an expression's error to its first line: expr-lang
// follows it with the source and a caret, which say no more than the
// line:column the first line ends with.
func firstLine(err error) string {
	msg, _, _ := strings.Cut(strings.TrimSpace(err.Error()), "\n")
	return strings.TrimSpace(msg)
}

// quoteHint suggests quoting an expression that is a bare word the
// expression language does not know, such as `status: paid` meant as the
// text paid.
func quoteHint(src string, err error) string {
	word := strings.TrimSpace(src)
	if !strings.Contains(err.Error(), "unknown name "+word) {
		return ""
	}
	return fmt.Sprintf("; for the text %s, quote it inside the expression: \"'%s'\"", word, word)
}
