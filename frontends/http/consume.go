package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mqgate/mqgate/core/admin"
	"github.com/mqgate/mqgate/core/auth/acl"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// Defaults of the consume routes' bodies.
const (
	// DefaultPullMessages is the max_messages of a pull or fetch that
	// sends none.
	DefaultPullMessages = 32
	// DefaultPullWait is the max_wait_ms of a pull or fetch that sends
	// none.
	DefaultPullWait = 500 * time.Millisecond
)

// errConsumeNotEnabled answers the consume routes when Options.Consumer is
// nil.
var errConsumeNotEnabled = sdk.Errorf(sdk.CodeIllegal, "consumption is not enabled")

// ackResponse is the 200 body of POST .../ack: the count of offsets
// reported, success and fail together.
type ackResponse struct {
	Acked int `json:"acked"`
}

// statsResponse is the 200 body of GET /v1/groups/:group/stats.
type statsResponse struct {
	Stats []statsJSON `json:"stats"`
}

type statsJSON struct {
	Group          string           `json:"group"`
	Topic          string           `json:"topic"`
	ConsumeOffsets map[string]int64 `json:"consume_offsets"`
	ProduceOffsets map[string]int64 `json:"produce_offsets"`
	Lag            int64            `json:"lag"`
	// BeyondEnd is omitted unless a committed offset is past its end.
	BeyondEnd map[string]int64 `json:"beyond_end,omitempty"`
}

// commitResponse is the 200 body of POST /v1/commit.
type commitResponse struct {
	Committed bool `json:"committed"`
}

// unixMs is t in milliseconds since the epoch; 0 for the zero time.
func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// consumer returns Options.Consumer, or answers code 11 when there is
// none.
func (s *Server) consumer(c *gin.Context) (consume.Consumer, bool) {
	if s.opts.Consumer == nil {
		s.abortWithError(c, errConsumeNotEnabled)
		return nil, false
	}
	return s.opts.Consumer, true
}

// subscription checks a group and topic pair.
func subscription(group, topic string) error {
	if err := topicname.ValidateGroup(group); err != nil {
		return err
	}
	return topicname.Validate(topic)
}

// pullLimits turns a body's max_messages and max_wait_ms into a pull's:
// defaults when absent, capped to Consumer.MaxBatch and RequestTimeout.
func (s *Server) pullLimits(cons consume.Consumer, maxMessages, maxWaitMs *int64) (int, time.Duration) {
	n := int64(DefaultPullMessages)
	if maxMessages != nil {
		n = *maxMessages
	}
	n = max(1, min(n, int64(cons.MaxBatch())))
	wait := min(DefaultPullWait, s.opts.RequestTimeout)
	if maxWaitMs != nil {
		wait = s.opts.RequestTimeout
		if *maxWaitMs < int64(s.opts.RequestTimeout/time.Millisecond) {
			wait = time.Duration(*maxWaitMs) * time.Millisecond
		}
	}
	return int(n), wait
}

