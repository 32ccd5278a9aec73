package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/mqgate/mqgate/sdk"
)

// RefuseConnection answers a connection the listener will not serve (past
// http.limits.max_connections, say) before it is closed: a complete
// HTTP/1.1 response with code 17 (retriable) and msg, written without
// reading the request, since none will be served on it. It is the
// connlimit.Options.Refuse of a plain-text HTTP listener.
func RefuseConnection(w io.Writer, msg string) error {
	code := sdk.CodeUnavailable
	status := statusOf(code)
	body, err := json.Marshal(errorBody{Error: errorDetail{Code: code, Message: msg}})
	if err != nil {
		return fmt.Errorf("encoding the refusal: %w", err)
	}
	_, err = fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
	return err
}
