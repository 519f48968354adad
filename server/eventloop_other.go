//go:build !linux

package memcached

import "net"

// loopSet is empty where there are no event loops.
type loopSet struct{}

// serveEventLoop never serves: event loops need Linux's epoll.
func (s *Server) serveEventLoop(l net.Listener) (bool, error) { return false, nil }

func (s *Server) shutdownLoops(now bool) {}
