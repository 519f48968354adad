package gocache_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/xdg-go/scram"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/internal/peer"
	"github.com/f8e615c8/gomemcached/sasl"
)

// conn is a raw protocol connection for tests.
type conn struct {
	t  *testing.T
	nc net.Conn
	r  *gm.Reader
}

func dialRaw(t *testing.T, addr string) *conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &conn{t: t, nc: nc, r: gm.NewReader(nc)}
}

func (c *conn) do(req gm.MCRequest) gm.MCResponse {
	c.t.Helper()
	if _, err := req.Transmit(c.nc); err != nil {
		c.t.Fatal(err)
	}
	return c.read()
}

func (c *conn) read() gm.MCResponse {
	c.t.Helper()
	var res gm.MCResponse
	if err := c.r.ReadResponse(&res); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	res.Extras, res.Key, res.Body = bytes.Clone(res.Extras), bytes.Clone(res.Key), bytes.Clone(res.Body)
	return res
}

// closed reports whether the server closed the connection.
// send writes reqs without reading.
func (c *conn) send(reqs ...gm.MCRequest) {
	c.t.Helper()
	for _, req := range reqs {
		if _, err := req.Transmit(c.nc); err != nil {
			c.t.Fatal(err)
		}
	}
}

// ended reports whether the server ended the stream (rather than, say,
// a read timing out) before sending another response.
func (c *conn) ended() bool {
	var res gm.MCResponse
	err := c.r.ReadResponse(&res)
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

func (c *conn) closed() bool {
	var res gm.MCResponse
	return c.r.ReadResponse(&res) != nil
}

func (c *conn) hello(features ...uint16) []uint16 {
	c.t.Helper()
	var body []byte
	for _, f := range features {
		body = binary.BigEndian.AppendUint16(body, f)
	}
	res := c.do(gm.MCRequest{Opcode: gm.HELLO, Key: []byte("test"), Body: body})
	var got []uint16
	for b := res.Body; len(b) >= 2; b = b[2:] {
		got = append(got, binary.BigEndian.Uint16(b))
	}
	return got
}

func (c *conn) plain(user, pass string) gm.Status {
	return c.do(gm.MCRequest{Opcode: gm.SASL_AUTH, Key: []byte("PLAIN"), Body: []byte("\x00" + user + "\x00" + pass)}).Status
}

// scramAuth authenticates with mech, checking the server's signature.
func (c *conn) scramAuth(mech, user, pass string) gm.Status {
	c.t.Helper()
	hash := map[string]scram.HashGeneratorFcn{sasl.ScramSHA1: scram.SHA1, sasl.ScramSHA256: scram.SHA256, sasl.ScramSHA512: scram.SHA512}[mech]
	client, _ := hash.NewClient(user, pass, "")
	conv := client.NewConversation()
	first, _ := conv.Step("")
	res := c.do(gm.MCRequest{Opcode: gm.SASL_AUTH, Key: []byte(mech), Body: []byte(first)})
	if res.Status != gm.AUTH_CONTINUE {
		return res.Status
	}
	final, err := conv.Step(string(res.Body))
	if err != nil {
		c.t.Fatal(err)
	}
	res = c.do(gm.MCRequest{Opcode: gm.SASL_STEP, Key: []byte(mech), Body: []byte(final)})
	if res.Status == gm.SUCCESS {
		if _, err := conv.Step(string(res.Body)); err != nil || !conv.Valid() {
			c.t.Fatalf("server signature rejected: %v", err)
		}
	}
	return res.Status
}

func set(key, value string) gm.MCRequest {
	return gm.MCRequest{Opcode: gm.SET, Key: []byte(key), Extras: make([]byte, 8), Body: []byte(value)}
}

func get(key string) gm.MCRequest { return gm.MCRequest{Opcode: gm.GET, Key: []byte(key)} }

func authServer(t *testing.T, require bool, buckets ...string) (*gocache.Server, string) {
	t.Helper()
	return authServerLoops(t, 0, require, buckets...)
}

func authServerLoops(t *testing.T, loops int, require bool, buckets ...string) (*gocache.Server, string) {
	t.Helper()
	users, err := sasl.Load(strings.NewReader("alice:wonderland\nbob:builder\n!buckets bob travel\n"))
	if err != nil {
		t.Fatal(err)
	}
	return gocachetest.Start(t, gocache.Config{Users: users, RequireAuth: require, Buckets: buckets, EventLoops: loops})
}

func TestSASLMechanisms(t *testing.T) {
	_, addr := authServer(t, true)
	c := dialRaw(t, addr)
	if res := c.do(gm.MCRequest{Opcode: gm.SASL_LIST_MECHS}); string(res.Body) != "SCRAM-SHA512 SCRAM-SHA256 SCRAM-SHA1 PLAIN" {
		t.Fatalf("mechanisms %q", res.Body)
	}
	for _, mech := range []string{sasl.ScramSHA512, sasl.ScramSHA256, sasl.ScramSHA1} {
		c := dialRaw(t, addr)
		if st := c.scramAuth(mech, "alice", "wonderland"); st != gm.SUCCESS {
			t.Fatalf("%s: %v", mech, st)
		}
		if res := c.do(set("k", mech)); res.Status != gm.SUCCESS {
			t.Fatalf("%s: set after auth: %v", mech, res.Status)
		}
		if st := dialRaw(t, addr).scramAuth(mech, "alice", "wrong"); st != gm.AUTH_ERROR {
			t.Fatalf("%s wrong password: %v", mech, st)
		}
		if st := dialRaw(t, addr).scramAuth(mech, "mallory", "x"); st != gm.AUTH_ERROR {
			t.Fatalf("%s unknown user: %v", mech, st)
		}
	}
	c = dialRaw(t, addr)
	if st := c.plain("alice", "wonderland"); st != gm.SUCCESS {
		t.Fatalf("PLAIN: %v", st)
	}
	if res := c.do(get("k")); string(res.Body) != sasl.ScramSHA1 {
		t.Fatalf("get after PLAIN: %v %q", res.Status, res.Body)
	}
	if st := dialRaw(t, addr).plain("alice", "Wonderland"); st != gm.AUTH_ERROR {
		t.Fatalf("PLAIN wrong password: %v", st)
	}
}

func TestUnauthenticatedAccess(t *testing.T) {
	srv, addr := authServer(t, true)
	c := dialRaw(t, addr)
	for _, req := range []gm.MCRequest{
		set("secret", "x"), get("secret"), {Opcode: gm.DELETE, Key: []byte("secret")},
		{Opcode: gm.STAT}, {Opcode: gm.FLUSH}, {Opcode: gm.SELECT_BUCKET, Key: []byte("default")},
		{Opcode: gm.INCREMENT, Key: []byte("n"), Extras: make([]byte, 20)},
	} {
		if res := c.do(req); res.Status != gm.AUTH_ERROR {
			t.Errorf("%v before auth: %v", req.Opcode, res.Status)
		}
	}
	if _, ok := srv.Cache(gocache.DefaultBucket).Get(0, cache.CollectionKey(nil, 0, []byte("secret"))); ok {
		t.Fatal("an unauthenticated SET stored its value")
	}
	for _, op := range []gm.CommandCode{gm.NOOP, gm.VERSION} {
		if res := c.do(gm.MCRequest{Opcode: op}); res.Status != gm.SUCCESS {
			t.Errorf("%v before auth: %v", op, res.Status)
		}
	}
	if got := c.hello(0x07); len(got) != 1 {
		t.Errorf("HELLO before auth: %v", got)
	}
	// Out of order: a step with no authentication under way.
	if res := c.do(gm.MCRequest{Opcode: gm.SASL_STEP, Key: []byte(sasl.ScramSHA256), Body: []byte("c=biws,r=x,p=y")}); res.Status != gm.AUTH_ERROR {
		t.Fatalf("SASL_STEP first: %v", res.Status)
	}
	// An overlong user name.
	if st := c.plain(strings.Repeat("u", 5000), "x"); st != gm.AUTH_ERROR {
		t.Fatalf("overlong user: %v", st)
	}
	if st := c.plain("alice", "wonderland"); st != gm.SUCCESS {
		t.Fatalf("PLAIN after failures: %v", st)
	}
	if res := c.do(set("secret", "x")); res.Status != gm.SUCCESS {
		t.Fatalf("after auth: %v", res.Status)
	}
	// Three attempts here, two failed, and statsAs's own.
	if st := statsAs(t, addr, "alice", "wonderland"); st["auth_cmds"] != "4" || st["auth_errors"] != "2" {
		t.Fatalf("auth_cmds %s auth_errors %s", st["auth_cmds"], st["auth_errors"])
	}
}

// A proof computed for one conversation's nonce does not authenticate
// another.
func TestScramProofForOtherNonce(t *testing.T) {
	_, addr := authServer(t, true)
	client, _ := scram.SHA256.NewClient("alice", "wonderland", "")
	conv := client.NewConversation()
	first, _ := conv.Step("")
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	res := a.do(gm.MCRequest{Opcode: gm.SASL_AUTH, Key: []byte(sasl.ScramSHA256), Body: []byte(first)})
	final, err := conv.Step(string(res.Body))
	if err != nil {
		t.Fatal(err)
	}
	if res := b.do(gm.MCRequest{Opcode: gm.SASL_AUTH, Key: []byte(sasl.ScramSHA256), Body: []byte(first)}); res.Status != gm.AUTH_CONTINUE {
		t.Fatal(res.Status)
	}
	if res := b.do(gm.MCRequest{Opcode: gm.SASL_STEP, Key: []byte(sasl.ScramSHA256), Body: []byte(final)}); res.Status != gm.AUTH_ERROR {
		t.Fatalf("replayed proof: %v", res.Status)
	}
	if res := b.do(get("k")); res.Status != gm.AUTH_ERROR {
		t.Fatalf("after a failed proof: %v", res.Status)
	}
	if res := a.do(gm.MCRequest{Opcode: gm.SASL_STEP, Key: []byte(sasl.ScramSHA256), Body: []byte(final)}); res.Status != gm.SUCCESS {
		t.Fatalf("the proof on its own conversation: %v", res.Status)
	}
}

// Failed attempts are slowed down and the connection is closed after ten;
// other connections carry on, and the failures are counted.
func TestAuthRateLimit(t *testing.T) {
	for _, loops := range []int{0, 1} {
		t.Run(fmt.Sprintf("event loops %d", loops), func(t *testing.T) { testAuthRateLimit(t, loops) })
	}
}

// testAuthRateLimit runs TestAuthRateLimit; with one event loop, the
// paused connection and the other share it.
func testAuthRateLimit(t *testing.T, loops int) {
	_, addr := authServerLoops(t, loops, true)
	other := dialRaw(t, addr)
	other.plain("alice", "wonderland")
	c := dialRaw(t, addr)
	start := time.Now()
	for i := 1; i <= 10; i++ {
		if i > 5 {
			// The failing connection is paused before answering; the
			// other one is served meanwhile.
			(&gm.MCRequest{Opcode: gm.SASL_AUTH, Key: []byte("PLAIN"), Body: []byte("\x00alice\x00guess")}).Transmit(c.nc)
			t0 := time.Now()
			if res := other.do(get("x")); res.Status != gm.KEY_ENOENT || time.Since(t0) > 300*time.Millisecond {
				t.Fatalf("attempt %d: the other connection waited %v", i, time.Since(t0))
			}
			if st := c.read().Status; st != gm.AUTH_ERROR {
				t.Fatalf("attempt %d: %v", i, st)
			}
			continue
		}
		if st := c.plain("alice", "guess"); st != gm.AUTH_ERROR {
			t.Fatalf("attempt %d: %v", i, st)
		}
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("10 failures took %v: not slowed down", d)
	}
	if !c.closed() {
		t.Fatal("connection kept after 10 failures")
	}
	if res := other.do(get("x")); res.Status != gm.KEY_ENOENT {
		t.Fatalf("another connection: %v", res.Status)
	}
	st := statsAs(t, addr, "alice", "wonderland")
	if st["auth_errors"] != "10" || st["auth_cmds"] != "12" {
		t.Fatalf("auth_cmds %s auth_errors %s", st["auth_cmds"], st["auth_errors"])
	}
}

// statsAs fetches the general statistics over a connection authenticated
// as user.
func statsAs(t *testing.T, addr, user, pass string) map[string]string {
	t.Helper()
	c := dialRaw(t, addr)
	if st := c.plain(user, pass); st != gm.SUCCESS {
		t.Fatal(st)
	}
	(&gm.MCRequest{Opcode: gm.STAT}).Transmit(c.nc)
	out := map[string]string{}
	for {
		res := c.read()
		if len(res.Key) == 0 {
			return out
		}
		out[string(res.Key)] = string(res.Body)
	}
}

func TestBuckets(t *testing.T) {
	_, addr := authServer(t, false, "default", "travel", "beer-sample")
	c := dialRaw(t, addr)
	c.hello(0x07) // XERROR, for NO_BUCKET and EACCESS: see TestExtendedStatus
	if res := c.do(set("k", "in default")); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.SELECT_BUCKET, Key: []byte("travel")}); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	if res := c.do(get("k")); res.Status != gm.KEY_ENOENT {
		t.Fatalf("key of another bucket visible: %v %q", res.Status, res.Body)
	}
	c.do(set("k", "in travel"))
	if res := c.do(gm.MCRequest{Opcode: gm.SELECT_BUCKET, Key: []byte("missing")}); res.Status != gm.NO_BUCKET {
		t.Fatalf("missing bucket: %v", res.Status)
	}
	if res := c.do(get("k")); string(res.Body) != "in travel" {
		t.Fatalf("a failed select changed the bucket: %q", res.Body)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.SELECT_BUCKET, Key: []byte("@no bucket@")}); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	for _, req := range []gm.MCRequest{get("k"), set("k", "x"), {Opcode: gm.FLUSH}} {
		if res := c.do(req); res.Status != gm.NO_BUCKET {
			t.Fatalf("%v in no bucket: %v", req.Opcode, res.Status)
		}
	}
	c.do(gm.MCRequest{Opcode: gm.SELECT_BUCKET, Key: []byte("default")})
	if res := c.do(get("k")); string(res.Body) != "in default" {
		t.Fatalf("default bucket: %q", res.Body)
	}
	// bob may use only travel.
	b := dialRaw(t, addr)
	b.hello(0x07)
	if st := b.plain("bob", "builder"); st != gm.SUCCESS {
		t.Fatal(st)
	}
	if res := b.do(get("k")); res.Status != gm.NO_BUCKET {
		t.Fatalf("bob left in default: %v", res.Status)
	}
	if res := b.do(gm.MCRequest{Opcode: gm.SELECT_BUCKET, Key: []byte("beer-sample")}); res.Status != gm.EACCESS {
		t.Fatalf("bob selecting beer-sample: %v", res.Status)
	}
	if res := b.do(gm.MCRequest{Opcode: gm.SELECT_BUCKET, Key: []byte("travel")}); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	if res := b.do(get("k")); string(res.Body) != "in travel" {
		t.Fatalf("bob in travel: %q", res.Body)
	}
	// Without a default bucket, connections start in none.
	_, addr2 := gocachetest.Start(t, gocache.Config{Buckets: []string{"a"}})
	c2 := dialRaw(t, addr2)
	c2.hello(0x07)
	if res := c2.do(get("k")); res.Status != gm.NO_BUCKET {
		t.Fatalf("no default bucket: %v", res.Status)
	}
}

