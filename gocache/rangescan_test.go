package gocache

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	refmc "github.com/couchbase/gomemcached"
	ref "github.com/couchbase/gomemcached/client"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	mc "github.com/f8e615c8/gomemcached/client"
)

// These tests run in the package (gocachetest would import it) to lower
// the scan limits; they start gocache on loopback as gocachetest does.

// scanManifest adds collections 8 ("c1") and 0x80 ("big") to the default
// one.
const scanManifest = `{"uid":"2","scopes":[{"name":"_default","uid":"0","collections":[` +
	`{"name":"_default","uid":"0"},{"name":"c1","uid":"8"},{"name":"big","uid":"80"}]}]}`

// startScans starts a server with scanManifest, lets tune change its
// range scan limits before it serves, and returns it with its address.
func startScans(t testing.TB, cfg Config, tune func(*rangeScans)) (*Server, string) {
	t.Helper()
	cfg.Manifest = []byte(scanManifest)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(srv.srv.Handler.(*handler).mux.Handler(gm.CREATE_RANGE_SCAN).(*rangeScans))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		srv.Serve(l)
		close(done)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return srv, l.Addr().String()
}

// fill stores names in collection cid of vbucket vb, each name its own
// value, through the store.
func fill(t testing.TB, srv *Server, vb uint16, cid uint32, names ...string) {
	t.Helper()
	c := srv.Cache(DefaultBucket)
	for _, n := range names {
		if _, err := c.Store(vb, cache.Set, cache.CollectionKey(nil, cid, []byte(n)), cache.Write{Value: []byte("v:" + n), Flags: 0xdeadbeef}); err != nil {
			t.Fatal(err)
		}
	}
}

func names(format string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}

// scanConn is a raw connection to gocache.
type scanConn struct {
	t  testing.TB
	nc net.Conn
	r  *gm.Reader
}

// allFeatures are what scan clients negotiate unless a test says
// otherwise.
var allFeatures = []gm.Feature{gm.FeatureXError, gm.FeatureJSON, gm.FeatureCollections}

func dialScans(t testing.TB, addr string, features ...gm.Feature) *scanConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	c := &scanConn{t: t, nc: nc, r: gm.NewReader(nc)}
	var body []byte
	for _, f := range features {
		body = binary.BigEndian.AppendUint16(body, uint16(f))
	}
	if res := c.do(&gm.MCRequest{Opcode: gm.HELLO, Body: body}); len(res.Body) != len(body) {
		t.Fatalf("HELLO accepted %x of %x", res.Body, body)
	}
	return c
}

func (c *scanConn) send(req *gm.MCRequest) {
	c.t.Helper()
	if _, err := req.Transmit(c.nc); err != nil {
		c.t.Fatal(err)
	}
}

func (c *scanConn) recv() *gm.MCResponse {
	c.t.Helper()
	var res gm.MCResponse
	if err := c.r.ReadResponse(&res); err != nil {
		c.t.Fatal(err)
	}
	res.Body, res.Extras = bytes.Clone(res.Body), bytes.Clone(res.Extras)
	return &res
}

func (c *scanConn) do(req *gm.MCRequest) *gm.MCResponse {
	c.t.Helper()
	c.send(req)
	return c.recv()
}

// create sends a CREATE_RANGE_SCAN with the JSON value cfg.
func (c *scanConn) create(vb uint16, cfg string) *gm.MCResponse {
	c.t.Helper()
	return c.do(&gm.MCRequest{Opcode: gm.CREATE_RANGE_SCAN, VBucket: vb, DataType: gm.DatatypeFlagJSON, Body: []byte(cfg)})
}

// mustCreate creates a scan and returns its uuid.
func (c *scanConn) mustCreate(vb uint16, cfg string) []byte {
	c.t.Helper()
	res := c.create(vb, cfg)
	if res.Status != gm.SUCCESS || len(res.Body) != 16 || len(res.Extras) != 0 || len(res.Key) != 0 {
		c.t.Fatalf("create %s: %v %q", cfg, res.Status, res.Body)
	}
	return res.Body
}

func continueReq(vb uint16, id []byte, items, ms, bytes uint32) *gm.MCRequest {
	ex := make([]byte, 28)
	copy(ex, id)
	binary.BigEndian.PutUint32(ex[16:], items)
	binary.BigEndian.PutUint32(ex[20:], ms)
	binary.BigEndian.PutUint32(ex[24:], bytes)
	return &gm.MCRequest{Opcode: gm.CONTINUE_RANGE_SCAN, VBucket: vb, Extras: ex}
}

// cont sends a continue and reads its responses, up to the first that is
// not SUCCESS.
func (c *scanConn) cont(vb uint16, id []byte, items, ms, bytes uint32) []*gm.MCResponse {
	c.t.Helper()
	c.send(continueReq(vb, id, items, ms, bytes))
	return c.read()
}

func (c *scanConn) read() []*gm.MCResponse {
	c.t.Helper()
	var out []*gm.MCResponse
	for {
		res := c.recv()
		out = append(out, res)
		if res.Status != gm.SUCCESS {
			return out
		}
	}
}

func (c *scanConn) cancel(vb uint16, id []byte) gm.Status {
	c.t.Helper()
	return c.do(&gm.MCRequest{Opcode: gm.CANCEL_RANGE_SCAN, VBucket: vb, Extras: id}).Status
}

// scanned is what a continue returned.
type scanned struct {
	status gm.Status
	keys   []string
	docs   []scanDoc
	frames int
}

type scanDoc struct {
	key, value string
	flags, exp uint32
	seqno, cas uint64
	datatype   uint8
}

// decode checks the frames of a continue (every one with the extras of
// its kind, all but the last SUCCESS) and decodes their records.
func decode(t testing.TB, frames []*gm.MCResponse, keyOnly bool) scanned {
	t.Helper()
	var out scanned
	want := []byte{0, 0, 0, 1}
	if keyOnly {
		want[3] = 0
	}
	for i, f := range frames {
		last := i == len(frames)-1
		if !last && f.Status != gm.SUCCESS {
			t.Fatalf("frame %d of %d: %v", i, len(frames), f.Status)
		}
		if f.Status == gm.SUCCESS || f.Status == gm.RANGE_SCAN_MORE || f.Status == gm.RANGE_SCAN_COMPLETE {
			if !bytes.Equal(f.Extras, want) {
				t.Fatalf("frame %d: extras %x, want %x", i, f.Extras, want)
			}
		}
		if !last && len(f.Body) < scanSendSize {
			t.Fatalf("frame %d of %d: %d bytes, under the send size", i, len(frames), len(f.Body))
		}
		b := f.Body
		for len(b) > 0 {
			if keyOnly {
				var k string
				k, b = leb(t, b)
				out.keys = append(out.keys, k)
				continue
			}
			if len(b) < 25 {
				t.Fatalf("document metadata truncated: %x", b)
			}
			d := scanDoc{flags: binary.BigEndian.Uint32(b), exp: binary.BigEndian.Uint32(b[4:]),
				seqno: binary.BigEndian.Uint64(b[8:]), cas: binary.BigEndian.Uint64(b[16:]), datatype: b[24]}
			d.key, b = leb(t, b[25:])
			d.value, b = leb(t, b)
			out.docs = append(out.docs, d)
			out.keys = append(out.keys, d.key)
		}
	}
	out.status = frames[len(frames)-1].Status
	out.frames = len(frames)
	return out
}

