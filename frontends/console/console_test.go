package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestServesThePageWithItsPolicy(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/ui/", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `<script type="module" src="app.js">`) {
		t.Fatalf("GET /ui/: %d %.200s", rec.Code, rec.Body)
	}
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q: want scripts and calls to the gateway only, and no framing", csp)
	}
	rec = httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/ui/app.js", nil))
	if rec.Code != 200 || !strings.Contains(rec.Header().Get("Content-Type"), "javascript") {
		t.Errorf("GET /ui/app.js: %d %s; want JavaScript (a module is refused under nosniff otherwise)", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, c := range []struct {
		method, path string
		status       int
	}{{"POST", "/ui/", http.StatusMethodNotAllowed}, {"GET", "/ui/nothing.js", http.StatusNotFound}, {"GET", "/ui/../go.mod", http.StatusNotFound}} {
		rec = httptest.NewRecorder()
		Handler().ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, rec.Code, c.status)
		}
	}
}

// Every module a script imports and every file the page links is
// embedded: a missing one would break the console only in a browser.
func TestEveryLinkedFileIsEmbedded(t *testing.T) {
	ref := regexp.MustCompile(`(?:from\s+'\./([^']+)'|(?:src|href)="([^":]+)")`)
	refs := 0
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(p, "/vendor/") || !(strings.HasSuffix(p, ".js") || strings.HasSuffix(p, ".html")) {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			name := m[1] + m[2]
			if strings.HasPrefix(name, "#") {
				continue
			}
			refs++
			if _, err := fs.Stat(files, "static/"+name); err != nil {
				t.Errorf("%s refers to %s, which is not embedded", p, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if refs < 10 {
		t.Errorf("found %d references; the pattern no longer reads the files", refs)
	}
}
