//go:build !linux

package memcached

import "testing"

// waitLoopsExit has nothing to wait for where there are no event loops.
func waitLoopsExit(t *testing.T, srv *Server) {}
