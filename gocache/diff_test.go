package gocache_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

// The differential test replays one script of binary requests against
// memcached 1.6 and against gocache and requires the same answers: opcode,
// status, opaque, extras, key, value, whether a CAS is set, and whether the
// server closed the connection. CAS values themselves differ between
// servers; steps that need one take it from an earlier answer of the same
// server.
//
// Left out of the script, and tested on gocache alone below, are the cases
// where memcached 1.6 misbehaves or where gocache does more:
// HELLO, SELECT_BUCKET and GET_ERROR_MAP (memcached 1.6 knows none of
// them), VERBOSITY (memcached treats it as unknown and leaves it unanswered when it
// has extras), unknown opcodes with a key or extras (never answered by
// memcached), TOUCH with a stale CAS (memcached ignores the CAS) and STAT
// values (they describe each server).

const fenceOpaque = 0xfe0fe0

// step is one or more requests sent together, followed by a NOOP fence so
// that quiet commands' silence is observed.
type step struct {
	name    string
	reqs    []gm.MCRequest
	casFrom int           // if > 0, reqs[0].Cas is the CAS of step casFrom's first answer
	sleep   time.Duration // wait before sending
	noBody  bool          // compare everything but the value (VERSION)
}

// answer is what a server sent back.
type answer struct {
	opcode gm.CommandCode
	status gm.Status
	opaque uint32
	hasCAS bool
	cas    uint64
	extras []byte
	key    []byte
	body   []byte
}

func (a answer) String() string {
	return fmt.Sprintf("%v %v opaque=%#x cas=%v extras=%x key=%q body=%q",
		a.opcode, a.status, a.opaque, a.hasCAS, a.extras, a.key, a.body)
}

type transcript struct {
	answers []answer
	closed  bool
}

