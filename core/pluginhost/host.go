// Package pluginhost starts plugin processes, keeps them healthy and hands
// the rest of the gateway an sdk.Backend or sdk.Sink that survives their
// restarts.
//
// go-plugin never restarts a plugin that died, so the host does: it watches
// each process (exit, and a gRPC health check with a deadline), and when one
// dies or stops answering it kills it, starts a new one with backoff and
// configures it again. Calls in flight on the dead process fail at once with
// code 17 (retriable); calls made while it restarts fail the same way rather
// than wait. Consume streams re-open on the new process by themselves.
package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mqgate/mqgate/sdk"
)

// Spec says how to start one plugin instance. Each cluster (and each sink)
// gets its own process, configured with its own Config.
type Spec struct {
	// Name is the instance's name: the cluster or sink it serves.
	Name string
	// Plugin is the plugin's key under plugins: in plugins.yaml.
	Plugin string
	// Kind is sdk.KindBackend or sdk.KindSink. StartBackend and StartSink
	// set it; for Validate it defaults to sdk.KindBackend.
	Kind string
	// Builtin names a bundled plugin: the host runs `SelfPath plugin Builtin`.
	Builtin string
	// Path is a third-party plugin binary, used when Builtin is empty.
	Path string
	// SHA256 is the expected hex digest of Path's binary, checked at every
	// start when set.
	SHA256 string
	// Config is the JSON object passed to Configure, or to ValidateConfig
	// by Validate.
	Config []byte
	// InProcess, when set, runs the plugin inside the gateway's process
	// instead of executing one: each start calls it for a new,
	// unconfigured sdk.Backend or sdk.Sink that logs to log, and calls go
	// straight to it, without gRPC. Only bundled plugins can: the plugin's
	// code shares the gateway's memory, its limits and its fate (a panic
	// in it ends the gateway). There is no process to watch or restart;
	// a Configure that fails with CodeUnavailable is retried with backoff
	// as for a process, and Close closes the plugin.
	InProcess func(log *slog.Logger) any
}

// Options tune the host. Zero values take the defaults.
type Options struct {
	// SelfPath is the mqgate binary bundled plugins run from; default
	// os.Executable().
	SelfPath string
	// HealthInterval is how long a plugin that a call waits on may stay
	// silent before it is health-checked (default 1s); HealthTimeout how
	// long one check may take (default 2s). Two failed checks in a row
	// restart the plugin. Answers to calls count as checks passed, so a
	// busy plugin is not pinged, and one nobody waits on (long polls and
	// consume streams waiting for records aside) is checked only every
	// idleChecks health intervals.
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	// RestartBackoffMax caps the wait between restart attempts (default 2s).
	RestartBackoffMax time.Duration
	// CallTimeout bounds calls whose context has no deadline (default 10s).
	CallTimeout time.Duration
	// StartTimeout bounds one start: exec, handshake and Configure
	// (default 30s).
	StartTimeout time.Duration
	Logger       *slog.Logger
	// Registerer receives the host's metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
}

func (o *Options) setDefaults() error {
	if o.SelfPath == "" {
		p, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding the mqgate binary: %w", err)
		}
		o.SelfPath = p
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HealthInterval, time.Second)
	def(&o.HealthTimeout, 2*time.Second)
	def(&o.RestartBackoffMax, 2*time.Second)
	def(&o.CallTimeout, 10*time.Second)
	def(&o.StartTimeout, 30*time.Second)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Host owns every plugin process of a gateway.
type Host struct {
	opts    Options
	metrics *metrics

	mu        sync.Mutex
	instances []*instance
	closed    bool
}

// New returns a host with no plugins running.
func New(opts Options) (*Host, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	return &Host{opts: opts, metrics: newMetrics(opts.Registerer)}, nil
}

