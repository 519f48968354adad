//go:build !unix

package mcbench

import "time"

// selfCPU returns 0: the process's CPU time is not known here.
func selfCPU() time.Duration { return 0 }
