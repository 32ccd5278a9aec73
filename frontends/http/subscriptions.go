package httpapi

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// SubscriptionAdmin reads and changes the groups' server-side
// subscriptions; *consume.Subscriptions implements it.
type SubscriptionAdmin interface {
	Topics(ctx context.Context, group string) ([]consume.Subscription, error)
	Subscribe(ctx context.Context, group, topic, by string) (consume.Subscription, bool, error)
	Unsubscribe(ctx context.Context, group, topic, by string) (bool, error)
}

// subscriptionsBody is the 200 body of GET /v1/admin/groups/{g}/subscriptions.
type subscriptionsBody struct {
	Group         string                 `json:"group"`
	Subscriptions []consume.Subscription `json:"subscriptions"`
}

// subscribedBody is the body of PUT /v1/admin/groups/{g}/subscriptions/{t}.
type subscribedBody struct {
	Subscription consume.Subscription `json:"subscription"`
	Created      bool                 `json:"created"`
}

// unsubscribedBody is the body of DELETE /v1/admin/groups/{g}/subscriptions/{t}.
type unsubscribedBody struct {
	Group   string `json:"group"`
	Topic   string `json:"topic"`
	Removed bool   `json:"removed"`
}

var errSubscriptionsNotEnabled = sdk.Errorf(sdk.CodeIllegal, "group subscriptions are not enabled on this gateway")

// subscriptionRoute serves one of the subscription routes with h, given
// the store, the group and topic of the path and a context bounded by the
// request timeout; without a store it answers code 11.
func (s *Server) subscriptionRoute(h func(ctx context.Context, c *gin.Context, subs SubscriptionAdmin, group, topic string)) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.opts.Subscriptions == nil {
			s.abortWithError(c, errSubscriptionsNotEnabled)
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
		defer cancel()
		h(ctx, c, s.opts.Subscriptions, c.Param("group"), c.Param("topic"))
	}
}

// listSubscriptions serves GET /v1/admin/groups/{group}/subscriptions: the
// group's topics, those of plugins.yaml and those added at run time.
func (s *Server) listSubscriptions(ctx context.Context, c *gin.Context, subs SubscriptionAdmin, group, _ string) {
	if err := topicname.ValidateGroup(group); err != nil {
		s.abortWithError(c, err)
		return
	}
	list, err := subs.Topics(ctx, group)
	if err != nil {
		s.abortWithError(c, fmt.Errorf("reading the subscriptions of group %s: %w", group, err))
		return
	}
	if list == nil {
		list = []consume.Subscription{}
	}
	c.PureJSON(http.StatusOK, subscriptionsBody{Group: group, Subscriptions: list})
}

// subscribe serves PUT /v1/admin/groups/{group}/subscriptions/{topic}:
// 201 when the subscription is new, 200 when the group already had it.
func (s *Server) subscribe(ctx context.Context, c *gin.Context, subs SubscriptionAdmin, group, topic string) {
	sub, created, err := subs.Subscribe(ctx, group, topic, principalOf(c).Name)
	if err != nil {
		s.abortWithError(c, fmt.Errorf("subscribing group %s to %s: %w", group, topic, err))
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.audit(c, "subscription added", acl.Admin, fmt.Sprintf("group %q topic %q", group, topic))
	}
	c.PureJSON(status, subscribedBody{Subscription: sub, Created: created})
}

// unsubscribe serves DELETE /v1/admin/groups/{group}/subscriptions/{topic}.
func (s *Server) unsubscribe(ctx context.Context, c *gin.Context, subs SubscriptionAdmin, group, topic string) {
	removed, err := subs.Unsubscribe(ctx, group, topic, principalOf(c).Name)
	if err != nil {
		s.abortWithError(c, fmt.Errorf("unsubscribing group %s from %s: %w", group, topic, err))
		return
	}
	if removed {
		s.audit(c, "subscription removed", acl.Admin, fmt.Sprintf("group %q topic %q", group, topic))
	}
	c.PureJSON(http.StatusOK, unsubscribedBody{Group: group, Topic: topic, Removed: removed})
}