// StartBackend starts a backend plugin and configures it. It returns once
// the first process is up, or the error that kept it from starting (when
// the plugin refused its config, sdk.ConfigErrorsOf finds every problem it
// reported). A plugin whose
// Configure fails with CodeUnavailable (its broker cannot be reached) is
// not an error: the instance starts down and the host keeps launching it
// with backoff, calls failing with CodeUnavailable meanwhile. The Backend
// it returns stays valid across restarts until Close.
func (h *Host) StartBackend(ctx context.Context, spec Spec) (sdk.Backend, error) {
	spec.Kind = sdk.KindBackend
	inst, err := h.start(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &backendHandle{inst: inst}, nil
}

// StartSink starts a sink plugin, as StartBackend does a backend.
func (h *Host) StartSink(ctx context.Context, spec Spec) (sdk.Sink, error) {
	spec.Kind = sdk.KindSink
	inst, err := h.start(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &sinkHandle{inst: inst}, nil
}

func (h *Host) start(ctx context.Context, spec Spec) (*instance, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errors.New("plugin host is closed")
	}
	h.mu.Unlock()
	inst := newInstance(h, spec)
	gen, err := inst.launch(ctx)
	switch {
	case err == nil:
		inst.setUp(gen)
		go inst.supervise()
	case sdk.CodeOf(err) == sdk.CodeUnavailable:
		// The plugin runs but cannot reach its broker yet. The gateway
		// starts anyway, with this cluster unready, and keeps trying: a
		// broker that comes up after the gateway is not an outage.
		inst.mu.Lock()
		inst.state, inst.lastErr, inst.downSince, inst.failedStarts = StateRestarting, err.Error(), time.Now(), 1
		inst.mu.Unlock()
		inst.host.metrics.up.WithLabelValues(spec.Name).Set(0)
		inst.log.Warn("plugin cannot reach its broker; retrying", "error", err)
		go func() {
			if inst.restart() {
				inst.supervise()
			} else {
				close(inst.done)
			}
		}()
	default:
		return nil, err
	}
	h.mu.Lock()
	if h.closed { // Close ran while this one started: it must not outlive the host
		h.mu.Unlock()
		inst.stop()
		return nil, errors.New("plugin host is closed")
	}
	h.instances = append(h.instances, inst)
	h.mu.Unlock()
	return inst, nil
}

// Validate starts a process of spec's plugin only to ask it whether
// spec.Config is valid (sdk.ValidateConfig), and stops it. It never calls
// Configure, so the plugin connects to nothing and starts nothing (no
// embedded broker). It returns the plugin's problems with the config, nil
// when the plugin accepts it, or the error that kept it from asking:
// sdk.ErrConfigNotValidated (possibly wrapped) for a plugin that cannot
// validate a config before it starts, or why the plugin did not start.
//
// The process is not supervised and not listed in Statuses. Validate may
// be called concurrently; StartTimeout bounds the start, and CallTimeout
// the question when ctx has no deadline.
func (h *Host) Validate(ctx context.Context, spec Spec) (sdk.ConfigErrors, error) {
	if spec.Kind == "" {
		spec.Kind = sdk.KindBackend
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, errors.New("plugin host is closed")
	}
	log := h.opts.Logger.With("plugin", spec.Plugin, "instance", spec.Name)
	if spec.InProcess != nil {
		impl := spec.InProcess(log)
		defer closePlugin(impl)
		return validate(ctx, impl, spec, h.opts.CallTimeout)
	}
	client, _, logger, err := h.newClient(spec, log)
	if err != nil {
		return nil, err
	}
	raw, _, err := dispense(client, spec)
	if err != nil {
		discard(client, logger, err)
		return nil, err
	}
	errs, err := validate(ctx, raw, spec, h.opts.CallTimeout)
	discard(client, logger, err)
	return errs, err
}

// validate asks the plugin raw about spec.Config.
func validate(ctx context.Context, raw any, spec Spec, timeout time.Duration) (sdk.ConfigErrors, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	errs, err := sdk.ValidateConfig(ctx, raw, spec.Config)
	if err != nil && !errors.Is(err, sdk.ErrConfigNotValidated) {
		return nil, fmt.Errorf("asking plugin %s to validate the config of %s: %w", spec.Plugin, spec.Name, err)
	}
	return errs, err
}

// Statuses reports every plugin instance, in start order.
func (h *Host) Statuses() []Status {
	h.mu.Lock()
	insts := append([]*instance(nil), h.instances...)
	h.mu.Unlock()
	out := make([]Status, len(insts))
	for i, inst := range insts {
		out[i] = inst.status()
	}
	return out
}

// Close stops every plugin: each is asked to shut down cleanly (closing its
// broker clients and saving its state) and killed if it does not.
func (h *Host) Close() error {
	h.mu.Lock()
	h.closed = true
	insts := h.instances
	h.instances = nil
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, inst := range insts {
		wg.Go(inst.stop)
	}
	wg.Wait()
	return nil
}

// generation is one running process of an instance. Its context ends when
// the process is declared dead, which fails every call still using it.
type generation struct {
	// client is nil for a plugin running in the gateway's process (see
	// Spec.InProcess), and with it cmd, log, conn and exited.
	client *plugin.Client
	cmd    *exec.Cmd     // go-plugin runs and reaps it
	log    *hclogAdapter // go-plugin's logger for it
	conn   *grpc.ClientConn
	impl   any // sdk.Backend or sdk.Sink
	pid    int
	ctx    context.Context
	cancel context.CancelFunc
	// exited is closed once the process has exited.
	exited <-chan struct{}
	// streams counts the consume streams opened on the process and not
	// closed by their subscriber: when it dies, the streams it ends.
	streams atomic.Int32
	// heard is when the process last answered (unix ns): a call, a
	// stream event or a health check.
	heard atomic.Int64
	// waiting counts the calls waiting on the process, long polls aside;
	// waited is signalled when it rises from zero, so that the watcher
	// checks a process that was idle at the pace of a busy one.
	waiting atomic.Int32
	waited  chan struct{}
}

// exitGrace is how long dying waits for a process to exit.
const exitGrace = 200 * time.Millisecond

// dying reports whether gen's process has exited, or does within
// exitGrace (or before ctx ends), or was declared down. A consume stream
// can end a moment before its process's exit shows (the process closes its
// connections first): one that ended so is re-opened on the next process,
// not on the dying one.
func (g *generation) dying(ctx context.Context) bool {
	if g.exited == nil {
		return false // in the gateway's process
	}
	t := time.NewTimer(exitGrace)
	defer t.Stop()
	select {
	case <-g.exited:
		return true
	case <-g.ctx.Done():
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// answered records that the process answered.
func (g *generation) answered() { g.heard.Store(time.Now().UnixNano()) }

// silence is how long the process has not answered.
func (g *generation) silence() time.Duration {
	return time.Duration(time.Now().UnixNano() - g.heard.Load())
}

// startWait and endWait bracket a call the caller waits on.
func (g *generation) startWait() {
	if g.waiting.Add(1) == 1 {
		select {
		case g.waited <- struct{}{}:
		default:
		}
	}
}

func (g *generation) endWait() { g.waiting.Add(-1) }

// exitStatus says how the exited process ended ("signal: killed", "exit
// status 2"), once go-plugin has reaped it; "" when that takes more than
// a second.
func (g *generation) exitStatus() string {
	for range 200 {
		if g.client.Exited() { // go-plugin sets it after reaping, under its lock
			if ps := g.cmd.ProcessState; ps != nil {
				return ps.String()
			}
			return ""
		}
		time.Sleep(5 * time.Millisecond)
	}
	return ""
}

type instance struct {
	host *Host
	spec Spec
	log  *slog.Logger

	mu       sync.Mutex
	state    State
	gen      *generation   // nil unless up
	upCh     chan struct{} // closed while up; replaced when the plugin goes down
	restarts int
	lastErr  string
	// downSince is when the plugin last went down; failedStarts how many
	// starts failed since then.
	downSince    time.Time
	failedStarts int

	health health // the last answer to Health

	// life ends when the host stops the instance.
	life context.Context
	kill context.CancelFunc
	done chan struct{} // closed when supervise returns
}

func newInstance(h *Host, spec Spec) *instance {
	life, kill := context.WithCancel(context.Background())
	return &instance{
		life:  life,
		kill:  kill,
		host:  h,
		spec:  spec,
		log:   h.opts.Logger.With("plugin", spec.Plugin, "instance", spec.Name),
		state: StateStarting,
		upCh:  make(chan struct{}),
		done:  make(chan struct{}),
	}
}

// newClient returns a go-plugin client for one process of spec's plugin,
// not yet started, with the command it runs and its logger. Its logs, the
// plugin's own included, go to log.
func (h *Host) newClient(spec Spec, log *slog.Logger) (*plugin.Client, *exec.Cmd, *hclogAdapter, error) {
	var cmd *exec.Cmd
	if spec.Builtin != "" {
		cmd = exec.Command(h.opts.SelfPath, "plugin", spec.Builtin)
	} else {
		cmd = exec.Command(spec.Path)
	}
	// A gateway killed without a chance to stop its plugins must not leave
	// them holding ports: the kernel tells each child when its parent dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	var secure *plugin.SecureConfig
	if spec.SHA256 != "" && spec.Builtin == "" {
		sum, err := hex.DecodeString(spec.SHA256)
		if err != nil || len(sum) != sha256.Size {
			return nil, nil, nil, fmt.Errorf("plugin %s: sha256 must be %d hex digits", spec.Plugin, 2*sha256.Size)
		}
		secure = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	logger := newHCLogAdapter(log)
	return plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.PluginSets(),
		Cmd:              cmd,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		// Each process gets a one-time certificate, and the host another:
		// only this host can call the plugin's socket, and the host talks
		// only to the process it started. Plugins built with sdk.Serve
		// need nothing more.
		AutoMTLS:        true,
		Logger:          logger,
		GRPCDialOptions: sdk.DialOptions(),
		StartTimeout:    h.opts.StartTimeout,
	}), cmd, logger, nil
}

// givePluginConn gives the backend plugin cmd will start the plugin's end
// of a plugin connection (sdk.EnvPluginConnFD), a socket pair that only
// the two processes hold, and returns the gateway's end.
func givePluginConn(cmd *exec.Cmd) (*os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("creating a plugin connection: %w", err)
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(fds[1]), "plugin-conn-plugin"))
	// The child's descriptors 0-2 are its standard streams, then ExtraFiles.
	cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", sdk.EnvPluginConnFD, 2+len(cmd.ExtraFiles)))
	return os.NewFile(uintptr(fds[0]), "plugin-conn"), nil
}

