package hdfs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"
	"time"
	_ "time/tzdata" // time_zone names load on hosts without a zoneinfo database

	"github.com/hamba/avro/v2/ocf"

	"github.com/mqgate/mqgate/sdk"
)

// Defaults of the plugin's config keys.
const (
	defaultMaxBytes       = 128 << 20
	defaultMaxAge         = time.Hour
	defaultIdle           = 5 * time.Minute
	defaultRecoverAfter   = 15 * time.Minute
	defaultRequestTimeout = time.Minute
	defaultMaxOpenFiles   = 64
	// stateDirName is the directory under a path's fixed prefix that holds
	// the in-progress markers when state_dir is not set. Its leading
	// underscore makes Hive and Spark skip it.
	stateDirName = "_mqgate_hdfs"
)

// The formats, codecs and time sources the keys accept.
const (
	formatText    = "text"
	formatAvro    = "avro"
	sourceMessage = "message"
	sourceArrival = "arrival"
)

// codecs are the Avro codecs codec accepts.
var codecs = []ocf.CodecName{ocf.Deflate, ocf.Snappy, ocf.Null}

// rawConfig is the plugin's `config:` map as JSON carries it; durations and
// the path are decoded in a second step so that a bad value names its key.
type rawConfig struct {
	Namenodes       []string        `json:"namenodes"`
	User            string          `json:"user"`
	DelegationToken string          `json:"delegation_token"`
	CAFile          string          `json:"ca_file"`
	Path            string          `json:"path"`
	Format          string          `json:"format"`
	Codec           string          `json:"codec"`
	TimeSource      string          `json:"time_source"`
	TimeZone        string          `json:"time_zone"`
	Roll            json.RawMessage `json:"roll"`
	StateDir        string          `json:"state_dir"`
	RecoverAfter    string          `json:"recover_after"`
	RequestTimeout  string          `json:"request_timeout"`
	MaxOpenFiles    *int            `json:"max_open_files"`
	// Gateway is what the gateway adds: the sink entry's name, its group,
	// and this gateway's name.
	Gateway sdk.SinkInfo `json:"mqgate"`
}

// rawRoll is the `roll:` block.
type rawRoll struct {
	MaxBytes *int64 `json:"max_bytes"`
	MaxAge   string `json:"max_age"`
	Idle     string `json:"idle"`
}

// config is the validated plugin config with defaults applied.
type config struct {
	// namenodes are base URLs without a trailing slash, tried in order.
	namenodes []string
	// user is sent as user.name; token as delegation. At most one is set.
	user, token string
	// rootCAs verifies https namenodes and datanodes; nil is the system's.
	rootCAs *x509.CertPool
	path    *pathTemplate
	format  string
	codec   ocf.CodecName
	// arrival takes directory times from the clock at Write rather than
	// from the records' timestamps.
	arrival bool
	loc     *time.Location
	// maxBytes, maxAge and idle close a file: when it reaches maxBytes,
	// maxAge after it opened, or idle after its last write.
	maxBytes       int64
	maxAge, idle   time.Duration
	stateDir       string
	recoverAfter   time.Duration
	requestTimeout time.Duration
	maxOpenFiles   int
	info           sdk.SinkInfo
}

