package gocache

import (
	memcached "github.com/f8e615c8/gomemcached/server"
)

// serveMeta serves the meta protocol's commands: mg, ms, md, ma, mn, me.
func (h *handler) serveMeta(w memcached.ResponseWriter, req *memcached.TextRequest) {
	w.Write([]byte("ERROR\r\n"))
}
