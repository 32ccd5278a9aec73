package admin

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/mqgate/mqgate/sdk"
)

// MaxListedRanges bounds the topics of a cluster whose retained messages a
// topic list counts (one ListOffsets call for them all); past it a
// topic's Messages is -1.
const MaxListedRanges = 1000

// TopicEntry is one topic of a topic list.
type TopicEntry struct {
	Name    string `json:"topic"`
	Cluster string `json:"cluster"`
	Qids    int32  `json:"qids"`
	// Messages is how many messages its qids retain; -1 when not counted.
	Messages int64 `json:"messages"`
	// Internal marks the broker's own topics, Reserved the gateway's.
	Internal bool `json:"internal"`
	Reserved bool `json:"reserved"`
}

// GroupEntry is one consumer group of a group list.
type GroupEntry struct {
	Name    string `json:"group"`
	Cluster string `json:"cluster"`
	// State is the broker's name for the group's state ("" when it has
	// none, as RocketMQ); Members the members the broker knows (-1 when
	// unknown); Sessions this gateway's sessions of the group.
	State    string `json:"state"`
	Members  int32  `json:"members"`
	Sessions int    `json:"sessions"`
	Reserved bool   `json:"reserved"`
}

// clusterAdmin is a cluster's backend as an sdk.ClusterAdmin.
func clusterAdmin(name string, b sdk.Backend) (sdk.ClusterAdmin, error) {
	a, ok := b.(sdk.ClusterAdmin)
	if !ok {
		return nil, sdk.Errorf(sdk.CodeIllegal, "cluster %s: its plugin cannot list topics or groups", name)
	}
	return a, nil
}

// clustersOf is the clusters a list covers: all, or the one named.
func (s *Service) clustersOf(cluster string) (map[string]sdk.Backend, error) {
	if cluster == "" {
		return s.opts.Clusters, nil
	}
	b, ok := s.opts.Clusters[cluster]
	if !ok {
		return nil, sdk.Errorf(sdk.CodeIllegal, "cluster: no cluster %q; clusters: %v", cluster, slices.Sorted(maps.Keys(s.opts.Clusters)))
	}
	return map[string]sdk.Backend{cluster: b}, nil
}

// Topics lists the topics of every cluster (or the one named), by name,
// with their qids and retained messages. A cluster whose plugin cannot
// list is an error naming it.
func (s *Service) Topics(ctx context.Context, cluster string) ([]TopicEntry, error) {
	clusters, err := s.clustersOf(cluster)
	if err != nil {
		return nil, err
	}
	out := []TopicEntry{}
	for _, name := range slices.Sorted(maps.Keys(clusters)) {
		b := clusters[name]
		a, err := clusterAdmin(name, b)
		if err != nil {
			return nil, err
		}
		listed, err := a.ListTopics(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the topics of cluster %s: %w", name, err)
		}
		counted := map[string]int64{}
		var names []string
		for _, t := range listed {
			if !t.Internal && len(names) < MaxListedRanges {
				names = append(names, t.Name)
			}
		}
		if len(names) > 0 {
			offs, err := b.ListOffsets(ctx, names, "")
			if err != nil {
				return nil, fmt.Errorf("reading the offsets of cluster %s's topics: %w", name, err)
			}
			for _, o := range offs {
				counted[o.Topic] += o.End - o.Start
			}
		}
		for _, t := range listed {
			e := TopicEntry{Name: t.Name, Cluster: name, Qids: t.Qids, Messages: -1, Internal: t.Internal,
				Reserved: s.opts.Reserved != nil && s.opts.Reserved(t.Name) != nil}
			if n, ok := counted[t.Name]; ok {
				e.Messages = n
			}
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b TopicEntry) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// Groups lists the consumer groups of every cluster (or the one named), by
// name, with what the broker says of them and this gateway's sessions.
func (s *Service) Groups(ctx context.Context, cluster string) ([]GroupEntry, error) {
	clusters, err := s.clustersOf(cluster)
	if err != nil {
		return nil, err
	}
	out := []GroupEntry{}
	for _, name := range slices.Sorted(maps.Keys(clusters)) {
		a, err := clusterAdmin(name, clusters[name])
		if err != nil {
			return nil, err
		}
		listed, err := a.ListGroups(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the groups of cluster %s: %w", name, err)
		}
		for _, g := range listed {
			e := GroupEntry{Name: g.Name, Cluster: name, State: g.State, Members: g.Members,
				Reserved: s.opts.ReservedGroup != nil && s.opts.ReservedGroup(g.Name) != nil}
			if s.opts.Sessions != nil {
				e.Sessions = s.opts.Sessions(g.Name)
			}
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b GroupEntry) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// DeleteGroup deletes group and its committed offsets on every cluster (or
// the one named) that has it: code 13 while this gateway holds sessions
// of it or the broker knows members of it, 19 when no cluster has it.
func (s *Service) DeleteGroup(ctx context.Context, group, cluster string) (deleted []string, err error) {
	if s.opts.ReservedGroup != nil {
		if err := s.opts.ReservedGroup(group); err != nil {
			return nil, err
		}
	}
	if s.opts.Sessions != nil {
		if n := s.opts.Sessions(group); n > 0 {
			return nil, sdk.Errorf(sdk.CodeNotAllowed, "group %s has %d sessions on this gateway: stop its consumers, and delete it once their sessions end (consume.session_idle after their last pull)", group, n)
		}
	}
	clusters, err := s.clustersOf(cluster)
	if err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(clusters)) {
		a, err := clusterAdmin(name, clusters[name])
		if err != nil {
			return deleted, err
		}
		listed, err := a.ListGroups(ctx)
		if err != nil {
			return deleted, fmt.Errorf("listing the groups of cluster %s: %w", name, err)
		}
		if !slices.ContainsFunc(listed, func(g sdk.GroupListing) bool { return g.Name == group }) {
			continue
		}
		if err := a.DeleteGroup(ctx, group); err != nil {
			return deleted, fmt.Errorf("deleting group %s on cluster %s: %w", group, name, err)
		}
		deleted = append(deleted, name)
	}
	if len(deleted) == 0 {
		return nil, sdk.Errorf(sdk.CodeNotFound, "group %s: no cluster has it", group)
	}
	return deleted, nil
}