// TestExtendedStatus: a connection that did not negotiate XERROR is
// closed, as kv_engine closes it, where another would get a status that
// memcached's clients do not know.
func TestExtendedStatus(t *testing.T) {
	_, addr := authServer(t, false, "default", "travel")
	imp := gm.MCRequest{Opcode: gm.GET, Key: []byte("k")}
	imp.SetImpersonate("someone")
	for _, tc := range []struct {
		name  string
		hello []uint16
		req   gm.MCRequest
		want  gm.Status
	}{
		{"missing bucket", nil, gm.MCRequest{Opcode: gm.SELECT_BUCKET, Key: []byte("missing")}, gm.NO_BUCKET},
		{"durability", []uint16{0x10}, func() gm.MCRequest {
			r := set("k", "v")
			r.FramingExtras = []gm.FrameInfo{gm.NewDurabilityFrame(gm.DuraPersistToMajority, 0)}
			return r
		}(), gm.DURABILITY_INVALID_LEVEL},
		{"impersonation", []uint16{0x10}, imp, gm.EACCESS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			if len(tc.hello) > 0 {
				c.hello(tc.hello...)
			}
			c.send(tc.req, gm.MCRequest{Opcode: gm.NOOP})
			// Nothing comes back but the end of the stream.
			if !c.ended() {
				t.Fatal("connection still open")
			}
			c = dialRaw(t, addr)
			c.hello(append(tc.hello, 0x07)...)
			if res := c.do(tc.req); res.Status != tc.want {
				t.Fatalf("with XERROR: %v, want %v", res.Status, tc.want)
			}
			if res := c.do(gm.MCRequest{Opcode: gm.NOOP}); res.Status != gm.SUCCESS {
				t.Fatalf("NOOP after %v: %v", tc.want, res.Status)
			}
		})
	}
	// With no bucket selected.
	c := dialRaw(t, addr)
	if res := c.do(gm.MCRequest{Opcode: gm.SELECT_BUCKET, Key: []byte("@no bucket@")}); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	c.send(get("k"))
	if !c.ended() {
		t.Fatal("GET in no bucket without XERROR: connection still open")
	}
}