// closeExtraFiles closes the gateway's copies of what cmd's process was
// given.
func closeExtraFiles(cmd *exec.Cmd) {
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
}

// attachPluginConn gives impl, a backend plugin just connected, hop, the
// gateway's end of its plugin connection. A plugin whose SDK does not
// serve it produces and consumes over gRPC alone.
func attachPluginConn(impl any, hop *os.File, log *slog.Logger) {
	defer hop.Close()
	b, ok := impl.(sdk.Backend)
	if !ok {
		return
	}
	conn, err := net.FileConn(hop) // a duplicate
	if err != nil {
		log.Warn("producing and consuming over gRPC alone", "error", err)
		return
	}
	if !sdk.AttachPluginConn(b, conn, log) {
		conn.Close()
	}
}

// dispense starts client's process and returns the plugin of kind it
// serves: an sdk.Backend or sdk.Sink over gRPC.
func dispense(client *plugin.Client, spec Spec) (any, *plugin.GRPCClient, error) {
	rpc, err := client.Client()
	if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
		return nil, nil, fmt.Errorf("starting plugin %s: the binary %s does not match its sha256 in plugins.yaml (%w): it was replaced or changed; restore it, or set plugins.%s.sha256 to the new binary's", spec.Plugin, spec.Path, err, spec.Plugin)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("starting plugin %s: %w", spec.Plugin, err)
	}
	raw, err := rpc.Dispense(spec.Kind)
	if err != nil {
		return nil, nil, fmt.Errorf("plugin %s does not serve a %s: %w", spec.Plugin, spec.Kind, err)
	}
	grpcClient, ok := rpc.(*plugin.GRPCClient)
	if !ok {
		return nil, nil, fmt.Errorf("plugin %s does not speak gRPC", spec.Plugin)
	}
	return raw, grpcClient, nil
}

