package memcached

// Range scans: the reference's CreateRangeScan, CreateRandomScan,
// ContinueRangeScan and CancelRangeScan, and CreateScan, ContinueScan and
// CancelScan: golden request bytes, decoding of answers, and the methods
// against gocache. Source: kv_engine's docs/range_scans/range_scan_create.md,
// range_scan_continue.md (extras, the keys-only and documents encodings and
// their examples) and range_scan_cancel.md.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// The scan id of range_scan_create.md's success example.
var docScanID = ScanID{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}

// refScanJSON builds a CREATE_RANGE_SCAN value the way the reference does,
// a map marshalled by encoding/json, to show ours is the same bytes.
func refScanJSON(cid uint32, withDocs, xattrs bool, rng map[string]any, sampling map[string]any) []byte {
	m := map[string]any{"collection": fmt.Sprintf("%x", cid)}
	if !withDocs {
		m["key_only"] = true
	}
	if rng != nil {
		m["range"] = rng
	} else {
		m["sampling"] = sampling
	}
	if xattrs {
		m["include_xattrs"] = true
	}
	b, _ := json.Marshal(m)
	return b
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// createHeader is the header of a CREATE_RANGE_SCAN of a value of n bytes
// on vbucket vb.
func createHeader(vb uint16, n int) string {
	return fmt.Sprintf("80 da 0000 00 01 %04x %08x 00000000 0000000000000000", vb, n)
}

func TestCreateRangeScanWire(t *testing.T) {
	c, f := newWireFake(t, nil, answerWith(gomemcached.MCResponse{Body: docScanID[:]}))
	res := ok(t)(c.CreateRangeScan(5, []byte("user"), false, []byte("user\xff"), false, false))
	if !bytes.Equal(res.Body, docScanID[:]) {
		t.Errorf("scan id % x", res.Body)
	}
	value := `{"collection":"0","key_only":true,"range":{"end":"dXNlcv8=","start":"dXNlcg=="}}` // range_scan_create.md's first example, key-only
	if ref := refScanJSON(0, false, false, map[string]any{"start": b64("user"), "end": b64("user\xff")}, nil); string(ref) != value {
		t.Fatalf("the reference's value %s", ref)
	}
	wantWire(t, "CreateRangeScan", f.last(t, false), vec(t,
		"80 da",            // CREATE_RANGE_SCAN
		"0000",             // "No key"
		"00",               // "No extras"
		"01",               // "datatype must be JSON"
		"0005",             // vbucket
		"00000050",         // total body: the value
		"00000000",         // opaque
		"0000000000000000", // CAS
		lit(value),
	))
	if _, err := c.CreateRangeScan(5, nil, false, nil, false, false, &ClientContext{CollId: 8}); err != ErrNoCollections {
		t.Errorf("a collection without collections: %v", err)
	}

	// With collections: no collection id, since there is no key; the
	// collection is in the value, in hexadecimal (0xf2: "f2").
	c, f = newWireFake(t, Features{FeatureCollections}, answerWith(gomemcached.MCResponse{Body: docScanID[:]}))
	cc := &ClientContext{CollId: 0xf2, IncludeXATTRs: true, Compressed: true}
	ok(t)(c.CreateRangeScan(5, []byte("a"), true, []byte("b"), true, true, cc))
	value = string(refScanJSON(0xf2, true, true, map[string]any{"excl_start": b64("a"), "excl_end": b64("b")}, nil))
	if value != `{"collection":"f2","include_xattrs":true,"range":{"excl_end":"Yg==","excl_start":"YQ=="}}` {
		t.Fatalf("the reference's value %s", value)
	}
	wantWire(t, "CreateRangeScan, exclusive, documents", f.last(t, false), vec(t, createHeader(5, len(value)), lit(value)))
	ok(t)(c.CreateRangeScan(5, []byte("a"), false, []byte("b"), true, false, cc))
	value = string(refScanJSON(0xf2, false, false, map[string]any{"start": b64("a"), "excl_end": b64("b")}, nil))
	wantWire(t, "CreateRangeScan, keys (no xattrs)", f.last(t, false), vec(t, createHeader(5, len(value)), lit(value)))

	ok(t)(c.CreateRandomScan(6, 512, false, &ClientContext{CollId: 0xf2}))
	raw := f.last(t, false)
	var got struct {
		Collection string `json:"collection"`
		KeyOnly    bool   `json:"key_only"`
		Sampling   struct {
			Samples int    `json:"samples"`
			Seed    uint32 `json:"seed"`
		} `json:"sampling"`
	}
	if err := json.Unmarshal(raw[24:], &got); err != nil || got.Collection != "f2" || !got.KeyOnly ||
		got.Sampling.Samples != 512 || got.Sampling.Seed == 0 {
		t.Fatalf("CreateRandomScan's value %s: %+v, %v", raw[24:], got, err)
	}
	value = string(refScanJSON(0xf2, false, false, nil, map[string]any{"samples": 512, "seed": got.Sampling.Seed}))
	wantWire(t, "CreateRandomScan", raw, vec(t, createHeader(6, len(value)), lit(value)))
}

// keysValue is range_scan_continue.md's keys-only example: "key0",
// "key11" and a key of 128 bytes, "key2222...3".
func keysValue(t *testing.T) ([]byte, [][]byte) {
	long := "key" + strings.Repeat("2", 124) + "3"
	v := vec(t, "04", lit("key0"), "05", lit("key11"), "8001", lit(long))
	if len(v) != 141 || !bytes.Equal(v[:12], []byte{0x04, 'k', 'e', 'y', '0', 0x05, 'k', 'e', 'y', '1', '1', 0x80}) {
		t.Fatalf("keys value of %d bytes", len(v)) // the example shows bytes 0..140
	}
	return v, [][]byte{[]byte("key0"), []byte("key11"), []byte(long)}
}

// docsValue is range_scan_continue.md's document example, key "key0",
// value "value0", followed by a second document.
func docsValue(t *testing.T) ([]byte, []ScanDocument) {
	v := vec(t,
		"00000001",         // flags (network order)
		"00000002",         // expiry
		"0000000000000003", // seqno
		"0000000000000004", // CAS
		"01",               // datatype JSON
		"04", lit("key0"),  // LEB128 key length, key
		"06", lit("value0"), // LEB128 value length, value
	)
	if len(v) != 37 {
		t.Fatalf("the example's document is 37 bytes, not %d", len(v))
	}
	big := bytes.Repeat([]byte("v"), 300)
	v = append(v, vec(t, "deadbeef 00000000 00000000000000ff 0000000000000100 00", "01", lit("k"), "ac02", big)...)
	return v, []ScanDocument{
		{Flags: 1, Expiry: 2, Seqno: 3, Cas: 4, Datatype: 1, Key: []byte("key0"), Value: []byte("value0")},
		{Flags: 0xdeadbeef, Seqno: 0xff, Cas: 0x100, Key: []byte("k"), Value: big},
	}
}

func TestDecodeScan(t *testing.T) {
	kv, keys := keysValue(t)
	got, err := DecodeScanKeys(nil, kv)
	if err != nil || !slices.EqualFunc(got, keys, bytes.Equal) {
		t.Errorf("DecodeScanKeys: %q, %v", got, err)
	}
	for _, n := range []int{1, 3, 12, 13, 140} {
		if _, err := DecodeScanKeys(nil, kv[:n]); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("keys cut at %d: %v", n, err)
		}
	}
	if _, err := DecodeScanKeys(nil, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01}); !errors.Is(err, ErrBadResponse) {
		t.Errorf("a length of six bytes: %v", err)
	}
	dv, docs := docsValue(t)
	gotDocs, err := DecodeScanDocuments(nil, dv)
	if err != nil || len(gotDocs) != 2 {
		t.Fatalf("DecodeScanDocuments: %v, %v", gotDocs, err)
	}
	for i := range docs {
		g, w := gotDocs[i], docs[i]
		if g.Flags != w.Flags || g.Expiry != w.Expiry || g.Seqno != w.Seqno || g.Cas != w.Cas || g.Datatype != w.Datatype ||
			!bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) {
			t.Errorf("document %d: %+v, want %+v", i, g, w)
		}
	}
	for _, n := range []int{1, 24, 25, 26, 30, 31, 36, 38, 62, 64, 65, len(dv) - 1} {
		if _, err := DecodeScanDocuments(nil, dv[:n]); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("documents cut at %d: %v", n, err)
		}
	}
}

