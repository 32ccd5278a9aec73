package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/mqgate/mqgate/core/quota"
	"github.com/mqgate/mqgate/sdk"
)

// statusOf is the one place that maps a code clients see to its HTTP status
// (API.md's table). A code the table does not know is an internal error.
func statusOf(code sdk.Code) int {
	switch code {
	case sdk.CodeOK:
		return http.StatusOK
	case sdk.CodeIllegal, sdk.CodeDelayID, sdk.CodeDelayType, sdk.CodeDelayAction, sdk.CodeDelayTimestamp,
		sdk.CodeDelayInnerTopicSeq, sdk.CodeDelayLoopTimes, sdk.CodeDelayExpire, sdk.CodeDelayInterval, sdk.CodeDelayExponentBase:
		// The HTTP API answers its delay faults with 11; DDMQ's delay
		// codes are sendDelaySync's, and are bad requests all the same.
		return http.StatusBadRequest
	case sdk.CodeTimeout:
		return http.StatusGatewayTimeout
	case sdk.CodeNotAllowed:
		return http.StatusForbidden
	case sdk.CodeTopicNotExist, sdk.CodeNotFound:
		return http.StatusNotFound
	case sdk.CodeRateLimited:
		return http.StatusTooManyRequests
	case sdk.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case sdk.CodeUnavailable:
		return http.StatusServiceUnavailable
	case sdk.CodeUnauthenticated:
		return http.StatusUnauthorized
	default:
		return http.StatusInternalServerError
	}
}

// errorBody is the body of every non-2xx answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    sdk.Code `json:"code"`
	Message string   `json:"message"`
}

// clientError turns an error from the producer (or from this package) into
// the code and message a client sees. An *sdk.Error keeps its own; a
// timeout names http.request_timeout, then what timed out if it says; anything else is an
// internal error whose details go to the log, not to the client.
func (s *Server) clientError(err error) (sdk.Code, string) {
	var e *sdk.Error
	switch code := sdk.CodeOf(err); {
	case code == sdk.CodeTimeout:
		// Every timeout names the limit, and what timed out when known.
		msg := fmt.Sprintf("timed out after %s (http.request_timeout)", s.opts.RequestTimeout)
		if errors.As(err, &e) {
			msg += ": " + e.Msg
		}
		return code, msg
	case errors.As(err, &e) && code != sdk.CodeOK:
		return code, e.Msg
	case errors.Is(err, context.Canceled):
		return sdk.CodeUnavailable, "request cancelled"
	default:
		s.log.Error("internal error", "err", err)
		return sdk.CodeInternal, "internal error"
	}
}

// abortWithCode answers with code's HTTP status and the error body.
func abortWithCode(c *gin.Context, code sdk.Code, msg string) {
	abortJSON(c, statusOf(code), errorBody{Error: errorDetail{Code: code, Message: msg}})
}

// abortWithError answers with the status and body err maps to.
func (s *Server) abortWithError(c *gin.Context, err error) {
	code, msg := s.clientError(err)
	setRetryAfter(c, err)
	abortWithCode(c, code, msg)
}

// setRetryAfter sets the Retry-After header, in seconds, when err is a
// quota's refusal that says how long to wait.
func setRetryAfter(c *gin.Context, err error) {
	if secs, ok := quota.RetryAfterSeconds(err); ok {
		c.Header("Retry-After", strconv.Itoa(secs))
	}
}

// abortJSON ends the request with body as JSON. Like every answer it is
// written without HTML escaping: a message saying "must be >= 0" reads so,
// not "\u003e=".
func abortJSON(c *gin.Context, status int, body any) {
	c.Abort()
	c.PureJSON(status, body)
}