func TestHelloFeatures(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	c := dialRaw(t, addr)
	got := c.hello(0x01, 0x03, 0x04, 0x06, 0x07, 0x08, 0x0a, 0x0b, 0x10, 0x04, 0xffff)
	want := []uint16{0x03, 0x04, 0x06, 0x07, 0x08, 0x0a, 0x0b, 0x10}
	if len(got) != len(want) {
		t.Fatalf("HELLO accepted %x, want %x", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("HELLO accepted %x, want %x", got, want)
		}
	}
	// MutationSeqno: every mutation answers with a token whose seqno grows
	// in its vbucket.
	var last uint64
	for i := range 3 {
		res := c.do(set("k", "v"))
		if len(res.Extras) != 16 {
			t.Fatalf("mutation %d extras %x", i, res.Extras)
		}
		seq := binary.BigEndian.Uint64(res.Extras[8:])
		if seq <= last {
			t.Fatalf("seqno %d after %d", seq, last)
		}
		last = seq
	}
	res := c.do(gm.MCRequest{Opcode: gm.INCREMENT, Key: []byte("n"), Extras: make([]byte, 20)})
	if len(res.Extras) != 16 || len(res.Body) != 8 {
		t.Fatalf("incr with tokens: extras %x body %x", res.Extras, res.Body)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.DELETE, Key: []byte("n")}); len(res.Extras) != 16 {
		t.Fatalf("delete token %x", res.Extras)
	}
	// Without it, no token.
	plain := dialRaw(t, addr)
	if res := plain.do(set("k", "v")); len(res.Extras) != 0 {
		t.Fatalf("token without MutationSeqno: %x", res.Extras)
	}
	// JSON: the datatype is kept and sent to clients that negotiated it.
	doc := gm.MCRequest{Opcode: gm.SET, Key: []byte("doc"), Extras: make([]byte, 8), Body: []byte(`{"a":1}`), DataType: gm.DatatypeFlagJSON}
	c.do(doc)
	if res := c.do(get("doc")); res.DataType != gm.DatatypeFlagJSON {
		t.Fatalf("JSON client gets datatype %d", res.DataType)
	}
	if res := plain.do(get("doc")); res.DataType != 0 || string(res.Body) != `{"a":1}` {
		t.Fatalf("plain client gets datatype %d", res.DataType)
	}
	// Snappy: compressed values are accepted from clients that negotiated
	// it and answered inflated to everyone.
	value := strings.Repeat("compressible ", 100)
	z := gm.MCRequest{Opcode: gm.SET, Key: []byte("z"), Extras: make([]byte, 8),
		Body: snappy.Encode(nil, []byte(value)), DataType: gm.DatatypeFlagCompressed}
	if res := c.do(z); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	if res := plain.do(get("z")); string(res.Body) != value || res.DataType != 0 {
		t.Fatalf("snappy value read by a client without snappy: datatype %d, %d bytes", res.DataType, len(res.Body))
	}
	if res := plain.do(z); res.Status != gm.EINVAL || !plain.closed() {
		t.Fatalf("snappy from a client without it: %v", res.Status)
	}
	bad := z
	bad.Body = []byte("not snappy at all")
	if res := c.do(bad); res.Status != gm.EINVAL {
		t.Fatalf("corrupt snappy: %v", res.Status)
	}
}

