package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/consume"
	"github.com/mqgate/mqgate/core/pluginhost"
	"github.com/mqgate/mqgate/core/sink"
	"github.com/mqgate/mqgate/sdk"
)

// startSinks starts the plugin of every sinks: entry, configured with the
// entry's config and its sdk.SinkInfo, and the pipelines that feed them. A
// plugin refusing its config is reported at the entry's line.
func startSinks(ctx context.Context, cfg *config.Config, host *pluginhost.Host, consumer *consume.Service,
	log *slog.Logger, reg prometheus.Registerer) (*sink.Service, error) {
	plugins := make(map[string]sdk.Sink, len(cfg.Sinks))
	gateway := gatewayID()
	for i, sk := range cfg.Sinks {
		p := cfg.Plugins[sk.Plugin]
		js, err := sk.ConfigJSON(sdk.SinkInfo{Sink: sk.Name, Group: sk.Group, Gateway: gateway})
		if err != nil {
			return nil, err
		}
		log.Info("starting plugin", "plugin", p.Name, "sink", sk.Name)
		s, err := host.StartSink(ctx, pluginSpec(p, sinkInstance(sk.Name), js))
		if err != nil {
			if ces := sdk.ConfigErrorsOf(err); len(ces) > 0 {
				errs := make(config.Errors, len(ces))
				for j, ce := range ces {
					errs[j] = cfg.SinkPluginError(i, ce.Key, ce.Msg)
				}
				errs.SortByLine()
				return nil, errs
			}
			return nil, fmt.Errorf("sink %s: %w", sk.Name, err)
		}
		plugins[sk.Name] = s
	}
	svc, err := sink.New(sink.Options{Sinks: cfg.Sinks, Plugins: plugins, Consumer: consumer,
		Logger: log.With("component", "sink"), Registerer: reg, PluginState: sinkPluginState(host)})
	if err != nil {
		return nil, err
	}
	svc.Start()
	return svc, nil
}

// sinkInstance names a sink's plugin instance in /v1/plugins and the
// logs, apart from the clusters'.
func sinkInstance(name string) string { return "sink:" + name }

// sinkPluginState reads the state of a sink's plugin process for
// GET /v1/sinks.
func sinkPluginState(host *pluginhost.Host) func(string) (string, string) {
	return func(name string) (string, string) {
		for _, st := range host.Statuses() {
			if st.Name == sinkInstance(name) {
				return string(st.State), st.LastError
			}
		}
		return "", ""
	}
}

// gatewayID names this gateway process among those running the same
// sinks: its host name and pid.
func gatewayID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}
