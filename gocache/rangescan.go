package gocache

import memcached "github.com/f8e615c8/gomemcached/server"

// registerRangeScan registers the range scan commands.
func (h *handler) registerRangeScan(m *memcached.ServeMux) {}