func TestFramingExtras(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	withFrames := func(req gm.MCRequest, frames ...gm.FrameInfo) gm.MCRequest {
		req.FramingExtras = frames
		return req
	}
	// Without AltRequest: refused, connection closed.
	c := dialRaw(t, addr)
	if res := c.do(withFrames(set("k", "v"), gm.FrameInfo{ObjId: gm.FrameBarrier})); res.Status != gm.EINVAL || !c.closed() {
		t.Fatalf("frames without AltRequest: %v", res.Status)
	}
	c = dialRaw(t, addr)
	c.hello(0x10, 0x07)
	if res := c.do(withFrames(set("k", "v"), gm.NewDurabilityFrame(gm.DuraMajority, 500))); res.Status != gm.SUCCESS {
		t.Fatalf("durability majority: %v", res.Status)
	}
	if res := c.do(withFrames(set("k", "v"), gm.NewDurabilityFrame(gm.DuraPersistToMajority, 0))); res.Status != gm.DURABILITY_INVALID_LEVEL {
		t.Fatalf("durability with persistence: %v", res.Status)
	}
	imp := gm.MCRequest{Opcode: gm.GET, Key: []byte("k")}
	imp.SetImpersonate("someone")
	if res := c.do(imp); res.Status != gm.EACCESS {
		t.Fatalf("impersonation: %v", res.Status)
	}
	// Preserve expiry: a SET keeps the item's expiry.
	withExp := set("p", "v")
	binary.BigEndian.PutUint32(withExp.Extras[4:], 100)
	c.do(withExp)
	if res := c.do(withFrames(set("p", "w"), gm.FrameInfo{ObjId: gm.FramePreserveExpiry})); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	res := c.do(gm.MCRequest{Opcode: gm.GET, Key: []byte("p")})
	if string(res.Body) != "w" {
		t.Fatalf("value %q", res.Body)
	}
	// (The expiry itself is checked through the cache's KeepExpiry test.)
	if res := c.do(withFrames(set("k", "v"), gm.FrameInfo{ObjId: gm.FrameDurability, ObjLen: 1, ObjData: []byte{9}})); res.Status != gm.EINVAL {
		t.Fatalf("bad durability level: %v", res.Status)
	}
}