func TestContinueRangeScanWire(t *testing.T) {
	kv, keys := keysValue(t)
	c, f := newWireFake(t, nil, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		flags := []byte{0, 0, 0, 0} // keys only (range_scan_continue.md, "Extras Definition")
		return []*gomemcached.MCResponse{
			{Opcode: req.Opcode, Opaque: req.Opaque, Extras: flags, Body: kv[:11]},
			{Opcode: req.Opcode, Opaque: req.Opaque, Extras: flags, Body: kv[11:], Status: gomemcached.RANGE_SCAN_COMPLETE},
		}
	})
	if err := c.ContinueRangeScan(5, docScanID[:], 0x1210, 500, 1000, 4096); err != nil {
		t.Fatal(err)
	}
	var all [][]byte
	res, err := c.Receive()
	if err != nil || res.Opaque != 0x1210 || res.Status != gomemcached.SUCCESS {
		t.Fatalf("first answer: %v, %v", res, err)
	}
	all, _ = DecodeScanKeys(all, res.Body)
	res, err = c.Receive()
	if res == nil || err != error(res) || res.Status != gomemcached.RANGE_SCAN_COMPLETE {
		t.Fatalf("last answer: %v, %v", res, err)
	}
	all, _ = DecodeScanKeys(all, res.Body)
	if !slices.EqualFunc(all, keys, bytes.Equal) {
		t.Errorf("keys %q", all)
	}
	wantWire(t, "ContinueRangeScan", f.last(t, true), vec(t,
		"80 db",                            // CONTINUE_RANGE_SCAN
		"0000",                             // "No key"
		"1c",                               // extras: 28 bytes
		"00 0005",                          // raw, vbucket 5
		"0000001c",                         // total body: the extras
		"00001210",                         // the caller's opaque, as Transmit sends it
		"0000000000000000",                 // CAS
		"00112233445566778899aabbccddeeff", // scan identifier
		"000001f4",                         // item limit 500
		"000003e8",                         // time limit 1000 ms
		"00001000",                         // byte limit 4096
	))
}

