package hdfs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// pathPrefix starts the path of every WebHDFS URL.
const pathPrefix = "/webhdfs/v1"

// maxAnswer bounds the JSON answers the client reads (a listing of a
// directory with tens of thousands of entries fits).
const maxAnswer = 64 << 20

// remoteError is a WebHDFS error answer: its HTTP status and the
// RemoteException body, when it had one.
type remoteError struct {
	Status    int    `json:"-"`
	Exception string `json:"exception"`
	Message   string `json:"message"`
}

func (e *remoteError) Error() string {
	if e.Exception == "" {
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Exception, e.Message)
}

// isRemote reports whether err is a RemoteException named exception.
func isRemote(err error, exception string) bool {
	re, ok := errors.AsType[*remoteError](err)
	return ok && re.Exception == exception
}

// refusedCredentials reports whether err says the cluster does not accept
// who the sink says it is, which no retry mends.
func refusedCredentials(err error) bool {
	re, ok := errors.AsType[*remoteError](err)
	if !ok {
		return false
	}
	switch re.Exception {
	case "SecurityException", "AccessControlException", "InvalidToken":
		return true
	}
	return re.Status == http.StatusUnauthorized
}

// fileStatus is the part of WebHDFS's FileStatus the sink reads.
type fileStatus struct {
	PathSuffix       string `json:"pathSuffix"`
	Type             string `json:"type"`
	Length           int64  `json:"length"`
	ModificationTime int64  `json:"modificationTime"`
}

// webhdfs is a WebHDFS client. Namenode requests go to the namenode that
// last answered and fail over to the next when one is unreachable or
// answers StandbyException; data goes where the namenode redirects.
type webhdfs struct {
	namenodes []string
	user      string
	token     string
	timeout   time.Duration
	http      *http.Client

	mu     sync.Mutex
	active int // index into namenodes
}

