package sdk

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/mqgate/mqgate/sdk/proto"
)

// ProtocolVersion is the plugin protocol this SDK speaks. A later version
// is added beside it in PluginSets, so plugins built against v1 keep working.
//
// Adding an RPC does not need a new version: a plugin built before it
// answers UNIMPLEMENTED, which the gateway takes as "not supported" and
// works without (ValidateConfig, added to v1, is optional this way), and a
// gateway built before it never calls it. A new version is for changes
// that old peers would misread: a changed message or a required call.
const ProtocolVersion = 1

// MaxMessageBytes bounds one gRPC message between the gateway and a plugin,
// in both directions. gRPC's default of 4 MiB is far too small for batches.
const MaxMessageBytes = 256 << 20

// Handshake is the go-plugin handshake: a plugin started by hand, without
// the gateway's cookie, refuses to run.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "MQGATE_PLUGIN",
	MagicCookieValue: "3b1f5c0e-mqgate-plugin",
}

// Plugin kinds, as go-plugin names them in a plugin set.
const (
	KindBackend = "backend"
	KindSink    = "sink"
)

// PluginSets is what the gateway offers: per protocol version, the kinds of
// plugin it can talk to.
func PluginSets() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {KindBackend: &BackendPlugin{}, KindSink: &SinkPlugin{}},
	}
}

// BackendPlugin is the go-plugin glue for a Backend.
type BackendPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Backend
}

// GRPCServer registers the Backend service in the plugin.
func (p *BackendPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	srv := &backendServer{impl: p.Impl}
	pb.RegisterBackendServer(s, srv)
	servePluginConnFromEnv(srv)
	return nil
}

// GRPCClient returns a Backend that calls the plugin.
func (p *BackendPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewBackendClient(pb.NewBackendClient(c)), nil
}

// SinkPlugin is the go-plugin glue for a Sink.
type SinkPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Sink
}

// GRPCServer registers the Sink service in the plugin.
func (p *SinkPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterSinkServer(s, &sinkServer{impl: p.Impl})
	return nil
}

// GRPCClient returns a Sink that calls the plugin.
func (p *SinkPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewSinkClient(pb.NewSinkClient(c)), nil
}

// ServeBackend runs impl as a plugin process and returns when the gateway
// stops it. It closes impl before returning, and also on SIGTERM, which the
// plugin gets when the gateway dies without stopping it.
func ServeBackend(impl Backend) {
	serve(plugin.PluginSet{KindBackend: &BackendPlugin{Impl: impl}}, impl.Close)
}

// ServeSink runs impl as a plugin process, as ServeBackend does a backend.
func ServeSink(impl Sink) {
	serve(plugin.PluginSet{KindSink: &SinkPlugin{Impl: impl}}, impl.Close)
}

func serve(set plugin.PluginSet, closeImpl func() error) {
	var once sync.Once
	shutdown := func() {
		once.Do(func() {
			if err := closeImpl(); err != nil {
				Logger().Error("closing plugin", "error", err)
			}
		})
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		shutdown()
		os.Exit(0)
	}()
	defer shutdown()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: set},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, ServerOptions()...)...)
		},
	})
}

// DialOptions are the gRPC options the gateway dials plugins with.
func DialOptions() []grpc.DialOption {
	return append([]grpc.DialOption{grpc.WithDefaultCallOptions(
		grpc.MaxCallRecvMsgSize(MaxMessageBytes),
		grpc.MaxCallSendMsgSize(MaxMessageBytes),
	)}, codecDialOptions()...)
}

// ServerOptions are the gRPC options a plugin serves with.
func ServerOptions() []grpc.ServerOption {
	return append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
	}, codecServerOptions()...)
}

// Logger returns the logger a plugin should use. It writes JSON lines to
// stderr in the shape go-plugin parses, so each line reaches the gateway's
// log at its level, tagged with the plugin's name.
func Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
			case slog.LevelKey:
				return slog.String("@level", levelName(a.Value.Any().(slog.Level)))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	}))
}

func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warn"
	case l >= slog.LevelInfo:
		return "info"
	default:
		return "debug"
	}
}
