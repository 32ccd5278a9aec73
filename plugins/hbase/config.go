package hbase

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/mqgate/mqgate/core/transform"
	"github.com/mqgate/mqgate/sdk"
)

// Defaults and bounds of the plugin's config keys.
const (
	defaultTimeout         = 30 * time.Second
	defaultMaxIdleConns    = 16
	maxMaxIdleConns        = 1024
	defaultMaxRequestBytes = 8 << 20
	minMaxRequestBytes     = 1 << 10
	maxMaxRequestBytes     = 256 << 20
	defaultConcurrency     = 4
	maxConcurrency         = 64
)

// The encodings of request bodies.
const (
	encodingProtobuf = "protobuf"
	encodingJSON     = "json"
)

// rawConfig is the sink's `config:` map as JSON carries it.
type rawConfig struct {
	Gateway               sdk.SinkInfo      `json:"mqgate"`
	URLs                  []string          `json:"urls"`
	Encoding              string            `json:"encoding"`
	Table                 string            `json:"table"`
	Row                   string            `json:"row"`
	Columns               map[string]string `json:"columns"`
	Timestamp             string            `json:"timestamp"`
	Op                    string            `json:"op"`
	DeleteColumns         []string          `json:"delete_columns"`
	Check                 json.RawMessage   `json:"check"`
	Timeout               *string           `json:"timeout"`
	MaxIdleConns          *int              `json:"max_idle_conns"`
	MaxRequestBytes       *int              `json:"max_request_bytes"`
	MaxConcurrentRequests *int              `json:"max_concurrent_requests"`
	Username              string            `json:"username"`
	Password              string            `json:"password"`
	TLS                   json.RawMessage   `json:"tls"`
}

// rawCheck is the `check:` block: what a check_and_put compares.
type rawCheck struct {
	Column string `json:"column"`
	Value  string `json:"value"`
}

// config is the validated sink config with defaults applied.
type config struct {
	info            sdk.SinkInfo
	urls            []*url.URL
	encoding        string
	mapping         *mapping
	timeout         time.Duration
	maxIdleConns    int
	maxRequestBytes int
	concurrency     int
	username        string
	password        string      // a secret: never logged or quoted in an error
	tls             *tls.Config // nil: no TLS settings of its own
}

