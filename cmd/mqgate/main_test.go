package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// The command line explains itself: help in every spelling exits 0 on
// stdout and lists the commands or a command's flags, one line each;
// mistakes exit 2 on stderr saying what to run.
func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stdout []string // each must appear in stdout
		stderr []string // each must appear in stderr
	}{
		{args: []string{"--help"}, stdout: []string{"Commands:", "  serve    run the gateway", "  check    validate", "  version  print"}},
		{args: []string{"-h"}, stdout: []string{"Commands:"}},
		{args: []string{"help"}, stdout: []string{"Commands:"}},
		{args: []string{"help", "serve"}, stdout: []string{"Usage: mqgate serve", "  -c FILE ", "  -log-level LEVEL ", "  -log-format FORMAT "}},
		{args: []string{"serve", "--help"}, stdout: []string{"Usage: mqgate serve", "(default \"plugins.yaml\")"}},
		{args: []string{"check", "-h"}, stdout: []string{"Usage: mqgate check [-c FILE]", "  -c FILE "}},
		{args: []string{"version"}, stdout: []string{"mqgate ", "commit ", runtime.Version()}},
		{args: []string{"--version"}, stdout: []string{"mqgate ", runtime.Version()}},
		{args: []string{"bogus"}, code: 2, stderr: []string{`unknown command "bogus"`, "Commands:"}},
		{args: []string{"help", "bogus"}, code: 2, stderr: []string{`unknown command "bogus"`}},
		{args: []string{"serve", "extra"}, code: 2, stderr: []string{`unexpected argument "extra"`, "mqgate help serve"}},
		{args: []string{"check", "-x"}, code: 2, stderr: []string{"flag provided but not defined: -x", "mqgate help check"}},
		{args: []string{"plugin"}, code: 2, stderr: []string{"usage: mqgate plugin NAME"}},
		{args: []string{"plugin", "nope"}, code: 2, stderr: []string{`no bundled plugin named "nope"`}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if tc.code == 0 && stderr.Len() > 0 {
				t.Errorf("help wrote to stderr:\n%s", stderr.String())
			}
		})
	}
}
