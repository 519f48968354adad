package memcached

import (
	"context"
	"errors"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// FeedOptions configure a DCP connection opened by NewFeed. The zero
// value of every field but Name is a usable default.
type FeedOptions struct {
	// Name is the DCP connection name (required).
	Name string
	// BufferSize is the flow-control window in bytes
	// (connection_buffer_size); 0 means 20 MiB.
	BufferSize uint32
	// NoopInterval is the producer's noop interval (enable_noop,
	// set_noop_interval); 0 means 20 s. The feed fails with ErrFeedDead
	// when nothing arrives for two intervals, or (on a net.Conn) when a
	// write does not get through in as long.
	NoopInterval time.Duration
	// Xattrs asks for extended attributes with values (DCP_OPEN flag).
	Xattrs bool
	// DeleteTimes asks for deletions with their delete time (DCP_OPEN
	// flag) and for expirations as their own opcode
	// (enable_expiry_opcode).
	DeleteTimes bool
	// NoValue asks for keys and metadata only.
	NoValue bool
	// Collections makes the feed collections-aware: keys carry their
	// collection id (decoded into Event.CollectionID) and system events
	// are sent.
	Collections bool
	// StreamIDs enables stream ids (enable_stream_id): several streams
	// per vbucket, told apart by StreamSpec.StreamID.
	StreamIDs bool
	// OSO enables out-of-order snapshots for backfills
	// (enable_out_of_order_snapshots, with seqno advanced).
	OSO bool
	// Priority is the connection's priority (set_priority): "low",
	// "medium" or "high"; "" sends none.
	Priority string
	// MarkerV22 asks for disk snapshot markers of version 2.2
	// (max_marker_version=2.2), which carry the producer's purge seqno
	// (Event.PurgeSeqno); it needs Collections, as kv_engine.
	MarkerV22 bool
}

// The defaults of FeedOptions.
const (
	DefaultFeedBufferSize   = 20 << 20
	DefaultFeedNoopInterval = 20 * time.Second
)

// Checkpoint is where a vbucket's stream resumes: the history it is on
// (the vbucket UUID) and how far it got (the last seqno received, inside
// the snapshot SnapStart..SnapEnd). The zero Checkpoint is the beginning.
type Checkpoint struct{ VBUUID, Seqno, SnapStart, SnapEnd uint64 }

// FailoverEntry is one entry of a vbucket's failover log: a history's
// UUID and the seqno at which it began.
type FailoverEntry struct{ VBUUID, Seqno uint64 }

// StreamSpec asks for one stream.
type StreamSpec struct {
	VBucket uint16
	// StreamID names the stream on a feed with FeedOptions.StreamIDs;
	// 0 otherwise.
	StreamID uint16
	// From is where the stream starts; the zero Checkpoint is the
	// beginning of the vbucket.
	From Checkpoint
	// End is the last seqno wanted; 0 means no end (math.MaxUint64).
	End uint64
	// Flags are DCP stream request flags, 0 normally.
	Flags uint32
	// Filter is a collections filter (JSON), "" for none.
	Filter string
}

// EventKind tells what an Event is.
type EventKind uint8

// The kinds of Event.
const (
	EventMutation      EventKind = iota + 1 // DCP_MUTATION
	EventDeletion                           // DCP_DELETION
	EventExpiration                         // DCP_EXPIRATION
	EventSnapshot                           // DCP_SNAPSHOT_MARKER
	EventSystem                             // DCP_SYSTEM_EVENT: a collection or scope change
	EventSeqnoAdvanced                      // DCP_SEQNO_ADVANCED
	EventOSOBegin                           // DCP_OSO_SNAPSHOT, start
	EventOSOEnd                             // DCP_OSO_SNAPSHOT, end
	EventStreamStart                        // a stream request accepted, with the failover log
	EventStreamEnd                          // DCP_STREAM_END, or a stream request refused
	EventRollback                           // a stream request answered ROLLBACK
)

var eventKindNames = [...]string{
	EventMutation: "mutation", EventDeletion: "deletion", EventExpiration: "expiration",
	EventSnapshot: "snapshot", EventSystem: "system", EventSeqnoAdvanced: "seqno-advanced",
	EventOSOBegin: "oso-begin", EventOSOEnd: "oso-end", EventStreamStart: "stream-start",
	EventStreamEnd: "stream-end", EventRollback: "rollback",
}

// String returns the kind's name.
func (k EventKind) String() string {
	if int(k) < len(eventKindNames) && eventKindNames[k] != "" {
		return eventKindNames[k]
	}
	return "unknown"
}

// The stream-end reasons of DCP_STREAM_END (Event.Reason).
const (
	StreamEndOK             = 0 // the end seqno was reached
	StreamEndClosed         = 1 // closed by the consumer
	StreamEndStateChanged   = 2 // the vbucket changed state
	StreamEndDisconnected   = 3 // the connection is closing
	StreamEndTooSlow        = 4 // the consumer fell too far behind
	StreamEndBackfillFail   = 5
	StreamEndRollback       = 6 // the vbucket rolled back
	StreamEndFilterEmpty    = 7 // every collection of the filter was dropped
	StreamEndLostPrivileges = 8
	StreamEndRefused        = 0xffffffff // the stream request was refused: see Event.Status and Err
)

// SystemEventInfo is a decoded DCP_SYSTEM_EVENT. Name aliases the
// packet, valid only until the handler returns.
type SystemEventInfo struct {
	Type         SystemEventType // CollectionCreate, CollectionDrop, ScopeCreate, ...
	Version      uint8           // the event's version (extras)
	ManifestUID  uint64
	ScopeID      uint32
	CollectionID uint32 // collection events
	Name         []byte // creations
	MaxTTL       uint32 // a collection created or changed with a maximum TTL
	HasMaxTTL    bool
}

// Event is one DCP message, or a stream's start, end or rollback. Its
// byte slices (Key, Value, System.Name) are valid only until the handler
// returns, and so is FailoverLog; the Event itself is reused: copy what
// you keep.
type Event struct {
	Kind              EventKind
	VBucket, StreamID uint16
	// Seqno is the document's seqno; for EventSeqnoAdvanced the seqno
	// reached, for EventRollback the seqno to roll back to.
	Seqno, RevSeqno, CAS uint64
	// Expiry of a deletion on a feed with DeleteTimes is its delete time.
	Flags, Expiry, LockTime uint32
	Datatype                uint8
	// CollectionID is the key's collection on a collections-aware feed;
	// the id's prefix is stripped from Key.
	CollectionID uint32
	Key, Value   []byte
	// SnapStart..SnapEnd is the snapshot an EventSnapshot announces, and
	// the current snapshot for the others.
	SnapStart, SnapEnd uint64
	SnapFlags          uint32
	// MaxVisibleSeqno and PurgeSeqno are an EventSnapshot's from a
	// version 2.x marker: the snapshot's last visible seqno (2.0 and
	// 2.2), and the producer's purge seqno (2.2, sent for disk
	// snapshots); 0 when the marker has none.
	MaxVisibleSeqno, PurgeSeqno uint64
	// Checkpoint is the stream's checkpoint after this event: save it to
	// resume from here.
	Checkpoint Checkpoint
	// FailoverLog is the vbucket's failover log, newest first
	// (EventStreamStart).
	FailoverLog []FailoverEntry
	// Reason is the producer's reason for an EventStreamEnd (a
	// StreamEnd* constant); 0 for EventRollback.
	Reason uint32
	// System is the decoded system event (EventSystem).
	System SystemEventInfo
	// Status and Err tell why a stream request was refused (an
	// EventStreamEnd with Reason StreamEndRefused); Err matches the
	// status's sentinel with errors.Is (gomemcached.ErrNotMyVBucket,
	// ...) and holds a *gomemcached.ServerError (errors.As). A stream
	// given up after too many rollbacks has Status ROLLBACK and an Err
	// that also matches ErrFeedTooManyRollbacks.
	Status gomemcached.Status
	Err    error
	// Size is the event's size on the wire, counted for flow control.
	Size int
}

// FeedHandler handles a feed's events, one at a time per feed, in wire
// order per stream. A non-nil error stops the feed's Run.
type FeedHandler interface {
	HandleEvent(ctx context.Context, ev *Event) error
}

// FeedHandlerFunc makes a function a FeedHandler.
type FeedHandlerFunc func(ctx context.Context, ev *Event) error

// HandleEvent calls f(ctx, ev).
func (f FeedHandlerFunc) HandleEvent(ctx context.Context, ev *Event) error { return f(ctx, ev) }

var _ FeedHandler = FeedHandlerFunc(nil)

// Errors of a Feed.
var (
	// ErrFeedDead is the error of a feed whose producer sent nothing for
	// two noop intervals, or read nothing the feed wrote for as long.
	ErrFeedDead = errors.New("memcached: feed: the producer went silent")
	// ErrFeedClosed is the error of calls on a closed feed.
	ErrFeedClosed = errors.New("memcached: feed: closed")
	// ErrFeedMalformed is matched (errors.Is) by the error of a feed that
	// received a packet it could not decode.
	ErrFeedMalformed = errors.New("memcached: feed: malformed packet")
	// ErrFeedStreamExists is the error of Add for a stream already
	// requested or open.
	ErrFeedStreamExists = errors.New("memcached: feed: stream already exists")
	// ErrFeedNoStream is the error of Remove for a stream not open.
	ErrFeedNoStream = errors.New("memcached: feed: no such stream")
	// ErrFeedRunning is the error of a second concurrent Run.
	ErrFeedRunning = errors.New("memcached: feed: already running")
	// ErrFeedTooManyRollbacks is matched (errors.Is) by the Err of the
	// EventStreamEnd of a stream given up after it was rolled back again
	// and again, which also holds the last answer's
	// *gomemcached.ServerError (gomemcached.ErrRollback).
	ErrFeedTooManyRollbacks = errors.New("memcached: feed: too many rollbacks")
)

// Feed is a DCP consumer: one connection over which any number of
// vbucket streams run concurrently, their events handed to one handler.
// Add, Remove and Close are safe for concurrent use with Run and each
// other; Run is called by one goroutine at a time.
type Feed struct {
	feedState
}
