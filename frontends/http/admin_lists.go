package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/mqgate/mqgate/core/admin"
	"github.com/mqgate/mqgate/core/auth/acl"
)

// parseListQuery reads the list routes' query: cluster, and all=true to
// include the broker's and the gateway's own topics or groups.
func parseListQuery(q url.Values) (cluster string, all bool, err error) {
	for k, v := range q {
		switch {
		case k != "cluster" && k != "all":
			return "", false, illegalf("%s: unknown query parameter; known: cluster, all", truncate(k))
		case len(v) > 1:
			return "", false, illegalf("%s: given %d times; give it once", truncate(k), len(v))
		}
	}
	if v, ok := q["all"]; ok {
		switch v[0] {
		case "true":
			all = true
		case "false":
		default:
			return "", false, illegalf("all: must be true or false; got %q", truncate(v[0]))
		}
	}
	if v, ok := q["cluster"]; ok && v[0] == "" {
		return "", false, illegalf("cluster: must not be empty (leave it out for every cluster)")
	}
	return q.Get("cluster"), all, nil
}

// listed answers a list route: the entries list gives for the query's
// cluster that show keeps (given all=true or not), under name.
func listed[T any](s *Server, c *gin.Context, name string, list func(ctx context.Context, cluster string) ([]T, []admin.Unlisted, error), show func(e T, all bool) bool) {
	cluster, all, err := parseListQuery(c.Request.URL.Query())
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	ctx, cancel := s.adminContext(c)
	defer cancel()
	entries, skipped, err := list(ctx, cluster)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	kept := entries[:0]
	for _, e := range entries {
		if show(e, all) {
			kept = append(kept, e)
		}
	}
	c.PureJSON(http.StatusOK, map[string]any{name: kept, "unlisted": skipped})
}

// listTopics serves GET /v1/admin/topics: the clusters' topics the
// principal may read the stats of.
func (s *Server) listTopics(c *gin.Context) {
	p := principalOf(c)
	listed(s, c, "topics", s.opts.Admin.Topics, func(t admin.TopicEntry, all bool) bool {
		return (all || !t.Internal && !t.Reserved) && s.gate.Allowed(p, acl.ReadStats, t.Name, "")
	})
}

// listGroups serves GET /v1/admin/groups: the clusters' consumer groups
// the principal may read the stats of.
func (s *Server) listGroups(c *gin.Context) {
	p := principalOf(c)
	listed(s, c, "groups", s.opts.Admin.Groups, func(g admin.GroupEntry, all bool) bool {
		return (all || !g.Reserved) && s.gate.Allowed(p, acl.ReadStats, "", g.Name)
	})
}

// deleteGroup serves DELETE /v1/admin/groups/{group}[?cluster=C].
func (s *Server) deleteGroup(c *gin.Context) {
	cluster, all, err := parseListQuery(c.Request.URL.Query())
	if err == nil && all {
		err = illegalf("all: not a parameter of a delete")
	}
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	ctx, cancel := s.adminContext(c)
	defer cancel()
	group := c.Param("group")
	on, err := s.opts.Admin.DeleteGroup(ctx, group, cluster)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	s.audit(c, "group deleted", acl.Admin, fmt.Sprintf("group %q cluster %q", group, on))
	c.PureJSON(http.StatusOK, struct {
		Group   string `json:"group"`
		Cluster string `json:"cluster"`
		Deleted bool   `json:"deleted"`
	}{group, on, true})
}

// showConfig serves GET /v1/admin/config: the config file the gateway
// runs, secrets redacted.
func (s *Server) showConfig(c *gin.Context) {
	if len(c.Request.URL.RawQuery) > 0 {
		s.abortWithError(c, illegalf("this route takes no query parameters"))
		return
	}
	if s.opts.Config == nil {
		s.abortWithError(c, illegalf("this gateway does not show its config"))
		return
	}
	file, shown, redacted, err := s.opts.Config()
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, struct {
		File     string   `json:"file"`
		Config   any      `json:"config"`
		Redacted []string `json:"redacted"`
	}{file, shown, redacted})
}

// lagHistory serves GET /v1/admin/lag: the total lag of the groups that
// consumed through this gateway in the last hour, a sample a minute, for
// the groups the principal may read the stats of.
func (s *Server) lagHistory(c *gin.Context) {
	if len(c.Request.URL.RawQuery) > 0 {
		s.abortWithError(c, illegalf("this route takes no query parameters"))
		return
	}
	if s.opts.LagHistory == nil {
		s.abortWithError(c, illegalf("this gateway keeps no lag history"))
		return
	}
	p := principalOf(c)
	c.PureJSON(http.StatusOK, struct {
		EveryMs int64                       `json:"every_ms"`
		Groups  map[string][]admin.LagPoint `json:"groups"`
	}{s.opts.LagHistory.Every().Milliseconds(), s.opts.LagHistory.Groups(func(g string) bool {
		return s.gate.Allowed(p, acl.ReadStats, "", g)
	})})
}
