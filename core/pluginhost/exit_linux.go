package pluginhost

import (
	"errors"

	"golang.org/x/sys/unix"
)

// watchExit returns a channel closed once the plugin process pid (a child
// that go-plugin waits for) has exited. It blocks one thread in waitid on
// a pidfd of the process, with WNOWAIT, so the process is left for
// go-plugin to reap: nothing polls, and a killed plugin is noticed at once.
func watchExit(pid int, exited func() bool) <-chan struct{} {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) { // gone and reaped already
			ch := make(chan struct{})
			close(ch)
			return ch
		}
		return pollExit(exited) // a kernel older than 5.3
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		defer unix.Close(fd)
		for {
			var info unix.Siginfo
			err := unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOWAIT, nil)
			switch {
			case err == nil, errors.Is(err, unix.ECHILD):
				return // exited; ECHILD: reaped already
			case errors.Is(err, unix.EINTR):
				continue
			default: // a kernel without P_PIDFD (older than 5.4)
				<-pollExit(exited)
				return
			}
		}
	}()
	return ch
}