// discard stops the process of a client that failed with err. A plugin
// that did not answer in time may be wedged, and go-plugin's Kill waits on
// it without a deadline: it is killed first. One that answered (refusing
// its config, say) stops cleanly.
func discard(client *plugin.Client, logger *hclogAdapter, err error) {
	logger.endingProcess()
	if sdk.CodeOf(err) == sdk.CodeTimeout {
		if rc := client.ReattachConfig(); rc != nil && rc.Pid > 0 {
			_ = syscall.Kill(rc.Pid, syscall.SIGKILL) // it may already be gone
		}
	}
	client.Kill()
}

// launch starts one process, dispenses the plugin and configures it; or,
// for a plugin that runs in the gateway's process, makes and configures a
// new one.
func (i *instance) launch(ctx context.Context) (*generation, error) {
	if i.spec.InProcess != nil {
		impl := i.spec.InProcess(i.log)
		if err := i.configure(ctx, impl); err != nil {
			closePlugin(impl)
			return nil, err
		}
		gen := newGeneration(impl)
		gen.pid = os.Getpid()
		return gen, nil
	}
	client, cmd, logger, err := i.host.newClient(i.spec, i.log)
	if err != nil {
		return nil, err
	}
	var hop *os.File
	if i.spec.Kind == sdk.KindBackend {
		if hop, err = givePluginConn(cmd); err != nil {
			return nil, err
		}
	}
	gen, err := i.connect(ctx, client)
	closeExtraFiles(cmd) // the plugin has its own, or is gone
	if err != nil {
		if hop != nil {
			hop.Close()
		}
		discard(client, logger, err)
		return nil, err
	}
	if hop != nil {
		attachPluginConn(gen.impl, hop, i.log)
	}
	gen.cmd, gen.log = cmd, logger
	gen.exited = watchExit(gen.pid, client.Exited)
	return gen, nil
}

