// Package mcdebug counts the packets of memcached clients and publishes the
// counts with expvar, in the structure of the reference's package
// (github.com/couchbase/gomemcached/debug): an expvar map "mc" holding
// "xmit" (requests sent), "recv" (responses received) and "tap" (TAP
// packets received), each a JSON object of "bytes", "ops" (successes) and
// "errs", counted per opcode name with a "total".
//
// Unlike the reference, importing the package changes nothing: a Stats is
// an observer that a client is given in its options,
//
//	c, err := memcached.Dial(ctx, "tcp", addr, memcached.ClientOptions{Observer: mcdebug.Default()})
//
// and Default publishes its Stats as "mc" the first time it is called.
// InstallHooks sets the client package's TransmitHook and ReceiveHook
// instead, for code written against the reference's hooks.
package mcdebug

import (
	"encoding/json"
	"errors"
	"expvar"
	"sync"
	"sync/atomic"

	"github.com/f8e615c8/gomemcached"
	memcached "github.com/f8e615c8/gomemcached/client"
)

// unknownOp is the index of packets whose opcode is unknown (too short to
// tell, or a failed read).
const unknownOp = 256

// Ops counts packets per opcode: bytes moved, successes and errors. It is an
// expvar.Var; its String is the reference's JSON. It is safe for concurrent
// use; its zero value is ready.
type Ops struct {
	moved, success, errored [unknownOp + 1]atomic.Uint64
}

var _ expvar.Var = (*Ops)(nil)

// Count records a packet of opcode op (0 to 255, or any other value for
// unknown) of n bytes, a success if err is nil. As in the reference, a
// packet of fewer than 2 bytes counts as unknown.
func (m *Ops) Count(op int, n int, err error) {
	if op < 0 || op > 255 || n < 2 {
		op = unknownOp
	}
	if err == nil {
		m.success[op].Add(1)
	} else {
		m.errored[op].Add(1)
	}
	m.moved[op].Add(uint64(max(n, 0)))
}

// Snapshot returns the counts as the reference publishes them: maps
// "bytes", "ops" and "errs" from opcode names (and "unknown") to counts,
// each with a "total", leaving out zero counts.
func (m *Ops) Snapshot() map[string]map[string]uint64 {
	bytes := map[string]uint64{}
	ops := map[string]uint64{}
	errs := map[string]uint64{}
	for i := range m.moved {
		add(bytes, i, m.moved[i].Load())
		add(ops, i, m.success[i].Load())
		add(errs, i, m.errored[i].Load())
	}
	return map[string]map[string]uint64{"bytes": bytes, "ops": ops, "errs": errs}
}

func add(m map[string]uint64, i int, n uint64) {
	if n == 0 {
		return
	}
	k := "unknown"
	if i < unknownOp {
		k = gomemcached.CommandCode(i).String()
	}
	m[k] = n
	m["total"] += n
}

// String returns the counts as JSON.
func (m *Ops) String() string {
	b, err := json.Marshal(m.Snapshot())
	if err != nil {
		return "{}"
	}
	return string(b)
}

// Stats are the counters of the clients it observes. It implements
// memcached.Observer and is safe for concurrent use; its zero value is
// ready.
type Stats struct {
	Sent     Ops // requests written ("xmit")
	Received Ops // responses read ("recv")
	Tap      Ops // TAP packets read ("tap"; counted by the TAP feed, to come)
}

var _ memcached.Observer = (*Stats)(nil)

// PacketSent counts a packet sent.
func (s *Stats) PacketSent(op gomemcached.CommandCode, n int, err error) {
	s.Sent.Count(int(op), n, err)
}

// PacketReceived counts a packet received, or a failed read when res is
// nil.
func (s *Stats) PacketReceived(res *gomemcached.MCResponse, n int, err error) {
	op := unknownOp
	if res != nil {
		op = int(res.Opcode)
	}
	s.Received.Count(op, n, err)
}

// ErrNameTaken is returned by Publish for a name expvar already has.
var ErrNameTaken = errors.New("mcdebug: expvar name already published")

// Publish publishes s with expvar under name, as a map of "xmit", "recv"
// and "tap" (the reference publishes it as "mc"). expvar names are global
// and permanent, so each name can be published once.
func (s *Stats) Publish(name string) error {
	publishMu.Lock()
	defer publishMu.Unlock()
	if expvar.Get(name) != nil {
		return ErrNameTaken
	}
	m := expvar.NewMap(name)
	m.Set("xmit", &s.Sent)
	m.Set("recv", &s.Received)
	m.Set("tap", &s.Tap)
	return nil
}

// InstallHooks points memcached.TransmitHook and memcached.ReceiveHook at
// s, so that clients created afterwards are counted without an Observer
// option. Call it before creating clients (the client package reads the
// hooks when a client is created).
func (s *Stats) InstallHooks() {
	memcached.TransmitHook = func(req *gomemcached.MCRequest, n int, err error) {
		op := unknownOp
		if req != nil {
			op = int(req.Opcode)
		}
		s.Sent.Count(op, n, err)
	}
	memcached.ReceiveHook = func(res *gomemcached.MCResponse, n int, err error) {
		s.PacketReceived(res, n, err)
	}
}

var (
	publishMu    sync.Mutex
	defaultOnce  sync.Once
	defaultStats *Stats
)

// Default returns the Stats published as expvar "mc", creating and
// publishing it on the first call. If "mc" is already taken by someone
// else, the Stats is returned unpublished.
func Default() *Stats {
	defaultOnce.Do(func() {
		defaultStats = new(Stats)
		defaultStats.Publish("mc")
	})
	return defaultStats
}