func TestErrorMap(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	c := dialRaw(t, addr)
	for _, v := range []uint16{1, 2, 7} {
		res := c.do(gm.MCRequest{Opcode: gm.GET_ERROR_MAP, Body: binary.BigEndian.AppendUint16(nil, v)})
		var doc struct {
			Version  int                        `json:"version"`
			Revision int                        `json:"revision"`
			Errors   map[string]json.RawMessage `json:"errors"`
		}
		if res.Status != gm.SUCCESS || json.Unmarshal(res.Body, &doc) != nil || doc.Version != int(min(v, 2)) || len(doc.Errors) < 20 {
			t.Fatalf("version %d: %v %+v", v, res.Status, doc)
		}
		if _, ok := doc.Errors["88"]; !ok {
			t.Fatalf("version %d lacks UNKNOWN_COLLECTION", v)
		}
	}
	if res := c.do(gm.MCRequest{Opcode: gm.GET_ERROR_MAP, Body: []byte{0, 0}}); res.Status != gm.KEY_ENOENT {
		t.Fatalf("version 0: %v", res.Status)
	}
	if res := c.do(gm.MCRequest{Opcode: gm.GET_ERROR_MAP}); res.Status != gm.EINVAL || !c.closed() {
		t.Fatalf("no version: %v", res.Status)
	}
}

