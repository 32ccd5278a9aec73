package sdk

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// TopicListing is one topic of a cluster.
type TopicListing struct {
	Name string
	// Qids is how many queues (Kafka partitions, RocketMQ queues) it has.
	Qids int32
	// Internal is set for the broker's own topics (Kafka's
	// __consumer_offsets).
	Internal bool
}

// GroupListing is one consumer group of a cluster.
type GroupListing struct {
	Name string
	// State is the group's state as the broker names it (Kafka: Stable,
	// Empty, PreparingRebalance, CompletingRebalance, Dead); "" when
	// unknown.
	State string
	// Members counts the members the broker knows; -1 when unknown.
	Members int32
}

// GroupMember is one member of a consumer group, as the broker knows it.
type GroupMember struct {
	MemberID string
	ClientID string
	// Host is where it connects from, as the broker saw it.
	Host string
	// Assigned are the qids it owns (Topic and Qid set).
	Assigned []Offset
}

// GroupDescription is a consumer group as the broker knows it.
type GroupDescription struct {
	State   string
	Members []GroupMember
}

// ClusterAdmin is implemented by a Backend that can list its cluster's
// topics and consumer groups and delete a group, for the gateway's admin
// API. A Backend that does not implement it is not listed; the admin API
// says so.
type ClusterAdmin interface {
	// ListTopics lists the cluster's topics, the broker's own included
	// (marked Internal).
	ListTopics(ctx context.Context) ([]TopicListing, error)
	// ListGroups lists the cluster's consumer groups.
	ListGroups(ctx context.Context) ([]GroupListing, error)
	// DescribeGroup tells the group's state and members: CodeNotFound
	// for a group the broker does not know.
	DescribeGroup(ctx context.Context, group string) (GroupDescription, error)
	// DeleteGroup removes a group and its committed offsets. It is
	// refused with CodeNotAllowed while the group has members, and is
	// CodeNotFound for a group the broker does not know.
	DeleteGroup(ctx context.Context, group string) error
	// DeleteRecords removes every record of each position's qid before
	// its offset (the qid's retained range then starts there). A broker
	// that cannot is refused with CodeIllegal, saying so.
	DeleteRecords(ctx context.Context, before []Offset) error
}

// ErrNoClusterAdmin is what the calls of ClusterAdmin wrap for a plugin
// that does not implement the call (code 11); errors.Is finds it.
var ErrNoClusterAdmin = &Error{Code: CodeIllegal, Msg: "it is not an sdk.ClusterAdmin, or was built before the call existed"}

// noClusterAdmin is ErrNoClusterAdmin for call, which it names.
func noClusterAdmin(call string) error {
	return fmt.Errorf("the cluster's plugin does not implement %s: %w", call, ErrNoClusterAdmin)
}

// ListTopics asks plugin, a Backend, for its cluster's topics: over gRPC
// for the gateway's end of a plugin process, directly for an
// implementation in this process.
func ListTopics(ctx context.Context, plugin any) ([]TopicListing, error) {
	switch p := plugin.(type) {
	case *backendClient:
		resp, err := p.c.ListTopics(ctx, &pb.ListTopicsRequest{})
		if err != nil {
			return nil, clusterAdminError("ListTopics", err)
		}
		out := make([]TopicListing, len(resp.Topics))
		for i, t := range resp.Topics {
			out[i] = TopicListing{Name: t.Name, Qids: t.Qids, Internal: t.Internal}
		}
		return out, nil
	case ClusterAdmin:
		return p.ListTopics(ctx)
	}
	return nil, noClusterAdmin("ListTopics")
}

// ListGroups asks plugin, a Backend, for its cluster's consumer groups.
func ListGroups(ctx context.Context, plugin any) ([]GroupListing, error) {
	switch p := plugin.(type) {
	case *backendClient:
		resp, err := p.c.ListGroups(ctx, &pb.ListGroupsRequest{})
		if err != nil {
			return nil, clusterAdminError("ListGroups", err)
		}
		out := make([]GroupListing, len(resp.Groups))
		for i, g := range resp.Groups {
			out[i] = GroupListing{Name: g.Name, State: g.State, Members: g.Members}
		}
		return out, nil
	case ClusterAdmin:
		return p.ListGroups(ctx)
	}
	return nil, noClusterAdmin("ListGroups")
}

