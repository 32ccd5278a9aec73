// Package console is the gateway's web console: plain HTML, CSS and
// JavaScript modules embedded in the binary and served at /ui/, so that
// `go run ./cmd/mqgate` serves it with nothing else installed.
//
// The files hold no data and need no credentials: every figure the console
// shows it asks of the admin API from the browser, with the credentials the
// user gives it (an API key, kept in the tab's session storage, or the
// browser's client certificate under mTLS), so it shows only what that
// principal may see.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var files embed.FS

// Prefix is where the console is served.
const Prefix = "/ui/"

// Handler serves the console's files under Prefix; its page routes by
// the URL's fragment (/ui/#/topics/orders), so no other path is a page.
func Handler() http.Handler {
	root, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	fileServer := http.StripPrefix(strings.TrimSuffix(Prefix, "/"), http.FileServerFS(root))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the console's files are read with GET", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		// Only the console's own files run, and only the gateway is
		// asked: a message value shown in a page cannot load or send
		// anything elsewhere.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		fileServer.ServeHTTP(w, r)
	})
}
