package memcached

import (
	"github.com/f8e615c8/gomemcached"
)

// A Handler answers requests. ServeMC writes zero or more responses to c;
// it must not keep req, or any slice of it, after returning.
type Handler interface {
	ServeMC(c *Conn, req *gomemcached.MCRequest)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(c *Conn, req *gomemcached.MCRequest)

// ServeMC calls f(c, req).
func (f HandlerFunc) ServeMC(c *Conn, req *gomemcached.MCRequest) { f(c, req) }

// ServeMux routes requests to handlers by opcode. Opcodes with no handler
// go to NotFound, or get UNKNOWN_COMMAND if it is nil. Register handlers
// before serving; a ServeMux is read-only while it serves.
type ServeMux struct {
	handlers [256]Handler
	// NotFound handles opcodes with no handler of their own.
	NotFound Handler
}

var _ Handler = (*ServeMux)(nil)

// NewServeMux returns an empty ServeMux.
func NewServeMux() *ServeMux { return &ServeMux{} }

// Handle registers h for the opcodes ops.
func (m *ServeMux) Handle(h Handler, ops ...gomemcached.CommandCode) {
	for _, op := range ops {
		m.handlers[op] = h
	}
}

// HandleFunc registers f for the opcodes ops.
func (m *ServeMux) HandleFunc(f func(c *Conn, req *gomemcached.MCRequest), ops ...gomemcached.CommandCode) {
	m.Handle(HandlerFunc(f), ops...)
}

// Handler returns the handler for op, nil if there is none.
func (m *ServeMux) Handler(op gomemcached.CommandCode) Handler { return m.handlers[op] }

// ServeMC dispatches req to the handler for its opcode.
func (m *ServeMux) ServeMC(c *Conn, req *gomemcached.MCRequest) {
	if h := m.handlers[req.Opcode]; h != nil {
		h.ServeMC(c, req)
		return
	}
	if m.NotFound != nil {
		m.NotFound.ServeMC(c, req)
		return
	}
	c.WriteStatus(req, gomemcached.UNKNOWN_COMMAND, unknownCommandBody)
}

var unknownCommandBody = []byte("Unknown command")

// FeatureSet is a set of HELLO feature codes, for handlers to record what a
// connection negotiated.
type FeatureSet struct{ bits [4]uint64 }

// Has reports whether f is in the set.
func (s *FeatureSet) Has(f uint16) bool { return f < 256 && s.bits[f/64]&(1<<(f%64)) != 0 }

// Add adds f (codes over 255 are ignored).
func (s *FeatureSet) Add(f uint16) {
	if f < 256 {
		s.bits[f/64] |= 1 << (f % 64)
	}
}

// Clear empties the set.
func (s *FeatureSet) Clear() { s.bits = [4]uint64{} }
