//go:build !linux

package pluginhost

// watchExit returns a channel closed once the plugin process has exited,
// as go-plugin reports it.
func watchExit(_ int, exited func() bool) <-chan struct{} { return pollExit(exited) }