// ContinueRangeScan refuses, as Transmit does, an opaque that a call of
// the client waits for, and reserves the tagged opaques it sends.
func TestContinueRangeScanOpaqueInUse(t *testing.T) {
	c, f := newWireFake(t, nil, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse { return nil })
	c.c.mu.Lock()
	c.c.ops.next = 0x5ca9 // the client's next opaque is 0x80005ca9
	c.c.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.GET, Key: []byte("k")})
		done <- err
	}()
	waitFor(t, "the GET to be sent", func() bool { return f.count() == 1 })
	if err := c.ContinueRangeScan(5, docScanID[:], opaqueTag|0x5ca9, 0, 0, 0); err != ErrOpaqueInUse {
		t.Errorf("the GET's opaque: %v", err)
	}
	if f.count() != 1 {
		t.Error("a refused continue was sent")
	}
	if err := c.ContinueRangeScan(5, docScanID[:], opaqueTag|0x5caa, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	c.c.mu.Lock()
	_, reserved := c.c.ops.reserved[opaqueTag|0x5caa]
	c.c.mu.Unlock()
	if !reserved {
		t.Error("the continue's tagged opaque is not reserved")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("GET: %v", err)
	}
}

func TestCancelRangeScanWire(t *testing.T) {
	c, f := newWireFake(t, Features{FeatureCollections}, answerWith(gomemcached.MCResponse{}))
	res := ok(t)(c.CancelRangeScan(5, docScanID[:], 0x77, &ClientContext{CollId: 8}))
	if res.Opaque != 0x77 {
		t.Errorf("opaque %#x, want the caller's", res.Opaque)
	}
	wantWire(t, "CancelRangeScan", f.last(t, false), vec(t,
		"80 dc",                            // CANCEL_RANGE_SCAN
		"0000",                             // "No key" (so no collection id)
		"10",                               // extras: 16 bytes
		"00 0005",                          // raw, vbucket 5
		"00000010",                         // total body
		"00000000",                         // opaque
		"0000000000000000",                 // CAS
		"00112233445566778899aabbccddeeff", // scan identifier (range_scan_cancel.md)
	))
	if err := c.CancelScan(context.Background(), 5, docScanID, nil); err != nil {
		t.Fatal(err)
	}
	wantWire(t, "CancelScan", f.last(t, false), vec(t,
		"80 dc 0000 10 00 0005 00000010 00000000 0000000000000000 00112233445566778899aabbccddeeff"))
	c, _ = newWireFake(t, nil, answerWith(gomemcached.MCResponse{Status: gomemcached.KEY_ENOENT}))
	res, err := c.CancelRangeScan(5, docScanID[:], 1)
	wantStatus(t, res, err, gomemcached.KEY_ENOENT, gomemcached.ErrKeyNotFound)
	if err := c.CancelScan(context.Background(), 5, docScanID, nil); !errors.Is(err, gomemcached.ErrKeyNotFound) {
		t.Errorf("CancelScan of an unknown scan: %v", err)
	}
}

