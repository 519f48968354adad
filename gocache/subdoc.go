package gocache

import memcached "github.com/f8e615c8/gomemcached/server"

// registerSubdoc registers the sub-document commands.
func (h *handler) registerSubdoc(m *memcached.ServeMux) {}
