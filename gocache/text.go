package gocache

import (
	memcached "github.com/f8e615c8/gomemcached/server"
)

// ServeText serves memcached's text and meta protocols (a connection whose
// first byte is not a binary magic): meta commands (two letters, starting
// with 'm') in metatext.go, the rest in this file.
func (h *handler) ServeText(w memcached.ResponseWriter, req *memcached.TextRequest) {
	if len(req.Fields) > 0 && len(req.Fields[0]) == 2 && req.Fields[0][0] == 'm' {
		h.serveMeta(w, req)
		return
	}
	h.serveTextCommand(w, req)
}

// serveTextCommand serves the text protocol's commands.
func (h *handler) serveTextCommand(w memcached.ResponseWriter, req *memcached.TextRequest) {
	w.Write([]byte("ERROR\r\n"))
}
