package memcached

import (
	"github.com/f8e615c8/gomemcached"
)

// A Handler answers requests. ServeMC writes zero or more answers to w; it
// must not keep req, or any slice of it, after returning.
type Handler interface {
	ServeMC(w ResponseWriter, req *gomemcached.MCRequest)
}

// ResponseHandler is implemented by a Handler that takes responses from its
// clients: their replies to packets the server sent them (a DCP consumer's
// answers to the producer's NOOPs, a duplex client's replies). res and its
// slices are valid only during the call. Without it, a client that sends a
// response is closed, as for any packet that is not a request.
type ResponseHandler interface {
	ServeMCResponse(c *Conn, res *gomemcached.MCResponse)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(w ResponseWriter, req *gomemcached.MCRequest)

// ServeMC calls f(w, req).
func (f HandlerFunc) ServeMC(w ResponseWriter, req *gomemcached.MCRequest) { f(w, req) }

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
func (m *ServeMux) HandleFunc(f func(w ResponseWriter, req *gomemcached.MCRequest), ops ...gomemcached.CommandCode) {
	m.Handle(HandlerFunc(f), ops...)
}

// Handler returns the handler for op, nil if there is none.
func (m *ServeMux) Handler(op gomemcached.CommandCode) Handler { return m.handlers[op] }

// ServeMC dispatches req to the handler for its opcode.
func (m *ServeMux) ServeMC(w ResponseWriter, req *gomemcached.MCRequest) {
	if h := m.handlers[req.Opcode]; h != nil {
		h.ServeMC(w, req)
		return
	}
	if m.NotFound != nil {
		m.NotFound.ServeMC(w, req)
		return
	}
	w.WriteStatus(req, gomemcached.UNKNOWN_COMMAND, unknownCommandBody)
}

// unknownCommandBody is the value of the UNKNOWN_COMMAND answer a ServeMux
// gives an opcode it has no handler for, as memcached words it.
var unknownCommandBody = []byte("Unknown command")

// unknownCommands answers every request with UNKNOWN_COMMAND: the handler
// of a Server without one.
var unknownCommands = NewServeMux()
