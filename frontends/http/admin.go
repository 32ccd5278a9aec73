package httpapi

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mqgate/mqgate/core/pluginhost"
	"github.com/mqgate/mqgate/core/push"
	"github.com/mqgate/mqgate/core/sink"
	"github.com/mqgate/mqgate/sdk"
)

// statusOK is the body of a healthy /healthz or /readyz.
var statusOK = gin.H{"status": "ok"}

// healthz serves GET /healthz: 200 while the process serves requests.
func (s *Server) healthz(c *gin.Context) {
	c.PureJSON(http.StatusOK, statusOK)
}

// readyz serves GET /readyz: 200 when every plugin is up and reaches its
// brokers and the delay service (when there is one) is ready, else 503
// (code 17) naming the plugins that are not up, in the order Plugins
// reports them, or else the clusters whose brokers cannot be reached and
// why, or else the delay service's reason.
func (s *Server) readyz(c *gin.Context) {
	statuses := s.statuses(c)
	var down, cutOff []string
	for _, st := range statuses {
		switch {
		case st.State != pluginhost.StateUp:
			down = append(down, st.Name)
		case st.BrokerError != "":
			cutOff = append(cutOff, st.Name+": "+st.BrokerError)
		}
	}
	switch {
	case len(down) > 0:
		abortWithCode(c, sdk.CodeUnavailable, "plugins not ready: "+strings.Join(down, ", "))
		return
	case len(cutOff) > 0:
		abortWithCode(c, sdk.CodeUnavailable, "brokers unreachable for "+strings.Join(cutOff, "; "))
		return
	}
	if s.opts.Delayer != nil {
		if err := s.opts.Delayer.Ready(); err != nil {
			abortWithCode(c, sdk.CodeUnavailable, err.Error())
			return
		}
	}
	c.PureJSON(http.StatusOK, statusOK)
}

// listPlugins serves GET /v1/plugins: a JSON array of plugin statuses,
// empty (never null) when there are none.
func (s *Server) listPlugins(c *gin.Context) {
	c.PureJSON(http.StatusOK, s.statuses(c))
}

func (s *Server) statuses(c *gin.Context) []pluginhost.Status {
	if s.plugins == nil {
		return []pluginhost.Status{}
	}
	st := s.plugins.Health(c.Request.Context())
	if st == nil {
		return []pluginhost.Status{}
	}
	return st
}

// listPush serves GET /v1/push: {"push": [status, ...]} in config order.
func (s *Server) listPush(c *gin.Context) {
	list := []push.Status{}
	if s.opts.Push != nil {
		list = s.opts.Push.Status()
	}
	c.PureJSON(http.StatusOK, gin.H{"push": list})
}

// pushStatus serves GET /v1/push/{name}: one subscription's status, or
// code 19 when there is none of that name.
func (s *Server) pushStatus(c *gin.Context) {
	name := c.Param("name")
	if s.opts.Push != nil {
		for _, st := range s.opts.Push.Status() {
			if st.Name == name {
				c.PureJSON(http.StatusOK, st)
				return
			}
		}
	}
	abortWithCode(c, sdk.CodeNotFound, fmt.Sprintf("no push subscription %q", name))
}

// listSinks serves GET /v1/sinks: {"sinks": [status, ...]} in config order.
func (s *Server) listSinks(c *gin.Context) {
	list := []sink.Status{}
	if s.opts.Sinks != nil {
		list = s.opts.Sinks.Status()
	}
	c.PureJSON(http.StatusOK, gin.H{"sinks": list})
}

// sinkStatus serves GET /v1/sinks/{name}: one pipeline's status, or code
// 19 when there is none of that name.
func (s *Server) sinkStatus(c *gin.Context) {
	name := c.Param("name")
	if s.opts.Sinks != nil {
		if st, ok := s.opts.Sinks.StatusOf(name); ok {
			c.PureJSON(http.StatusOK, st)
			return
		}
	}
	abortWithCode(c, sdk.CodeNotFound, fmt.Sprintf("no sink %q", name))
}