func TestCreateScanWire(t *testing.T) {
	c, f := newWireFake(t, Features{FeatureCollections}, answerWith(gomemcached.MCResponse{Body: docScanID[:]}))
	ctx := context.Background()
	s := &RangeScan{
		Collection: 0xf2, IncludeXattrs: true, Name: "scan1",
		Start: []byte("user"), End: []byte("user\xff"), ExcludeEnd: true,
		Snapshot: &ScanSnapshot{VbUUID: 16627788222, Seqno: 1000, SeqnoExists: true, Timeout: 2 * time.Second},
	}
	id, err := c.CreateScan(ctx, 5, s, &ClientContext{User: "bob"})
	if err != nil || id != docScanID {
		t.Fatalf("CreateScan: %x, %v", id, err)
	}
	// range_scan_create.md's third example, with the exclusive end, the
	// xattrs and a name added, keys in name order.
	value := `{"collection":"f2","include_xattrs":true,"name":"scan1",` +
		`"range":{"excl_end":"dXNlcv8=","start":"dXNlcg=="},` +
		`"snapshot_requirements":{"seqno":1000,"seqno_exists":true,"timeout_ms":2000,"vb_uuid":"16627788222"}}`
	wantWire(t, "CreateScan", f.last(t, false), vec(t,
		"08 da", // flexible framing, CREATE_RANGE_SCAN
		"04",    // framing extras length
		"00",    // no key
		"00 01", // no extras, JSON
		"0005",  // vbucket
		fmt.Sprintf("%08x", 4+len(value)),
		"00000000 0000000000000000",
		"43", lit("bob"), // impersonate bob
		lit(value),
	))
	if b, err := s.MarshalJSON(); err != nil || string(b) != value {
		t.Errorf("MarshalJSON: %s, %v", b, err)
	}
	// The random sample example, and the collection from the context.
	_, err = c.CreateScan(ctx, 5, &RangeScan{KeysOnly: true, Sample: &ScanSample{Seed: 18111, Samples: 512}}, &ClientContext{CollId: 0xf2})
	if err != nil {
		t.Fatal(err)
	}
	value = `{"collection":"f2","key_only":true,"sampling":{"samples":512,"seed":18111}}`
	wantWire(t, "CreateScan, sample", f.last(t, false), vec(t, createHeader(5, len(value)), lit(value)))
	// An empty range is sent as one: start and end are required.
	if _, err := c.CreateScan(ctx, 5, &RangeScan{}, nil); err != nil {
		t.Fatal(err)
	}
	value = `{"collection":"0","range":{"end":"","start":""}}`
	wantWire(t, "CreateScan, empty range", f.last(t, false), vec(t, createHeader(5, len(value)), lit(value)))

	c, _ = newWireFake(t, nil, answerWith(gomemcached.MCResponse{Body: docScanID[:15]}))
	if _, err := c.CreateScan(ctx, 5, &RangeScan{}, nil); !errors.Is(err, ErrBadResponse) {
		t.Errorf("an id of 15 bytes: %v", err)
	}
	if _, err := c.CreateScan(ctx, 5, nil, nil); err != errNilSpec {
		t.Errorf("nil: %v", err)
	}
}