func (i *instance) connect(ctx context.Context, client *plugin.Client) (*generation, error) {
	raw, grpcClient, err := dispense(client, i.spec)
	if err != nil {
		return nil, err
	}
	if err := i.configure(ctx, raw); err != nil {
		return nil, err
	}
	gen := newGeneration(raw)
	gen.client, gen.conn = client, grpcClient.Conn
	if rc := client.ReattachConfig(); rc != nil {
		gen.pid = rc.Pid
	}
	return gen, nil
}

// configure configures the plugin raw with the instance's config, within
// StartTimeout.
func (i *instance) configure(ctx context.Context, raw any) error {
	cctx, cancel := context.WithTimeout(ctx, i.host.opts.StartTimeout)
	defer cancel()
	var configure func(context.Context, []byte) error
	switch impl := raw.(type) {
	case sdk.Backend:
		configure = impl.Configure
	case sdk.Sink:
		configure = impl.Configure
	default:
		return fmt.Errorf("plugin %s is an unexpected %T", i.spec.Plugin, raw)
	}
	if err := configure(cctx, i.spec.Config); err != nil {
		return fmt.Errorf("configuring plugin %s for %s: %w", i.spec.Plugin, i.spec.Name, err)
	}
	return nil
}

// newGeneration returns the generation of impl, just configured.
func newGeneration(impl any) *generation {
	gctx, gcancel := context.WithCancel(context.Background())
	gen := &generation{impl: impl, ctx: gctx, cancel: gcancel, waited: make(chan struct{}, 1)}
	gen.answered() // Configure just did
	return gen
}

// closePlugin closes a plugin running in the gateway's process.
func closePlugin(impl any) {
	if c, ok := impl.(interface{ Close() error }); ok {
		_ = c.Close() // the plugin logs what it could not close
	}
}

func (i *instance) setUp(gen *generation) {
	i.mu.Lock()
	i.gen = gen
	i.state = StateUp
	close(i.upCh)
	restarts, down := i.restarts, i.downSince
	i.mu.Unlock()
	i.host.metrics.up.WithLabelValues(i.spec.Name).Set(1)
	if restarts == 0 {
		if gen.client == nil {
			i.log.Info("plugin up in the gateway's process")
			return
		}
		i.log.Info("plugin up", "pid", gen.pid)
		return
	}
	i.log.Info("plugin up again", "pid", gen.pid, "restarts", restarts, "down_for", time.Since(down).Round(time.Millisecond))
}

// setDown declares gen dead: calls on it fail from now on.
func (i *instance) setDown(gen *generation, why string) {
	i.mu.Lock()
	if i.gen == gen {
		i.gen = nil
		i.state = StateRestarting
		i.lastErr = why
		i.downSince = time.Now()
		i.failedStarts = 0
		i.upCh = make(chan struct{})
	}
	i.mu.Unlock()
	gen.cancel()
	i.host.metrics.up.WithLabelValues(i.spec.Name).Set(0)
}

// current returns the live generation, or a code 17 error while the
// plugin is down: one that wraps ErrRestartsFailing once the outage is
// more than a brief restart.
func (i *instance) current() (*generation, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.gen == nil {
		return nil, i.unavailable()
	}
	return i.gen, nil
}