func u32(v uint32) []byte          { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte          { return binary.BigEndian.AppendUint64(nil, v) }
func ext(flags, exp uint32) []byte { return append(u32(flags), u32(exp)...) }
func deltaExt(delta, initial uint64, exp uint32) []byte {
	return append(append(u64(delta), u64(initial)...), u32(exp)...)
}

func req(op gm.CommandCode, key string, extras []byte, body string) gm.MCRequest {
	r := gm.MCRequest{Opcode: op, Extras: extras}
	if key != "" {
		r.Key = []byte(key)
	}
	if body != "" {
		r.Body = []byte(body)
	}
	return r
}

func one(name string, r gm.MCRequest) step { return step{name: name, reqs: []gm.MCRequest{r}} }

// script returns the steps: hand-written edge cases first, then a
// deterministic random mix over a few keys.
func script() []step {
	s := []step{
		one("flush", req(gm.FLUSH, "", nil, "")),
		one("get miss", req(gm.GET, "a", nil, "")),
		one("getk miss", req(gm.GETK, "a", nil, "")),
		one("set", req(gm.SET, "a", ext(7, 0), "10")),
		one("get", req(gm.GET, "a", nil, "")),
		one("getk", req(gm.GETK, "a", nil, "")),
		one("add existing", req(gm.ADD, "a", ext(0, 0), "x")),
		one("replace missing", req(gm.REPLACE, "b", ext(0, 0), "x")),
		one("set with a wrong cas", func() gm.MCRequest { r := req(gm.SET, "a", ext(0, 0), "x"); r.Cas = 0xdead00beef; return r }()),
		one("set with a cas on a missing key", func() gm.MCRequest { r := req(gm.SET, "zz", ext(0, 0), "x"); r.Cas = 0xdead00beef; return r }()),
		one("decr pads", req(gm.DECREMENT, "a", deltaExt(1, 0, 0), "")),
		one("get padded", req(gm.GET, "a", nil, "")),
		one("incr no-create", req(gm.INCREMENT, "c", deltaExt(1, 5, 0xffffffff), "")),
		one("incr create", req(gm.INCREMENT, "c", deltaExt(1, 5, 0), "")),
		one("get created", req(gm.GET, "c", nil, "")),
		one("set non-numeric", req(gm.SET, "n", ext(0, 0), "abc")),
		one("incr non-numeric", req(gm.INCREMENT, "n", deltaExt(1, 5, 0), "")),
		one("append missing", req(gm.APPEND, "m", nil, "x")),
		one("append", req(gm.APPEND, "a", nil, "x")),
		one("prepend", req(gm.PREPEND, "a", nil, "y")),
		one("get appended", req(gm.GET, "a", nil, "")),
		one("delete missing", req(gm.DELETE, "m", nil, "")),
		one("delete with a wrong cas", func() gm.MCRequest { r := req(gm.DELETE, "a", nil, ""); r.Cas = 0xdead00beef; return r }()),
		one("touch", req(gm.TOUCH, "a", u32(100), "")),
		one("touch missing", req(gm.TOUCH, "m", u32(100), "")),
		one("gat", req(gm.GAT, "a", u32(100), "")),
		one("gatk", req(gm.GATK, "a", u32(100), "")),
		one("gat missing", req(gm.GAT, "m", u32(100), "")),
		one("gatk missing", req(gm.GATK, "m", u32(100), "")),
		one("noop", req(gm.NOOP, "", nil, "")),
		{name: "version", reqs: []gm.MCRequest{req(gm.VERSION, "", nil, "")}, noBody: true},
		one("unknown opcode", req(0xe0, "", nil, "")),
		one("sasl list mechs without sasl", req(gm.SASL_LIST_MECHS, "", nil, "")),
		one("set too large", req(gm.SET, "big", ext(0, 0), strings.Repeat("x", 2<<20))),
		one("set just small enough", req(gm.SET, "big", ext(0, 0), strings.Repeat("x", 1<<20-200))),
		one("get big", req(gm.GET, "big", nil, "")),
		one("append past the item size limit", req(gm.APPEND, "big", nil, strings.Repeat("y", 400))),
		one("append of a value over the limit", req(gm.APPEND, "big", nil, strings.Repeat("y", 2<<20))),
		one("prepend of a value over the limit to a missing key", req(gm.PREPEND, "nobig", nil, strings.Repeat("y", 2<<20))),
		one("get big after failed append", req(gm.GET, "big", nil, "")),
		one("set too large drops the old value", req(gm.SET, "big", ext(0, 0), strings.Repeat("x", 1<<20))),
		one("get big after failed set", req(gm.GET, "big", nil, "")),
		one("key of 250 bytes", req(gm.GET, strings.Repeat("k", 250), nil, "")),
		one("stat unknown group", req(gm.STAT, "bogus", nil, "")),
		one("stat reset", req(gm.STAT, "reset", nil, "")),
		one("set before flush with delay 1", req(gm.SET, "fl", ext(0, 0), "v")),
		one("flush with delay", req(gm.FLUSH, "", u32(1), "")),
		one("delay 1 flushes at once", req(gm.GET, "fl", nil, "")),
		one("flushq", req(gm.FLUSHQ, "", nil, "")),
		one("get after flush", req(gm.GET, "a", nil, "")),
	}

	// Counters, with memcached's parsing and padding.
	for i, v := range []string{" 5", "5abc", "-1", "-0", "", "18446744073709551615", "18446744073709551616", "+7",
		"3\r\n", "12 34", "00012", "99", "7", "5\x00", "5\x00x", "\x005"} {
		key := fmt.Sprintf("ctr%d", i)
		s = append(s,
			one("counter set "+key, req(gm.SET, key, ext(3, 0), v)),
			one("counter incr "+key, req(gm.INCREMENT, key, deltaExt(2, 0, 0), "")),
			one("counter decr "+key, req(gm.DECREMENT, key, deltaExt(100, 0, 0), "")),
			one("counter get "+key, req(gm.GET, key, nil, "")))
	}

	// Quiet commands, pipelined: only misses (gets) and failures
	// (mutations) answer.
	s = append(s, step{name: "quiet batch", reqs: []gm.MCRequest{
		req(gm.SETQ, "q1", ext(1, 0), "v1"),
		req(gm.SETQ, "q2", ext(2, 0), "v2"),
		req(gm.ADDQ, "q1", ext(0, 0), "dup"),
		req(gm.GETQ, "q1", nil, ""),
		req(gm.GETQ, "nope", nil, ""),
		req(gm.GETKQ, "q2", nil, ""),
		req(gm.GETKQ, "nope", nil, ""),
		req(gm.REPLACEQ, "nope", ext(0, 0), "x"),
		req(gm.APPENDQ, "q1", nil, "+"),
		req(gm.PREPENDQ, "nope", nil, "x"),
		req(gm.INCREMENTQ, "q3", deltaExt(1, 1, 0), ""),
		req(gm.DECREMENTQ, "q1", deltaExt(1, 1, 0), ""),
		req(gm.DELETEQ, "q2", nil, ""),
		req(gm.DELETEQ, "q2", nil, ""),
		req(gm.GATQ, "q1", u32(0), ""),
		req(gm.GATQ, "nope", u32(0), ""),
		req(gm.GATKQ, "q1", u32(0), ""),
		req(gm.GET, "q1", nil, ""),
		req(gm.GETK, "q3", nil, ""),
	}})

	// CAS round trips: a CAS taken from a GET works once.
	s = append(s,
		one("cas base", req(gm.SET, "cas", ext(0, 0), "v")),
		one("cas get", req(gm.GET, "cas", nil, "")))
	get := len(s)
	for _, r := range []gm.MCRequest{
		req(gm.SET, "cas", ext(0, 0), "w"),
		req(gm.SET, "cas", ext(0, 0), "x"),
		req(gm.REPLACE, "cas", ext(0, 0), "y"),
		req(gm.APPEND, "cas", nil, "z"),
		req(gm.INCREMENT, "cas", deltaExt(1, 0, 0), ""),
		req(gm.DELETE, "cas", nil, ""),
	} {
		s = append(s, step{name: "cas " + r.Opcode.String(), reqs: []gm.MCRequest{r}, casFrom: get})
	}
	s = append(s, one("cas after", req(gm.GET, "cas", nil, "")))

	// A CAS turns ADD into a CAS store, as SET and REPLACE; APPEND and
	// PREPEND to a missing key are not stored, CAS or not.
	s = append(s,
		one("add cas base", req(gm.SET, "addcas", ext(1, 0), "v")),
		one("add cas get", req(gm.GET, "addcas", nil, "")))
	s = append(s,
		step{name: "add with the right cas", reqs: []gm.MCRequest{req(gm.ADD, "addcas", ext(2, 0), "w")}, casFrom: len(s)},
		one("add cas after", req(gm.GET, "addcas", nil, "")),
		one("add with a wrong cas", func() gm.MCRequest { r := req(gm.ADD, "addcas", ext(0, 0), "x"); r.Cas = 0xdead00beef; return r }()),
		one("add with a cas on a missing key", func() gm.MCRequest { r := req(gm.ADD, "nocas", ext(0, 0), "x"); r.Cas = 0xdead00beef; return r }()),
		one("append with a cas on a missing key", func() gm.MCRequest { r := req(gm.APPEND, "nocas", nil, "x"); r.Cas = 0xdead00beef; return r }()),
		one("prepend with a cas on a missing key", func() gm.MCRequest { r := req(gm.PREPEND, "nocas", nil, "x"); r.Cas = 0xdead00beef; return r }()),
	)

	// Expiry: relative, 30 days, absolute in the past and far future.
	s = append(s,
		one("exp 1s", req(gm.SET, "e1", ext(0, 1), "v")),
		one("exp 30 days", req(gm.SET, "e2", ext(0, 2592000), "v")),
		one("exp absolute past", req(gm.SET, "e3", ext(0, 2592001), "v")),
		one("exp absolute future", req(gm.SET, "e4", ext(0, 0xffffffff), "v")),
		one("incr create already expired", req(gm.INCREMENT, "e5", deltaExt(1, 9, 2592001), "")),
		one("get exp past", req(gm.GET, "e3", nil, "")),
		one("get exp created", req(gm.GET, "e5", nil, "")),
		one("touch to 1s", req(gm.TOUCH, "e2", u32(1), "")),
		one("touch base", req(gm.SET, "tp", ext(5, 0), "v")),
		one("touch into the past", req(gm.TOUCH, "tp", u32(2592001), "")),
		one("get after touch into the past", req(gm.GET, "tp", nil, "")),
		one("gat base", req(gm.SET, "tp", ext(6, 0), "w")),
		one("gat into the past", req(gm.GAT, "tp", u32(2592001), "")),
		one("get after gat into the past", req(gm.GET, "tp", nil, "")),
		step{name: "quiet gat into the past", reqs: []gm.MCRequest{
			req(gm.SET, "tp", ext(7, 0), "x"), req(gm.GATQ, "tp", u32(2592001), ""), req(gm.GATKQ, "tp", u32(2592001), ""),
		}},
		step{name: "after 2.1 s", reqs: []gm.MCRequest{
			req(gm.GET, "e1", nil, ""), req(gm.GET, "e2", nil, ""), req(gm.GET, "e4", nil, ""),
		}, sleep: 2100 * time.Millisecond},
	)

	// A deterministic random mix.
	rng := rand.New(rand.NewPCG(2026, 11))
	keys := []string{"r0", "r1", "r2", "r3", "r4", "r\x00bin", "r\xffbin"}
	for i := 0; i < 400; i++ {
		key := keys[rng.IntN(len(keys))]
		value := strings.Repeat(string(rune('a'+rng.IntN(26))), rng.IntN(300))
		if rng.IntN(4) == 0 {
			value = fmt.Sprint(rng.IntN(1000))
		}
		flags := rng.Uint32N(4)
		var r gm.MCRequest
		switch rng.IntN(14) {
		case 0, 1:
			r = req(gm.SET, key, ext(flags, 0), value)
		case 2:
			r = req(gm.ADD, key, ext(flags, 0), value)
		case 3:
			r = req(gm.REPLACE, key, ext(flags, 0), value)
		case 4:
			r = req(gm.APPEND, key, nil, value)
		case 5:
			r = req(gm.PREPEND, key, nil, value)
		case 6:
			r = req(gm.DELETE, key, nil, "")
		case 7:
			r = req(gm.INCREMENT, key, deltaExt(uint64(rng.IntN(50)), 7, 0), "")
		case 8:
			r = req(gm.DECREMENT, key, deltaExt(uint64(rng.IntN(50)), 7, 0), "")
		case 9:
			r = req(gm.GETK, key, nil, "")
		case 10:
			r = req(gm.GAT, key, u32(0), "")
		default:
			r = req(gm.GET, key, nil, "")
		}
		r.Opaque = uint32(i)
		s = append(s, one(fmt.Sprintf("random %d %v", i, r.Opcode), r))
	}

	// Malformed requests: EINVAL, and memcached closes the connection.
	s = append(s,
		one("set without extras", req(gm.SET, "a", nil, "x")),
		one("get with extras", req(gm.GET, "a", u32(1), "")),
		one("get with a value", req(gm.GET, "a", nil, "x")),
		one("get without a key", req(gm.GET, "", nil, "")),
		one("delete with extras", req(gm.DELETE, "a", u32(0), "")),
		one("append with extras", req(gm.APPEND, "a", u32(0), "x")),
		one("set without a key", req(gm.SET, "", ext(0, 0), "x")),
		one("incr with short extras", req(gm.INCREMENT, "n", u32(1), "")),
		one("flush with 8 bytes of extras", req(gm.FLUSH, "", ext(0, 0), "")),
		one("noop with a key", req(gm.NOOP, "k", nil, "")),
		one("noop with extras", req(gm.NOOP, "", u32(0), "")),
		one("version with a value", req(gm.VERSION, "", nil, "x")),
		one("key of 251 bytes", req(gm.GET, strings.Repeat("k", 251), nil, "")),
		one("touch without extras", req(gm.TOUCH, "a", nil, "")),
		one("quit", req(gm.QUIT, "", nil, "")),
		one("quitq", req(gm.QUITQ, "", nil, "")),
		one("still serving after all that", req(gm.NOOP, "", nil, "")),
	)
	return s
}

// fetched returns the value of an answer for comparison. memcached
// rewrites a counter that got shorter in place, padded with spaces, but only
// when no other thread holds the item (its LRU maintainer sometimes does,
// after a fetch); otherwise it stores the exact digits. Which one happens
// depends on timing, so spaces in fetched values are not compared: the
// padding itself is pinned by the cache package's tests. (No other value in
// the script contains spaces.)
func fetched(a answer) []byte {
	switch a.opcode {
	case gm.GET, gm.GETQ, gm.GETK, gm.GETKQ, gm.GAT, gm.GATQ, gm.GATK, gm.GATKQ:
		return bytes.ReplaceAll(a.body, []byte(" "), nil)
	}
	return a.body
}

// play runs the script against addr and returns each step's transcript.
func play(t *testing.T, addr string, steps []step) []transcript {
	t.Helper()
	var conn net.Conn
	var rd *gm.Reader
	dial := func() {
		var err error
		if conn, err = net.DialTimeout("tcp", addr, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		rd = gm.NewReader(conn)
	}
	dial()
	defer func() { conn.Close() }()
	out := make([]transcript, len(steps))
	for i, st := range steps {
		time.Sleep(st.sleep)
		var wire []byte
		for j, r := range st.reqs {
			if j == 0 && st.casFrom > 0 {
				r.Cas = out[st.casFrom-1].answers[0].cas
			}
			if r.Opaque == 0 {
				r.Opaque = uint32(1000*i + j + 1)
			}
			wire, _ = r.AppendTo(wire)
		}
		fence := gm.MCRequest{Opcode: gm.NOOP, Opaque: fenceOpaque}
		wire, _ = fence.AppendTo(wire)
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(wire); err != nil {
			t.Fatalf("step %d %s: %v", i, st.name, err)
		}
		for {
			var res gm.MCResponse
			err := rd.ReadResponse(&res)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("step %d %s: no answer: %v", i, st.name, err)
				}
				out[i].closed = true
				conn.Close()
				dial()
				break
			}
			if res.Opaque == fenceOpaque && res.Opcode == gm.NOOP {
				break
			}
			a := answer{opcode: res.Opcode, status: res.Status, opaque: res.Opaque, hasCAS: res.Cas != 0, cas: res.Cas,
				extras: bytes.Clone(res.Extras), key: bytes.Clone(res.Key), body: bytes.Clone(res.Body)}
			if st.noBody {
				a.body = nil
			}
			out[i].answers = append(out[i].answers, a)
		}
	}
	return out
}

