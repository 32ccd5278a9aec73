// Command mqgate is the message-queue gateway.
//
//	mqgate                   same as mqgate serve -c plugins.yaml
//	mqgate serve -c FILE     runs the gateway
//	mqgate check -c FILE     validates a config, plugin configs included (asking
//	                         each plugin, with no broker needed); prints
//	                         FILE:LINE: key: problem
//	mqgate version           prints the version, commit and Go version
//	mqgate help [COMMAND]    describes the commands and their flags
//	mqgate plugin NAME       runs bundled plugin NAME (started by the gateway itself)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// defaultGCPercent is the GC target used unless GOGC is set, and the
// least the gateway's tuner sets (tuneGatewayGC). A gateway's live heap is
// small (buffers in flight) while it allocates a request's bytes for every
// request; GOGC=400 trades a few MB of heap for far less GC work
// (docs/BENCHMARKS.md: +45% produce throughput). It is safe with the
// memory limit serve sets (setMemoryLimit): near the limit the collector
// runs as often as it must, whatever the GC target.
const defaultGCPercent = 400

// command is one subcommand of mqgate.
type command struct {
	name, args, about string
	// flags declares the command's flags on fs and returns what runs it
	// once they are parsed, with the arguments left.
	flags func(fs *flag.FlagSet) func(args []string, stdout, stderr io.Writer) int
	// hidden commands are left out of the overview: people do not run them.
	hidden bool
}

var commands []command

func init() {
	// Set here rather than in the declaration: help refers to commands.
	commands = []command{
		{name: "serve", args: "[-c FILE] [-log-level LEVEL] [-log-format FORMAT]",
			about: "run the gateway until SIGINT or SIGTERM (the default command)", flags: serveFlags},
		{name: "check", args: "[-c FILE] [-log-level LEVEL] [-log-format FORMAT]",
			about: "validate a config file, each plugin's config included, and exit", flags: checkFlags},
		{name: "version", about: "print the version, commit and Go version", flags: noFlags(version)},
		{name: "help", args: "[COMMAND]", about: "describe the commands, or one command and its flags", flags: noFlags(help)},
		{name: "plugin", args: "NAME", about: "run a bundled plugin; the gateway starts it, people do not", flags: noFlags(servePlugin), hidden: true},
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	name := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			return help(args[1:], stdout, stderr)
		case "-version", "--version":
			return version(args[1:], stdout, stderr)
		}
		if !strings.HasPrefix(args[0], "-") {
			name, args = args[0], args[1:]
		}
	}
	cmd, ok := lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "mqgate: unknown command %q\n\n", name)
		overview(stderr)
		return 2
	}
	fs := flag.NewFlagSet("mqgate "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	runCmd := cmd.flags(fs)
	fs.Usage = func() {} // errors are reported below, help goes to stdout
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandHelp(cmd, stdout)
			return 0
		}
		fmt.Fprintf(stderr, "run 'mqgate help %s' for its flags\n", cmd.name)
		return 2
	}
	return runCmd(fs.Args(), stdout, stderr)
}

func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// noFlags adapts a command without flags.
func noFlags(f func(args []string, stdout, stderr io.Writer) int) func(*flag.FlagSet) func([]string, io.Writer, io.Writer) int {
	return func(*flag.FlagSet) func([]string, io.Writer, io.Writer) int { return f }
}

// configFlag declares -c, the config file of serve and check.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("c", "plugins.yaml", "the config `FILE`")
}

// noArgs reports an argument a command does not take.
func noArgs(cmd string, args []string, stderr io.Writer) bool {
	if len(args) == 0 {
		return true
	}
	fmt.Fprintf(stderr, "mqgate %s: unexpected argument %q; run 'mqgate help %s'\n", cmd, args[0], cmd)
	return false
}

func serveFlags(fs *flag.FlagSet) func([]string, io.Writer, io.Writer) int {
	file := configFlag(fs)
	level := fs.String("log-level", "info", "log `LEVEL`: debug, info, warn or error")
	format := fs.String("log-format", "text", "log `FORMAT`: text or json")
	return func(args []string, _, stderr io.Writer) int {
		if !noArgs("serve", args, stderr) {
			return 2
		}
		logger, err := newLogger(stderr, *level, *format)
		if err != nil {
			fmt.Fprintf(stderr, "mqgate: %v\n", err)
			return 2
		}
		defer startProfile("", stderr)()
		defer startTrace("", stderr)()
		return serve(*file, logger)
	}
}

func checkFlags(fs *flag.FlagSet) func([]string, io.Writer, io.Writer) int {
	file := configFlag(fs)
	// check prints its findings itself; of the logs of the plugins it
	// starts, only errors (a plugin's panic, say) add to them.
	level := fs.String("log-level", "error", "`LEVEL` of the logs of the plugins check starts: debug, info, warn or error")
	format := fs.String("log-format", "text", "log `FORMAT`: text or json")
	return func(args []string, stdout, stderr io.Writer) int {
		if !noArgs("check", args, stderr) {
			return 2
		}
		logger, err := newLogger(stderr, *level, *format)
		if err != nil {
			fmt.Fprintf(stderr, "mqgate: %v\n", err)
			return 2
		}
		return check(*file, stdout, stderr, logger)
	}
}

// help prints the overview, or one command's help, to stdout.
func help(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		overview(stdout)
		return 0
	}
	cmd, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(stderr, "mqgate help: unknown command %q\n\n", args[0])
		overview(stderr)
		return 2
	}
	commandHelp(cmd, stdout)
	return 0
}

func overview(w io.Writer) {
	fmt.Fprint(w, `mqgate is a message-queue gateway: HTTP and DDMQ's Thrift protocol in front of
Kafka and RocketMQ, with delay messages, per-message acks, HTTP push and a
durable async spool.

Usage:
  mqgate [COMMAND] [FLAGS]

Commands:
`)
	for _, c := range commands {
		if !c.hidden {
			fmt.Fprintf(w, "  %-8s %s\n", c.name, c.about)
		}
	}
	fmt.Fprint(w, `
Without a command, mqgate serves plugins.yaml. Run 'mqgate help COMMAND' or
'mqgate COMMAND --help' for a command's flags; 'mqgate --version' for the
version. Documentation: docs/ in the source, starting at README.md.
`)
}

func commandHelp(cmd command, w io.Writer) {
	fmt.Fprintf(w, "Usage: mqgate %s %s\n\n%s.\n", cmd.name, cmd.args, strings.ToUpper(cmd.about[:1])+cmd.about[1:])
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	cmd.flags(fs)
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprint(w, "\nFlags:\n")
			first = false
		}
		arg, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  %-22s %s (default %q)\n", "-"+f.Name+" "+arg, usage, f.DefValue)
	})
}

// version prints what the build recorded: the module version, the commit
// and whether the tree had changes, and the Go toolchain.
func version(_ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, versionLine())
	return 0
}

// buildVersion and buildCommit, when set at link time
// (-ldflags "-X main.buildVersion=v1.2.0 -X main.buildCommit=3f2a…"),
// replace what the build info holds: a build without .git (a container
// image, say) has none.
var buildVersion, buildCommit string

func versionLine() string {
	v, commit, when, modified := "(unknown)", "unknown", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		v = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if buildVersion != "" {
		v = buildVersion
	}
	if buildCommit != "" {
		commit = buildCommit
	}
	line := fmt.Sprintf("mqgate %s, commit %s", v, commit)
	if when != "" {
		line += " of " + when
	}
	if modified {
		line += " with uncommitted changes"
	}
	return line + fmt.Sprintf(", built with %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format: %q is not text or json", format)
}
