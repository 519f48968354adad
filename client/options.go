package memcached

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// ClientOptions configures a Client. The zero value is usable: every field
// has a default, documented with it.
type ClientOptions struct {
	// DialTimeout bounds Dial: connecting, the TLS handshake and the
	// preparation of the connection (authentication, HELLO, bucket). Zero
	// means DefaultDialTimeout; a negative value means no timeout.
	DialTimeout time.Duration
	// TLSConfig, when set, makes Dial speak TLS.
	TLSConfig *tls.Config
	// Dialer, when set, replaces net.Dialer in Dial; TLS is layered on
	// what it returns when TLSConfig is set.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

	// The preparation of each connection Dial makes (so also of each
	// connection of a Pool), in this order, before the connection is
	// returned or lent; a failed step closes it, and Dial returns a
	// *SetupError. NewClient and Wrap do none of it.

	// Username, when set, makes Dial authenticate with Password, using
	// Mechanism: MechanismPlain, MechanismScramSHA1, MechanismScramSHA256
	// or MechanismScramSHA512, or when empty Auth's choice (the strongest
	// SCRAM the server offers, else PLAIN). Name a SCRAM mechanism to
	// never send the password itself.
	Username, Password, Mechanism string
	// Features, when not empty, are asked for with HELLO (see
	// EnableFeatures). A server that does not know HELLO (memcached)
	// leaves them all off, which is not an error: check IsFeatureEnabled.
	Features Features
	// Bucket, when set, is selected (SELECT_BUCKET). Dial then also asks
	// for FeatureXerror: without it, Couchbase Server and gocache close a
	// connection rather than answer NO_BUCKET or EACCESS, and Dial would
	// report a closed connection instead of the refusal. With it, Couchbase
	// Server answers with its newer statuses where it would otherwise map
	// them to older ones: LOCKED for a locked item rather than KEY_EEXISTS
	// (which CASNext retries), for example.
	Bucket string
	// Name is the connection's name (SetConnName), the key of HELLO.
	// Empty means GetConnName's default.
	Name string

	// ReadTimeout bounds each call: the write of its request and the wait
	// for its response (for bulk and stats calls, the wait for each next
	// response). Zero means the read timeout given to SetDefaultTimeouts,
	// which is none unless set.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write to the socket; a write cut short
	// ends the connection, since a partial packet leaves the stream out
	// of step. Zero means DefaultWriteTimeout (none unless set).
	WriteTimeout time.Duration
	// StuckTimeout is the watchdog's limit: a connection that receives
	// nothing for this long while requests are outstanding is closed and
	// its calls fail with a ConnError caused by ErrStuck. Zero means
	// DefaultStuckTimeout; a negative value disables the watchdog.
	StuckTimeout time.Duration

	// MaxValue bounds the value of a response the client accepts, in
	// bytes; a larger one ends the connection with
	// gomemcached.ErrBodyTooLarge. Zero means gomemcached.MaxBodyLen.
	MaxValue int
	// ReceiveQueue is the number of responses that match no call of the
	// client (answers to Transmit) held for Receive. When it is full, the
	// connection stops reading until Receive is called. Zero means 256.
	ReceiveQueue int
	// ReceiveQueueBytes bounds the same queue in bytes (headers and
	// bodies), likewise; a response larger than the bound still goes into
	// an empty queue. Zero means 64 MiB.
	ReceiveQueueBytes int

	// Observer, when set, is told about every packet sent and received.
	// Package debug/mcdebug provides one that publishes expvar counters.
	Observer Observer
}

// DefaultStuckTimeout is the watchdog limit used when
// ClientOptions.StuckTimeout is zero.
const DefaultStuckTimeout = 30 * time.Second

// defaultReceiveQueue is the ReceiveQueue used when the option is zero.
const defaultReceiveQueue = 256

// defaultReceiveQueueBytes is the ReceiveQueueBytes used when the option
// is zero.
const defaultReceiveQueueBytes = 64 << 20

// The reference's package-level configuration. These variables are kept for
// compatibility; they are read when a client is created (DefaultDialTimeout
// when dialling), and the Set functions below change them under a lock, so
// that changing them while clients are created is safe when done through
// those functions. New code should use ClientOptions.
var (
	// ConnName is the name GetConnName builds on when a client has none.
	ConnName = "GoMemcached"
	// DefaultDialTimeout bounds Connect and ConnectTLS. Zero means no
	// timeout. (The reference's default is no timeout; ours is 10
	// seconds, since a dial that never returns leaks its caller.)
	DefaultDialTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds each socket write of clients created
	// later that do not set ClientOptions.WriteTimeout. Zero means none.
	DefaultWriteTimeout = time.Duration(0)
)

// Health values, as the reference exports them.
var (
	UnHealthy uint32 = 0
	Healthy   uint32 = 1
)

var (
	defaultsMu         sync.RWMutex
	defaultReadTimeout time.Duration
)

// SetConnectionName sets ConnName.
func SetConnectionName(name string) {
	defaultsMu.Lock()
	ConnName = name
	defaultsMu.Unlock()
}

// SetDefaultTimeouts sets DefaultDialTimeout and DefaultWriteTimeout, and
// the read timeout that clients created later apply to each call (the
// reference ignores read; see ClientOptions.ReadTimeout).
func SetDefaultTimeouts(dial, read, write time.Duration) {
	defaultsMu.Lock()
	DefaultDialTimeout = dial
	DefaultWriteTimeout = write
	defaultReadTimeout = read
	defaultsMu.Unlock()
}

// SetDefaultDialTimeout sets DefaultDialTimeout.
func SetDefaultDialTimeout(dial time.Duration) {
	defaultsMu.Lock()
	DefaultDialTimeout = dial
	defaultsMu.Unlock()
}

// resolve returns o with its zero fields replaced by the defaults.
func (o ClientOptions) resolve() ClientOptions {
	defaultsMu.RLock()
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = defaultReadTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	defaultsMu.RUnlock()
	if o.StuckTimeout == 0 {
		o.StuckTimeout = DefaultStuckTimeout
	}
	if o.ReceiveQueue <= 0 {
		o.ReceiveQueue = defaultReceiveQueue
	}
	if o.ReceiveQueueBytes <= 0 {
		o.ReceiveQueueBytes = defaultReceiveQueueBytes
	}
	return o
}

// connName returns ConnName, read under the lock SetConnectionName takes.
func connName() string {
	defaultsMu.RLock()
	defer defaultsMu.RUnlock()
	return ConnName
}