// pull serves POST /v1/groups/:group/topics/:topic/pull: the body's ack
// first, then up to max_messages of one qid within max_wait_ms.
func (s *Server) pull(c *gin.Context) {
	cons, ok := s.consumer(c)
	if !ok {
		return
	}
	group, topic := c.Param("group"), c.Param("topic")
	if err := subscription(group, topic); err != nil {
		s.abortWithError(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	body, charge, ok := s.bodyOrAbort(ctx, c)
	if !ok {
		return
	}
	req, err := decodePullBody(body)
	// The decoded request holds what the pull needs: the body's bytes are
	// not kept while the pull waits for messages.
	charge.Release()
	if err == nil && req.ack != nil {
		err = s.checkAckSize(req.ack)
	}
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	max, wait := s.pullLimits(cons, req.maxMessages, req.maxWaitMs)
	// The pull may wait its whole wait and then take a request timeout.
	ctx, cancel = context.WithTimeout(c.Request.Context(), wait+s.opts.RequestTimeout)
	defer cancel()
	if a := req.ack; a != nil && len(a.success)+len(a.fail) > 0 {
		if err := cons.Ack(ctx, []consume.Ack{{Group: group, Topic: topic, Qid: a.qid, Success: a.success, Fail: a.fail}}); err != nil {
			// An ack the gateway cannot apply (an offset not handed out
			// here, a qid that moved to another gateway, which redelivers
			// it) does not block the pull; other errors fail it.
			if code := sdk.CodeOf(err); code != sdk.CodeIllegal && code != sdk.CodeNotFound {
				s.abortWithError(c, fmt.Errorf("acking %s of %s for %s: %w", a.qid, topic, group, err))
				return
			}
			s.log.Warn("piggybacked ack not applied; pulling anyway", "group", group, "topic", topic, "error", err)
		}
	}
	b, err := cons.Pull(ctx, group, topic, max, wait)
	if err != nil {
		s.abortWithError(c, fmt.Errorf("pulling %s for %s: %w", topic, group, err))
		return
	}
	c.Header("Vary", "Accept") // the answer's format follows it
	if wantsProtobuf(c.GetHeader("Accept")) {
		sendAppendedAs(c, protobufContentType, func(out []byte) []byte { return appendPullProtobuf(out, group, topic, &b) })
		return
	}
	sendAppended(c, func(out []byte) []byte { return appendPullAnswer(out, group, topic, &b) })
}

// checkAckSize refuses an ack of more offsets than
// http.max_batch_messages.
func (s *Server) checkAckSize(a *ackBody) error {
	if n := len(a.success) + len(a.fail); n > s.opts.MaxBatchMessages {
		return sdk.Errorf(sdk.CodeTooLarge, "an ack of %d offsets exceeds http.max_batch_messages (%d)", n, s.opts.MaxBatchMessages)
	}
	return nil
}

// ack serves POST /v1/groups/:group/topics/:topic/ack.
func (s *Server) ack(c *gin.Context) {
	cons, ok := s.consumer(c)
	if !ok {
		return
	}
	group, topic := c.Param("group"), c.Param("topic")
	if err := subscription(group, topic); err != nil {
		s.abortWithError(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	body, charge, ok := s.bodyOrAbort(ctx, c)
	if !ok {
		return
	}
	defer charge.Release()
	a, err := decodeAckBody(body)
	if err == nil {
		err = s.checkAckSize(&a)
	}
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	if err := cons.Ack(ctx, []consume.Ack{{Group: group, Topic: topic, Qid: a.qid, Success: a.success, Fail: a.fail}}); err != nil {
		s.abortWithError(c, fmt.Errorf("acking %s of %s for %s: %w", a.qid, topic, group, err))
		return
	}
	c.PureJSON(http.StatusOK, ackResponse{Acked: len(a.success) + len(a.fail)})
}

// stats serves GET /v1/groups/:group/stats[?topic=T].
func (s *Server) stats(c *gin.Context) {
	cons, ok := s.consumer(c)
	if !ok {
		return
	}
	_, _, stats, ok := s.groupStats(c, cons)
	if !ok {
		return
	}
	c.PureJSON(http.StatusOK, statsResponse{Stats: statsOf(stats)})
}

// groupStats reads the group of the path and the optional topic query
// parameter, and the group's stats, answering an error itself.
func (s *Server) groupStats(c *gin.Context, cons consume.Consumer) (group, topic string, stats []consume.Stats, ok bool) {
	group, topic = c.Param("group"), c.Query("topic")
	err := topicname.ValidateGroup(group)
	if _, given := c.GetQuery("topic"); given && err == nil {
		err = topicname.Validate(topic)
	}
	if err != nil {
		s.abortWithError(c, err)
		return "", "", nil, false
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	stats, err = cons.Stats(ctx, group, topic)
	if err != nil {
		s.abortWithError(c, fmt.Errorf("reading the stats of %s: %w", group, err))
		return "", "", nil, false
	}
	return group, topic, stats, true
}

// statsOf is stats as the stats routes answer them.
func statsOf(stats []consume.Stats) []statsJSON {
	out := make([]statsJSON, len(stats))
	for i, st := range stats {
		out[i] = statsJSON{
			Group: st.Group, Topic: st.Topic,
			ConsumeOffsets: nonNilOffsets(st.ConsumeOffsets), ProduceOffsets: nonNilOffsets(st.ProduceOffsets),
			Lag: st.Lag, BeyondEnd: st.BeyondEnd,
		}
	}
	return out
}

// groupResponse is the body of GET /v1/admin/groups/{group}.
type groupResponse struct {
	Group string      `json:"group"`
	Stats []statsJSON `json:"stats"`
	// Members are the group's members as the brokers know them, on
	// every gateway and client.
	Members  []admin.MemberEntry   `json:"members"`
	Sessions []consume.SessionView `json:"sessions"`
}

// describeGroup serves GET /v1/admin/groups/{group}[?topic=T]: the
// group's stats, as GET /v1/groups/{group}/stats answers them, and its
// sessions on this gateway with the messages each has out.
func (s *Server) describeGroup(c *gin.Context) {
	cons, ok := s.consumer(c)
	if !ok {
		return
	}
	for k, v := range c.Request.URL.Query() {
		switch {
		case k != "topic":
			s.abortWithError(c, illegalf("%s: unknown query parameter; known: topic", truncate(k)))
			return
		case len(v) > 1:
			s.abortWithError(c, illegalf("topic: given %d times; give it once", len(v)))
			return
		}
	}
	group, topic, stats, ok := s.groupStats(c, cons)
	if !ok {
		return
	}
	sessions := cons.Sessions(group)
	if topic != "" {
		// Only what the principal was allowed: a group session reading
		// other topics too shows only this one's qids.
		sessions = slices.DeleteFunc(sessions, func(v consume.SessionView) bool { return !slices.Contains(v.Topics, topic) })
		for i := range sessions {
			sessions[i].Topics = []string{topic}
			sessions[i].Qids = slices.DeleteFunc(sessions[i].Qids, func(q consume.QidView) bool { return q.Topic != topic })
		}
	}
	members := []admin.MemberEntry{}
	if s.opts.Admin != nil {
		ctx, cancel := s.adminContext(c)
		members = s.opts.Admin.Members(ctx, group)
		cancel()
		if topic != "" {
			// Only the members known to read the topic the principal
			// was allowed, and only its qids.
			members = slices.DeleteFunc(members, func(m admin.MemberEntry) bool {
				return !slices.ContainsFunc(m.Assigned, func(q admin.AssignedQid) bool { return q.Topic == topic })
			})
			for i := range members {
				members[i].Assigned = slices.DeleteFunc(members[i].Assigned, func(q admin.AssignedQid) bool { return q.Topic != topic })
			}
		}
	}
	c.PureJSON(http.StatusOK, groupResponse{Group: group, Stats: statsOf(stats), Sessions: sessions, Members: members})
}

func nonNilOffsets(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

// fetch serves POST /v1/fetch: explicit offsets, outside any session.
func (s *Server) fetch(c *gin.Context) {
	cons, ok := s.consumer(c)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	body, charge, ok := s.bodyOrAbort(ctx, c)
	if !ok {
		return
	}
	defer charge.Release()
	req, err := decodeFetchBody(body)
	if err == nil {
		err = s.authorizeTopics(c, acl.Consume, req.offsets, req.group)
	}
	if err == nil && len(req.offsets) == 0 {
		err = s.authorize(c, acl.Consume, "", req.group) // the group's queues
	}
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	max, wait := s.pullLimits(cons, req.maxMessages, req.maxWaitMs)
	ctx, cancel = context.WithTimeout(c.Request.Context(), wait+s.opts.RequestTimeout)
	defer cancel()
	qms, err := cons.Fetch(ctx, req.group, req.cluster, req.offsets, max, wait)
	if err != nil {
		s.abortWithError(c, fmt.Errorf("fetching: %w", err))
		return
	}
	sendAppended(c, func(out []byte) []byte { return appendFetchAnswer(out, qms) })
}

// commit serves POST /v1/commit: stores a group's offsets, with no
// session and no tracking.
func (s *Server) commit(c *gin.Context) {
	cons, ok := s.consumer(c)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	body, charge, ok := s.bodyOrAbort(ctx, c)
	if !ok {
		return
	}
	defer charge.Release()
	req, err := decodeCommitBody(body)
	if err == nil {
		err = s.authorizeTopics(c, acl.Commit, req.offsets, req.group)
	}
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	if err := cons.Commit(ctx, req.cluster, req.group, req.offsets); err != nil {
		s.abortWithError(c, fmt.Errorf("committing offsets of %s: %w", req.group, err))
		return
	}
	s.audit(c, "offsets committed", acl.Commit, fmt.Sprintf("group %q offsets %v", req.group, req.offsets))
	c.PureJSON(http.StatusOK, commitResponse{Committed: true})
}
