// Package router maps topics to clusters and is the one entry point the
// frontends call: they hand it decoded messages, it finds the backend and
// runs the produce pipeline.
package router

import (
	"context"
	"fmt"

	"github.com/mqgate/mqgate/core/produce"
	"github.com/mqgate/mqgate/core/topicname"
	"github.com/mqgate/mqgate/sdk"
)

// Router routes topics to the backends of their clusters.
type Router struct {
	clusters       map[string]sdk.Backend
	topics         map[string]string // topic -> cluster, explicit entries
	defaultCluster string
	producer       *produce.Producer
	reserved       *topicname.Reserved
	allow          *Allowlist
}

// New returns a router over clusters (name -> backend). routes holds the
// explicit topic -> cluster entries; every other topic goes to
// defaultCluster. Produce requests run through p, which must serve the same
// clusters. Produce and ProduceAsync refuse the topics reserved names (nil:
// the default rule), the headers only the gateway writes, and the topics
// allow does not permit (nil: any topic).
func New(clusters map[string]sdk.Backend, routes map[string]string, defaultCluster string, p *produce.Producer,
	reserved *topicname.Reserved, allow *Allowlist) (*Router, error) {
	if _, ok := clusters[defaultCluster]; !ok && defaultCluster != "" {
		return nil, fmt.Errorf("default cluster %q has no backend", defaultCluster)
	}
	for topic, cluster := range routes {
		if _, ok := clusters[cluster]; !ok {
			return nil, fmt.Errorf("topic %q routes to cluster %q, which has no backend", topic, cluster)
		}
	}
	return &Router{clusters: clusters, topics: routes, defaultCluster: defaultCluster, producer: p, reserved: reserved, allow: allow}, nil
}

// Cluster returns the name and backend of the cluster that serves topic.
// It checks only the name's syntax: the gateway's own components route
// their reserved topics through it too.
func (r *Router) Cluster(topic string) (string, sdk.Backend, error) {
	if err := topicname.Validate(topic); err != nil {
		return "", nil, err
	}
	name, ok := r.topics[topic]
	if !ok {
		name = r.defaultCluster
	}
	b, ok := r.clusters[name]
	if !ok {
		return "", nil, sdk.Errorf(sdk.CodeNotAllowed, "topic %q is not routed to any cluster and there is no default_cluster", topic)
	}
	return name, b, nil
}

// ProduceAsync accepts msgs for topic once they are durable in the local
// spool; the spool's forwarder delivers them later. Bad input and a full
// spool are refused at once.
func (r *Router) ProduceAsync(ctx context.Context, topic string, msgs []produce.Message) error {
	name, err := r.clientCluster(topic, msgs)
	if err != nil {
		return err
	}
	return r.producer.SendAsync(ctx, name, topic, msgs)
}

// Produce sends msgs to topic and returns one result per message, in
// order. The error is for failures of the whole request (an invalid topic,
// the backend down); per-message failures are in the results.
func (r *Router) Produce(ctx context.Context, topic string, msgs []produce.Message) ([]sdk.ProduceResult, error) {
	results, _, err := r.ProduceReleasing(ctx, topic, msgs)
	return results, err
}

// ProduceReleasing is Produce, also reporting whether nothing holds
// msgs' bytes any more, so that the caller may reuse their memory (see
// produce.Producer.SendReleasing).
func (r *Router) ProduceReleasing(ctx context.Context, topic string, msgs []produce.Message) (results []sdk.ProduceResult, released bool, err error) {
	name, err := r.clientCluster(topic, msgs)
	if err != nil {
		return nil, true, err
	}
	results, released, err = r.producer.SendReleasing(ctx, name, topic, msgs)
	if err != nil {
		return nil, released, fmt.Errorf("producing to %s: %w", topic, err)
	}
	return results, released, nil
}

// Permit refuses, with code 13, a topic clients may not produce to: one
// off the allowlist (topics.auto_create: false). Produce and ProduceAsync
// check it; so should anything else that produces for a client, such as
// a delay message's delivery.
func (r *Router) Permit(topic string) error {
	return r.allow.Permit(topic)
}

// clientCluster is Cluster for a client's produce: it also refuses a
// reserved topic or one off the allowlist (code 13) and reserved headers
// (code 11), so a client can neither feed the delay tiers or cancels nor
// fake a delivered delay message or a dead letter.
func (r *Router) clientCluster(topic string, msgs []produce.Message) (string, error) {
	name, _, err := r.Cluster(topic)
	if err != nil {
		return "", err
	}
	if err := r.reserved.Topic(topic); err != nil {
		return "", err
	}
	if err := r.Permit(topic); err != nil {
		return "", err
	}
	for i := range msgs {
		if err := topicname.CheckHeaders(msgs[i].Headers); err != nil {
			return "", err
		}
	}
	return name, nil
}
