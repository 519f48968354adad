// Package memcached is a client for the memcached binary protocol, a
// drop-in replacement for the client package of
// github.com/couchbase/gomemcached (package memcached, v0.3.x): the same
// exported names, signatures and meanings, with the packets of
// github.com/f8e615c8/gomemcached.
//
// # Main types
//
// A Client is one connection to a server. Make it with Dial (options in a
// ClientOptions), NewClient (on a transport you have), or the reference's
// Connect, ConnectTLS and Wrap. Do(ctx, req) is the context-aware core;
// the reference's methods (Get, Set, Add, Append, Del, Incr, CAS, GetBulk,
// Stats, Send, Transmit, Receive, Hijack, ...) sit on it. A Pool spreads
// calls over a few shared connections and lends connections for exclusive
// use. ClientIface is the reference's interface of a Client. StartTapFeed
// is the reference's TAP consumer (tap_feed.go).
//
// A Feed (NewFeed) is a DCP consumer on one connection: streams of any
// number of vbuckets (Add, StreamSpec, resuming from a Checkpoint), their
// events handed to a FeedHandler one at a time by Run, with flow control,
// noops and rollback handled. UprFeed is the reference's channel-based DCP
// API.
//
// # Concurrency
//
// A Client is safe for concurrent use by any number of goroutines, and
// pipelines their calls on its one connection: each request gets an
// opaque, the responses are routed to the calls by opaque, and the
// requests of concurrent calls are written together, flushed when the
// queue empties. A reader goroutine reads while calls are concurrent; a
// lone call (nobody else in flight, no cancellable context) writes its
// request and reads its response itself, with no goroutine switch. Every
// call is answered exactly once: by its response, by its context or
// deadline, or by the failure of the connection, which fails every waiting
// call at once with a *ConnError (errors.Is(err, ErrClosed)).
//
// A call whose context ends or whose deadline passes returns at once,
// also while its request is still being written; the connection stays in
// step, since the writer goroutine finishes the write and the response is
// discarded when it arrives (a quiet or bulk call's responses too, up to
// its NOOP fence). A call whose context has ended, or whose deadline has
// passed, before it starts sends nothing.
// Deadlines apply to calls, not to the socket: ClientOptions.ReadTimeout
// (or the read timeout of SetDefaultTimeouts) bounds each call's wait,
// SetDeadline and SetReadDeadline set an absolute one, and a timed-out call
// returns a *TimeoutError matching os.ErrDeadlineExceeded and
// context.DeadlineExceeded without harming the calls around it. The
// connection itself is declared dead only when it is truly stuck: when
// nothing has arrived for ClientOptions.StuckTimeout (30 seconds by
// default) while calls are waiting, or when a write fails or exceeds
// WriteTimeout, since a partial packet leaves the stream out of step.
//
// While no call is in flight the connection is not read, as with the
// reference: a server that closes an idle connection is noticed by the
// next call (Pool checks idle connections before lending them).
//
// # Buffers
//
// Responses returned to callers own their memory (one allocation for all
// their sections), so they stay valid indefinitely; requests are copied
// into the connection's write buffer, so their slices may be reused as
// soon as the call returns. A Get allocates the response and its value,
// and nothing else; a Set, the response.
//
// # Authentication, HELLO and buckets
//
// ClientOptions (and PoolOptions.Client) can carry credentials, HELLO
// features and a bucket: Dial then authenticates the connection, negotiates
// the features and selects the bucket before returning it, and a Pool lends
// or shares only connections so prepared; a connection whose preparation
// fails is closed, and the error is a *SetupError. The reference's methods
// do the same steps one at a time on a client: Auth (the strongest SCRAM
// the server offers, else PLAIN), AuthScramSha, AuthPlain, AuthList,
// EnableFeatures, EnableMutationToken, SelectBucket. SCRAM checks the
// server's signature, and a server that fails to prove it knows the
// password gets its connection closed (ErrServerSignature). Dial with
// ClientOptions.TLSConfig, or ConnectTLS, speaks TLS. GetErrorMap fetches
// a Couchbase server's error map.
//
// # Couchbase extensions
//
// Besides the reference's methods for them (GetMeta, GetRandomDoc,
// Observe, ObserveSeq, GetAllVbSeqnos, GetCollectionsManifest,
// CollectionsGetCID, GetSubdoc, SetSubdoc, the range scans), which return
// raw responses, the package has context-aware methods that return
// decoded values: Meta (GET_META version 2), Manifest and CollectionID,
// Lookup and Mutate with the sub-document spec builders LookupIn and
// MutateIn, and CreateScan, ContinueScan and CancelScan; and Decode
// functions (DecodeMeta, DecodeObserve, DecodeVbSeqnos, DecodeManifest,
// DecodeLookupResult, DecodeScanKeys, ...) for responses obtained with
// Send or Do. A response whose value does not have its command's layout
// gives an error matching ErrBadResponse; the connection stays usable.
//
// # Errors
//
// The reference's methods return a response with a failed status as the
// error too; Do returns a *gomemcached.ServerError instead. Either way
// errors.Is matches gomemcached.ErrKeyNotFound, ErrKeyExists,
// ErrValueTooLarge, ErrNotStored, ErrDeltaBadValue and the other status
// sentinels, and gomemcached.IsNotFound works.
//
// # The raw API
//
// Transmit writes a request with its own opaque and registers nothing; the
// responses whose opaque no call of the client waits for go to a queue
// that Receive reads, bounded in count and bytes (ClientOptions.
// ReceiveQueue, ReceiveQueueBytes); until Transmit or Receive is first
// used, such responses are dropped. The client's own opaques all have the
// high bit (0x80000000) set. Transmit may use such opaques too, as the
// reference's DCP code does (0xDEADBEEF, 0xBEAF0001): it reserves each one
// it writes, so that the client's calls stop using it, and refuses one a
// call is waiting for (ErrOpaqueInUse). Hijack stops the reader and hands
// the connection over, the bytes the reader had read but not delivered
// coming first out of it.
//
// # Debugging
//
// ClientOptions.Observer sees every packet; package debug/mcdebug provides
// one that publishes the reference's expvar counters. The reference's
// TransmitHook and ReceiveHook still work, read when a client is created.
package memcached
