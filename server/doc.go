// Package memcached is a framework for servers that speak memcached's binary
// protocol.
//
// A Server accepts connections and serves each with a Handler, in the style
// of net/http: ServeMC is called once per request, in order, and answers by
// writing responses to its ResponseWriter (or nothing, for a quiet command
// that succeeded). ServeMux routes requests by opcode. A connection reads
// pipelined requests through a reused buffer and queues the answers, which
// are sent once every request already received has been handled, so a
// batch of quiet requests and a NOOP costs one write.
//
// Every connection runs the same step, whatever serves it (a goroutine of
// its own, or, with Server.EventLoops, an epoll loop as in memcached) and
// whatever protocol it speaks: decode each complete request buffered, hand
// it to the handler, flush the answers. The protocol is chosen by the
// connection's first byte; a protocol is a decoder of requests and a
// ResponseWriter that encodes answers, so that a handler answers without
// knowing which. memcached's limits on that step are Server fields, off by
// default: ReqsPerEvent (-R: serve so many, answer, yield), ResponseLimit
// and ReadBufferLimit (read_buf_mem_limit's response objects and read
// buffers), IdleTimeout, MaxConns with ConnLimitMessage; Stats counts what
// each did.
//
// The request passed to ServeMC, and every slice in it, is valid only
// during the call: a handler that keeps data (a store, say) copies it.
// Per-connection state is the handler's: Server.ConnContext sets Conn.Data.
// Goroutines other than a connection's own (a change feed, a pushed
// cluster map) send to it with Conn.Send, through a queue bounded in bytes
// that the same batched writes drain.
//
// The reference's API (RequestHandler, FuncHandler, HandleIO, HandleMessage,
// ReadPacket) keeps its meaning; Adapt serves a RequestHandler with a
// Server.
package memcached
