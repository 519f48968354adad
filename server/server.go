package memcached

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or
// Close.
var ErrServerClosed = errors.New("memcached: server closed")

// Server serves the binary protocol on one or more listeners. Configure it
// through its fields before serving; the zero value serves with no handler
// (every request gets UNKNOWN_COMMAND), no connection limit and no
// timeouts.
type Server struct {
	// Addr is the address ListenAndServe listens on: "host:port" for TCP
	// (default "127.0.0.1:11211"), or a path starting with "/" or "unix:"
	// for a unix socket.
	Addr string
	// Handler answers requests; nil answers UNKNOWN_COMMAND.
	Handler Handler
	// MaxConns limits the connections served at once; 0 means no limit.
	// A connection over the limit is closed as soon as it is accepted.
	MaxConns int
	// IdleTimeout closes a connection that sends nothing for this long
	// while the server waits for its next request; 0 means never. It also
	// bounds a client that stalls in mid-packet. Each such close counts in
	// Stats.IdleKicks.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to a client: a connection whose
	// output has waited this long to be sent is closed. 0 means no bound.
	WriteTimeout time.Duration
	// ReadBufferSize is the initial read buffer of a connection; 0 means
	// DefaultReadBufferSize. Buffers grow for large packets. A pipelined
	// batch that fits in the buffer is answered with one write.
	ReadBufferSize int
	// MaxValueSize refuses packets with a larger value by closing the
	// connection; 0 means gomemcached.MaxBodyLen.
	MaxValueSize int
	// TextMaxValueSize is the longest data block a text-protocol storage
	// command (set, add, ..., ms) may announce, memcached's item size
	// (-I): a longer block is skipped, unread, and the command reaches
	// the handler with TextRequest.TooLarge. 0 means MaxValueSize (or
	// its default).
	TextMaxValueSize int
	// Logger receives connection events; nil means slog.Default().
	Logger *slog.Logger
	// ConnContext, if set, is called for each new connection before it is
	// served, to set up its state.
	ConnContext func(c *Conn)
	// TLSConfig configures ServeTLS. Versions before TLS 1.2 are refused
	// whatever it says.
	TLSConfig *tls.Config
	// HandshakeTimeout bounds a TLS handshake; 0 means 10 seconds.
	HandshakeTimeout time.Duration
	// SendQueueSize bounds, in bytes, what other goroutines may queue for
	// a connection with Conn.Send before they wait for the client to
	// read; 0 means DefaultSendQueueSize.
	SendQueueSize int
	// EventLoops, on Linux, serves TCP and unix listeners (not TLS) with
	// this many epoll loops instead of a goroutine per connection; -1 means
	// one per GOMAXPROCS, 0 (the default) none. Handlers then run on a
	// loop's goroutine, which serves many connections: they must not block
	// (see Conn.Pause). The loops read when a socket is readable, handle
	// every request received and answer each connection's batch with one
	// write, as memcached does. A listener closed by its owner, rather than
	// by Close or Shutdown, is noticed within 100ms: until then its address
	// stays bound and the loops may accept on it.
	EventLoops int
	// Protocol fixes the protocol every connection speaks, as memcached's
	// -B does; the zero value, ProtocolAuto, chooses by the first byte.
	Protocol Protocol
	// ReqsPerEvent is memcached's -R: a connection with more requests
	// buffered than this serves this many, sends their answers (one
	// write) and yields, letting the other connections of its event loop
	// (or, with a goroutine per connection, the other goroutines) run
	// before it goes on with the rest. Each yield counts in
	// Stats.ConnYields. 0 (the default) means no limit: a connection
	// serves all it has buffered before it answers.
	ReqsPerEvent int
	// ResponseLimit bounds the answers a connection may hold queued and
	// not yet sent, as memcached's response objects under
	// read_buf_mem_limit: every request served takes one until the output
	// is sent, and a handler that answers with many (a multi-key get)
	// takes more with ResponseWriter.Reserve. A request that finds none
	// left closes the connection, what was queued for it dropped; each
	// refusal counts in Stats.ResponseOOM. 0 (the default) means no limit.
	ResponseLimit int
	// ReadBufferLimit bounds the connections that may hold received input
	// not yet served at once (a request in progress, or one arriving), as
	// memcached's read buffers under read_buf_mem_limit: a connection
	// that receives input when that many others hold some is closed, and
	// counted in Stats.ReadBufOOM. 0 (the default) means no limit.
	ReadBufferLimit int
	// ConnLimitMessage, if set, is written to a connection refused over
	// MaxConns before it is closed, as memcached writes "ERROR Too many
	// open connections\r\n" (not to TLS connections, whose handshake
	// has not begun).
	ConnLimitMessage []byte

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*Conn]struct{}
	closing   atomic.Bool
	wg        sync.WaitGroup
	// loopServes counts the Serve calls whose listener the event loops
	// watch, until they have closed it.
	loopServes sync.WaitGroup

	current  atomic.Int64
	total    atomic.Uint64
	rejected atomic.Uint64
	bytesIn  atomic.Uint64 // of closed connections
	bytesOut atomic.Uint64
	writes   atomic.Uint64 // write calls on connections, counted as they start

	yields     atomic.Uint64 // ReqsPerEvent yields
	idleKicks  atomic.Uint64 // connections closed by IdleTimeout
	respOOM    atomic.Uint64 // requests over ResponseLimit
	readBufOOM atomic.Uint64 // connections over ReadBufferLimit
	readBufs   atomic.Int64  // connections holding input (ReadBufferLimit)

	loops     *loopSet // event loops, started by the first Serve that uses them
	loopsOnce sync.Once
	closed    chan struct{} // closed by Shutdown and Close
	closeOnce sync.Once

	// textProtocol, if set, serves connections whose first byte is not a
	// binary magic (decoder.go): the seam for the text protocol.
	textProtocol func(c *Conn, src io.Reader) protocol
}

