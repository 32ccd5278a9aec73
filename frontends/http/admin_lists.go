package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

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
func listed[T any](s *Server, c *gin.Context, name string, list func(ctx context.Context, cluster string) ([]T, error), show func(e T, all bool) bool) {
	cluster, all, err := parseListQuery(c.Request.URL.Query())
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	ctx, cancel := s.adminContext(c)
	defer cancel()
	entries, err := list(ctx, cluster)
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
	c.PureJSON(http.StatusOK, map[string][]T{name: kept})
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
	deleted, err := s.opts.Admin.DeleteGroup(ctx, group, cluster)
	if len(deleted) > 0 {
		s.audit(c, "group deleted", acl.Admin, fmt.Sprintf("group %q clusters %s", group, strings.Join(deleted, ",")))
	}
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, struct {
		Group    string   `json:"group"`
		Clusters []string `json:"clusters"`
		Deleted  bool     `json:"deleted"`
	}{group, deleted, true})
}