// restartGrace is how long a plugin that went down counts as a brief
// restart, which callers may ride out by retrying (sync produce does,
// within its request's deadline). After it, while starts keep failing,
// calls fail at once with ErrRestartsFailing: waiting out the request
// would only turn an answer that names the cause into a timeout.
const restartGrace = time.Second

// ErrRestartsFailing is sdk.ErrLasting: it is wrapped, with a code 17
// *sdk.Error naming the plugin and the last start's error, by calls to a
// plugin that has been down for longer than a brief restart and whose
// starts keep failing (a binary that no longer matches its sha256, a
// broker it cannot reach). Callers that retry code 17 within one request
// stop on it and answer at once; the host goes on restarting the plugin.
var ErrRestartsFailing = sdk.ErrLasting

// unavailable must be called with i.mu held.
func (i *instance) unavailable() error {
	down := time.Since(i.downSince)
	if i.state == StateRestarting && i.failedStarts > 0 && down >= restartGrace {
		msg := fmt.Sprintf("plugin %s for %s is down and restarting it keeps failing (%d attempts in %s); the last attempt: %s",
			i.spec.Plugin, i.spec.Name, i.failedStarts, down.Round(100*time.Millisecond), i.lastErr)
		return sdk.Lasting(&sdk.Error{Code: sdk.CodeUnavailable, Msg: msg})
	}
	msg := fmt.Sprintf("plugin %s for %s is %s", i.spec.Plugin, i.spec.Name, i.state)
	if i.lastErr != "" {
		msg += ": " + i.lastErr
	}
	return &sdk.Error{Code: sdk.CodeUnavailable, Msg: msg}
}

// waitUp waits until the plugin is up or ctx ends.
func (i *instance) waitUp(ctx context.Context) (*generation, error) {
	for {
		i.mu.Lock()
		gen, up := i.gen, i.upCh
		i.mu.Unlock()
		if gen != nil {
			return gen, nil
		}
		select {
		case <-up:
		case <-i.life.Done():
			return nil, &sdk.Error{Code: sdk.CodeUnavailable, Msg: "plugin host is stopping"}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (i *instance) status() Status {
	i.mu.Lock()
	defer i.mu.Unlock()
	st := Status{Name: i.spec.Name, Plugin: i.spec.Plugin, Kind: i.spec.Kind, State: i.state, Restarts: i.restarts, LastError: i.lastErr,
		InProcess: i.spec.InProcess != nil}
	switch {
	case st.InProcess:
		st.PID = os.Getpid()
	case i.gen != nil:
		st.PID = i.gen.pid
	}
	return st
}

// supervise watches the live process and replaces it when it dies.
func (i *instance) supervise() {
	defer close(i.done)
	for {
		gen, err := i.current()
		if err != nil {
			return // taken down by someone else: only supervise restarts
		}
		if !i.watch(gen) {
			return
		}
		gen.destroy()
		if !i.restart() {
			return
		}
	}
}

// idleChecks is how many health intervals a plugin nobody waits on may
// stay silent before it is checked.
const idleChecks = 10

// watch waits until gen's process exits or fails two health checks in a
// row, logs why and sets it down; it returns false, leaving gen up, when
// the host stops the instance first. Exits are waited for, not polled. The
// health check, which catches a process that is alive but stuck (stopped,
// or its runtime wedged), runs only when the process has been silent: for
// HealthInterval while a call waits on it or after a failed check, for
// idleChecks intervals otherwise.
func (i *instance) watch(gen *generation) bool {
	if gen.client == nil {
		// In the gateway's process: nothing can exit or wedge apart
		// from the gateway itself.
		<-i.life.Done()
		return false
	}
	interval := i.host.opts.HealthInterval
	timer := time.NewTimer(interval)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-i.life.Done():
			return false
		case <-gen.exited:
			i.exited(gen)
			return true
		case <-gen.waited:
		case <-timer.C:
		}
		allowed := interval
		if gen.waiting.Load() == 0 && failures == 0 {
			allowed = idleChecks * interval
		}
		if silent := gen.silence(); silent < allowed {
			resetTimer(timer, allowed-silent)
			continue
		}
		err := i.ping(gen)
		if err == nil {
			gen.answered()
			failures = 0
			resetTimer(timer, interval)
			continue
		}
		select {
		case <-gen.exited: // the check failed because the process died
			i.exited(gen)
			return true
		default:
		}
		failures++
		if failures < 2 {
			i.log.Warn("plugin health check failed", "pid", gen.pid, "error", err)
			resetTimer(timer, interval)
			continue
		}
		why := "plugin stopped answering health checks: " + err.Error()
		i.log.Error("plugin stopped answering health checks; killing and restarting it", "pid", gen.pid, "error", err,
			"restarts", i.status().Restarts, "streams", gen.streams.Load())
		i.setDown(gen, why)
		return true
	}
}

// resetTimer makes t fire after d, whether or not it fired already.
func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	t.Reset(d)
}