// DescribeGroup asks plugin, a Backend, for group's state and members.
func DescribeGroup(ctx context.Context, plugin any, group string) (GroupDescription, error) {
	switch p := plugin.(type) {
	case *backendClient:
		resp, err := p.c.DescribeGroup(ctx, &pb.DescribeGroupRequest{Group: group})
		if err != nil {
			return GroupDescription{}, clusterAdminError("DescribeGroup", err)
		}
		d := GroupDescription{State: resp.State, Members: make([]GroupMember, len(resp.Members))}
		for i, m := range resp.Members {
			d.Members[i] = GroupMember{MemberID: m.MemberId, ClientID: m.ClientId, Host: m.Host, Assigned: offsetsFromPB(m.Assigned)}
		}
		return d, nil
	case ClusterAdmin:
		return p.DescribeGroup(ctx, group)
	}
	return GroupDescription{}, noClusterAdmin("DescribeGroup")
}

// DeleteGroup asks plugin, a Backend, to delete group.
func DeleteGroup(ctx context.Context, plugin any, group string) error {
	switch p := plugin.(type) {
	case *backendClient:
		_, err := p.c.DeleteGroup(ctx, &pb.DeleteGroupRequest{Group: group})
		return clusterAdminError("DeleteGroup", err)
	case ClusterAdmin:
		return p.DeleteGroup(ctx, group)
	}
	return noClusterAdmin("DeleteGroup")
}

// DeleteRecords asks plugin, a Backend, to delete the records before the
// positions given.
func DeleteRecords(ctx context.Context, plugin any, before []Offset) error {
	switch p := plugin.(type) {
	case *backendClient:
		_, err := p.c.DeleteRecords(ctx, &pb.DeleteRecordsRequest{Positions: offsetsToPB(before)})
		return clusterAdminError("DeleteRecords", err)
	case ClusterAdmin:
		return p.DeleteRecords(ctx, before)
	}
	return noClusterAdmin("DeleteRecords")
}

// clusterAdminError is fromStatus, with UNIMPLEMENTED (a plugin without
// ClusterAdmin, or built before it) as ErrNoClusterAdmin naming call.
func clusterAdminError(call string, err error) error {
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unimplemented {
		return noClusterAdmin(call)
	}
	return fromStatus(err)
}

// The plugin's end.

func (s *backendServer) ListTopics(ctx context.Context, _ *pb.ListTopicsRequest) (*pb.ListTopicsResponse, error) {
	a, ok := s.impl.(ClusterAdmin)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the plugin does not list topics")
	}
	ts, err := a.ListTopics(ctx)
	if err != nil {
		return nil, statusError(err)
	}
	resp := &pb.ListTopicsResponse{Topics: make([]*pb.TopicListing, len(ts))}
	for i, t := range ts {
		resp.Topics[i] = &pb.TopicListing{Name: t.Name, Qids: t.Qids, Internal: t.Internal}
	}
	return resp, nil
}

func (s *backendServer) ListGroups(ctx context.Context, _ *pb.ListGroupsRequest) (*pb.ListGroupsResponse, error) {
	a, ok := s.impl.(ClusterAdmin)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the plugin does not list groups")
	}
	gs, err := a.ListGroups(ctx)
	if err != nil {
		return nil, statusError(err)
	}
	resp := &pb.ListGroupsResponse{Groups: make([]*pb.GroupListing, len(gs))}
	for i, g := range gs {
		resp.Groups[i] = &pb.GroupListing{Name: g.Name, State: g.State, Members: g.Members}
	}
	return resp, nil
}

func (s *backendServer) DeleteGroup(ctx context.Context, req *pb.DeleteGroupRequest) (*pb.DeleteGroupResponse, error) {
	a, ok := s.impl.(ClusterAdmin)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the plugin does not delete groups")
	}
	return &pb.DeleteGroupResponse{}, statusError(a.DeleteGroup(ctx, req.Group))
}

func (s *backendServer) DeleteRecords(ctx context.Context, req *pb.DeleteRecordsRequest) (*pb.DeleteRecordsResponse, error) {
	a, ok := s.impl.(ClusterAdmin)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the plugin does not delete records")
	}
	return &pb.DeleteRecordsResponse{}, statusError(a.DeleteRecords(ctx, offsetsFromPB(req.Positions)))
}

func (s *backendServer) DescribeGroup(ctx context.Context, req *pb.DescribeGroupRequest) (*pb.DescribeGroupResponse, error) {
	a, ok := s.impl.(ClusterAdmin)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "the plugin does not describe groups")
	}
	d, err := a.DescribeGroup(ctx, req.Group)
	if err != nil {
		return nil, statusError(err)
	}
	resp := &pb.DescribeGroupResponse{State: d.State, Members: make([]*pb.GroupMember, len(d.Members))}
	for i, m := range d.Members {
		resp.Members[i] = &pb.GroupMember{MemberId: m.MemberID, ClientId: m.ClientID, Host: m.Host, Assigned: offsetsToPB(m.Assigned)}
	}
	return resp, nil
}