// parseConfig decodes and validates the plugin's JSON config without
// connecting to anything. It reports every problem at once, each a
// *sdk.ConfigError naming its key.
func parseConfig(data []byte) (config, sdk.ConfigErrors) {
	var raw rawConfig
	var errs sdk.ConfigErrors
	errs.Add(sdk.DecodeConfig(data, &raw))
	if len(errs) == 1 && errs[0].Key == "" {
		return config{}, errs // not a JSON object: there are no keys to check
	}
	cfg := config{
		user:           raw.User,
		token:          raw.DelegationToken,
		format:         formatText,
		loc:            time.UTC,
		maxBytes:       defaultMaxBytes,
		maxAge:         defaultMaxAge,
		idle:           defaultIdle,
		requestTimeout: defaultRequestTimeout,
		maxOpenFiles:   defaultMaxOpenFiles,
		info:           raw.Gateway,
	}
	cfg.parseNamenodes(raw.Namenodes, &errs)
	if raw.User != "" && raw.DelegationToken != "" {
		errs.Addf("delegation_token", "set either user (security off) or delegation_token (security on), not both")
	}
	if raw.CAFile != "" {
		cfg.parseCAFile(raw.CAFile, &errs)
	}
	switch {
	case raw.Path == "" && !errs.Has("path"):
		errs.Addf("path", "required: the directory to write into, e.g. /data/${topic}/${yyyy}${MM}${dd}/${HH}")
	case raw.Path != "":
		t, err := parseTemplate(raw.Path)
		if err != nil {
			errs.Addf("path", "%v", err)
		}
		cfg.path = t
	}
	cfg.parseFormat(raw.Format, raw.Codec, &errs)
	switch raw.TimeSource {
	case "", sourceMessage:
	case sourceArrival:
		cfg.arrival = true
	default:
		errs.Addf("time_source", "want %s (the record's timestamp) or %s (the time the sink writes it), got %q", sourceMessage, sourceArrival, raw.TimeSource)
	}
	if raw.TimeZone != "" {
		loc, err := time.LoadLocation(raw.TimeZone)
		if err != nil {
			errs.Addf("time_zone", "want an IANA zone name such as UTC or Asia/Shanghai, got %q", raw.TimeZone)
		}
		cfg.loc = loc
	}
	if present(raw.Roll) {
		cfg.parseRoll(raw.Roll, &errs)
	}
	cfg.parseStateDir(raw.StateDir, &errs)
	// A live writer touches an open file at least every roll.idle (then it
	// closes it), so a file left alone for twice that has no writer.
	cfg.recoverAfter = max(defaultRecoverAfter, 2*cfg.idle)
	if raw.RecoverAfter != "" {
		duration(&errs, "recover_after", raw.RecoverAfter, &cfg.recoverAfter)
		if !errs.Has("recover_after") && !errs.Has("roll") && cfg.recoverAfter < 2*cfg.idle {
			errs.Addf("recover_after", "must be at least twice roll.idle (%s), so that a live writer's open file is never taken for a dead one's; got %s", cfg.idle, cfg.recoverAfter)
		}
	}
	duration(&errs, "request_timeout", raw.RequestTimeout, &cfg.requestTimeout)
	if raw.MaxOpenFiles != nil {
		if *raw.MaxOpenFiles < 1 {
			errs.Addf("max_open_files", "must be at least 1, got %d", *raw.MaxOpenFiles)
		} else {
			cfg.maxOpenFiles = *raw.MaxOpenFiles
		}
	}
	if raw.Gateway.Group != "" {
		if err := checkName(raw.Gateway.Group); err != nil {
			errs.Addf(sdk.SinkInfoKey+".group", "the group cannot name a directory: %v", err)
		}
	}
	if len(errs) > 0 {
		return config{}, errs
	}
	return cfg, nil
}

// parseNamenodes checks the namenode URLs: http or https, a host, no
// query. A path is kept, for a gateway that serves WebHDFS under one
// (Apache Knox: https://knox:8443/gateway/default).
func (cfg *config) parseNamenodes(list []string, errs *sdk.ConfigErrors) {
	if len(list) == 0 {
		if !errs.Has("namenodes") {
			errs.Addf("namenodes", "required: the WebHDFS URLs of the namenodes (or of HttpFS), e.g. [\"http://nn1:9870\", \"http://nn2:9870\"]")
		}
		return
	}
	for i, s := range list {
		key := fmt.Sprintf("namenodes.%d", i)
		u, err := url.Parse(s)
		switch {
		case err != nil:
			errs.Addf(key, "not a URL: %q", s)
		case u.Scheme != "http" && u.Scheme != "https":
			errs.Addf(key, "want an http:// or https:// URL such as http://nn1:9870, got %q", s)
		case u.Host == "":
			errs.Addf(key, "missing the host in %q", s)
		case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			errs.Addf(key, "want a base URL without user, query or fragment, got %q", s)
		default:
			base := strings.TrimSuffix(u.String(), "/")
			base = strings.TrimSuffix(base, pathPrefix) // given with /webhdfs/v1: the plugin adds it
			cfg.namenodes = append(cfg.namenodes, base)
		}
	}
}

