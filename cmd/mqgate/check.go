package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/mqgate/mqgate/core/config"
)

// check validates a config file and prints every problem as
// FILE:LINE: key: problem. It returns the process exit code.
func check(file string, stdout, stderr io.Writer) int {
	_, err := config.Load(file)
	if err == nil {
		fmt.Fprintf(stdout, "%s: ok\n", file)
		return 0
	}
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(stderr, e.String())
		}
		return 1
	}
	fmt.Fprintf(stderr, "%s: %v\n", file, err)
	return 1
}
