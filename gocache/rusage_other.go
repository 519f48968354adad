//go:build !unix

package gocache

import "time"

// rusage is not available here.
func rusage() (user, system time.Duration) { return 0, 0 }