// parseCAFile loads the certificates https namenodes are checked against.
func (cfg *config) parseCAFile(file string, errs *sdk.ConfigErrors) {
	pem, err := os.ReadFile(file)
	if err != nil {
		errs.Addf("ca_file", "reading the CA certificates: %v", err)
		return
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		errs.Addf("ca_file", "no PEM certificate in %s", file)
		return
	}
	cfg.rootCAs = pool
}

// tlsConfig is the TLS setting of the HTTP client.
func (cfg *config) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.rootCAs}
}

// parseFormat checks format and the codec that goes with it.
func (cfg *config) parseFormat(format, codec string, errs *sdk.ConfigErrors) {
	switch format {
	case "", formatText:
		if codec != "" {
			errs.Addf("codec", "applies only to format avro (format text writes plain lines)")
		}
		return
	case formatAvro:
		cfg.format = formatAvro
	default:
		errs.Addf("format", "want %s (one value per line) or %s (Avro object container files), got %q", formatText, formatAvro, format)
		return
	}
	cfg.codec = ocf.Deflate
	if codec == "" {
		return
	}
	for _, c := range codecs {
		if string(c) == codec {
			cfg.codec = c
			return
		}
	}
	errs.Addf("codec", "want deflate, snappy or null, got %q", codec)
}

// parseRoll decodes the roll block.
func (cfg *config) parseRoll(raw json.RawMessage, errs *sdk.ConfigErrors) {
	var r rawRoll
	if err := sdk.DecodeConfig(raw, &r); err != nil {
		for _, e := range sdk.ConfigErrorsOf(err) {
			key, msg := "roll", strings.Replace(e.Msg, "config must be", "must be", 1)
			if e.Key != "" {
				key += "." + e.Key
			}
			errs.Addf(key, "%s", msg)
		}
	}
	if r.MaxBytes != nil {
		if *r.MaxBytes < 1 {
			errs.Addf("roll.max_bytes", "must be at least 1, got %d", *r.MaxBytes)
		} else {
			cfg.maxBytes = *r.MaxBytes
		}
	}
	duration(errs, "roll.max_age", r.MaxAge, &cfg.maxAge)
	duration(errs, "roll.idle", r.Idle, &cfg.idle)
}

// parseStateDir sets the directory of in-progress markers: state_dir, or
// stateDirName under the longest fixed directory prefix of path.
func (cfg *config) parseStateDir(dir string, errs *sdk.ConfigErrors) {
	if dir == "" {
		if cfg.path != nil {
			cfg.stateDir = path.Join(cfg.path.fixedPrefix(), stateDirName)
		}
		return
	}
	if !strings.HasPrefix(dir, "/") || strings.Contains(dir, "${") {
		errs.Addf("state_dir", "want an absolute HDFS directory without ${...}, got %q", dir)
		return
	}
	for _, c := range strings.Split(dir, "/") {
		if c == "." || c == ".." {
			errs.Addf("state_dir", "must not hold . or .., got %q", dir)
			return
		}
	}
	cfg.stateDir = path.Clean(dir)
}

// duration sets *d from s, a positive Go duration, when s is set.
func duration(errs *sdk.ConfigErrors, key, s string, d *time.Duration) {
	if s == "" {
		return
	}
	v, err := sdk.ConfigDuration(key, s)
	if err != nil {
		errs.Add(err)
		return
	}
	*d = v
}

// present reports whether a block was given a value other than null.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}