// exited sets gen down after its process exited, with one line saying so.
func (i *instance) exited(gen *generation) {
	status := gen.exitStatus()
	why := "plugin process exited"
	if status != "" {
		why += ": " + status
	}
	// The streams re-open on the new process by themselves; they say
	// nothing more unless that fails.
	i.log.Error("plugin process exited; restarting it", "pid", gen.pid, "status", status,
		"restarts", i.status().Restarts, "streams", gen.streams.Load())
	i.setDown(gen, why)
}

func (i *instance) ping(gen *generation) error {
	ctx, cancel := context.WithTimeout(gen.ctx, i.host.opts.HealthTimeout)
	defer cancel()
	_, err := healthpb.NewHealthClient(gen.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: plugin.GRPCServiceName})
	return err
}

// restartReport is how often restart repeats a failure it already
// logged: a plugin that cannot start is retried every RestartBackoffMax,
// and one line a minute says it still cannot.
const restartReport = time.Minute

// restart starts new processes with growing backoff until one comes up. It
// returns false when the host is stopping. The first failure is logged,
// then a failure only when its reason changes or restartReport has passed.
func (i *instance) restart() bool {
	backoff := 50 * time.Millisecond
	var (
		attempts   int
		lastLogged string
		loggedAt   time.Time
	)
	for {
		select {
		case <-i.life.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, i.host.opts.RestartBackoffMax)
		attempts++
		gen, err := i.launch(i.life)
		if err != nil {
			i.mu.Lock()
			i.lastErr = err.Error()
			i.failedStarts++
			i.mu.Unlock()
			if msg := err.Error(); msg != lastLogged || time.Since(loggedAt) >= restartReport {
				i.log.Error("restarting plugin failed", "error", err, "attempts", attempts, "next_attempt_in", backoff)
				lastLogged, loggedAt = msg, time.Now()
			} else {
				i.log.Debug("restarting plugin failed", "error", err, "attempts", attempts, "next_attempt_in", backoff)
			}
			continue
		}
		i.mu.Lock()
		i.restarts++
		i.mu.Unlock()
		i.host.metrics.restarts.WithLabelValues(i.spec.Name).Inc()
		i.setUp(gen)
		return true
	}
}

func (i *instance) stop() {
	i.kill()
	<-i.done
	i.mu.Lock()
	gen := i.gen
	i.gen = nil
	i.state = StateStopped
	i.mu.Unlock()
	if gen != nil {
		gen.cancel()
		gen.shutdown(stopTimeout, i.log)
	}
	i.host.metrics.up.WithLabelValues(i.spec.Name).Set(0)
}

// stopTimeout is how long a plugin gets to close its broker clients and save
// its state when the gateway stops, before it is killed.
const stopTimeout = 10 * time.Second

// destroy ends a process declared dead or wedged. go-plugin's Kill first
// asks the plugin to shut down over gRPC, with no deadline; a wedged plugin
// would never answer, so it is killed outright first.
func (g *generation) destroy() {
	g.log.endingProcess()
	if g.pid > 0 {
		_ = syscall.Kill(g.pid, syscall.SIGKILL) // it may already be gone
	}
	g.client.Kill()
}

// shutdown asks the plugin to stop cleanly and kills it if it has not
// within timeout. A plugin in the gateway's process is closed; one that
// has not closed within timeout is left to end with the gateway.
func (g *generation) shutdown(timeout time.Duration, log *slog.Logger) {
	done := make(chan struct{})
	go func() {
		if g.client == nil {
			closePlugin(g.impl)
		} else {
			g.client.Kill()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		if g.client == nil {
			log.Warn("plugin did not close within the stop timeout; leaving it to end with the gateway", "timeout", timeout)
			return
		}
		g.destroy()
		<-done
	}
}