func TestContinueScanWire(t *testing.T) {
	kv, keys := keysValue(t)
	dv, docs := docsValue(t)
	var answer func(req *gomemcached.MCRequest) []*gomemcached.MCResponse
	c, f := newWireFake(t, nil, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse { return answer(req) })
	packets := func(flags uint32, parts ...any) func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		return func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
			var out []*gomemcached.MCResponse
			for i := 0; i < len(parts); i += 2 {
				out = append(out, &gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque,
					Status: parts[i].(gomemcached.Status), Extras: binary.BigEndian.AppendUint32(nil, flags), Body: parts[i+1].([]byte)})
			}
			return out
		}
	}
	ctx := context.Background()
	answer = packets(0, gomemcached.SUCCESS, kv[:11], gomemcached.SUCCESS, kv[11:], gomemcached.RANGE_SCAN_MORE, []byte(nil))
	b, err := c.ContinueScan(ctx, 5, docScanID, ScanLimits{Items: 3, Time: 1500 * time.Millisecond, Bytes: 1 << 20}, nil)
	if err != nil || b.Complete || !slices.EqualFunc(b.Keys, keys, bytes.Equal) || b.Docs != nil {
		t.Fatalf("keys: %+v, %v", b, err)
	}
	wantWire(t, "ContinueScan", f.last(t, false), vec(t,
		"80 db 0000 1c 00 0005 0000001c 00000000 0000000000000000",
		"00112233445566778899aabbccddeeff", // scan id
		"00000003",                         // items
		"000005dc",                         // 1500 ms
		"00100000",                         // bytes
	))
	answer = packets(1, gomemcached.SUCCESS, dv[:37], gomemcached.RANGE_SCAN_COMPLETE, dv[37:])
	b, err = c.ContinueScan(ctx, 5, docScanID, ScanLimits{}, nil)
	if err != nil || !b.Complete || len(b.Docs) != 2 || b.Keys != nil ||
		string(b.Docs[0].Value) != "value0" || !bytes.Equal(b.Docs[1].Value, docs[1].Value) {
		t.Fatalf("documents: %+v, %v", b, err)
	}
	wantWire(t, "ContinueScan without limits", f.last(t, false), vec(t,
		"80 db 0000 1c 00 0005 0000001c 00000000 0000000000000000 00112233445566778899aabbccddeeff",
		"00000000 00000000 00000000")) // 0: no limit
	answer = packets(0, gomemcached.SUCCESS, kv[:11], gomemcached.RANGE_SCAN_CANCELLED, []byte(nil))
	if _, err := c.ContinueScan(ctx, 5, docScanID, ScanLimits{}, nil); !errors.As(err, new(*gomemcached.ServerError)) ||
		gomemcached.IsFatal(err) {
		t.Errorf("cancelled: %v", err)
	}
	answer = packets(0, gomemcached.KEY_ENOENT, []byte(nil))
	if _, err := c.ContinueScan(ctx, 5, docScanID, ScanLimits{}, nil); !errors.Is(err, gomemcached.ErrKeyNotFound) {
		t.Errorf("unknown scan: %v", err)
	}
	answer = func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		return []*gomemcached.MCResponse{
			{Opcode: req.Opcode, Opaque: req.Opaque, Extras: []byte{0, 0, 0, 0}, Body: kv[:5]},
			{Opcode: req.Opcode, Opaque: req.Opaque, Extras: []byte{0, 0, 0, 1}, Body: dv[:37], Status: gomemcached.RANGE_SCAN_MORE},
		}
	}
	if _, err := c.ContinueScan(ctx, 5, docScanID, ScanLimits{}, nil); !errors.Is(err, ErrBadResponse) {
		t.Errorf("keys and documents: %v", err)
	}
	answer = packets(0, gomemcached.RANGE_SCAN_COMPLETE, kv[:12])
	if _, err := c.ContinueScan(ctx, 5, docScanID, ScanLimits{}, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("keys cut short: %v", err)
	}
	answer = answerWith(gomemcached.MCResponse{})
	alive(t, c)
}

