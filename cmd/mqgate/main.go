// Command mqgate is the message-queue gateway.
//
//	mqgate                   same as mqgate serve -c plugins.yaml
//	mqgate serve -c FILE     runs the gateway
//	mqgate check -c FILE     validates a config; prints FILE:LINE: key: problem
//	mqgate plugin NAME       runs bundled plugin NAME (started by the gateway itself)
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
)

const usage = `usage:
  mqgate [serve] [-c FILE] [-log-level LEVEL] [-log-format text|json]
  mqgate check [-c FILE]
  mqgate plugin NAME
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// defaultGCPercent is the GC target used unless GOGC is set. A gateway's
// live heap is small (buffers in flight) while it allocates a request's
// bytes for every request; GOGC=400 trades a few MB of heap for far less GC
// work (docs/BENCHMARKS.md: +45% produce throughput).
const defaultGCPercent = 400

func run(args []string, stdout, stderr io.Writer) int {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve", "check":
		fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
		fs.SetOutput(stderr)
		file := fs.String("c", "plugins.yaml", "the config file")
		level := fs.String("log-level", "info", "debug, info, warn or error")
		format := fs.String("log-format", "text", "text or json")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "mqgate %s: unexpected argument %q\n%s", cmd, fs.Arg(0), usage)
			return 2
		}
		if cmd == "check" {
			return check(*file, stdout, stderr)
		}
		logger, err := newLogger(stderr, *level, *format)
		if err != nil {
			fmt.Fprintf(stderr, "mqgate: %v\n", err)
			return 2
		}
		defer startProfile("", stderr)()
		return serve(*file, logger)
	case "plugin":
		if len(args) != 1 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		defer startProfile(".plugin-"+args[0], stderr)()
		return servePlugin(args[0], stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "mqgate: unknown command %q\n%s", cmd, usage)
	return 2
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
