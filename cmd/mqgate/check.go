package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"

	"github.com/mqgate/mqgate/core/auth"
	"github.com/mqgate/mqgate/core/config"
	"github.com/mqgate/mqgate/core/pluginhost"
	"github.com/mqgate/mqgate/sdk"
)

// selfPath is the mqgate binary whose `mqgate plugin NAME` serves the
// bundled plugins; empty means this process's own executable. Tests, whose
// executable is the test binary, point it at a built mqgate.
var selfPath string

// check validates a config file: the gateway's own rules, and the config
// of every cluster as its plugin sees it. It prints every problem as
// FILE:LINE: key: problem to stderr, sorted by line, and returns the
// process exit code: 1 on any problem.
//
// Plugins are asked without being configured (pluginhost.Validate), so
// check connects to no broker and starts none; it needs none running. A
// plugin that cannot validate its config before it starts is noted on
// stdout, not counted as a problem. Plugin logs go to log.
func check(file string, stdout, stderr io.Writer, log *slog.Logger) int {
	cfg, problems, err := config.Inspect(file)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", file, err)
		return 1
	}
	host, err := pluginhost.New(pluginhost.Options{SelfPath: selfPath, CallTimeout: cfg.PluginHost.CallTimeout, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", file, err)
		return 1
	}
	defer func() {
		_ = host.Close() // Validate leaves no plugin running; Close reports nothing
	}()
	pluginProblems, notes := checkPlugins(context.Background(), cfg, problems, host)
	problems = append(problems, pluginProblems...)
	// A JWKS file is read and parsed as serve would (a JWKS URL is not
	// fetched: check connects to nothing).
	if a := cfg.Auth; len(problems) == 0 && a != nil && a.JWT != nil && a.JWT.JWKSFile != "" {
		if _, err := auth.New(context.Background(), cfg, log); err != nil {
			problems = append(problems, &config.Error{File: file, Key: "auth.jwt.jwks_file", Msg: strings.TrimPrefix(err.Error(), "auth.jwt.jwks_file: ")})
		}
	}
	problems.SortByLine()

	for _, n := range notes {
		fmt.Fprintln(stdout, n.String())
	}
	for _, e := range problems {
		fmt.Fprintln(stderr, e.String())
	}
	if len(problems) > 0 {
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", file)
	return 0
}

// checkPlugins asks the plugin of every cluster and sink that problems
// leave checkable about its config, each in a process of its own, a few at
// a time. It returns the plugins' problems located in cfg's file, and
// notes for plugins that cannot validate a config before they start. A
// plugin that cannot be started is a problem at its entry under plugins:,
// reported once however many clusters or sinks use it.
func checkPlugins(ctx context.Context, cfg *config.Config, problems config.Errors, host *pluginhost.Host) (config.Errors, config.Errors) {
	type checked struct {
		plugin string
		spec   pluginhost.Spec
		at     func(key, msg string) *config.Error // locates a problem of its config
	}
	var todo []checked
	var out, notes config.Errors
	for _, cl := range cfg.CheckableClusters(problems) {
		p := cfg.Plugins[cl.Plugin]
		js, err := cl.ConfigJSON()
		if err != nil { // not for a map decoded from YAML, which holds only JSON's values
			out = append(out, cfg.PluginError(cl.Name, "", err.Error()))
			continue
		}
		todo = append(todo, checked{cl.Plugin, withKind(pluginSpec(p, cl.Name, js), sdk.KindBackend),
			func(key, msg string) *config.Error { return cfg.PluginError(cl.Name, key, msg) }})
	}
	for _, i := range cfg.CheckableSinks(problems) {
		sk := cfg.Sinks[i]
		p := cfg.Plugins[sk.Plugin]
		js, err := sk.ConfigJSON(sdk.SinkInfo{Sink: sk.Name, Group: sk.Group, Gateway: gatewayID()})
		if err != nil {
			out = append(out, cfg.SinkPluginError(i, "", err.Error()))
			continue
		}
		todo = append(todo, checked{sk.Plugin, withKind(pluginSpec(p, sinkInstance(sk.Name), js), sdk.KindSink),
			func(key, msg string) *config.Error { return cfg.SinkPluginError(i, key, msg) }})
	}

	type answer struct {
		errs sdk.ConfigErrors
		err  error
	}
	answers := make([]answer, len(todo))
	// Plugin processes start in parallel, about as many at once as the
	// machine has cores (at least two): check of a config with many
	// clusters stays quick without swamping a small machine.
	slots := make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))
	var wg sync.WaitGroup
	for i, c := range todo {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			answers[i].errs, answers[i].err = host.Validate(ctx, c.spec)
		})
	}
	wg.Wait()

	reported := map[string]bool{} // plugins already reported or noted
	for i, c := range todo {
		a := answers[i]
		switch {
		case a.err == nil:
			for _, ce := range a.errs {
				out = append(out, c.at(ce.Key, ce.Msg))
			}
		case reported[c.plugin]:
		case errors.Is(a.err, sdk.ErrConfigNotValidated):
			reported[c.plugin] = true
			notes = append(notes, cfg.PluginEntryError(c.plugin,
				"note: the plugin does not validate its config before start; the gateway checks it when it starts the plugin"))
		default:
			reported[c.plugin] = true
			out = append(out, cfg.PluginEntryError(c.plugin, a.err.Error()))
		}
	}
	return out, notes
}

// withKind is spec of kind, for Validate.
func withKind(spec pluginhost.Spec, kind string) pluginhost.Spec {
	spec.Kind = kind
	return spec
}