// scanKeys stores n keys p+"NNN" in collection c1 and returns them in key
// order.
func scanKeys(t *testing.T, c *Client, p string, n int) []string {
	t.Helper()
	var keys []string
	for i := range n {
		k := fmt.Sprintf("%s%03d", p, i)
		ok(t)(c.Set(0, k, uint32Flags(i), 0, []byte(fmt.Sprintf(`{"i":%d}`, i)), &ClientContext{CollId: testCollection}))
		keys = append(keys, k)
	}
	return keys
}

func uint32Flags(i int) int { return 0x100 + i }

func TestRangeScanGocache(t *testing.T) {
	c := couchbaseGocache(t)
	p := keyPrefix(t)
	keys := scanKeys(t, c, p, 25)
	cc := &ClientContext{CollId: testCollection}

	res, err := c.CreateRangeScan(0, []byte(p), false, []byte(p+"\xff"), false, false, cc)
	failUnknown(t, err, "CREATE_RANGE_SCAN")
	mustOK(t, res, err)
	if len(res.Body) != 16 {
		t.Fatalf("scan id of %d bytes", len(res.Body))
	}
	uuid := bytes.Clone(res.Body)
	// The reference's way: continue, then Receive until MORE or COMPLETE.
	var got []string
	for round := 0; ; round++ {
		if round > 30 {
			t.Fatal("the scan never completes")
		}
		opaque := uint32(0x5ca0 + round)
		if err := c.ContinueRangeScan(0, uuid, opaque, 10, 0, 0, cc); err != nil {
			t.Fatal(err)
		}
		var last gomemcached.Status
		for {
			res, err := c.ReceiveWithDeadline(time.Now().Add(5 * time.Second))
			if res == nil {
				t.Fatalf("Receive: %v", err)
			}
			if res.Opaque != opaque {
				t.Fatalf("opaque %#x, want %#x", res.Opaque, opaque)
			}
			ks, derr := DecodeScanKeys(nil, res.Body)
			if derr != nil {
				t.Fatal(derr)
			}
			for _, k := range ks {
				got = append(got, string(k))
			}
			if res.Status != gomemcached.SUCCESS {
				last = res.Status
				break
			}
		}
		if last == gomemcached.RANGE_SCAN_COMPLETE {
			break
		}
		if last != gomemcached.RANGE_SCAN_MORE {
			t.Fatalf("continue ended with %v", last)
		}
	}
	if !slices.Equal(got, keys) {
		t.Errorf("scanned %q, want %q", got, keys)
	}
	res, err = c.CancelRangeScan(0, uuid, 0x99, cc)
	wantStatus(t, res, err, gomemcached.KEY_ENOENT, gomemcached.ErrKeyNotFound) // completed scans are gone

	// Exclusive ends, documents.
	res = ok(t)(c.CreateRangeScan(0, []byte(keys[0]), true, []byte(keys[4]), true, true, cc))
	if err := c.ContinueRangeScan(0, res.Body, 0x5cb0, 0, 0, 0, cc); err != nil {
		t.Fatal(err)
	}
	var docs []ScanDocument
	for {
		res, err := c.ReceiveWithDeadline(time.Now().Add(5 * time.Second))
		if res == nil {
			t.Fatalf("Receive: %v", err)
		}
		if len(res.Extras) != 4 || binary.BigEndian.Uint32(res.Extras) != 1 {
			t.Fatalf("extras % x, want the flags of a document scan", res.Extras)
		}
		docs, err = DecodeScanDocuments(docs, res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != gomemcached.SUCCESS {
			break
		}
	}
	if len(docs) != 3 || string(docs[0].Key) != keys[1] || string(docs[2].Key) != keys[3] ||
		string(docs[0].Value) != `{"i":1}` || docs[0].Flags != uint32(uint32Flags(1)) || docs[0].Cas == 0 || docs[0].Seqno == 0 {
		t.Errorf("documents %+v", docs)
	}

	// Cancel while open; a random sample.
	res = ok(t)(c.CreateRangeScan(0, []byte(p), false, []byte(p+"\xff"), false, false, cc))
	ok(t)(c.CancelRangeScan(0, res.Body, 0x98, cc))
	res = ok(t)(c.CreateRandomScan(0, 5, false, cc))
	if len(res.Body) != 16 {
		t.Errorf("random scan id % x", res.Body)
	}
	ok(t)(c.CancelRangeScan(0, res.Body, 0x97, cc))

	res, err = c.CreateRangeScan(0, []byte(p+"zzz"), false, []byte(p+"zzzz"), false, false, cc)
	wantStatus(t, res, err, gomemcached.KEY_ENOENT, gomemcached.ErrKeyNotFound) // an empty range
}

func TestScanGocache(t *testing.T) {
	c := couchbaseGocache(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := keyPrefix(t)
	keys := scanKeys(t, c, p, 25)
	cc := &ClientContext{CollId: testCollection}

	id, err := c.CreateScan(ctx, 0, &RangeScan{KeysOnly: true, Start: []byte(p), End: []byte(p + "\xff"), Name: "test"}, cc)
	failUnknown(t, err, "CREATE_RANGE_SCAN")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for round := 0; ; round++ {
		if round > 30 {
			t.Fatal("the scan never completes")
		}
		b, err := c.ContinueScan(ctx, 0, id, ScanLimits{Items: 7}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Keys) > 7 {
			t.Errorf("%d keys for a limit of 7", len(b.Keys))
		}
		for _, k := range b.Keys {
			got = append(got, string(k))
		}
		if b.Complete {
			break
		}
	}
	if !slices.Equal(got, keys) {
		t.Errorf("scanned %q, want %q", got, keys)
	}
	if _, err := c.ContinueScan(ctx, 0, id, ScanLimits{}, nil); !errors.Is(err, gomemcached.ErrKeyNotFound) {
		t.Errorf("continue of a completed scan: %v", err)
	}

	// Documents of a collection named in the RangeScan, with a snapshot
	// requirement the vbucket meets.
	uuid, seqno := seqnoOf(t, ok(t)(c.Set(0, p+"999", 0, 0, []byte(`{}`), cc)))
	id, err = c.CreateScan(ctx, 0, &RangeScan{Collection: testCollection, Start: []byte(keys[20]), End: []byte(p + "\xff"),
		Snapshot: &ScanSnapshot{VbUUID: uuid, Seqno: seqno, Timeout: time.Second}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.ContinueScan(ctx, 0, id, ScanLimits{}, nil)
	if err != nil || !b.Complete || len(b.Docs) != 6 || string(b.Docs[0].Key) != keys[20] || string(b.Docs[5].Value) != `{}` {
		t.Errorf("documents: %+v, %v", b, err)
	}
	_, err = c.CreateScan(ctx, 0, &RangeScan{Collection: testCollection, Start: []byte(p), End: []byte(p + "\xff"),
		Snapshot: &ScanSnapshot{VbUUID: uuid + 1, Seqno: seqno}}, nil)
	var se *gomemcached.ServerError
	if !errors.As(err, &se) || (se.Status != gomemcached.VBUUID_NOT_EQUAL && se.Status != gomemcached.NOT_MY_VBUCKET) {
		t.Errorf("a vbucket UUID that does not match: %v", err)
	}

	// A sample, cancelled half way.
	id, err = c.CreateScan(ctx, 0, &RangeScan{KeysOnly: true, Sample: &ScanSample{Samples: 10, Seed: 7}}, cc)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := c.ContinueScan(ctx, 0, id, ScanLimits{Items: 1}, nil); err != nil || len(b.Keys) != 1 {
		t.Errorf("sample: %+v, %v", b, err)
	}
	if err := c.CancelScan(ctx, 0, id, nil); err != nil {
		t.Errorf("CancelScan: %v", err)
	}
	if err := c.CancelScan(ctx, 0, id, nil); !errors.Is(err, gomemcached.ErrKeyNotFound) {
		t.Errorf("CancelScan twice: %v", err)
	}
	if _, err := c.ContinueScan(ctx, 0, id, ScanLimits{}, nil); !errors.Is(err, gomemcached.ErrKeyNotFound) {
		t.Errorf("continue of a cancelled scan: %v", err)
	}
	if _, err := c.CreateScan(ctx, 0, &RangeScan{Start: []byte(p + "zzz"), End: []byte(p + "zzzz")}, cc); !errors.Is(err, gomemcached.ErrKeyNotFound) {
		t.Errorf("an empty range: %v", err)
	}
}