// newWebHDFS returns a client of cfg's cluster.
func newWebHDFS(cfg config) *webhdfs {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg.tlsConfig()
	tr.MaxIdleConnsPerHost = 16
	// Bounds the wait for a server that took a request and went silent,
	// where no overall timeout applies (a file streamed by OPEN).
	tr.ResponseHeaderTimeout = cfg.requestTimeout
	tr.DialContext = (&net.Dialer{Timeout: min(cfg.requestTimeout, 30*time.Second), KeepAlive: 30 * time.Second}).DialContext
	return &webhdfs{
		namenodes: cfg.namenodes, user: cfg.user, token: cfg.token, timeout: cfg.requestTimeout,
		http: &http.Client{
			Transport: tr,
			// The two steps of CREATE, APPEND and OPEN are the client's
			// own: following a 307 would send the data to the namenode.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// close drops idle connections.
func (c *webhdfs) close() { c.http.CloseIdleConnections() }

// answer is a namenode's response, read in full.
type answer struct {
	status   int
	location string
	body     []byte
}

// namenode sends one namenode request for op on p and reads its answer;
// see namenodeDo.
func (c *webhdfs) namenode(ctx context.Context, method, op, p string, q url.Values) (answer, error) {
	resp, err := c.namenodeDo(ctx, method, op, p, q, c.timeout)
	if err != nil {
		return answer{}, err
	}
	return readAnswer(resp)
}

// namenodeDo sends one namenode request for op on p, trying each namenode
// once from the last one that answered, each within timeout (0: the
// caller's context and the transport's timeouts only). It fails over on a
// connection error and on StandbyException; any other answer is returned,
// its body unread, for the caller to close.
func (c *webhdfs) namenodeDo(ctx context.Context, method, op, p string, q url.Values, timeout time.Duration) (*http.Response, error) {
	if q == nil {
		q = url.Values{}
	}
	q.Set("op", op)
	if c.token != "" {
		q.Set("delegation", c.token)
	} else if c.user != "" {
		q.Set("user.name", c.user)
	}
	u := url.URL{Path: pathPrefix + p, RawQuery: q.Encode()}
	c.mu.Lock()
	first := c.active
	c.mu.Unlock()
	var failures []string
	for k := range c.namenodes {
		i := (first + k) % len(c.namenodes)
		resp, err := c.do(ctx, method, c.namenodes[i]+u.EscapedPath()+"?"+u.RawQuery, nil, timeout)
		if err == nil && resp.StatusCode == http.StatusForbidden {
			var a answer
			if a, err = readAnswer(resp); err == nil {
				if re := decodeRemote(a); re.Exception == "StandbyException" {
					err = re
				}
				resp.Body = io.NopCloser(bytes.NewReader(a.body))
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s %s: %w", op, p, ctx.Err())
			}
			failures = append(failures, fmt.Sprintf("%s: %v", c.namenodes[i], err))
			continue
		}
		if i != first {
			c.mu.Lock()
			c.active = i
			c.mu.Unlock()
		}
		return resp, nil
	}
	return nil, fmt.Errorf("%s %s: no namenode answered (%s)", op, p, strings.Join(failures, "; "))
}

// do sends one request; with a timeout, it bounds the request and the
// reading of the answer, which ends when the answer's body is closed.
func (c *webhdfs) do(ctx context.Context, method, target string, body []byte, timeout time.Duration) (*http.Response, error) {
	cancel := context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		cancel()
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream") // HttpFS wants it with the data
	}
	resp, err := c.http.Do(req)
	if err != nil {
		cancel()
		// The query may hold the delegation token: the error names the
		// URL without it.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = fmt.Errorf("%s %s: %w", method, withoutQuery(target), ue.Err)
		}
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// withoutQuery is target up to its query, for messages.
func withoutQuery(target string) string {
	u, _, _ := strings.Cut(target, "?")
	return u
}

// cancelOnClose ends a request's context when its answer is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// send makes one request and reads its answer, within the request
// timeout.
func (c *webhdfs) send(ctx context.Context, method, target string, body []byte) (answer, error) {
	resp, err := c.do(ctx, method, target, body, c.timeout)
	if err != nil {
		return answer{}, err
	}
	return readAnswer(resp)
}

// readAnswer reads a response in full and closes it.
func readAnswer(resp *http.Response) (answer, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return answer{}, fmt.Errorf("reading the answer: %w", err)
	}
	a := answer{status: resp.StatusCode, body: b}
	if loc, err := resp.Location(); err == nil {
		a.location = loc.String()
	}
	return a, nil
}

// decodeRemote is the error an answer that is not a success stands for.
func decodeRemote(a answer) *remoteError {
	var v struct{ RemoteException remoteError }
	re := &v.RemoteException
	if err := json.Unmarshal(a.body, &v); err != nil || re.Exception == "" {
		re.Message = strings.TrimSpace(string(a.body[:min(len(a.body), 200)]))
	}
	re.Status = a.status
	return re
}

// decodeJSON decodes a success answer into v.
func decodeJSON(a answer, op string, v any) error {
	if a.status != http.StatusOK {
		return decodeRemote(a)
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		return fmt.Errorf("decoding the %s answer: %w", op, err)
	}
	return nil
}

// redirected runs step one of a two-step op and returns where its data
// goes.
func (c *webhdfs) redirected(ctx context.Context, method, op, p string, q url.Values) (string, error) {
	a, err := c.namenode(ctx, method, op, p, q)
	if err != nil {
		return "", err
	}
	if a.status != http.StatusTemporaryRedirect || a.location == "" {
		if a.status < 300 {
			return "", fmt.Errorf("%s %s: the namenode answered %d without a redirect", op, p, a.status)
		}
		return "", fmt.Errorf("%s %s: %w", op, p, decodeRemote(a))
	}
	return a.location, nil
}

// write runs both steps of CREATE or APPEND. It returns nil once the
// datanode answered the data's request with success: the datanode answers
// after it closed its output stream to HDFS, that is after every datanode
// of the pipeline acknowledged the bytes and the namenode recorded the
// file's new length.
func (c *webhdfs) write(ctx context.Context, method, op, p string, q url.Values, data []byte, want int) error {
	loc, err := c.redirected(ctx, method, op, p, q)
	if err != nil {
		return err
	}
	a, err := c.send(ctx, method, loc, data)
	if err != nil {
		return fmt.Errorf("%s %s at the datanode: %w", op, p, err)
	}
	if a.status != want {
		return fmt.Errorf("%s %s at the datanode: %w", op, p, decodeRemote(a))
	}
	return nil
}

// create makes the file p holding data; it fails with
// FileAlreadyExistsException when p exists.
func (c *webhdfs) create(ctx context.Context, p string, data []byte) error {
	return c.write(ctx, http.MethodPut, "CREATE", p, url.Values{"overwrite": {"false"}}, data, http.StatusCreated)
}

// appendTo adds data at the end of the file p.
func (c *webhdfs) appendTo(ctx context.Context, p string, data []byte) error {
	return c.write(ctx, http.MethodPost, "APPEND", p, nil, data, http.StatusOK)
}

// open streams the content of the file p; the caller closes it. A
// namenode redirects to a datanode; HttpFS answers with the data itself.
func (c *webhdfs) open(ctx context.Context, p string) (io.ReadCloser, error) {
	resp, err := c.namenodeDo(ctx, http.MethodGet, "OPEN", p, nil, 0)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusTemporaryRedirect {
		loc, lerr := resp.Location()
		_ = resp.Body.Close() // a redirect has nothing to read
		if lerr != nil {
			return nil, fmt.Errorf("OPEN %s: a redirect without a location: %w", p, lerr)
		}
		if resp, err = c.do(ctx, http.MethodGet, loc.String(), nil, 0); err != nil {
			return nil, fmt.Errorf("OPEN %s at the datanode: %w", p, err)
		}
	}
	if resp.StatusCode != http.StatusOK {
		a, err := readAnswer(resp)
		if err != nil {
			return nil, fmt.Errorf("OPEN %s: %w", p, err)
		}
		return nil, fmt.Errorf("OPEN %s: %w", p, decodeRemote(a))
	}
	return resp.Body, nil
}

// readSmall reads the whole of a small file.
func (c *webhdfs) readSmall(ctx context.Context, p string, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	rc, err := c.open(ctx, p)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("%s holds more than %d bytes", p, limit)
	}
	return b, err
}

// status returns p's status; found is false when p does not exist.
func (c *webhdfs) status(ctx context.Context, p string) (st fileStatus, found bool, err error) {
	a, err := c.namenode(ctx, http.MethodGet, "GETFILESTATUS", p, nil)
	if err != nil {
		return fileStatus{}, false, err
	}
	if a.status == http.StatusNotFound {
		return fileStatus{}, false, nil
	}
	var v struct{ FileStatus fileStatus }
	if err := decodeJSON(a, "GETFILESTATUS", &v); err != nil {
		return fileStatus{}, false, fmt.Errorf("GETFILESTATUS %s: %w", p, err)
	}
	return v.FileStatus, true, nil
}

// list returns the entries of the directory p; found is false when p
// does not exist.
func (c *webhdfs) list(ctx context.Context, p string) (entries []fileStatus, found bool, err error) {
	a, err := c.namenode(ctx, http.MethodGet, "LISTSTATUS", p, nil)
	if err != nil {
		return nil, false, err
	}
	if a.status == http.StatusNotFound {
		return nil, false, nil
	}
	var v struct {
		FileStatuses struct{ FileStatus []fileStatus }
	}
	if err := decodeJSON(a, "LISTSTATUS", &v); err != nil {
		return nil, false, fmt.Errorf("LISTSTATUS %s: %w", p, err)
	}
	return v.FileStatuses.FileStatus, true, nil
}

// boolOp runs a namenode op whose answer is a boolean JSON object.
func (c *webhdfs) boolOp(ctx context.Context, method, op, p string, q url.Values) (bool, error) {
	a, err := c.namenode(ctx, method, op, p, q)
	if err != nil {
		return false, err
	}
	var v struct {
		Boolean *bool `json:"boolean"`
	}
	if err := decodeJSON(a, op, &v); err != nil {
		return false, fmt.Errorf("%s %s: %w", op, p, err)
	}
	if v.Boolean == nil {
		return false, fmt.Errorf("%s %s: the answer %q has no boolean", op, p, a.body)
	}
	return *v.Boolean, nil
}

// rename moves src to dst; false means HDFS refused it (src missing, dst
// existing or its parent missing).
func (c *webhdfs) rename(ctx context.Context, src, dst string) (bool, error) {
	return c.boolOp(ctx, http.MethodPut, "RENAME", src, url.Values{"destination": {dst}})
}

// remove deletes the file p; false means there was none.
func (c *webhdfs) remove(ctx context.Context, p string) (bool, error) {
	return c.boolOp(ctx, http.MethodDelete, "DELETE", p, url.Values{"recursive": {"false"}})
}

// truncate cuts the file p to n bytes. It reports whether the file has
// its new length already; false means HDFS is adjusting the last block in
// the background.
func (c *webhdfs) truncate(ctx context.Context, p string, n int64) (bool, error) {
	return c.boolOp(ctx, http.MethodPost, "TRUNCATE", p, url.Values{"newlength": {strconv.FormatInt(n, 10)}})
}
