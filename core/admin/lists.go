package admin

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

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

// Unlisted is a cluster a list could not cover, and why.
type Unlisted struct {
	Cluster string   `json:"cluster"`
	Code    sdk.Code `json:"code"`
	Message string   `json:"message"`
}

// unlisted records why cluster name was not listed; asked for alone, the
// error is the answer.
func unlisted(out *[]Unlisted, name, only string, err error) error {
	if only != "" {
		return err
	}
	*out = append(*out, Unlisted{Cluster: name, Code: sdk.CodeOf(err), Message: err.Error()})
	return nil
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
// with their qids and retained messages. A cluster that cannot be listed
// (its plugin cannot, or its broker did not answer) is left out and
// reported in skipped; asked for alone, it is the error.
func (s *Service) Topics(ctx context.Context, cluster string) (out []TopicEntry, skipped []Unlisted, err error) {
	clusters, err := s.clustersOf(cluster)
	if err != nil {
		return nil, nil, err
	}
	out, skipped = []TopicEntry{}, []Unlisted{}
	for _, name := range slices.Sorted(maps.Keys(clusters)) {
		b := clusters[name]
		a, err := clusterAdmin(name, b)
		if err != nil {
			if err := unlisted(&skipped, name, cluster, err); err != nil {
				return nil, nil, err
			}
			continue
		}
		listed, err := a.ListTopics(ctx)
		if err != nil {
			if err := unlisted(&skipped, name, cluster, fmt.Errorf("listing the topics of cluster %s: %w", name, err)); err != nil {
				return nil, nil, err
			}
			continue
		}
		counted := map[string]int64{}
		var names []string
		for _, t := range listed {
			if !t.Internal && len(names) < MaxListedRanges {
				names = append(names, t.Name)
			}
		}
		if len(names) > 0 {
			// Without the offsets the list stands, uncounted.
			if offs, err := b.ListOffsets(ctx, names, ""); err == nil {
				for _, o := range offs {
					counted[o.Topic] += o.End - o.Start
				}
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
	return out, skipped, nil
}

// Groups lists the consumer groups of every cluster (or the one named), by
// name, with what the broker says of them and this gateway's sessions;
// clusters that cannot be listed are reported in skipped, as Topics does.
func (s *Service) Groups(ctx context.Context, cluster string) (out []GroupEntry, skipped []Unlisted, err error) {
	clusters, err := s.clustersOf(cluster)
	if err != nil {
		return nil, nil, err
	}
	out, skipped = []GroupEntry{}, []Unlisted{}
	for _, name := range slices.Sorted(maps.Keys(clusters)) {
		a, err := clusterAdmin(name, clusters[name])
		if err == nil {
			var listed []sdk.GroupListing
			if listed, err = a.ListGroups(ctx); err == nil {
				out = append(out, s.groupEntries(name, listed)...)
				continue
			}
			err = fmt.Errorf("listing the groups of cluster %s: %w", name, err)
		}
		if err := unlisted(&skipped, name, cluster, err); err != nil {
			return nil, nil, err
		}
	}
	slices.SortStableFunc(out, func(a, b GroupEntry) int { return cmp.Compare(a.Name, b.Name) })
	return out, skipped, nil
}

// groupEntries are a cluster's listed groups as Groups shows them.
func (s *Service) groupEntries(cluster string, listed []sdk.GroupListing) []GroupEntry {
	out := make([]GroupEntry, 0, len(listed))
	for _, g := range listed {
		e := GroupEntry{Name: g.Name, Cluster: cluster, State: g.State, Members: g.Members,
			Reserved: s.opts.ReservedGroup != nil && s.opts.ReservedGroup(g.Name) != nil}
		if s.opts.Sessions != nil {
			e.Sessions = s.opts.Sessions(g.Name)
		}
		out = append(out, e)
	}
	return out
}

// DeleteGroup deletes group and its committed offsets on the cluster
// named, or on the one cluster that has it: code 13 while this gateway
// holds sessions of it or the broker knows members of it, 11 when several
// clusters have it and none is named, 19 when no cluster has it.
func (s *Service) DeleteGroup(ctx context.Context, group, cluster string) (deletedOn string, err error) {
	if s.opts.ReservedGroup != nil {
		if err := s.opts.ReservedGroup(group); err != nil {
			return "", err
		}
	}
	if s.opts.Sessions != nil {
		if n := s.opts.Sessions(group); n > 0 {
			return "", sdk.Errorf(sdk.CodeNotAllowed, "group %s has %d sessions on this gateway: stop its consumers, and delete it once their sessions end (consume.session_idle after their last pull)", group, n)
		}
	}
	clusters, err := s.clustersOf(cluster)
	if err != nil {
		return "", err
	}
	var holders []string
	var admins []sdk.ClusterAdmin
	for _, name := range slices.Sorted(maps.Keys(clusters)) {
		a, err := clusterAdmin(name, clusters[name])
		if err != nil {
			if cluster != "" {
				return "", err
			}
			continue
		}
		listed, err := a.ListGroups(ctx)
		if err != nil {
			return "", fmt.Errorf("listing the groups of cluster %s: %w", name, err)
		}
		if slices.ContainsFunc(listed, func(g sdk.GroupListing) bool { return g.Name == group }) {
			holders, admins = append(holders, name), append(admins, a)
		}
	}
	switch len(holders) {
	case 0:
		return "", sdk.Errorf(sdk.CodeNotFound, "group %s: no cluster has it", group)
	case 1:
	default:
		return "", sdk.Errorf(sdk.CodeIllegal, "cluster: group %s is on clusters %s: name the one to delete it on", group, strings.Join(holders, ", "))
	}
	if err := admins[0].DeleteGroup(ctx, group); err != nil {
		return "", fmt.Errorf("deleting group %s on cluster %s: %w", group, holders[0], err)
	}
	return holders[0], nil
}

// MemberEntry is one member of a group on one cluster, as its broker
// knows it.
type MemberEntry struct {
	Cluster  string `json:"cluster"`
	MemberID string `json:"member_id"`
	ClientID string `json:"client_id"`
	Host     string `json:"host"`
	// Assigned are the qids the broker gave it.
	Assigned []AssignedQid `json:"assigned"`
}

// AssignedQid is a qid a member owns.
type AssignedQid struct {
	Topic string `json:"topic"`
	Qid   string `json:"qid"`
}

// membersWait bounds how long a group's view waits for a cluster to
// describe the group: a cluster that does not answer adds no members.
const membersWait = 2 * time.Second

// Members lists group's members on every cluster whose broker knows the
// group (on any gateway, or clients of the broker itself), by cluster and
// member, asking the clusters at once and each for at most membersWait.
// Clusters that cannot describe groups, do not know this one or do not
// answer in time add none.
func (s *Service) Members(ctx context.Context, group string) []MemberEntry {
	names := slices.Sorted(maps.Keys(s.opts.Clusters))
	found := make([][]MemberEntry, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		a, ok := s.opts.Clusters[name].(sdk.ClusterAdmin)
		if !ok {
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, membersWait)
			defer cancel()
			d, err := a.DescribeGroup(cctx, group)
			if err != nil {
				return
			}
			for _, m := range d.Members {
				e := MemberEntry{Cluster: name, MemberID: m.MemberID, ClientID: m.ClientID, Host: m.Host, Assigned: make([]AssignedQid, len(m.Assigned))}
				for j, q := range m.Assigned {
					e.Assigned[j] = AssignedQid{Topic: q.Topic, Qid: q.Qid}
				}
				found[i] = append(found[i], e)
			}
		})
	}
	wg.Wait()
	return slices.Concat(append([][]MemberEntry{{}}, found...)...)
}