func TestTLS(t *testing.T) {
	certFile, keyFile := peer.SelfSignedCert(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gocache.New(gocache.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tlsL, _ := net.Listen("tcp", "127.0.0.1:0")
	plainL, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.ServeTLS(tlsL)
	go srv.Serve(plainL)
	defer srv.Close()

	// A client that stalls in its handshake holds up no one.
	stall, _ := net.Dial("tcp", tlsL.Addr().String())
	defer stall.Close()
	stall.Write([]byte{0x16, 0x03, 0x01}) // the start of a ClientHello

	tc, err := tls.Dial("tcp", tlsL.Addr().String(), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	c := &conn{t: t, nc: tc, r: gm.NewReader(tc)}
	if res := c.do(set("k", "over tls")); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	p := dialRaw(t, plainL.Addr().String())
	if res := p.do(get("k")); string(res.Body) != "over tls" {
		t.Fatalf("plain listener: %q", res.Body)
	}
	// TLS 1.1 is refused.
	if _, err := tls.Dial("tcp", tlsL.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
	// Plain bytes on the TLS port are no packet.
	raw := dialRaw(t, tlsL.Addr().String())
	(&gm.MCRequest{Opcode: gm.NOOP}).Transmit(raw.nc)
	if !raw.closed() {
		t.Fatal("plain request answered on the TLS port")
	}
}
