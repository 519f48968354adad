//go:build unix

package mcbench

import (
	"syscall"
	"time"
)

// selfCPU returns the user plus system CPU time this process has used, 0
// if unknown.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
