package push

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func reply(code int, body string) *http.Response {
	return &http.Response{StatusCode: code, Body: io.NopCloser(strings.NewReader(body))}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		code      int
		body      string
		want      verdict
		unhealthy bool
	}{
		{200, "", verdictOK, false},
		{201, "created", verdictOK, false},
		{200, `{"status":"SUCCESS"}`, verdictOK, false},
		{200, ` {"status": "retry"} `, verdictRetry, false},
		{200, `{"status":"DROP"}`, verdictReject, false},
		{500, `{"status":"SUCCESS"}`, verdictOK, false},
		{200, `{"status":"maybe"}`, verdictOK, false},
		{200, `{"status":`, verdictOK, false},
		{200, `["status","DROP"]`, verdictOK, false},
		{301, "", verdictReject, false},
		{400, "bad", verdictReject, false},
		{404, "", verdictReject, false},
		{408, "", verdictRetry, false},
		{429, "", verdictRetry, false},
		{500, "", verdictRetry, false},
		{502, "", verdictRetry, true},
		{503, "", verdictRetry, true},
		{504, "", verdictRetry, true},
		{599, "", verdictRetry, false},
	} {
		o := classify(reply(tc.code, tc.body))
		if o.verdict != tc.want || o.unhealthy != tc.unhealthy {
			t.Errorf("classify(%d, %q) = %+v; want verdict %d unhealthy %v", tc.code, tc.body, o, tc.want, tc.unhealthy)
		}
	}
	// A failure names the code and the start of the reply.
	o := classify(reply(500, strings.Repeat("x", 1000)))
	if !strings.HasPrefix(o.why, "HTTP 500: xxx") || len(o.why) > 250 {
		t.Errorf("why = %q", o.why)
	}
}

func TestValidValue(t *testing.T) {
	for v, want := range map[string]bool{
		"": true, "plain": true, "with space": true, "ünïcode": true,
		" leading": false, "trailing ": false, "new\nline": false, "nul\x00": false, "\xff": false,
	} {
		if got := validValue([]byte(v)); got != want {
			t.Errorf("validValue(%q) = %v, want %v", v, got, want)
		}
	}
}

// FuzzClassify feeds arbitrary replies (a webhook's answer is input too):
// every reply gets a verdict, and never a panic.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{``, `{"status":"DROP"}`, `{"status":1}`, `{`, "\xff{", `{"status":"RETRY","x":[1,2,{}]}`, `null`} {
		f.Add(200, s)
	}
	f.Fuzz(func(t *testing.T, code int, body string) {
		if code < 100 || code > 999 {
			return
		}
		o := classify(reply(code, body))
		if o.verdict != verdictOK && o.why == "" {
			t.Fatalf("a failure without a reason: %d %q", code, body)
		}
		if o.verdict != verdictOK && !strings.HasPrefix(o.why, "HTTP ") {
			t.Fatalf("reason %q does not name the status", o.why)
		}
	})
}