// parseConfig decodes and validates the sink's JSON config without
// connecting to anything. It reports every problem at once, each naming
// its key.
func parseConfig(data []byte) (*config, sdk.ConfigErrors) {
	var raw rawConfig
	var errs sdk.ConfigErrors
	errs.Add(sdk.DecodeConfig(data, &raw))
	if len(errs) == 1 && errs[0].Key == "" {
		return nil, errs // not a JSON object: there are no keys to check
	}
	cfg := &config{
		info:            raw.Gateway,
		encoding:        encodingProtobuf,
		timeout:         defaultTimeout,
		maxIdleConns:    defaultMaxIdleConns,
		maxRequestBytes: defaultMaxRequestBytes,
		concurrency:     defaultConcurrency,
		username:        raw.Username,
		password:        raw.Password,
	}
	cfg.urls = parseURLs(raw.URLs, &errs)
	switch raw.Encoding {
	case "", encodingProtobuf:
	case encodingJSON:
		cfg.encoding = encodingJSON
	default:
		errs.Addf("encoding", "want protobuf or json, got %q", raw.Encoding)
	}
	cfg.mapping = compileMapping(raw, &errs)
	if raw.Timeout != nil {
		d, err := sdk.ConfigDuration("timeout", *raw.Timeout)
		errs.Add(err)
		cfg.timeout = d
	}
	intKey(&errs, "max_idle_conns", raw.MaxIdleConns, 1, maxMaxIdleConns, &cfg.maxIdleConns)
	intKey(&errs, "max_request_bytes", raw.MaxRequestBytes, minMaxRequestBytes, maxMaxRequestBytes, &cfg.maxRequestBytes)
	intKey(&errs, "max_concurrent_requests", raw.MaxConcurrentRequests, 1, maxConcurrency, &cfg.concurrency)
	if raw.Password != "" && raw.Username == "" {
		errs.Addf("username", "required with password")
	}
	if strings.ContainsAny(raw.Username, ":\r\n") {
		errs.Addf("username", "must not hold a colon or a line break (HTTP basic authentication)")
	}
	if present(raw.TLS) {
		t, tlsErrs := sdk.ParseClientTLS("tls", raw.TLS)
		errs = append(errs, tlsErrs...)
		cfg.tls = t
		if t != nil && !slices.ContainsFunc(cfg.urls, func(u *url.URL) bool { return u.Scheme == "https" }) && !errs.Has("urls") {
			errs.Addf("tls", "applies only to https urls, and none is")
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// present reports whether a block was given a value other than null.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// intKey checks an optional integer key against [lo, hi] and stores it.
func intKey(errs *sdk.ConfigErrors, key string, v *int, lo, hi int, dst *int) {
	switch {
	case v == nil:
	case *v < lo || *v > hi:
		errs.Addf(key, "must be from %d to %d, got %d", lo, hi, *v)
	default:
		*dst = *v
	}
}

// parseURLs checks the gateways' base URLs: http or https, a host, no
// query, no user info (credentials go in username and password).
func parseURLs(raw []string, errs *sdk.ConfigErrors) []*url.URL {
	if len(raw) == 0 {
		errs.Addf("urls", "required: the base URLs of the HBase REST gateways, such as [\"http://hbase-rest:8080\"]")
		return nil
	}
	var out []*url.URL
	for i, s := range raw {
		key := fmt.Sprintf("urls.%d", i)
		u, err := url.Parse(s)
		switch {
		case err != nil:
			errs.Addf(key, "not a URL: %v", err)
		case u.Scheme != "http" && u.Scheme != "https":
			errs.Addf(key, "want an http:// or https:// URL, got %q", s)
		case u.Host == "":
			errs.Addf(key, "missing host in %q", s)
		case u.User != nil:
			errs.Addf(key, "must not hold credentials; set username and password")
		case u.RawQuery != "" || u.Fragment != "":
			errs.Addf(key, "must not have a query or fragment, got %q", s)
		default:
			u.Path = strings.TrimSuffix(u.Path, "/")
			u.RawPath = ""
			out = append(out, u)
		}
	}
	return out
}

// compileMapping compiles the expressions of the mapping keys and checks
// how they fit together.
func compileMapping(raw rawConfig, errs *sdk.ConfigErrors) *mapping {
	m := &mapping{}
	m.table = requiredExpr(errs, "table", raw.Table)
	m.row = requiredExpr(errs, "row", raw.Row)
	if raw.Timestamp != "" {
		m.timestamp = optionalExpr(errs, "timestamp", raw.Timestamp)
	}
	for _, col := range slices.Sorted(maps.Keys(raw.Columns)) {
		key := "columns." + col
		if err := checkColumn(col, true); err != nil {
			errs.Addf(key, "%v", err)
			continue
		}
		if e := requiredExpr(errs, key, raw.Columns[col]); e != nil {
			m.columns = append(m.columns, columnExpr{column: col, expr: e})
		}
		fam, _, _ := strings.Cut(col, ":")
		if !slices.Contains(m.families, fam) {
			m.families = append(m.families, fam)
		}
	}
	switch op := opKind(raw.Op); op {
	case "":
		m.op = opPut
	case opPut, opDelete, opCheckAndPut:
		m.op = op
	default:
		e, err := transform.CompileExpr(raw.Op)
		if err != nil {
			errs.Addf("op", "want put, delete, check_and_put or an expression giving one of them; %q does not compile: %v", raw.Op, err)
		}
		m.opExpr = e
	}
	if (m.op == opPut || m.op == opCheckAndPut) && len(raw.Columns) == 0 && !errs.Has("columns") {
		errs.Addf("columns", "required with op %s: the columns to write, such as {\"info:name\": \"json.name\"}", m.op)
	}
	for i, col := range raw.DeleteColumns {
		key := fmt.Sprintf("delete_columns.%d", i)
		if err := checkColumn(col, false); err != nil {
			errs.Addf(key, "%v", err)
		} else if strings.Contains(col, "*") {
			errs.Addf(key, "must not hold '*', which the REST gateway reads as a glob in a path")
		}
	}
	if len(raw.DeleteColumns) > 0 {
		if m.op == opPut || m.op == opCheckAndPut {
			errs.Addf("delete_columns", "applies only with op delete (or an op expression)")
		}
		m.deleteColumns = raw.DeleteColumns
	}
	m.check = compileCheck(raw, m, errs)
	if len(*errs) == 0 {
		m.combine()
	}
	return m
}

// compileCheck compiles the `check:` block, which check_and_put needs.
func compileCheck(raw rawConfig, m *mapping, errs *sdk.ConfigErrors) *checkSpec {
	if !present(raw.Check) {
		if m.op == opCheckAndPut {
			errs.Addf("check", "required with op check_and_put: {column: \"family:qualifier\", value: EXPRESSION}")
		}
		return nil
	}
	if m.op == opPut || m.op == opDelete {
		errs.Addf("check", "applies only with op check_and_put (or an op expression)")
		return nil
	}
	var rc rawCheck
	if err := sdk.DecodeConfig(raw.Check, &rc); err != nil {
		ces := sdk.ConfigErrorsOf(err)
		for _, e := range ces {
			errs.Addf(strings.TrimSuffix("check."+e.Key, "."), "%s", e.Msg)
		}
		if len(ces) == 1 && ces[0].Key == "" {
			return nil // not an object: there are no keys to check
		}
	}
	c := &checkSpec{column: rc.Column}
	switch {
	case rc.Column == "":
		errs.Addf("check.column", "required: the \"family:qualifier\" whose value is compared")
	case checkColumn(rc.Column, true) != nil:
		errs.Addf("check.column", "%v", checkColumn(rc.Column, true))
	case strings.HasSuffix(rc.Column, ":"):
		errs.Addf("check.column", "needs a qualifier: the REST gateway checks one column, not a family")
	case raw.Columns[rc.Column] == "":
		errs.Addf("check.column", "must be one of columns: the REST gateway puts the checked column along with the others, so it needs its new value")
	}
	if rc.Value == "" {
		errs.Addf("check.value", "required: the expression giving the value the check column must hold (nil or \"\" for none)")
	} else {
		c.value = optionalExpr(errs, "check.value", rc.Value)
	}
	return c
}

// requiredExpr compiles the expression of a key that must be set.
func requiredExpr(errs *sdk.ConfigErrors, key, src string) *transform.Expr {
	if strings.TrimSpace(src) == "" {
		errs.Addf(key, "required: an expression over the record, such as \"json.user_id\" or \"'users'\"")
		return nil
	}
	return optionalExpr(errs, key, src)
}

// optionalExpr compiles the expression of key.
func optionalExpr(errs *sdk.ConfigErrors, key, src string) *transform.Expr {
	e, err := transform.CompileExpr(src)
	if err != nil {
		errs.Addf(key, "does not compile: %v", err)
		return nil
	}
	return e
}

// checkColumn checks a column as config names it: "family:qualifier",
// or, where family is allowed, "family" alone. A family is printable
// characters other than the colon, and does not start with a dot.
func checkColumn(col string, needQualifier bool) error {
	fam, _, hasQualifier := strings.Cut(col, ":")
	switch {
	case needQualifier && !hasQualifier:
		return fmt.Errorf("want \"family:qualifier\", got %q", col)
	case fam == "":
		return fmt.Errorf("missing the column family in %q", col)
	case strings.HasPrefix(fam, "."):
		return fmt.Errorf("a column family must not start with a dot, got %q", fam)
	case strings.IndexFunc(fam, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return fmt.Errorf("a column family must be printable characters, got %q", fam)
	}
	return nil
}
