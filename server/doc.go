// Package memcached is a framework for servers that speak memcached's binary
// protocol.
//
// A Server accepts connections and serves each with a Handler, in the style
// of net/http: ServeMC is called once per request, in order, and answers by
// writing responses to the Conn (or nothing, for a quiet command that
// succeeded). ServeMux routes requests by opcode. Each connection is one
// goroutine that reads pipelined requests through a reused buffer and
// writes responses to a buffer that is flushed once every request already
// received has been handled, so a batch of quiet requests and a NOOP costs
// one write.
//
// The request passed to ServeMC, and every slice in it, is valid only
// during the call: a handler that keeps data (a store, say) copies it.
//
// The reference's API (RequestHandler, FuncHandler, HandleIO, HandleMessage,
// ReadPacket) keeps its meaning; Adapt serves a RequestHandler with a
// Server.
package memcached
