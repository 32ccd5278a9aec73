package kafka

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mqgate/mqgate/sdk"
)

var _ sdk.ClusterAdmin = (*Backend)(nil)

// maxDescribedGroups bounds the groups ListGroups describes to count their
// members: past it, members are -1 (unknown).
const maxDescribedGroups = 1000

// ListTopics lists the cluster's topics, its internal ones marked.
func (b *Backend) ListTopics(ctx context.Context) ([]sdk.TopicListing, error) {
	c, err := b.clients()
	if err != nil {
		return nil, err
	}
	ctx, cancel := b.auth.guard(ctx)
	defer cancel()
	// A metadata request of its own: kadm's listing answers from the
	// client's cache for up to 5 s, which would miss a topic just made.
	req := kmsg.NewPtrMetadataRequest()
	resp, err := req.RequestWith(ctx, c.admin)
	if err != nil {
		return nil, b.sdkError(err, "listing topics")
	}
	out := make([]sdk.TopicListing, 0, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.ErrorCode != 0 || t.Topic == nil {
			continue // deleted while listed, or not authorized
		}
		out = append(out, sdk.TopicListing{Name: *t.Topic, Qids: int32(len(t.Partitions)), Internal: t.IsInternal})
	}
	slices.SortFunc(out, func(a, b sdk.TopicListing) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ListGroups lists the cluster's consumer groups with their state and, for
// up to maxDescribedGroups of them, their members.
func (b *Backend) ListGroups(ctx context.Context) ([]sdk.GroupListing, error) {
	c, err := b.clients()
	if err != nil {
		return nil, err
	}
	ctx, cancel := b.auth.guard(ctx)
	defer cancel()
	listed, err := c.adm.ListGroups(ctx)
	if err != nil {
		return nil, b.sdkError(err, "listing groups")
	}
	out := make([]sdk.GroupListing, 0, len(listed))
	for _, g := range listed.Sorted() {
		out = append(out, sdk.GroupListing{Name: g.Group, State: g.State, Members: -1})
	}
	if len(out) == 0 || len(out) > maxDescribedGroups {
		return out, nil
	}
	described, err := c.adm.DescribeGroups(ctx, listed.Groups()...)
	if err != nil {
		return out, nil // the list stands without the counts
	}
	for i := range out {
		if d, ok := described[out[i].Name]; ok && d.Err == nil {
			out[i].Members = int32(len(d.Members))
			out[i].State = d.State
		}
	}
	return out, nil
}

// DeleteGroup deletes group and its committed offsets: refused while the
// group has members.
func (b *Backend) DeleteGroup(ctx context.Context, group string) error {
	if group == "" {
		return sdk.Errorf(sdk.CodeIllegal, "group name is empty")
	}
	c, err := b.clients()
	if err != nil {
		return err
	}
	ctx, cancel := b.auth.guard(ctx)
	defer cancel()
	resp, err := c.adm.DeleteGroup(ctx, group)
	if err == nil {
		err = resp.Err
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.NonEmptyGroup):
		return sdk.Errorf(sdk.CodeNotAllowed, "group %s has members: it can be deleted once they leave", group)
	case errors.Is(err, kerr.GroupIDNotFound):
		return sdk.Errorf(sdk.CodeNotFound, "group %s does not exist", group)
	}
	return b.sdkError(err, "deleting group %s", group)
}

// DeleteRecords deletes the records before each position (Kafka's
// DeleteRecords: the partition's log start offset moves up to it).
func (b *Backend) DeleteRecords(ctx context.Context, before []sdk.Offset) error {
	c, err := b.clients()
	if err != nil {
		return err
	}
	offs := make(kadm.Offsets)
	for _, o := range before {
		p, err := parseQid(o.Topic, o.Qid)
		if err != nil {
			return err
		}
		if o.Offset < 0 {
			return sdk.Errorf(sdk.CodeIllegal, "offset %d of %s qid %s is negative", o.Offset, o.Topic, o.Qid)
		}
		offs.AddOffset(o.Topic, p, o.Offset, -1)
	}
	ctx, cancel := b.auth.guard(ctx)
	defer cancel()
	resps, err := c.adm.DeleteRecords(ctx, offs)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		return b.sdkError(err, "deleting records")
	}
	return nil
}

// DescribeGroup tells group's state and members, with the partitions each
// was assigned.
func (b *Backend) DescribeGroup(ctx context.Context, group string) (sdk.GroupDescription, error) {
	c, err := b.clients()
	if err != nil {
		return sdk.GroupDescription{}, err
	}
	ctx, cancel := b.auth.guard(ctx)
	defer cancel()
	described, err := c.adm.DescribeGroups(ctx, group)
	if err != nil {
		return sdk.GroupDescription{}, b.sdkError(err, "describing group %s", group)
	}
	d, ok := described[group]
	switch {
	case !ok || errors.Is(d.Err, kerr.GroupIDNotFound) || d.State == "Dead":
		return sdk.GroupDescription{}, sdk.Errorf(sdk.CodeNotFound, "group %s does not exist", group)
	case d.Err != nil:
		return sdk.GroupDescription{}, b.sdkError(d.Err, "describing group %s", group)
	}
	out := sdk.GroupDescription{State: d.State, Members: make([]sdk.GroupMember, 0, len(d.Members))}
	for _, m := range d.Members {
		gm := sdk.GroupMember{MemberID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost, Assigned: []sdk.Offset{}}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				for _, p := range t.Partitions {
					gm.Assigned = append(gm.Assigned, sdk.Offset{Topic: t.Topic, Qid: strconv.Itoa(int(p))})
				}
			}
		}
		out.Members = append(out.Members, gm)
	}
	return out, nil
}
