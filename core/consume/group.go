package consume

import (
	"cmp"
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// SubscriptionSource names the topics a group is subscribed to, for pulls,
// fetches and stats that name none; *Subscriptions implements it.
type SubscriptionSource interface {
	Topics(ctx context.Context, group string) ([]Subscription, error)
}

// errNoSubscription is the answer to a call without a topic from a group
// subscribed to none: code 11, as the request cannot be served as sent,
// naming both ways to subscribe the group.
func errNoSubscription(group string) error {
	return sdk.Errorf(sdk.CodeIllegal,
		"topic: required: group %s is subscribed to no topic, so a call without a topic has nothing to serve. "+
			"Name a topic, or subscribe the group: PUT /v1/admin/groups/%s/subscriptions/TOPIC on the HTTP API, or groups.%s.topics in plugins.yaml",
		group, group, group)
}

// subscribedTopics returns the topics group is subscribed to, or
// errNoSubscription.
func (s *Service) subscribedTopics(ctx context.Context, group string) ([]string, error) {
	if err := topicname.ValidateGroup(group); err != nil {
		return nil, err
	}
	if err := s.opts.Reserved.Group(group); err != nil {
		return nil, err
	}
	if s.opts.Subscriptions == nil {
		return nil, errNoSubscription(group)
	}
	subs, err := s.opts.Subscriptions.Topics(ctx, group)
	if err != nil {
		return nil, err
	}
	if len(subs) == 0 {
		return nil, errNoSubscription(group)
	}
	topics := make([]string, len(subs))
	for i, sub := range subs {
		topics[i] = sub.Topic
	}
	return topics, nil
}

// pullGroup serves a pull without a topic, as DDMQ's cproxy does
// (ConsumerServiceImpl.pull with no topic; UpstreamGroupJobBuffer keeps one
// queue of the group's non-empty qid buffers over all its topics): up to
// limit messages of one qid of any topic group is subscribed to, waiting
// up to wait for one to have some. The group has one session per cluster
// of its topics, a member consuming all of them (see session); its qids
// take turns, whatever their topic, so a busy topic never starves a quiet
// one, and of the clusters with messages ready the one served longest ago
// goes first.
func (s *Service) pullGroup(ctx context.Context, group string, limit int, wait time.Duration) (Batch, error) {
	topics, err := s.subscribedTopics(ctx, group)
	if err != nil {
		return Batch{}, err
	}
	byCluster := map[string][]string{}
	var lastErr error
	for _, t := range topics {
		if err := s.opts.Reserved.Consume(group, t, s.settings(group).DeadLetterTopicOf(group)); err != nil {
			lastErr = err // a subscription the rules forbid now: skipped
			continue
		}
		c, err := s.opts.Route(t)
		if err != nil {
			lastErr = err
			continue
		}
		byCluster[c] = append(byCluster[c], t)
	}
	if len(byCluster) == 0 {
		return Batch{}, lastErr
	}
	deadline := time.Now().Add(wait) // real time: the client's wait
	open := map[string]*session{}
	defer func() {
		for _, ss := range open {
			ss.waiting(-1)
		}
	}()
	for {
		// Open what is not open: a session that closed (idle) as this
		// pull waited is opened again.
		for c, ts := range byCluster {
			if open[c] != nil {
				continue
			}
			ss, err := s.sessionOfTopics(ctx, sessionKey{c, group, ""}, ts, true)
			if err != nil {
				if sdk.CodeOf(err) == sdk.CodeRateLimited {
					return Batch{}, err // consume.max_sessions: the pull as a whole is refused
				}
				s.logger.Debug("pull without a topic: skipping a cluster", "group", group, "cluster", c, "error", err)
				lastErr = err
				continue
			}
			ss.waiting(1)
			open[c] = ss
		}
		if len(open) == 0 {
			return Batch{}, lastErr
		}
		now := s.opts.Now()
		order := make([]*session, 0, len(open))
		for _, ss := range open {
			order = append(order, ss)
		}
		slices.SortFunc(order, func(a, b *session) int {
			if c := cmp.Compare(a.servedAt(), b.servedAt()); c != 0 {
				return c
			}
			return strings.Compare(a.cluster, b.cluster)
		})
		cases := []reflect.SelectCase{
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(s.stopWaiting)},
		}
		wake := time.Until(deadline)
		for _, ss := range order {
			b, ch, redo, err := ss.poll(limit, false, now)
			if err != nil {
				// Closed (idle) or failed: open it again next round, and
				// serve the others meanwhile.
				ss.waiting(-1)
				delete(open, ss.cluster)
				if !errors.Is(err, errSessionClosed) {
					lastErr = err
					if len(open) == 0 {
						return Batch{}, err
					}
				}
				continue
			}
			if len(b.Messages) > 0 {
				ss.served()
				return b, nil
			}
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
			if !redo.IsZero() && redo.Sub(now) < wake {
				wake = redo.Sub(now) // redo is on the session clock
			}
		}
		if !time.Now().Before(deadline) || closed(s.stopWaiting) {
			return Batch{Group: group}, nil
		}
		t := time.NewTimer(max(wake, 0))
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(t.C)})
		chosen, _, _ := reflect.Select(cases)
		t.Stop()
		if chosen == 0 {
			return Batch{Group: group}, nil
		}
	}
}

// servedAt says when a pull without a topic last took messages from s,
// as a count of such pulls on the service: 0 for never.
func (s *session) servedAt() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastServed
}

// served records that a pull without a topic took messages from s.
func (s *session) served() {
	n := s.svc.served.Add(1)
	s.mu.Lock()
	s.lastServed = n
	s.mu.Unlock()
}
