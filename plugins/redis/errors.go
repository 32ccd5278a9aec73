package redis

import (
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/mqgate/mqgate/sdk"
)

// recordError is the per-record error of a record whose mapping failed:
// code 11, the gateway retries it and then dead-letters it.
func recordError(r *sdk.Record, err error) error {
	return sdk.Errorf(sdk.CodeIllegal, "%v (%s)", err, where(r))
}

// commandError is the per-record error of a record whose command c failed
// with err: code 11 for a reply that sending the command again cannot
// change (WRONGTYPE, CROSSSLOT, a generic ERR such as an INCRBY of a value
// that is not an integer), code 17 for the rest (connection failures,
// timeouts, LOADING, CLUSTERDOWN, TRYAGAIN, OOM and every reply not known
// to be permanent). Refused credentials and permissions are marked
// lasting: they pass only when an operator acts.
func commandError(r *sdk.Record, c *command, err error) error {
	code, lasting := classify(err)
	e := sdk.Errorf(code, "%s (%s): %v (%s)", c.at, c.upper, err, where(r))
	if lasting {
		return sdk.Lasting(e)
	}
	return e
}

// classify maps an error of go-redis to a code, and whether it lasts.
func classify(err error) (code sdk.Code, lasting bool) {
	var re redis.Error
	switch {
	case redis.IsLoadingError(err), redis.IsReadOnlyError(err), redis.IsClusterDownError(err),
		redis.IsTryAgainError(err), redis.IsMasterDownError(err), redis.IsMaxClientsError(err),
		redis.IsOOMError(err), redis.IsNoReplicasError(err):
		return sdk.CodeUnavailable, false
	case redis.IsAuthError(err), redis.IsPermissionError(err):
		return sdk.CodeUnavailable, true
	case !errors.As(err, &re):
		return sdk.CodeUnavailable, false // the connection, a timeout, the pool
	}
	msg := re.Error()
	switch {
	case isConnectionSetup(msg):
		return sdk.CodeUnavailable, true
	case strings.HasPrefix(msg, "WRONGTYPE "), strings.HasPrefix(msg, "CROSSSLOT "), strings.HasPrefix(msg, "ERR "):
		return sdk.CodeIllegal, false
	}
	return sdk.CodeUnavailable, false
}

// isConnectionSetup reports whether a generic ERR reply is one a new
// connection gets while it logs in or selects its database: the config
// is wrong for the server, not the record.
func isConnectionSetup(msg string) bool {
	for _, s := range []string{"DB index", "AUTH", "password", "SELECT is not allowed"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// where names a record in messages.
func where(r *sdk.Record) string {
	return fmt.Sprintf("topic %s, qid %s, offset %d", r.Topic, r.Qid, r.Offset)
}
