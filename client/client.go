package memcached

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// MemcachedConnection is the transport a Client runs on, as the reference
// defines it; a net.Conn is one. When it also has SetWriteDeadline, the
// client uses it for ClientOptions.WriteTimeout.
type MemcachedConnection interface {
	io.ReadWriteCloser

	SetReadDeadline(time.Time) error
	SetDeadline(time.Time) error
}

// Client is a connection to a memcached server, safe for concurrent use by
// many goroutines: their requests are pipelined on the one connection. The
// zero value is not usable; make one with Dial, NewClient, Connect or
// Wrap. See the package documentation for the concurrency, error and
// buffer-lifetime contracts.
type Client struct {
	c *conn
}

var _ ClientIface = (*Client)(nil)

// Dial connects to a memcached server at addr on network ("tcp", "unix")
// and returns a Client on the connection, prepared as opts asks: with
// opts.TLSConfig set it speaks TLS; with opts.Username set it is
// authenticated, then with opts.Features set HELLO negotiates them, then
// with opts.Bucket set the bucket is selected, all before Dial returns. If
// a step fails, the connection is closed and the error is a *SetupError.
// ctx bounds connecting and those steps, together with opts.DialTimeout.
func Dial(ctx context.Context, network, addr string, opts ClientOptions) (*Client, error) {
	timeout := opts.DialTimeout
	if timeout == 0 {
		defaultsMu.RLock()
		timeout = DefaultDialTimeout
		defaultsMu.RUnlock()
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	nc, err := dial(ctx, network, addr, &opts)
	if err != nil {
		var oe *net.OpError
		if !errors.As(err, &oe) {
			// A TLS handshake's error, or the context's, say not where.
			err = fmt.Errorf("memcached: dial %s %s: %w", network, addr, err)
		}
		return nil, err
	}
	c := NewClient(nc, opts)
	if err := c.c.setup(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// dial makes the transport for Dial, within ctx.
func dial(ctx context.Context, network, addr string, opts *ClientOptions) (net.Conn, error) {
	if opts.Dialer == nil {
		if opts.TLSConfig != nil {
			d := tls.Dialer{Config: opts.TLSConfig}
			return d.DialContext(ctx, network, addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	nc, err := opts.Dialer(ctx, network, addr)
	if err != nil || opts.TLSConfig == nil {
		return nc, err
	}
	cfg := opts.TLSConfig
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		cfg = cfg.Clone()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		} else {
			cfg.ServerName = addr
		}
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return tc, nil
}

// NewClient returns a Client on conn configured by opts. The client owns
// conn from now on: it reads it from its own goroutine and closes it in
// Close. NewClient sends nothing: the preparation Dial does
// (opts.Username, Features, Bucket) is left to the caller, with Auth,
// EnableFeatures and SelectBucket.
func NewClient(conn MemcachedConnection, opts ClientOptions) *Client {
	return &Client{c: newConn(conn, opts)}
}

// Connect connects to a memcached server, with DefaultDialTimeout.
func Connect(prot, dest string) (rv *Client, err error) {
	return Dial(context.Background(), prot, dest, ClientOptions{})
}

// ConnectTLS connects to a memcached server using TLS configured by config
// (nil means the defaults: the server's certificate is verified against the
// system's roots), with DefaultDialTimeout bounding the connection and the
// handshake.
func ConnectTLS(prot, dest string, config *tls.Config) (rv *Client, err error) {
	if config == nil {
		config = &tls.Config{}
	}
	return Dial(context.Background(), prot, dest, ClientOptions{TLSConfig: config})
}

// Wrap returns a Client on an existing transport, with the package
// defaults. It never fails; the error is there for compatibility.
func Wrap(conn MemcachedConnection) (rv *Client, err error) {
	return NewClient(conn, ClientOptions{}), nil
}

// Close closes the connection. Calls waiting on it fail with a ConnError
// matching ErrClosed; when Close returns, the client's goroutines have
// exited. After Hijack, Close leaves the hijacked connection open.
func (c *Client) Close() error { return c.c.close() }

// IsHealthy reports whether the client is usable: its connection is up,
// not hijacked, and its last call did not end with a status that
// gomemcached.IsFatal considers fatal. Pools use it to decide whether to
// reuse a client.
func (c Client) IsHealthy() bool {
	select {
	case <-c.c.done:
		return false
	default:
	}
	return !c.c.hijacked.Load() && !c.c.statusFatal.Load()
}

// alive reports whether the connection is up and not hijacked, whatever
// the status of the last call.
func (c *Client) alive() bool {
	select {
	case <-c.c.done:
		return false
	default:
		return !c.c.hijacked.Load()
	}
}

// Conn returns the client's transport. Reading or writing it directly
// competes with the client's own reader and writer; use Hijack to take it
// over.
func (c *Client) Conn() io.ReadWriteCloser { return c.c.rw }

// SetKeepAliveOptions turns TCP keep-alive on, with the given period, when
// the transport is a TCP connection (also under TLS).
func (c *Client) SetKeepAliveOptions(interval time.Duration) {
	var nc any = c.c.rw
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if tcp, ok := nc.(*net.TCPConn); ok {
		tcp.SetKeepAlive(true)
		tcp.SetKeepAlivePeriod(interval)
	}
}

// SetDeadline sets an absolute deadline for calls made afterwards (the
// writes of their requests and the waits for their responses), and for
// the writes of Transmit and TransmitResponse; the zero time removes it.
// Unlike the reference, it does not leave it on the socket, so a deadline
// that passes fails only the calls waiting on it.
func (c *Client) SetDeadline(t time.Time) {
	c.c.readDL.Store(unixNano(t))
	c.c.writeDL.Store(unixNano(t))
}

// SetReadDeadline sets an absolute deadline for calls made afterwards
// (as SetDeadline does), and for Receive; the zero time removes it.
func (c *Client) SetReadDeadline(t time.Time) {
	c.c.readDL.Store(unixNano(t))
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// GetConnName returns the name set by SetConnName or, if none, ConnName
// followed by a colon and a new random UUID.
func (c *Client) GetConnName() string { return c.c.connName() }

func (c *conn) connName() string {
	if p := c.name.Load(); p != nil && *p != "" {
		return *p
	}
	return connName() + ":" + newUUID()
}

// SetConnName sets the name GetConnName returns.
func (c *Client) SetConnName(name string) { c.c.name.Store(&name) }

// newUUID returns a random (version 4) UUID in its text form.
func newUUID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}

// SetReplica makes Get and GetBulk read from replicas (GET_REPLICA), a
// Couchbase command: memcached does not answer it.
func (c *Client) SetReplica(r bool) { c.c.replica.Store(r) }

// Replica reports whether Get and GetBulk read from replicas.
func (c *Client) Replica() bool { return c.c.replica.Load() }

// EnableDataPool makes Receive take the memory of each response from
// getter, which is asked for the body's length; MCResponse.Recycle hands
// it to doneCb. As in the reference it applies to Receive only, and can be
// set once.
func (c *Client) EnableDataPool(getter func(uint64) ([]byte, error), doneCb func([]byte)) error {
	if !c.c.dataPool.CompareAndSwap(nil, &dataPool{get: getter, done: doneCb}) {
		return errors.New("memcached: data pool already enabled")
	}
	return nil
}

// Pending returns the number of calls in flight: waiting for their
// responses, or abandoned by their callers (deadline, context) with their
// responses still to come.
func (c *Client) Pending() int { return int(c.c.pending.Load()) }

// call sends r for a compatibility method and returns the response in the
// reference's style: a response with a failed status is also the error.
func (c *conn) call(r *request) (*gomemcached.MCResponse, error) {
	return c.callCtx(nil, c.readDeadline(), r)
}

// callCtx is call bounded by ctx (nil for none) and hard (zero for none)
// besides ReadTimeout.
func (c *conn) callCtx(ctx context.Context, hard time.Time, r *request) (*gomemcached.MCResponse, error) {
	res, err := c.roundTrip(ctx, getWaiter(r.op()), r, hard)
	if err != nil {
		return nil, err
	}
	c.noteStatus(res)
	return res, statusError(res)
}

// noteStatus records whether res has a fatal status, for IsHealthy.
func (c *conn) noteStatus(res *gomemcached.MCResponse) {
	if res.Status != gomemcached.SUCCESS {
		c.statusFatal.Store(gomemcached.IsFatal(res))
	} else if c.statusFatal.Load() {
		c.statusFatal.Store(false)
	}
}