// DefaultReadBufferSize is a connection's read buffer unless
// Server.ReadBufferSize says otherwise: 16 KiB, as memcached's.
const DefaultReadBufferSize = 16 << 10

// Stats are the server's connection counters.
type Stats struct {
	CurrConnections     int64
	TotalConnections    uint64
	RejectedConnections uint64
	BytesRead           uint64
	BytesWritten        uint64
	// ConnYields counts the times a connection yielded after
	// ReqsPerEvent requests (memcached's conn_yields).
	ConnYields uint64
	// IdleKicks counts the connections closed for IdleTimeout
	// (memcached's idle_kicks).
	IdleKicks uint64
	// ResponseOOM counts requests and reservations refused over
	// ResponseLimit (memcached's response_obj_oom).
	ResponseOOM uint64
	// ReadBufOOM counts connections closed over ReadBufferLimit
	// (memcached's read_buf_oom).
	ReadBufOOM uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	st := Stats{
		CurrConnections:     s.current.Load(),
		TotalConnections:    s.total.Load(),
		RejectedConnections: s.rejected.Load(),
		BytesRead:           s.bytesIn.Load(),
		BytesWritten:        s.bytesOut.Load(),
		ConnYields:          s.yields.Load(),
		IdleKicks:           s.idleKicks.Load(),
		ResponseOOM:         s.respOOM.Load(),
		ReadBufOOM:          s.readBufOOM.Load(),
	}
	s.mu.Lock()
	for c := range s.conns {
		st.BytesRead += c.bytesIn.Load()
		st.BytesWritten += c.bytesOut.Load()
	}
	s.mu.Unlock()
	return st
}

// ResetStats zeroes the counters of Stats but CurrConnections, as
// memcached's "stats reset" does.
func (s *Server) ResetStats() {
	s.total.Store(0)
	s.rejected.Store(0)
	s.yields.Store(0)
	s.idleKicks.Store(0)
	s.respOOM.Store(0)
	s.readBufOOM.Store(0)
	s.mu.Lock()
	s.bytesIn.Store(0)
	s.bytesOut.Store(0)
	for c := range s.conns {
		c.bytesIn.Store(0)
		c.bytesOut.Store(0)
	}
	s.mu.Unlock()
}

func (s *Server) sendQueueSize() int {
	if s.SendQueueSize > 0 {
		return s.SendQueueSize
	}
	return DefaultSendQueueSize
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) shuttingDown() bool { return s.closing.Load() }

