package hbase

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mqgate/mqgate/sdk"
)

// maxErrorBody bounds what is read of an answer's body; the rest is
// drained up to maxDrain so the connection can be reused.
const (
	maxErrorBody = 4 << 10
	maxDrain     = 256 << 10
)

// gateway sends requests to the REST gateways of the config, failing over
// from one base URL to the next. It is safe for concurrent use.
type gateway struct {
	urls     []*url.URL
	client   *http.Client
	timeout  time.Duration
	username string
	password string
	// preferred is the index of the URL tried first: the last one that
	// answered.
	preferred atomic.Int32
}

// newGateway builds the HTTP client of cfg: one transport whose idle
// connections are bounded, shared by every request.
func newGateway(cfg *config) *gateway {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          cfg.maxIdleConns * len(cfg.urls),
		MaxIdleConnsPerHost:   cfg.maxIdleConns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: cfg.timeout,
		ExpectContinueTimeout: time.Second,
	}
	if cfg.tls != nil {
		tr.TLSClientConfig = cfg.tls
	}
	return &gateway{
		urls: cfg.urls,
		client: &http.Client{
			Transport: tr,
			// A redirect of a PUT is not something the gateway does;
			// following one could send cells elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout:  cfg.timeout,
		username: cfg.username,
		password: cfg.password,
	}
}

// close drops the idle connections.
func (g *gateway) close() { g.client.CloseIdleConnections() }

// call is one request to the gateway.
type call struct {
	method      string
	path        string // escaped, starting with '/'
	query       string
	contentType string
	body        []byte
	// idempotent lets a request that may have reached one gateway be sent
	// to the next when that one fails; a check-and-put is not, since the
	// first may have applied it.
	idempotent bool
}

// answer is a gateway's status and the start of its body.
type answer struct {
	status int
	body   []byte
	url    string
}

// do sends c, trying each base URL once, starting with the preferred one.
// It moves on when a gateway cannot be reached or answers 500, 502, 503
// or 504; a request that may have been sent moves on only when
// idempotent. The error is for a request no gateway answered.
func (g *gateway) do(ctx context.Context, c call) (answer, error) {
	start := int(g.preferred.Load())
	var lastErr error
	var last answer
	for n := range len(g.urls) {
		i := (start + n) % len(g.urls)
		a, err := g.send(ctx, g.urls[i], c)
		if ctx.Err() != nil {
			return answer{}, ctx.Err()
		}
		retry := false
		switch {
		case err != nil:
			retry = c.idempotent || notSent(err)
		case a.status == http.StatusInternalServerError || a.status == http.StatusBadGateway ||
			a.status == http.StatusServiceUnavailable || a.status == http.StatusGatewayTimeout:
			retry = c.idempotent
		}
		if !retry {
			if err == nil {
				g.preferred.Store(int32(i))
			}
			return a, err
		}
		lastErr, last = err, a
	}
	if lastErr != nil && last.status == 0 {
		return answer{}, lastErr
	}
	return last, nil
}

// send sends c to one gateway.
func (g *gateway) send(ctx context.Context, base *url.URL, c call) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	target := base.Scheme + "://" + base.Host + base.EscapedPath() + c.path
	if c.query != "" {
		target += "?" + c.query
	}
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, target, body)
	if err != nil {
		return answer{}, fmt.Errorf("building the request to %s: %w", base.Host, err)
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	req.Header.Set("Accept", "text/plain, */*")
	if g.username != "" {
		req.SetBasicAuth(g.username, g.password)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", c.method, redact(target), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody)) // the start is enough to explain a failure
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	return answer{status: resp.StatusCode, body: b, url: base.Host}, nil
}

// notSent reports whether err means the request never reached a gateway:
// the connection was refused or never made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// redact shortens a request URL for an error message: the row in the
// path may be long.
func redact(u string) string {
	if len(u) > 160 {
		return u[:160] + "..."
	}
	return u
}

// transportError is the per-record error of a request no gateway
// answered.
func transportError(err error) *sdk.Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return sdk.Errorf(sdk.CodeTimeout, "hbase sink: the REST gateway did not answer in time: %v", err)
	}
	if errors.Is(err, context.Canceled) {
		return sdk.Errorf(sdk.CodeUnavailable, "hbase sink: the write was abandoned: %v", err)
	}
	return sdk.Errorf(sdk.CodeUnavailable, "hbase sink: no REST gateway reachable: %v", err)
}

// statusError is the per-record error of a gateway's answer other than
// success, worded for a request about table.
func statusError(a answer, table string) *sdk.Error {
	detail := summary(a.body)
	switch {
	case a.status == http.StatusBadRequest:
		return sdk.Errorf(sdk.CodeIllegal, "hbase sink: the REST gateway %s refused the request to table %s as bad (400): %s", a.url, table, detail)
	case a.status == http.StatusUnauthorized:
		return sdk.Errorf(sdk.CodeUnauthenticated, "hbase sink: the REST gateway %s refused the credentials (401); check username and password", a.url)
	case a.status == http.StatusForbidden:
		return sdk.Errorf(sdk.CodeNotAllowed, "hbase sink: the REST gateway %s does not allow writing table %s (403): %s", a.url, table, detail)
	case a.status == http.StatusNotFound && strings.Contains(detail, "NoSuchColumnFamilyException"):
		return sdk.Errorf(sdk.CodeTopicNotExist, "hbase sink: a column family of the mapping does not exist in table %s (404): %s", table, detail)
	case a.status == http.StatusNotFound:
		return sdk.Errorf(sdk.CodeTopicNotExist, "hbase sink: table %s does not exist (404 from the REST gateway %s); create it, then the records can be written", table, a.url)
	case a.status == http.StatusRequestEntityTooLarge:
		return sdk.Errorf(sdk.CodeTooLarge, "hbase sink: the REST gateway %s refused a request body to table %s as too large (413); lower max_request_bytes", a.url, table)
	case a.status == http.StatusTooManyRequests || a.status == 509 || a.status >= 500:
		return sdk.Errorf(sdk.CodeUnavailable, "hbase sink: the REST gateway %s could not write table %s (%d): %s", a.url, table, a.status, detail)
	case a.status >= 400:
		return sdk.Errorf(sdk.CodeIllegal, "hbase sink: the REST gateway %s refused the request to table %s (%d): %s", a.url, table, a.status, detail)
	}
	return sdk.Errorf(sdk.CodeInternal, "hbase sink: unexpected answer %d from the REST gateway %s for table %s: %s", a.status, a.url, table, detail)
}

// summary turns the start of a plain-text answer into one line.
func summary(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	if s == "" {
		return "no message"
	}
	return s
}