func TestDifferentialAgainstMemcached(t *testing.T) {
	steps := script()
	requests := 0
	for _, st := range steps {
		requests += len(st.reqs)
	}
	mc := play(t, peer.Memcached(t, "-t", "2"), steps)
	for _, loops := range []int{0, 2} {
		t.Run(fmt.Sprintf("event loops %d", loops), func(t *testing.T) {
			_, gcAddr := gocachetest.Start(t, gocache.Config{EventLoops: loops})
			compareTranscripts(t, steps, mc, play(t, gcAddr, steps))
		})
	}
	t.Logf("%d steps, %d requests: memcached and gocache answered alike", len(steps), requests)
}

// compareTranscripts requires gocache's answers to be memcached's.
func compareTranscripts(t *testing.T, steps []step, mc, gc []transcript) {
	diffs := 0
	for i, st := range steps {
		a, b := mc[i], gc[i]
		same := a.closed == b.closed && len(a.answers) == len(b.answers)
		for j := 0; same && j < len(a.answers); j++ {
			x, y := a.answers[j], b.answers[j]
			same = x.opcode == y.opcode && x.status == y.status && x.opaque == y.opaque && x.hasCAS == y.hasCAS &&
				bytes.Equal(x.extras, y.extras) && bytes.Equal(x.key, y.key) && bytes.Equal(fetched(x), fetched(y))
		}
		if !same {
			diffs++
			t.Errorf("step %d %q:\n memcached: %v closed=%v\n gocache:   %v closed=%v", i, st.name, a.answers, a.closed, b.answers, b.closed)
		}
		if diffs > 10 {
			t.Fatal("too many differences")
		}
	}
}

// The cases left out of the differential script: where memcached 1.6
// misbehaves, gocache answers.
func TestBeyondMemcached(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	steps := []step{
		one("verbosity", req(gm.VERBOSITY, "", u32(1), "")),
		one("unknown opcode with a key", req(0xe0, "key", nil, "")),
		one("unknown opcode with extras", req(0xe1, "", u32(7), "v")),
		one("set", req(gm.SET, "t", ext(0, 0), "v")),
		one("touch with a wrong cas", func() gm.MCRequest { r := req(gm.TOUCH, "t", u32(10), ""); r.Cas = 99999; return r }()),
	}
	got := play(t, addr, steps)
	want := []gm.Status{gm.SUCCESS, gm.UNKNOWN_COMMAND, gm.UNKNOWN_COMMAND, gm.SUCCESS, gm.KEY_EEXISTS}
	for i, st := range steps {
		if got[i].closed || len(got[i].answers) != 1 || got[i].answers[0].status != want[i] {
			t.Errorf("%s: %v closed=%v, want %v", st.name, got[i].answers, got[i].closed, want[i])
		}
	}
}
