package rocketmq

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/mqgate/mqgate/plugins/rocketmq/internal/remoting"
	"github.com/mqgate/mqgate/sdk"
)

var _ sdk.ClusterAdmin = (*Backend)(nil)

// maxListedDetails bounds the topics whose queues, and the groups whose
// consumers, a listing counts (a request each): past it they show 0 and -1.
const maxListedDetails = 1000

// systemTopic reports the topics RocketMQ keeps for itself.
func systemTopic(name string, brokers map[string]string) bool {
	switch name {
	case "TBW102", "SCHEDULE_TOPIC_XXXX", "OFFSET_MOVED_EVENT", "SELF_TEST_TOPIC", "BenchmarkTest", "TRANS_CHECK_MAX_TIME_TOPIC", "DefaultCluster":
		return true
	}
	if _, ok := brokers[name]; ok {
		return true // each broker registers a topic of its name
	}
	for _, p := range []string{"%RETRY%", "%DLQ%", "RMQ_SYS_", "rmq_sys_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// inNamespace reports whether name is one of cfg's namespace, unwrapped.
func (cfg config) inNamespace(name string) (string, bool) {
	if cfg.namespace == "" {
		return name, true
	}
	u := cfg.unwrap(name)
	return u, u != name
}

// ListTopics lists the topics the name servers know (within the
// namespace), RocketMQ's own marked internal, with their read queues.
func (b *Backend) ListTopics(ctx context.Context) ([]sdk.TopicListing, error) {
	cfg, p, rs, err := b.state()
	if err != nil {
		return nil, err
	}
	resp, err := p.nameserver(ctx, remoting.NewRequest(remoting.GetAllTopicListFromNamesrv, nil, nil))
	if err != nil {
		return nil, err
	}
	if resp.Code != remoting.Success {
		return nil, sdk.Errorf(sdk.CodeUnavailable, "rocketmq name server: topic list: code %d: %s", resp.Code, resp.Remark)
	}
	var list struct {
		TopicList []string `json:"topicList"`
	}
	if err := json.Unmarshal(resp.Body, &list); err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "rocketmq name server: bad topic list: %v", err)
	}
	brokers, err := p.brokers(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(list.TopicList)
	out := make([]sdk.TopicListing, 0, len(list.TopicList))
	for _, wrapped := range list.TopicList {
		name, ok := cfg.inNamespace(wrapped)
		if !ok {
			continue
		}
		t := sdk.TopicListing{Name: name, Internal: systemTopic(wrapped, brokers) || systemTopic(name, brokers)}
		if len(out) < maxListedDetails {
			if r, err := rs.get(ctx, wrapped, false); err == nil {
				t.Qids = int32(len(r.read))
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// systemGroup reports the consumer groups RocketMQ keeps for itself.
func systemGroup(name string) bool {
	switch name {
	case "TOOLS_CONSUMER", "FILTERSRV_CONSUMER", "SELF_TEST_C_GROUP", "CID_ONS-HTTP-PROXY", "CID_ONSAPI_PERMISSION", "CID_ONSAPI_OWNER", "CID_ONSAPI_PULL", "CID_DefaultHeartBeatSyncerTopic":
		return true
	}
	return strings.HasPrefix(name, "CID_RMQ_SYS_")
}

// ListGroups lists the subscription groups of every broker (within the
// namespace), but RocketMQ's own, with the consumers each has online.
// RocketMQ groups have no state: State is empty.
func (b *Backend) ListGroups(ctx context.Context) ([]sdk.GroupListing, error) {
	cfg, p, _, err := b.state()
	if err != nil {
		return nil, err
	}
	brokers, err := p.brokers(ctx)
	if err != nil {
		return nil, err
	}
	names := map[string]string{} // group -> a broker that has it
	for _, name := range slices.Sorted(maps.Keys(brokers)) {
		addr := brokers[name]
		resp, err := p.invoke(ctx, addr, remoting.NewRequest(remoting.GetAllSubscriptionGroupConf, nil, nil))
		if err != nil {
			return nil, err
		}
		if resp.Code != remoting.Success {
			return nil, brokerError("listing the subscription groups of broker "+name, resp)
		}
		var table struct {
			SubscriptionGroupTable map[string]json.RawMessage `json:"subscriptionGroupTable"`
		}
		if err := json.Unmarshal(resp.Body, &table); err != nil {
			return nil, sdk.Errorf(sdk.CodeInternal, "rocketmq broker %s: bad subscription groups: %v", name, err)
		}
		for g := range table.SubscriptionGroupTable {
			if _, ok := names[g]; !ok {
				names[g] = addr
			}
		}
	}
	out := make([]sdk.GroupListing, 0, len(names))
	for _, wrapped := range slices.Sorted(maps.Keys(names)) {
		name, ok := cfg.inNamespace(wrapped)
		if !ok || systemGroup(wrapped) {
			continue
		}
		g := sdk.GroupListing{Name: name, Members: -1}
		if len(out) < maxListedDetails {
			g.Members = consumersOnline(ctx, p, names[wrapped], wrapped)
		}
		out = append(out, g)
	}
	return out, nil
}

// consumersOnline counts group's consumers the broker at addr knows: 0
// when it answers that there are none, -1 when it cannot tell.
func consumersOnline(ctx context.Context, p *pool, addr, group string) int32 {
	resp, err := p.invoke(ctx, addr, remoting.NewRequest(remoting.GetConsumerListByGroup, map[string]string{"consumerGroup": group}, nil))
	if err != nil {
		return -1
	}
	if resp.Code != remoting.Success {
		return 0 // "no consumer for this group"
	}
	var ids struct {
		ConsumerIDList []string `json:"consumerIdList"`
	}
	if json.Unmarshal(resp.Body, &ids) != nil {
		return -1
	}
	return int32(len(ids.ConsumerIDList))
}

// DeleteGroup is not done by this plugin: RocketMQ deletes a subscription
// group broker by broker (mqadmin deleteSubGroup), and its offsets stay.
func (b *Backend) DeleteGroup(ctx context.Context, group string) error {
	return sdk.Errorf(sdk.CodeIllegal, "deleting group %s: the RocketMQ plugin does not delete groups; use mqadmin deleteSubGroup on each broker", group)
}

// DeleteRecords is not done: RocketMQ deletes messages only as their
// commit log files expire (fileReservedTime).
func (b *Backend) DeleteRecords(ctx context.Context, before []sdk.Offset) error {
	return sdk.Errorf(sdk.CodeIllegal, "deleting messages: RocketMQ deletes messages only as its commit log expires (the broker's fileReservedTime)")
}

// DescribeGroup tells the consumers of group online at any broker (their
// client ids, which RocketMQ clients make of their address and process);
// RocketMQ groups have no state, and its brokers do not say which queues
// each consumer took: Assigned is empty.
func (b *Backend) DescribeGroup(ctx context.Context, group string) (sdk.GroupDescription, error) {
	cfg, p, _, err := b.state()
	if err != nil {
		return sdk.GroupDescription{}, err
	}
	brokers, err := p.brokers(ctx)
	if err != nil {
		return sdk.GroupDescription{}, err
	}
	wrapped := cfg.wrap(group)
	ids := map[string]bool{}
	known := false
	for _, name := range slices.Sorted(maps.Keys(brokers)) {
		resp, err := p.invoke(ctx, brokers[name], remoting.NewRequest(remoting.GetAllSubscriptionGroupConf, nil, nil))
		if err == nil && resp.Code == remoting.Success {
			var table struct {
				SubscriptionGroupTable map[string]json.RawMessage `json:"subscriptionGroupTable"`
			}
			if json.Unmarshal(resp.Body, &table) == nil {
				if _, ok := table.SubscriptionGroupTable[wrapped]; ok {
					known = true
				}
			}
		}
		resp, err = p.invoke(ctx, brokers[name], remoting.NewRequest(remoting.GetConsumerListByGroup, map[string]string{"consumerGroup": wrapped}, nil))
		if err != nil || resp.Code != remoting.Success {
			continue
		}
		var list struct {
			ConsumerIDList []string `json:"consumerIdList"`
		}
		if json.Unmarshal(resp.Body, &list) == nil {
			for _, id := range list.ConsumerIDList {
				ids[id] = true
			}
		}
	}
	if !known && len(ids) == 0 {
		return sdk.GroupDescription{}, sdk.Errorf(sdk.CodeNotFound, "group %s does not exist", group)
	}
	out := sdk.GroupDescription{Members: []sdk.GroupMember{}}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		host, _, _ := strings.Cut(id, "@")
		out.Members = append(out.Members, sdk.GroupMember{MemberID: id, ClientID: id, Host: host, Assigned: []sdk.Offset{}})
	}
	return out, nil
}