// ListenAndServe listens on s.Addr and serves until Shutdown or Close.
func (s *Server) ListenAndServe() error {
	if s.shuttingDown() {
		return ErrServerClosed
	}
	l, err := Listen(s.Addr)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// ServeTLS serves TLS connections from l with s.TLSConfig. Handshakes run
// on each connection's own goroutine, so a client that stalls in its
// handshake holds up no one else; HandshakeTimeout ends it.
func (s *Server) ServeTLS(l net.Listener) error {
	if s.TLSConfig == nil {
		l.Close()
		return errors.New("memcached: ServeTLS without TLSConfig")
	}
	cfg := s.TLSConfig.Clone()
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return s.Serve(tls.NewListener(l, cfg))
}

// Listen listens on addr as Server.Addr describes it.
func Listen(addr string) (net.Listener, error) {
	switch {
	case addr == "":
		return net.Listen("tcp", "127.0.0.1:11211")
	case strings.HasPrefix(addr, "unix:"):
		return net.Listen("unix", strings.TrimPrefix(addr, "unix:"))
	case strings.HasPrefix(addr, "/"):
		return net.Listen("unix", addr)
	default:
		return net.Listen("tcp", addr)
	}
}

// Serve accepts connections on l and serves each in its own goroutine,
// until Shutdown or Close; it then returns ErrServerClosed. Serve may be
// called on several listeners at once. l is closed when Serve returns.
func (s *Server) Serve(l net.Listener) error {
	if handled, err := s.serveEventLoop(l); handled {
		return err
	}
	if !s.track(l) {
		l.Close()
		return ErrServerClosed
	}
	defer s.untrack(l)
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.shuttingDown() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logger().Warn("accept failed; retrying", "error", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		t := s.newStream(nc)
		if err := s.register(t.c); err != nil {
			if err == errConnLimit {
				s.refuseStream(nc)
			}
			nc.Close()
			if err == ErrServerClosed {
				return err
			}
			continue // over MaxConns, or ConnContext panicked
		}
		go t.serve()
	}
}

// refuseStream writes ConnLimitMessage to a connection refused over
// MaxConns. A new socket's buffer takes it at once; the deadline only
// bounds the accept loop's wait should it not.
func (s *Server) refuseStream(nc net.Conn) {
	if len(s.ConnLimitMessage) == 0 {
		return
	}
	if _, isTLS := nc.(*tls.Conn); isTLS {
		return
	}
	nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	nc.Write(s.ConnLimitMessage)
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// errConnLimit refuses a connection over Server.MaxConns.
var errConnLimit = errors.New("memcached: connection limit reached")

// register registers a new connection. It fails with ErrServerClosed when
// the server is closing, errConnLimit when it serves MaxConns connections
// already, or the error of a ConnContext that panicked; the caller then
// closes the socket.
func (s *Server) register(c *Conn) error {
	s.total.Add(1)
	s.mu.Lock()
	switch {
	case s.shuttingDown():
		s.mu.Unlock()
		return ErrServerClosed
	case s.MaxConns > 0 && s.current.Load() >= int64(s.MaxConns):
		s.mu.Unlock()
		s.rejected.Add(1)
		c.log.Warn("connection limit reached; closing new connection", "max_conns", s.MaxConns)
		return errConnLimit
	}
	if s.conns == nil {
		s.conns = make(map[*Conn]struct{})
	}
	s.conns[c] = struct{}{}
	s.current.Add(1)
	s.wg.Add(1)
	s.mu.Unlock()
	if s.ConnContext != nil {
		if err := s.connContext(c); err != nil {
			c.log.Error("connection closed: ConnContext panicked", "reason", err)
			s.forget(c)
			return err
		}
	}
	return nil
}

// connContext runs s.ConnContext on c; a panic becomes an error.
func (s *Server) connContext(c *Conn) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("ConnContext panic: %v", p)
		}
	}()
	s.ConnContext(c)
	return nil
}

// forget unregisters a closed connection.
func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.bytesIn.Add(c.bytesIn.Load())
	s.bytesOut.Add(c.bytesOut.Load())
	s.mu.Unlock()
	c.releaseReadBuffer()
	c.end()
	s.current.Add(-1)
	s.wg.Done()
}

func (s *Server) track(l net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shuttingDown() {
		return false
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[l] = struct{}{}
	return true
}

func (s *Server) untrack(l net.Listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
	l.Close()
}

// Shutdown stops accepting connections, lets each connection finish the
// requests it has already received, sends their responses and closes it.
// It returns when every connection is closed, or with ctx's error when ctx
// ends first, in which case the remaining connections are closed at once.
// Either way the listeners are closed, their addresses free, before it
// returns.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.closeOnce.Do(func() { close(s.closedCh()) })
	s.mu.Lock()
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		// Wake a connection blocked in a read; it then sees the
		// shutdown and ends.
		c.t.interrupt()
	}
	s.mu.Unlock()
	s.loopServes.Wait()
	s.shutdownLoops(false)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeConns()
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once, and returns
// when they are closed.
func (s *Server) Close() error {
	s.closing.Store(true)
	s.closeOnce.Do(func() { close(s.closedCh()) })
	s.mu.Lock()
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	s.loopServes.Wait()
	s.closeConns()
	s.wg.Wait()
	return nil
}

func (s *Server) closeConns() {
	s.mu.Lock()
	for c := range s.conns {
		c.t.abort()
	}
	s.mu.Unlock()
	s.shutdownLoops(true)
}

// closedCh returns the channel Shutdown and Close close.
func (s *Server) closedCh() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed == nil {
		s.closed = make(chan struct{})
	}
	return s.closed
}