// leb reads one LEB128-prefixed string.
func leb(t testing.TB, b []byte) (string, []byte) {
	t.Helper()
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		t.Fatalf("bad length prefix in %x", b)
	}
	return string(b[w : w+int(n)]), b[w+int(n):]
}

// drain continues a scan with the given limits until it completes and
// returns every key, checking that each continue but the last ends with
// RANGE_SCAN_MORE, and the number of continues.
func (c *scanConn) drain(vb uint16, id []byte, keyOnly bool, items, bytes uint32) ([]string, int) {
	c.t.Helper()
	var keys []string
	for n := 1; ; n++ {
		s := decode(c.t, c.cont(vb, id, items, 0, bytes), keyOnly)
		keys = append(keys, s.keys...)
		switch s.status {
		case gm.RANGE_SCAN_COMPLETE:
			return keys, n
		case gm.RANGE_SCAN_MORE:
		default:
			c.t.Fatalf("continue %d: %v", n, s.status)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func rangeJSON(cid string, keyOnly bool, start, end string) string {
	return fmt.Sprintf(`{"collection":%q,"key_only":%v,"range":{"start":%q,"end":%q}}`, cid, keyOnly, b64(start), b64(end))
}

func TestRangeScanRanges(t *testing.T) {
	srv, addr := startScans(t, Config{}, nil)
	fill(t, srv, 0, 0, names("k%02d", 100)...)
	fill(t, srv, 0, 8, names("k%02d", 100)...)
	fill(t, srv, 0, 0x80, "k10x", "k11x")
	fill(t, srv, 1, 0, "k10a", "k10b")
	c := dialScans(t, addr, allFeatures...)
	for _, tc := range []struct {
		name string
		vb   uint16
		cfg  string
		want []string
	}{
		{"inclusive", 0, rangeJSON("0", true, "k10", "k19"), names("k1%d", 10)},
		{"exclusive start", 0, fmt.Sprintf(`{"key_only":true,"range":{"excl_start":%q,"end":%q}}`, b64("k10"), b64("k19")), names("k1%d", 10)[1:]},
		{"exclusive end", 0, fmt.Sprintf(`{"key_only":true,"range":{"start":%q,"excl_end":%q}}`, b64("k10"), b64("k19")), names("k1%d", 10)[:9]},
		{"one key", 0, rangeJSON("0", true, "k42", "k42"), []string{"k42"}},
		{"collection 8", 0, rangeJSON("8", true, "k9", "k9\xff"), names("k9%d", 10)},
		{"collection 0x80", 0, rangeJSON("80", true, "", "\xff"), []string{"k10x", "k11x"}},
		{"vbucket 1", 1, rangeJSON("0", true, "k", "l"), []string{"k10a", "k10b"}},
		{"whole collection", 0, `{"key_only":true}`, names("k%02d", 100)},
		{"whole collection 0x80", 0, `{"collection":"80","key_only":true}`, []string{"k10x", "k11x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := c.mustCreate(tc.vb, tc.cfg)
			got := decode(t, c.cont(tc.vb, id, 0, 0, 0), true)
			if got.status != gm.RANGE_SCAN_COMPLETE || !slices.Equal(got.keys, tc.want) {
				t.Fatalf("%v, keys %q; want COMPLETE, %q", got.status, got.keys, tc.want)
			}
			if st := c.cancel(tc.vb, id); st != gm.KEY_ENOENT {
				t.Fatalf("cancel of a completed scan: %v", st)
			}
		})
	}
	// A key stored over the wire, without Collections, is in the default
	// collection.
	plain := dialScans(t, addr, gm.FeatureXError, gm.FeatureJSON)
	if res := plain.do(&gm.MCRequest{Opcode: gm.SET, VBucket: 3, Key: []byte("wired"), Extras: make([]byte, 8), Body: []byte("x")}); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	id := plain.mustCreate(3, `{"key_only":true}`)
	if got := decode(t, plain.cont(3, id, 0, 0, 0), true); !slices.Equal(got.keys, []string{"wired"}) {
		t.Fatalf("keys %q", got.keys)
	}
}

func TestRangeScanDocuments(t *testing.T) {
	srv, addr := startScans(t, Config{}, nil)
	c := dialScans(t, addr, allFeatures...)
	ex := make([]byte, 8)
	binary.BigEndian.PutUint32(ex, 0x01020304)
	binary.BigEndian.PutUint32(ex[4:], 3000) // seconds from now
	stored := map[string]*gm.MCResponse{}
	for i := range 50 {
		name := fmt.Sprintf("doc%02d", i)
		value := strings.Repeat("x", i*10)
		dt := uint8(0)
		if i%2 == 0 {
			value, dt = fmt.Sprintf(`{"n":%d}`, i), gm.DatatypeFlagJSON
		}
		res := c.do(&gm.MCRequest{Opcode: gm.SET, Key: cache.CollectionKey(nil, 8, []byte(name)), Extras: ex, Body: []byte(value), DataType: dt})
		if res.Status != gm.SUCCESS {
			t.Fatal(res.Status)
		}
		stored[name] = res
	}
	id := c.mustCreate(0, rangeJSON("8", false, "doc", "doc\xff"))
	got := decode(t, c.cont(0, id, 0, 0, 0), false)
	if got.status != gm.RANGE_SCAN_COMPLETE || len(got.docs) != 50 {
		t.Fatalf("%v, %d documents", got.status, len(got.docs))
	}
	for i, d := range got.docs {
		name := fmt.Sprintf("doc%02d", i)
		it, _ := srv.Cache(DefaultBucket).Lookup(0, cache.CollectionKey(nil, 8, []byte(name)), false)
		wantDT := uint8(0)
		if i%2 == 0 {
			wantDT = gm.DatatypeFlagJSON
		}
		if d.key != name || d.value != string(it.Value) || d.flags != 0x01020304 || d.cas != stored[name].Cas ||
			d.seqno != it.Seqno || d.datatype != wantDT || int64(d.exp) != it.Expires.Unix() {
			t.Fatalf("document %d: %+v; stored %+v", i, d, it)
		}
	}
}

func TestRangeScanLimits(t *testing.T) {
	for _, loops := range []int{0, 2} {
		t.Run(fmt.Sprintf("event loops %d", loops), func(t *testing.T) { testRangeScanLimits(t, loops) })
	}
}

func testRangeScanLimits(t *testing.T, loops int) {
	srv, addr := startScans(t, Config{EventLoops: loops}, nil)
	all := names("key%05d", 3000)
	fill(t, srv, 0, 0, all...)
	c := dialScans(t, addr, allFeatures...)
	cfg := rangeJSON("0", true, "key", "key\xff")

	t.Run("items", func(t *testing.T) {
		id := c.mustCreate(0, cfg)
		for n := 0; n < 30; n++ {
			s := decode(t, c.cont(0, id, 100, 0, 0), true)
			want := gm.RANGE_SCAN_MORE
			if n == 29 {
				want = gm.RANGE_SCAN_COMPLETE // the limit meets the end
			}
			if s.status != want || !slices.Equal(s.keys, all[100*n:100*n+100]) {
				t.Fatalf("continue %d: %v with %d keys", n, s.status, len(s.keys))
			}
		}
		if res := c.cont(0, id, 100, 0, 0); res[0].Status != gm.KEY_ENOENT {
			t.Fatalf("continue after COMPLETE: %v", res[0].Status)
		}
	})
	t.Run("items past the end", func(t *testing.T) {
		id := c.mustCreate(0, cfg)
		keys, n := c.drain(0, id, true, 1000, 0)
		if !slices.Equal(keys, all) || n != 3 {
			t.Fatalf("%d keys in %d continues", len(keys), n)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		id := c.mustCreate(0, rangeJSON("0", true, "key00000", "key00009"))
		keys, n := c.drain(0, id, true, 0, 1) // at least one key per continue
		if !slices.Equal(keys, all[:10]) || n != 10 {
			t.Fatalf("%q in %d continues", keys, n)
		}
		// Each key counts its collection id: 9 bytes a key.
		id = c.mustCreate(0, cfg)
		keys, n = c.drain(0, id, true, 0, 9*100)
		if !slices.Equal(keys, all) || n != 30 {
			t.Fatalf("%d keys in %d continues", len(keys), n)
		}
	})
	t.Run("documents in frames", func(t *testing.T) {
		id := c.mustCreate(0, rangeJSON("0", false, "key", "key\xff"))
		s := decode(t, c.cont(0, id, 0, 0, 0), false) // decode checks every frame but the last has 8 KiB
		if s.status != gm.RANGE_SCAN_COMPLETE || len(s.docs) != 3000 || s.frames < 10 {
			t.Fatalf("%v, %d documents in %d frames", s.status, len(s.docs), s.frames)
		}
	})
	t.Run("time", func(t *testing.T) {
		id := c.mustCreate(0, cfg)
		s := decode(t, c.cont(0, id, 0, 1, 0), true)
		if len(s.keys) == 0 || (s.status != gm.RANGE_SCAN_MORE && s.status != gm.RANGE_SCAN_COMPLETE) {
			t.Fatalf("a 1ms continue: %v with %d keys", s.status, len(s.keys))
		}
		c.cancel(0, id)
	})
	t.Run("server cap", func(t *testing.T) {
		srv, addr := startScans(t, Config{EventLoops: loops}, func(rs *rangeScans) { rs.maxContinue = 5 * scanSendSize })
		fill(t, srv, 0, 0, all...)
		c := dialScans(t, addr, allFeatures...)
		id := c.mustCreate(0, rangeJSON("0", false, "key", "key\xff"))
		s := decode(t, c.cont(0, id, 0, 0, 0), false)
		if s.status != gm.RANGE_SCAN_MORE || s.frames != 5 {
			t.Fatalf("%v after %d frames", s.status, s.frames)
		}
		keys, _ := c.drain(0, id, false, 0, 0)
		if !slices.Equal(append(s.keys, keys...), all) {
			t.Fatal("keys lost across the server's cap")
		}
	})
}

// A scan sees the keys as they are when it reaches them: deleted ones are
// skipped, new ones not returned, values the latest.
func TestRangeScanReadsCurrent(t *testing.T) {
	srv, addr := startScans(t, Config{}, nil)
	fill(t, srv, 0, 0, names("k%d", 10)...)
	c := dialScans(t, addr, allFeatures...)
	id := c.mustCreate(0, rangeJSON("0", false, "k", "l"))
	c.do(&gm.MCRequest{Opcode: gm.DELETE, Key: []byte("\x00k3")})
	c.do(&gm.MCRequest{Opcode: gm.SET, Key: []byte("\x00k4"), Extras: make([]byte, 8), Body: []byte("new")})
	c.do(&gm.MCRequest{Opcode: gm.SET, Key: []byte("\x00k45"), Extras: make([]byte, 8), Body: []byte("added")})
	s := decode(t, c.cont(0, id, 0, 0, 0), false)
	var got []string
	for _, d := range s.docs {
		got = append(got, d.key+"="+d.value)
	}
	want := []string{"k0=v:k0", "k1=v:k1", "k2=v:k2", "k4=new", "k5=v:k5", "k6=v:k6", "k7=v:k7", "k8=v:k8", "k9=v:k9"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q", got)
	}
}

func TestRangeScanSampling(t *testing.T) {
	srv, addr := startScans(t, Config{}, nil)
	fill(t, srv, 0, 8, names("s%04d", 1000)...)
	fill(t, srv, 0, 0, names("d%04d", 10)...)
	c := dialScans(t, addr, allFeatures...)
	sample := func(cfg string) []string {
		id := c.mustCreate(0, cfg)
		keys, _ := c.drain(0, id, true, 0, 0)
		return keys
	}
	a := sample(`{"collection":"8","key_only":true,"sampling":{"seed":7,"samples":50}}`)
	if len(a) != 50 || !slices.IsSorted(a) || !strings.HasPrefix(a[0], "s") {
		t.Fatalf("sample: %q", a)
	}
	if b := sample(`{"collection":"8","key_only":true,"sampling":{"seed":7,"samples":50}}`); !slices.Equal(a, b) {
		t.Fatal("the same seed picked other keys")
	}
	if b := sample(`{"collection":"8","key_only":true,"sampling":{"seed":8,"samples":50}}`); slices.Equal(a, b) {
		t.Fatal("another seed picked the same keys")
	}
	if all := sample(`{"key_only":true,"sampling":{"samples":5000}}`); !slices.Equal(all, names("d%04d", 10)) {
		t.Fatalf("a sample larger than the collection: %q", all)
	}
	if none := sample(`{"key_only":true,"sampling":{"samples":0}}`); len(none) != 0 {
		t.Fatalf("a sample of 0: %q", none)
	}
	if res := c.create(0, `{"collection":"80","sampling":{"samples":5}}`); res.Status != gm.KEY_ENOENT {
		t.Fatalf("sample of an empty collection: %v", res.Status)
	}
}

func TestRangeScanCreateErrors(t *testing.T) {
	srv, addr := startScans(t, Config{}, nil)
	fill(t, srv, 0, 0, names("k%02d", 10)...)
	high, uuid := srv.Cache(DefaultBucket).HighSeqno(0)
	c := dialScans(t, addr, allFeatures...)
	long := strings.Repeat("L", 251)
	snap := func(extra string) string {
		return fmt.Sprintf(`{"range":{"start":%q,"end":%q},"snapshot_requirements":{"vb_uuid":"%d"%s}}`, b64("k"), b64("l"), uuid, extra)
	}
	for _, tc := range []struct {
		name   string
		cfg    string
		status gm.Status
	}{
		{"not JSON", `...`, gm.EINVAL},
		{"an array", `[]`, gm.EINVAL},
		{"null", `null`, gm.EINVAL},
		{"range and sampling", `{"range":{"start":"","end":""},"sampling":{"samples":1}}`, gm.EINVAL},
		{"start and excl_start", `{"range":{"start":"","excl_start":"","end":"/w=="}}`, gm.EINVAL},
		{"no end", `{"range":{"start":""}}`, gm.EINVAL},
		{"range not an object", `{"range":"x"}`, gm.EINVAL},
		{"range null", `{"range":null}`, gm.EINVAL},
		{"key not base64", `{"range":{"start":"!!","end":"/w=="}}`, gm.EINVAL},
		{"start too long", rangeJSON("0", true, long, "k"), gm.EINVAL},
		{"end too long", rangeJSON("0", true, "k", long), gm.EINVAL},
		{"key_only not a bool", `{"key_only":"yes"}`, gm.EINVAL},
		{"collection not hex", `{"collection":"zz"}`, gm.EINVAL},
		{"collection 0x", `{"collection":"0x8"}`, gm.EINVAL},
		{"collection reserved", `{"collection":"1"}`, gm.EINVAL},
		{"collection too long", `{"collection":"000000008"}`, gm.EINVAL},
		{"collection a number", `{"collection":8}`, gm.EINVAL},
		{"collection unknown", `{"collection":"9"}`, gm.UNKNOWN_COLLECTION},
		{"name too long", `{"name":"` + strings.Repeat("n", 51) + `"}`, gm.EINVAL},
		{"samples missing", `{"sampling":{"seed":1}}`, gm.EINVAL},
		{"samples negative", `{"sampling":{"samples":-1}}`, gm.EINVAL},
		{"samples fractional", `{"sampling":{"samples":1.5}}`, gm.EINVAL},
		{"include_xattrs", `{"include_xattrs":false}`, gm.NOT_SUPPORTED},
		{"empty range", rangeJSON("0", true, "L", "M\xff"), gm.KEY_ENOENT},
		{"inverted range", rangeJSON("0", true, "k09", "k01"), gm.KEY_ENOENT},
		{"empty collection", `{"collection":"8"}`, gm.KEY_ENOENT},
		{"vb_uuid missing", `{"snapshot_requirements":{"seqno":1}}`, gm.EINVAL},
		{"vb_uuid not decimal", `{"snapshot_requirements":{"vb_uuid":"123abc","seqno":1}}`, gm.EINVAL},
		{"vb_uuid a number", `{"snapshot_requirements":{"vb_uuid":123,"seqno":1}}`, gm.EINVAL},
		{"seqno missing", snap(``), gm.EINVAL},
		{"vb_uuid not the vbucket's", `{"snapshot_requirements":{"vb_uuid":"1","seqno":1}}`, gm.VBUUID_NOT_EQUAL},
		{"seqno ahead", snap(fmt.Sprintf(`,"seqno":%d`, high+1)), gm.TMPFAIL},
		{"seqno ahead, timeout 0", snap(fmt.Sprintf(`,"seqno":%d,"timeout_ms":0`, high+1)), gm.TMPFAIL},
		{"seqno reached", snap(fmt.Sprintf(`,"seqno":%d`, high)), gm.SUCCESS},
		{"seqno exists", snap(fmt.Sprintf(`,"seqno":%d,"seqno_exists":true`, high)), gm.SUCCESS},
		// k00's seqno: after the manifest's system events.
		{"seqno replaced", snap(fmt.Sprintf(`,"seqno":%d,"seqno_exists":true`, high-9)), gm.SUCCESS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "seqno replaced" {
				fill(t, srv, 0, 0, "k00") // replaces seqno 1
				tc.status = gm.NOT_STORED
			}
			res := c.create(0, tc.cfg)
			if res.Status != tc.status {
				t.Fatalf("%s: %v %s; want %v", tc.cfg, res.Status, res.Body, tc.status)
			}
			switch tc.status {
			case gm.EINVAL:
				var e struct{ Error struct{ Context string } }
				if json.Unmarshal(res.Body, &e) != nil || e.Error.Context == "" || res.DataType != gm.DatatypeFlagJSON {
					t.Fatalf("EINVAL without an error context: %q", res.Body)
				}
			case gm.UNKNOWN_COLLECTION:
				if string(res.Body) != `{"manifest_uid":"2"}` {
					t.Fatalf("UNKNOWN_COLLECTION body %q", res.Body)
				}
			case gm.SUCCESS:
				c.cancel(0, res.Body)
			}
		})
	}
	t.Run("datatype not JSON", func(t *testing.T) {
		res := c.do(&gm.MCRequest{Opcode: gm.CREATE_RANGE_SCAN, Body: []byte(`{}`)})
		if res.Status != gm.EINVAL {
			t.Fatalf("%v", res.Status)
		}
	})
	t.Run("JSON not negotiated", func(t *testing.T) {
		c := dialScans(t, addr, gm.FeatureXError)
		if res := c.create(0, `{}`); res.Status != gm.EINVAL || !bytes.Contains(res.Body, []byte("JSON")) {
			t.Fatalf("%v %q", res.Status, res.Body)
		}
	})
	t.Run("vbucket not here", func(t *testing.T) {
		if res := c.create(2000, `{}`); res.Status != gm.NOT_MY_VBUCKET {
			t.Fatalf("%v", res.Status)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		c := dialScans(t, addr, allFeatures...)
		res := c.do(&gm.MCRequest{Opcode: gm.CREATE_RANGE_SCAN, Key: []byte("k"), DataType: gm.DatatypeFlagJSON, Body: []byte(`{}`)})
		if res.Status != gm.EINVAL {
			t.Fatalf("%v", res.Status)
		}
		var r gm.MCResponse
		if err := c.r.ReadResponse(&r); err == nil {
			t.Fatal("connection still open after a malformed create")
		}
	})
	t.Run("status for a client without XERROR", func(t *testing.T) {
		c := dialScans(t, addr, gm.FeatureJSON)
		if res := c.create(0, `{}`); res.Status != gm.SUCCESS { // classic statuses answer as usual
			t.Fatalf("%v", res.Status)
		}
		if res := c.create(0, `{"range":{}}`); res.Status != gm.EINVAL || string(res.Body) != string(msgInvalid) {
			t.Fatalf("%v %q", res.Status, res.Body)
		}
		c.send(&gm.MCRequest{Opcode: gm.CREATE_RANGE_SCAN, DataType: gm.DatatypeFlagJSON, Body: []byte(`{"snapshot_requirements":{"vb_uuid":"1","seqno":0}}`)})
		var r gm.MCResponse
		if err := c.r.ReadResponse(&r); err == nil {
			t.Fatalf("VbUuidNotEqual answered (%v) to a client without XERROR", r.Status)
		}
	})
}

// A create that requires a seqno the vbucket has not reached waits for
// it, at most timeout_ms, without holding up the connection's other
// requests.
func TestRangeScanWaitsForSeqno(t *testing.T) {
	for _, loops := range []int{0, 2} {
		srv, addr := startScans(t, Config{EventLoops: loops}, nil)
		fill(t, srv, 0, 0, "k1")
		high, uuid := srv.Cache(DefaultBucket).HighSeqno(0)
		c := dialScans(t, addr, allFeatures...)
		req := func(timeout int) *gm.MCRequest {
			return &gm.MCRequest{Opcode: gm.CREATE_RANGE_SCAN, DataType: gm.DatatypeFlagJSON, Opaque: uint32(timeout), Body: fmt.Appendf(nil,
				`{"key_only":true,"snapshot_requirements":{"vb_uuid":"%d","seqno":%d,"timeout_ms":%d}}`, uuid, high+1, timeout)}
		}
		start := time.Now()
		c.send(req(50))
		if res := c.recv(); res.Status != gm.TMPFAIL || res.Opaque != 50 || time.Since(start) < 50*time.Millisecond {
			t.Fatalf("event loops %d: %v after %v", loops, res.Status, time.Since(start))
		}
		c.send(req(5000))
		c.send(&gm.MCRequest{Opcode: gm.NOOP, Opaque: 1})
		if res := c.recv(); res.Opcode != gm.NOOP {
			t.Fatalf("event loops %d: a waiting create held up the NOOP: %v", loops, res.Opcode)
		}
		fill(t, srv, 0, 0, "k2") // reaches the seqno
		res := c.recv()
		if res.Status != gm.SUCCESS || res.Opaque != 5000 || len(res.Body) != 16 {
			t.Fatalf("event loops %d: %v %x", loops, res.Status, res.Body)
		}
		if s := decode(t, c.cont(0, res.Body, 0, 0, 0), true); !slices.Equal(s.keys, []string{"k1", "k2"}) {
			t.Fatalf("event loops %d: %q", loops, s.keys)
		}
	}
}

func TestRangeScanCancel(t *testing.T) {
	srv, addr := startScans(t, Config{}, nil)
	fill(t, srv, 0, 0, names("k%02d", 10)...)
	fill(t, srv, 5, 0, names("k%02d", 10)...)
	c := dialScans(t, addr, allFeatures...)
	id := c.mustCreate(0, `{"key_only":true}`)
	if st := c.cancel(5, id); st != gm.KEY_ENOENT {
		t.Fatalf("cancel in another vbucket: %v", st)
	}
	if res := c.cont(5, id, 0, 0, 0); res[0].Status != gm.KEY_ENOENT {
		t.Fatalf("continue in another vbucket: %v", res[0].Status)
	}
	if st := c.cancel(0, id); st != gm.SUCCESS {
		t.Fatalf("cancel: %v", st)
	}
	if st := c.cancel(0, id); st != gm.KEY_ENOENT {
		t.Fatalf("second cancel: %v", st)
	}
	if res := c.cont(0, id, 0, 0, 0); len(res) != 1 || res[0].Status != gm.KEY_ENOENT {
		t.Fatalf("continue of a cancelled scan: %v", res[0].Status)
	}
	unknown := bytes.Repeat([]byte{7}, 16)
	if res := c.cont(0, unknown, 0, 0, 0); res[0].Status != gm.KEY_ENOENT {
		t.Fatalf("continue of an unknown uuid: %v", res[0].Status)
	}
	if st := c.cancel(0, unknown); st != gm.KEY_ENOENT {
		t.Fatalf("cancel of an unknown uuid: %v", st)
	}
	// Another connection may continue and cancel a scan.
	id = c.mustCreate(0, `{"key_only":true}`)
	other := dialScans(t, addr, allFeatures...)
	if s := decode(t, other.cont(0, id, 3, 0, 0), true); s.status != gm.RANGE_SCAN_MORE || len(s.keys) != 3 {
		t.Fatalf("continue from another connection: %v %q", s.status, s.keys)
	}
	if st := other.cancel(0, id); st != gm.SUCCESS {
		t.Fatalf("cancel from another connection: %v", st)
	}
	// Malformed continue and cancel close the connection.
	for _, req := range []*gm.MCRequest{
		{Opcode: gm.CONTINUE_RANGE_SCAN, Extras: make([]byte, 16)},
		{Opcode: gm.CANCEL_RANGE_SCAN, Extras: make([]byte, 28)},
		{Opcode: gm.CANCEL_RANGE_SCAN, Extras: make([]byte, 16), Body: []byte("x")},
	} {
		c := dialScans(t, addr, allFeatures...)
		if res := c.do(req); res.Status != gm.EINVAL {
			t.Fatalf("%v with %d bytes of extras: %v", req.Opcode, len(req.Extras), res.Status)
		}
		var r gm.MCResponse
		if err := c.r.ReadResponse(&r); err == nil {
			t.Fatal("connection still open")
		}
	}
}

// A cancel while a continue is sending ends the continue with
// RANGE_SCAN_CANCELLED, and a second continue meanwhile gets EBUSY.
func TestRangeScanCancelDuringContinue(t *testing.T) {
	// 64 MiB of documents in one continue: more than the sockets buffer,
	// so the continue waits for the client, which does not read.
	srv, addr := startScans(t, Config{Cache: cache.Config{MaxBytes: 256 << 20}}, func(rs *rangeScans) { rs.maxContinue = 1 << 30 })
	c := srv.Cache(DefaultBucket)
	value := bytes.Repeat([]byte("v"), 64<<10)
	for i := range 1024 {
		c.Store(0, cache.Set, cache.CollectionKey(nil, 0, fmt.Appendf(nil, "big%04d", i)), cache.Write{Value: value})
	}
	a := dialScans(t, addr, allFeatures...)
	b := dialScans(t, addr, allFeatures...)
	id := a.mustCreate(0, `{}`)
	a.send(continueReq(0, id, 0, 0, 0))
	if first := a.recv(); first.Status != gm.SUCCESS { // the continue is under way
		t.Fatalf("continue: %v", first.Status)
	}
	if res := b.cont(0, id, 1, 0, 0); res[0].Status != gm.EBUSY {
		t.Fatalf("second continue: %v", res[0].Status)
	}
	if st := b.cancel(0, id); st != gm.SUCCESS {
		t.Fatalf("cancel: %v", st)
	}
	frames := a.read()
	last := frames[len(frames)-1]
	if last.Status != gm.RANGE_SCAN_CANCELLED || len(last.Body) != 0 {
		t.Fatalf("the continue ended with %v after %d frames", last.Status, len(frames))
	}
	if res := b.cont(0, id, 0, 0, 0); res[0].Status != gm.KEY_ENOENT {
		t.Fatalf("continue after cancel: %v", res[0].Status)
	}
}

func TestRangeScanOpenScanCap(t *testing.T) {
	if n := maxRangeScans(cache.DefaultMaxBytes); n != 52 {
		t.Fatalf("a 64 MiB bucket holds %d scans, kv_engine 52", n)
	}
	if n := maxRangeScans(1 << 40); n != 3276 {
		t.Fatalf("a 1 TiB bucket holds %d scans, kv_engine 3276", n)
	}
	if n := maxRangeScans(1 << 20); n != 1 {
		t.Fatalf("a 1 MiB bucket holds %d scans, kv_engine 1", n)
	}
	srv, addr := startScans(t, Config{}, func(rs *rangeScans) {
		for _, tbl := range rs.tables {
			tbl.max = 3
		}
	})
	fill(t, srv, 0, 0, "k")
	c := dialScans(t, addr, allFeatures...)
	var ids [][]byte
	for range 3 {
		ids = append(ids, c.mustCreate(0, `{}`))
	}
	if res := c.create(0, `{}`); res.Status != gm.EBUSY {
		t.Fatalf("a fourth scan: %v", res.Status)
	}
	c.cancel(0, ids[0])
	ids[0] = c.mustCreate(0, `{}`)
	decode(t, c.cont(0, ids[1], 0, 0, 0), false) // completes: its slot is free
	c.mustCreate(0, `{}`)
	if res := c.create(0, `{}`); res.Status != gm.EBUSY {
		t.Fatalf("a fourth scan: %v", res.Status)
	}
}

// The keys the open scans hold are bounded in memory too.
func TestRangeScanMemoryCap(t *testing.T) {
	var tbl *scanTable
	srv, addr := startScans(t, Config{}, func(rs *rangeScans) {
		for _, t := range rs.tables {
			tbl = t
		}
	})
	fill(t, srv, 0, 0, names("k%04d", 1000)...)
	c := dialScans(t, addr, allFeatures...)
	id := c.mustCreate(0, `{}`)
	tbl.mu.Lock()
	one := tbl.bytes
	if one < 1000*(6+16) {
		t.Errorf("a scan of 1000 keys holds %d bytes", one)
	}
	tbl.maxBytes = one * 3 / 2
	tbl.mu.Unlock()
	if res := c.create(0, `{}`); res.Status != gm.EBUSY {
		t.Fatalf("a second scan past the memory bound: %v", res.Status)
	}
	c.mustCreate(0, rangeJSON("0", true, "k0000", "k0099")) // a small one fits
	c.cancel(0, id)
	c.mustCreate(0, `{}`)
}

// A scan is cancelled when its lifetime ends, and when the connection that
// made it closes.
func TestRangeScanLifetimeAndDisconnect(t *testing.T) {
	srv, addr := startScans(t, Config{}, func(rs *rangeScans) {
		rs.lifetime = 100 * time.Millisecond
		for _, tbl := range rs.tables {
			tbl.max = 1
		}
	})
	fill(t, srv, 0, 0, "k")
	c := dialScans(t, addr, allFeatures...)
	// The cap holds one scan: a create succeeds once the scan is gone.
	gone := func(c *scanConn, id []byte) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			res := c.create(0, `{}`)
			if res.Status == gm.SUCCESS {
				break
			}
			if res.Status != gm.EBUSY || time.Now().After(deadline) {
				t.Fatalf("create: %v", res.Status)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if res := c.cont(0, id, 0, 0, 0); res[0].Status != gm.KEY_ENOENT {
			t.Fatalf("continue of a scan that should be gone: %v", res[0].Status)
		}
	}
	start := time.Now()
	id := c.mustCreate(0, `{}`)
	gone(c, id)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("the scan was gone after %v, before its lifetime", d)
	}

	srv2, addr2 := startScans(t, Config{}, func(rs *rangeScans) {
		for _, tbl := range rs.tables {
			tbl.max = 1
		}
	})
	fill(t, srv2, 0, 0, "k")
	maker := dialScans(t, addr2, allFeatures...)
	id = maker.mustCreate(0, `{}`)
	maker.nc.Close()
	gone(dialScans(t, addr2, allFeatures...), id)
}

// A scan ends with NOT_MY_VBUCKET when its vbucket stops being active or
// changes history, and with UNKNOWN_COLLECTION when its collection is
// dropped.
func TestRangeScanVBucketAndCollectionChanges(t *testing.T) {
	srv, addr := startScans(t, Config{}, nil)
	c := dialScans(t, addr, allFeatures...)
	fill(t, srv, 9, 0, "k")
	id := c.mustCreate(9, `{}`)
	cc := srv.Cache(DefaultBucket)
	if err := cc.SetState(9, cache.Replica); err != nil {
		t.Fatal(err)
	}
	if res := c.cont(9, id, 0, 0, 0); res[0].Status != gm.NOT_MY_VBUCKET {
		t.Fatalf("continue in a replica: %v", res[0].Status)
	}
	cc.SetState(9, cache.Active) // a new history: the scan's is gone
	if res := c.cont(9, id, 0, 0, 0); res[0].Status != gm.NOT_MY_VBUCKET {
		t.Fatalf("continue in another history: %v", res[0].Status)
	}
	if res := c.cont(9, id, 0, 0, 0); res[0].Status != gm.KEY_ENOENT {
		t.Fatalf("the scan outlived its vbucket's history: %v", res[0].Status)
	}

	fill(t, srv, 0, 8, "k")
	id = c.mustCreate(0, `{"collection":"8"}`)
	res := c.do(&gm.MCRequest{Opcode: gm.COLLECTIONS_SET_MANIFEST, Body: []byte(`{"uid":"3","scopes":[{"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"}]}]}`)})
	if res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	if res := c.cont(0, id, 0, 0, 0); res[0].Status != gm.UNKNOWN_COLLECTION || string(res[0].Body) != `{"manifest_uid":"3"}` {
		t.Fatalf("continue of a dropped collection: %v %q", res[0].Status, res[0].Body)
	}
}

// A client without XERROR cannot read the statuses that end a continue:
// the connection is closed.
func TestRangeScanContinueNeedsXError(t *testing.T) {
	srv, addr := startScans(t, Config{}, nil)
	fill(t, srv, 0, 0, "k")
	c := dialScans(t, addr, gm.FeatureJSON)
	id := c.mustCreate(0, `{}`)
	c.send(continueReq(0, id, 0, 0, 0))
	var r gm.MCResponse
	if err := c.r.ReadResponse(&r); err == nil {
		t.Fatalf("answered %v", r.Status)
	}
}

// Our client (its compatibility calls: Send, Transmit, Receive) and the
// reference client (couchbase/gomemcached v0.3.4) scan gocache.
func TestRangeScanClients(t *testing.T) {
	srv, addr := startScans(t, Config{}, nil)
	fill(t, srv, 0, 0, names("k%03d", 300)...)
	fill(t, srv, 0, 8, names("c%03d", 20)...)

	t.Run("ours", func(t *testing.T) {
		cl, err := mc.Connect("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if _, err := cl.EnableFeatures(mc.Features{mc.FeatureXerror, mc.FeatureDataType}); err != nil {
			t.Fatal(err)
		}
		res, err := cl.Send(&gm.MCRequest{Opcode: gm.CREATE_RANGE_SCAN, DataType: gm.DatatypeFlagJSON, Body: []byte(rangeJSON("0", true, "k100", "k199"))})
		if err != nil || len(res.Body) != 16 {
			t.Fatalf("create: %v", err)
		}
		id := bytes.Clone(res.Body)
		var keys []string
		for done := false; !done; {
			req := continueReq(0, id, 30, 0, 0)
			req.Opaque = 77
			if err := cl.Transmit(req); err != nil {
				t.Fatal(err)
			}
			for {
				res, err := cl.Receive()
				if res == nil {
					t.Fatal(err)
				}
				s := decode(t, []*gm.MCResponse{res}, true)
				keys = append(keys, s.keys...)
				if res.Status == gm.RANGE_SCAN_COMPLETE {
					done = true
				}
				if res.Status != gm.SUCCESS {
					break
				}
			}
		}
		if !slices.Equal(keys, names("k%03d", 300)[100:200]) {
			t.Fatalf("keys %q", keys)
		}
	})

	t.Run("reference", func(t *testing.T) {
		cl, err := ref.Connect("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if _, err := cl.EnableFeatures(ref.Features{ref.FeatureXerror, ref.FeatureDataType, ref.FeatureCollections}); err != nil {
			t.Fatal(err)
		}
		drain := func(id []byte, items uint32) (keys []string, continues int) {
			for {
				continues++
				if err := cl.ContinueRangeScan(0, id, 99, items, 0, 0); err != nil {
					t.Fatal(err)
				}
				for {
					res, err := cl.Receive()
					if res == nil {
						t.Fatal(err)
					}
					if res.Opaque != 99 {
						t.Fatalf("opaque %d", res.Opaque)
					}
					s := decode(t, []*gm.MCResponse{{Status: gm.Status(res.Status), Extras: res.Extras, Body: res.Body}}, res.Extras[3] == 0)
					keys = append(keys, s.keys...)
					switch res.Status {
					case refmc.SUCCESS:
						continue
					case refmc.RANGE_SCAN_COMPLETE:
						return keys, continues
					case refmc.RANGE_SCAN_MORE:
					default:
						t.Fatalf("continue: %v", res.Status)
					}
					break
				}
			}
		}
		res, err := cl.CreateRangeScan(0, []byte("k010"), false, []byte("k020"), true, false)
		if err != nil || len(res.Body) != 16 {
			t.Fatalf("CreateRangeScan: %v %v", res, err)
		}
		keys, n := drain(res.Body, 4)
		if !slices.Equal(keys, names("k%03d", 300)[10:20]) || n != 3 {
			t.Fatalf("range scan: %q in %d continues", keys, n)
		}
		res, err = cl.CreateRangeScan(0, []byte("c000"), true, []byte("c\xff"), false, true, &ref.ClientContext{CollId: 8})
		if err != nil {
			t.Fatalf("CreateRangeScan in collection 8: %v", err)
		}
		if keys, _ := drain(res.Body, 0); !slices.Equal(keys, names("c%03d", 20)[1:]) {
			t.Fatalf("collection 8: %q", keys)
		}
		res, err = cl.CreateRandomScan(0, 25, true)
		if err != nil {
			t.Fatalf("CreateRandomScan: %v", err)
		}
		if keys, _ := drain(res.Body, 0); len(keys) != 25 || !slices.IsSorted(keys) {
			t.Fatalf("random scan: %q", keys)
		}
		res, err = cl.CreateRandomScan(0, 5, false)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := cl.CancelRangeScan(0, res.Body, 5); err != nil || res.Status != refmc.SUCCESS {
			t.Fatalf("CancelRangeScan: %v %v", res, err)
		}
		if res, _ := cl.CancelRangeScan(0, res.Body, 6); res == nil || res.Status != refmc.KEY_ENOENT {
			t.Fatalf("second CancelRangeScan: %v", res)
		}
	})
}

// FuzzRangeScanCreate feeds arbitrary values to the create's JSON
// parser: it never panics, and what it accepts is within kv_engine's
// limits.
func FuzzRangeScanCreate(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"collection":"f2","range":{"end":"dXNlcv8=","start":"dXNlcg=="}}`,
		`{"collection":"f2","key_only":true,"range":{"end":"dXNlcv8=","start":"dXNlcg=="},"snapshot_requirements":{"vb_uuid":"16627788222","seqno":1000,"timeout_ms":2000}}`,
		`{"collection":"f2","sampling":{"seed":18111,"samples":512}}`,
		`{"range":{"excl_start":"","excl_end":"/w=="},"include_xattrs":true,"name":"n"}`,
		`{"range":null}`, `[]`, `null`, `{"sampling":{"samples":-1}}`, `{"collection":"ffffffff"}`,
		`{"snapshot_requirements":{"vb_uuid":"18446744073709551616","seqno":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseScanConfig(data)
		if err != nil {
			return
		}
		if len(cfg.start) > maxKeyLen || len(cfg.end) > maxKeyLen || len(cfg.name) > maxScanName ||
			cfg.sample && cfg.wholeCollection || cfg.cid >= 1 && cfg.cid <= 7 {
			t.Fatalf("accepted %q: %+v", data, cfg)
		}
		if cfg.snapshot != nil && cfg.snapshot.timeout > time.Duration(1<<32)*time.Millisecond {
			t.Fatalf("timeout %v", cfg.snapshot.timeout)
		}
	})
}

// FuzzRangeScanWire sends a create with an arbitrary value and then
// arbitrary continues and cancels, of the scan made or of arbitrary
// uuids, in arbitrary vbuckets: no handler panics, and every request is
// answered or the connection closed.
func FuzzRangeScanWire(f *testing.F) {
	f.Add([]byte(`{"key_only":true}`), []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, uint16(0), false)
	f.Add([]byte(`{"sampling":{"samples":3}}`), []byte{0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0}, uint16(0), true)
	f.Add([]byte(`{"range":{"excl_start":"aw==","end":"bA=="}}`), []byte{0, 0, 0, 2}, uint16(1), false)
	var panics atomic.Int64
	srv, addr := startScans(f, Config{Cache: cache.Config{VBuckets: 4}, Logger: slog.New(panicLog{&panics})}, nil)
	fill(f, srv, 0, 0, names("k%03d", 200)...)
	fill(f, srv, 1, 8, names("k%03d", 20)...)
	f.Fuzz(func(t *testing.T, cfg, limits []byte, vb uint16, cancel bool) {
		c := dialScans(t, addr, allFeatures...)
		c.nc.SetDeadline(time.Now().Add(5 * time.Second))
		res := c.create(vb, string(cfg))
		id := bytes.Repeat([]byte{1}, 16)
		if res.Status == gm.SUCCESS {
			id = res.Body
		}
		for len(limits) > 0 {
			var ex [12]byte
			n := copy(ex[:], limits)
			limits = limits[n:]
			req := continueReq(vb, id, binary.BigEndian.Uint32(ex[:]), binary.BigEndian.Uint32(ex[4:])%10, binary.BigEndian.Uint32(ex[8:]))
			c.send(req)
			var r gm.MCResponse
			for r.Status == gm.SUCCESS {
				if err := c.r.ReadResponse(&r); err != nil {
					t.Fatalf("continue not answered: %v", err)
				}
			}
		}
		if cancel {
			c.cancel(vb, id)
		}
		if n := panics.Load(); n != 0 {
			t.Fatalf("%d handler panics", n)
		}
	})
}

// panicLog counts the handler panics the server logs.
type panicLog struct{ n *atomic.Int64 }

func (h panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (h panicLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		h.n.Add(1)
	}
	return nil
}
func (h panicLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h panicLog) WithGroup(string) slog.Handler      { return h }

// BenchmarkRangeScan scans 100,000 keys of one vbucket end to end, keys
// only and documents of 100 bytes: one create, then continues without
// limits until the scan completes.
func BenchmarkRangeScan(b *testing.B) {
	for _, keyOnly := range []bool{true, false} {
		b.Run(map[bool]string{true: "keys", false: "documents"}[keyOnly], func(b *testing.B) {
			srv, addr := startScans(b, Config{Cache: cache.Config{MaxBytes: 1 << 30}}, nil)
			c := srv.Cache(DefaultBucket)
			const n = 100_000
			value := bytes.Repeat([]byte("v"), 100)
			for i := range n {
				c.Store(0, cache.Set, cache.CollectionKey(nil, 0, fmt.Appendf(nil, "key:%010d", i)), cache.Write{Value: value})
			}
			conn := dialScans(b, addr, allFeatures...)
			cfg := `{"key_only":` + strconv.FormatBool(keyOnly) + `}`
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				conn.nc.SetDeadline(time.Now().Add(time.Minute))
				id := conn.mustCreate(0, cfg)
				got := 0
				for done := false; !done; {
					conn.send(continueReq(0, id, 0, 0, 0))
					for {
						res := conn.recv()
						if res.Status != gm.SUCCESS {
							done = res.Status == gm.RANGE_SCAN_COMPLETE
							if !done && res.Status != gm.RANGE_SCAN_MORE {
								b.Fatal(res.Status)
							}
						}
						got += countRecords(res.Body, keyOnly)
						if res.Status != gm.SUCCESS {
							break
						}
					}
				}
				if got != n {
					b.Fatalf("%d keys", got)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
		})
	}
}

// countRecords counts the records of a continue's value, skipping them
// without copying.
func countRecords(b []byte, keyOnly bool) int {
	n := 0
	for len(b) > 0 {
		if !keyOnly {
			b = b[25:]
		}
		l, w := binary.Uvarint(b)
		b = b[w+int(l):]
		if !keyOnly {
			l, w = binary.Uvarint(b)
			b = b[w+int(l):]
		}
		n++
	}
	return n
}

// In a cluster, a scan of a vbucket the node does not hold, and a
// continue whose vbucket left the node, answer NOT_MY_VBUCKET with the
// cluster config, as every key command does, so that a client follows
// the map.
func TestRangeScanNotMyVBucketCarriesConfig(t *testing.T) {
	srv, addr := startScans(t, Config{Cache: cache.Config{VBuckets: 16},
		Cluster: &ClusterConfig{Nodes: []string{"127.0.0.1:1", "127.0.0.1:2"}}}, nil)
	c := dialScans(t, addr, allFeatures...)
	rev := func(res *gm.MCResponse) int64 {
		t.Helper()
		var cfg struct {
			Rev int64 `json:"rev"`
		}
		if res.Status != gm.NOT_MY_VBUCKET || json.Unmarshal(res.Body, &cfg) != nil || res.DataType&gm.DatatypeFlagJSON == 0 {
			t.Fatalf("%v, datatype %d, %q: want NOT_MY_VBUCKET with the config", res.Status, res.DataType, res.Body)
		}
		return cfg.Rev
	}
	if r := rev(c.create(1, `{}`)); r != 1 { // vbucket 1 is node 1's
		t.Fatalf("create: rev %d", r)
	}
	fill(t, srv, 2, 0, "k")
	id := c.mustCreate(2, `{}`)
	if err := srv.Cache(DefaultBucket).SetState(2, cache.Replica); err != nil {
		t.Fatal(err)
	}
	if res := c.cont(2, id, 0, 0, 0); rev(res[0]) != 1 {
		t.Fatal("continue: another rev")
	}
}

// A create that waited for its seqno and found the vbucket's history
// changed answers a client without XERROR NOT_MY_VBUCKET with the
// config, on its own goroutine: it reads the connection's features as
// they were when the create came, not as a later HELLO on the
// connection rewrites them meanwhile (a data race under -race).
func TestRangeScanWaitingCreateAndHello(t *testing.T) {
	srv, addr := startScans(t, Config{Cache: cache.Config{VBuckets: 16},
		Cluster: &ClusterConfig{Nodes: []string{"127.0.0.1:1", "127.0.0.1:2"}}}, nil)
	const vb = 2 // node 0's
	features := []gm.Feature{gm.FeatureJSON, gm.FeatureCollections}
	c := dialScans(t, addr, features...)
	fill(t, srv, vb, 0, "k1")
	high, uuid := srv.Cache(DefaultBucket).HighSeqno(vb)
	c.send(&gm.MCRequest{Opcode: gm.CREATE_RANGE_SCAN, VBucket: vb, DataType: gm.DatatypeFlagJSON, Opaque: 7, Body: fmt.Appendf(nil,
		`{"key_only":true,"snapshot_requirements":{"vb_uuid":"%d","seqno":%d,"timeout_ms":5000}}`, uuid, high+1)})
	var body []byte
	for _, f := range features {
		body = binary.BigEndian.AppendUint16(body, uint16(f))
	}
	if res := c.do(&gm.MCRequest{Opcode: gm.HELLO, Body: body}); res.Opcode != gm.HELLO {
		t.Fatalf("HELLO: %v", res.Opcode)
	}
	// A new history, then the seqno the create waits for.
	cc := srv.Cache(DefaultBucket)
	if err := cc.SetState(vb, cache.Replica); err != nil {
		t.Fatal(err)
	}
	if err := cc.SetState(vb, cache.Active); err != nil {
		t.Fatal(err)
	}
	fill(t, srv, vb, 0, "k2")
	if res := c.recv(); res.Opaque != 7 || res.Status != gm.NOT_MY_VBUCKET || len(res.Body) == 0 {
		t.Fatalf("create: %v %v %q", res.Opcode, res.Status, res.Body)
	}
}
