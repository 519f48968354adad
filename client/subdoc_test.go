package memcached

// Sub-documents: the reference's GetSubdoc, SetSubdoc, GetSubDocVal,
// IfResStatusError and GetBulk with paths, and the LookupIn / MutateIn
// builder: golden request bytes, decoding of answers, and the methods
// against gocache. Sources: kv_engine's docs/SubDocument.md ("Multi-Path
// Commands": request and response formats and the two examples) and
// include/memcached/protocol_binary.h (spec and result layouts, path and
// doc flags); docs/BinaryProtocol.md for the header and framing extras.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
)

func TestGetSubdocWire(t *testing.T) {
	c, f := newWireFake(t, nil, answerWith(gomemcached.MCResponse{}))
	ok(t)(c.GetSubdoc(9, "u:1234", []string{"a", "bb"}))
	wantWire(t, "xattr paths", f.last(t, false), vec(t,
		"80 d0",                // SUBDOC_MULTI_LOOKUP
		"0006",                 // key length
		"01",                   // extras length: the doc flags
		"00 0009",              // raw, vbucket 9
		"00000016",             // total body: 1 + 6 + 5 + 6 + 4
		"00000000",             // opaque
		"0000000000000000",     // CAS
		"04",                   // doc flags: ACCESS_DELETED (protocol_binary.h DocFlag::AccessDeleted)
		lit("u:1234"),          // key
		"c5 04 0001", lit("a"), // SUBDOC_GET, path flag XATTR_PATH (0x04), path length 1, path
		"c5 04 0002", lit("bb"),
		"00 00 0000", // the reference's last spec: GET (0x00) of the whole document, empty path
	))
	ok(t)(c.GetSubdoc(9, "u:1234", []string{"a"}, &ClientContext{DocumentSubDocPaths: true}))
	wantWire(t, "document paths", f.last(t, false), vec(t,
		"80 d0 0006",
		"00 00 0009", // no extras: no doc flags
		"0000000f 00000000 0000000000000000",
		lit("u:1234"),
		"c5 00 0001", lit("a"), // no path flags
		"00 00 0000",
	))
	ok(t)(c.GetSubdoc(9, "k", []string{"$document.exptime"}))
	wantWire(t, "expiry only", f.last(t, false), vec(t,
		"80 d0 0001 00 00 0009 0000001a 00000000 0000000000000000", // no ACCESS_DELETED for the expiry alone
		lit("k"),
		"c5 04 0011", lit("$document.exptime"),
		"00 00 0000",
	))
	// GetSubDocVal is what GetSubdoc sends.
	ex, v := GetSubDocVal([]string{"x"}, []*ClientContext{nil, {DocumentSubDocPaths: true}})
	if ex != nil || string(v) != "\xc5\x00\x00\x01x\x00\x00\x00\x00" {
		t.Errorf("GetSubDocVal: % x, % x", ex, v)
	}
}

func TestGetSubdocStatuses(t *testing.T) {
	var status gomemcached.Status
	c, _ := newWireFake(t, nil, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		return []*gomemcached.MCResponse{{Opcode: req.Opcode, Opaque: req.Opaque, Status: status,
			Body: vec(t, "00c0 00000000", "0000 00000002", lit("{}"))}}
	})
	for _, tc := range []struct {
		status gomemcached.Status
		fails  bool
	}{
		{gomemcached.SUCCESS, false},
		{gomemcached.SUBDOC_BAD_MULTI, false},
		{gomemcached.SUBDOC_MULTI_PATH_FAILURE_DELETED, false},
		{gomemcached.SUBDOC_PATH_NOT_FOUND, false},
		{gomemcached.SUBDOC_SUCCESS_DELETED, false}, // a success status: the reference gets this wrong
		{gomemcached.KEY_ENOENT, true},
		{gomemcached.NOT_MY_VBUCKET, true},
	} {
		status = tc.status
		res, err := c.GetSubdoc(0, "k", []string{"p"})
		if res == nil || res.Status != tc.status || (err != nil) != tc.fails || (err != nil && err != error(res)) {
			t.Errorf("%v: %v, %v", tc.status, res, err)
		}
		if IfResStatusError(res) != (tc.fails || tc.status == gomemcached.SUCCESS) {
			t.Errorf("IfResStatusError(%v) = %v", tc.status, IfResStatusError(res))
		}
	}
	if !IfResStatusError(nil) {
		t.Error("IfResStatusError(nil) is false")
	}
}

func TestSetSubdocWire(t *testing.T) {
	c, f := newWireFake(t, nil, answerWith(gomemcached.MCResponse{Cas: 77}))
	ops := []SubDocOp{
		{Path: "a", Value: []byte("1")},
		{Xattr: true, Path: "_x", Value: []byte(`"y"`)},
		{Path: "", Value: []byte("{}")},
		{Counter: true, Path: "n", Value: []byte("5")},
	}
	res := ok(t)(c.SetSubdoc(2, "k", ops, false, 300, 0x1122, nil...))
	if res.Cas != 77 {
		t.Errorf("CAS %d", res.Cas)
	}
	wantWire(t, "SetSubdoc", f.last(t, false), vec(t,
		"80 d1",            // SUBDOC_MULTI_MUTATION
		"0001",             // key length
		"05",               // extras: expiry(4) + doc flags(1) (protocol_binary.h: "0 OR 4", "0 OR 1")
		"00 0002",          // raw, vbucket 2
		"00000031",         // total body: 5 + 1 + 10 + 13 + 10 + 10
		"00000000",         // opaque
		"0000000000001122", // CAS
		"0000012c",         // expiry 300
		"01",               // doc flags: MKDOC
		lit("k"),
		"c8 00 0001 00000001", lit("a"), lit("1"), // DICT_UPSERT, no flags, path 1, value 1
		"c8 04 0002 00000003", lit("_x"), lit(`"y"`), // DICT_UPSERT, XATTR_PATH
		"01 00 0000 00000002", lit("{}"), // SET of the whole document, empty path
		"cf 00 0001 00000001", lit("n"), lit("5"), // COUNTER
	))
	ok(t)(c.SetSubdoc(2, "k", ops[:1], true, 0, 0))
	wantWire(t, "addOnly", f.last(t, false), vec(t,
		"80 d1 0001 05 00 0002 00000010 00000000 0000000000000000",
		"00000000", "02", // no expiry, doc flags ADD
		lit("k"), "c8 00 0001 00000001", lit("a"), lit("1"),
	))
	ok(t)(c.SetSubdoc(2, "k", []SubDocOp{{Path: "a"}, {}}, true, 0, 0))
	wantWire(t, "deletes", f.last(t, false), vec(t,
		"80 d1 0001 05 00 0002 00000017 00000000 0000000000000000",
		"00000000", "00", // a delete: neither MKDOC nor ADD
		lit("k"),
		"c9 00 0001 00000000", lit("a"), // SUBDOC_DELETE of a path
		"04 00 0000 00000000", // DELETE of the whole document (the reference sends SUBDOC_DELETE with no path)
	))
	n := f.count()
	if _, err := c.SetSubdoc(2, "k", nil, false, 0, 0); err == nil || f.count() != n {
		t.Errorf("no ops: %v", err)
	}

	// A failed status: no response, the response as the error.
	c, _ = newWireFake(t, nil, answerWith(gomemcached.MCResponse{Status: gomemcached.SUBDOC_BAD_MULTI, Body: vec(t, "01 00c1")}))
	res, err := c.SetSubdoc(2, "k", ops, false, 0, 0)
	var mres *gomemcached.MCResponse
	if res != nil || !errors.As(err, &mres) || mres.Status != gomemcached.SUBDOC_BAD_MULTI {
		t.Fatalf("failure: %v, %v", res, err)
	}
	_, err = DecodeMutateResult(mres, len(ops))
	var se *SubdocError
	if !errors.As(err, &se) || se.Index != 1 || se.Status != gomemcached.SUBDOC_PATH_MISMATCH || se.Path != "" {
		t.Errorf("DecodeMutateResult of the failure: %v", err)
	}
}

// The SubDocument.md multi-lookup example. The document's request has
// one byte of extras, 0; LookupIn sends no extras without doc flags.
func TestLookupInWire(t *testing.T) {
	answer := vec(t,
		"0000 0000000a", lit(`"mnunberg"`), // SUCCESS, 10 bytes
		"0000 0000000b", lit(`"couchbase"`), // SUCCESS, 11 bytes
		"00c0 00000000",                           // PATH_ENOENT (SUBDOC_PATH_NOT_FOUND), no value
		"0000 00000011", lit(`"Subdoc Commands"`), // SUCCESS, 17 bytes
		"0000 00000000", // EXISTS: SUCCESS, no value
	)
	if len(answer) != 68 {
		t.Fatalf("the example's answer is 68 bytes, not %d", len(answer))
	}
	c, f := newWireFake(t, nil, answerWith(gomemcached.MCResponse{Status: gomemcached.SUBDOC_BAD_MULTI, Cas: 0xcafebabe, Body: answer}))
	l := new(LookupIn).Get("from", 0).Get("to", 0).Exists("bcc", 0).Get("subject", 0).Exists("body", 0)
	r, err := c.Lookup(context.Background(), 668, "u:1234", l, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantWire(t, "Lookup", f.last(t, false), vec(t,
		"80 d0",            // SUBDOC_MULTI_LOOKUP
		"0006",             // key length
		"00",               // no extras
		"00 029c",          // raw, vbucket 668
		"0000002e",         // total body 46 (the example's 47 less its extras byte)
		"00000000",         // opaque
		"0000000000000000", // CAS
		lit("u:1234"),
		"c5 00 0004", lit("from"), // GET, no flags, path length, path
		"c5 00 0002", lit("to"),
		"c6 00 0003", lit("bcc"), // EXISTS
		"c5 00 0007", lit("subject"),
		"c6 00 0004", lit("body"),
	))
	if r.Cas != 0xcafebabe || r.Deleted || len(r.Results) != 5 {
		t.Fatalf("result %+v", r)
	}
	if v, err := r.Value(0); err != nil || string(v) != `"mnunberg"` {
		t.Errorf("spec 0: %q, %v", v, err)
	}
	if v, err := r.Value(3); err != nil || string(v) != `"Subdoc Commands"` {
		t.Errorf("spec 3: %q, %v", v, err)
	}
	err = r.Err(2)
	var se *SubdocError
	if !errors.Is(err, gomemcached.ErrPathNotFound) || !errors.As(err, &se) || se.Index != 2 || r.Exists(2) {
		t.Errorf("spec 2: %v", err)
	}
	if !r.Exists(4) || r.Results[4].Value != nil {
		t.Errorf("spec 4: %+v", r.Results[4])
	}

	// Doc flags, extended attributes, a count, the whole document.
	l = new(LookupIn).Get("_sync", SubdocXattr).Count("list", 0).Doc()
	l.DocFlags = SubdocAccessDeleted
	c, f = newWireFake(t, Features{FeatureCollections}, answerWith(gomemcached.MCResponse{Status: gomemcached.SUBDOC_SUCCESS_DELETED,
		Body: vec(t, "0000 00000002", lit("{}"), "0000 00000001", lit("3"), "0000 00000000")}))
	r, err = c.Lookup(context.Background(), 1, "k", l, &ClientContext{CollId: 9, Compressed: true})
	if err != nil || !r.Deleted || len(r.Results) != 3 {
		t.Fatalf("%+v, %v", r, err)
	}
	if n, err := r.Results[1].Uint(); n != 3 || err != nil {
		t.Errorf("count: %d, %v", n, err)
	}
	wantWire(t, "Lookup with flags", f.last(t, false), vec(t,
		"80 d0",
		"0002",     // key length: collection id + key
		"01",       // extras: doc flags
		"00",       // raw (Compressed does not apply)
		"0001",     // vbucket
		"00000018", // total body: 1 + 2 + 9 + 8 + 4
		"00000000 0000000000000000",
		"04",           // ACCESS_DELETED
		"09", lit("k"), // collection 9, key
		"c5 04 0005", lit("_sync"), // GET, XATTR_PATH
		"d2 00 0004", lit("list"), // GET_COUNT
		"00 00 0000", // GET of the whole document
	))

	// Failures of the whole command, and answers that do not fit.
	for _, tc := range []struct {
		res  gomemcached.MCResponse
		want error
	}{
		{gomemcached.MCResponse{Status: gomemcached.KEY_ENOENT}, gomemcached.ErrKeyNotFound},
		{gomemcached.MCResponse{Body: vec(t, "0000 00000001")}, ErrBadResponse},
		{gomemcached.MCResponse{Body: vec(t, "0000 00000001", lit("1"))}, ErrBadResponse}, // 1 result for 3 specs
	} {
		c, _ := newWireFake(t, nil, answerWith(tc.res))
		if _, err := c.Lookup(context.Background(), 1, "k", l, nil); !errors.Is(err, tc.want) {
			t.Errorf("%v: %v, want %v", tc.res.Status, err, tc.want)
		}
	}
	if _, err := c.Lookup(context.Background(), 1, "k", &LookupIn{}, nil); err != errNoSpecs {
		t.Errorf("no specs: %v", err)
	}
	if _, err := c.Lookup(context.Background(), 1, "k", nil, nil); err != errNilSpec {
		t.Errorf("nil: %v", err)
	}
	long := new(LookupIn).Get(strings.Repeat("p", 70000), 0)
	if _, err := c.Lookup(context.Background(), 1, "k", long, nil); !errors.Is(err, gomemcached.ErrFieldTooLong) {
		t.Errorf("path too long: %v", err)
	}
}

// The SubDocument.md multi-mutation example (its first three mutations;
// its fourth uses a flag kv_engine does not define). The document's
// request has one byte of extras, 0; MutateIn sends none without doc
// flags or expiry.
func TestMutateInWire(t *testing.T) {
	c, f := newWireFake(t, Features{FeatureMutationToken}, answerWith(gomemcached.MCResponse{Cas: 0xcafebabe,
		Extras: vec(t, "0000000000001234", "0000000000000007"), // vbucket UUID, seqno
		Body:   vec(t, "01 0000 00000002", lit("42"))}))        // spec 1 (COUNTER), SUCCESS, its value
	m := new(MutateIn).
		ArrayAddUnique("login_locations", []byte(`"192.168.3.4"`), SubdocMkdirP).
		Counter("login_count", 1, SubdocMkdirP).
		DictUpsert("state", []byte(`"logged_in"`), SubdocMkdirP)
	m.Cas = 0xdeadbeef
	r, err := c.Mutate(context.Background(), 668, "u:1234", m, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantWire(t, "Mutate", f.last(t, false), vec(t,
		"80 d1",            // SUBDOC_MULTI_MUTATION
		"0006",             // key length
		"00",               // no extras
		"00 029c",          // raw, vbucket 668
		"00000056",         // total body 86 (the example's 87 less its extras byte)
		"00000000",         // opaque
		"00000000deadbeef", // CAS
		lit("u:1234"),
		"ce 01 000f 0000000d", lit("login_locations"), lit(`"192.168.3.4"`), // ARRAY_ADD_UNIQUE, MKDIR_P
		"cf 01 000b 00000001", lit("login_count"), lit("1"), // COUNTER, MKDIR_P
		"c8 01 0005 0000000b", lit("state"), lit(`"logged_in"`), // DICT_UPSERT, MKDIR_P
	))
	if r.Cas != 0xcafebabe || r.VbUUID != 0x1234 || r.Seqno != 7 || len(r.Results) != 3 || r.Deleted {
		t.Fatalf("result %+v", r)
	}
	if n, err := r.Results[1].Int(); n != 42 || err != nil {
		t.Errorf("counter: %d, %v", n, err)
	}
	if r.Results[0].Value != nil || r.Results[0].Status != gomemcached.SUCCESS {
		t.Errorf("spec 0: %+v", r.Results[0])
	}

	// The example's failure: the second mutation, PATH_MISMATCH. (The
	// document gives its BODYLEN as 1; the result is index(1) and
	// status(2), as protocol_binary.h says.)
	c, _ = newWireFake(t, nil, answerWith(gomemcached.MCResponse{Status: gomemcached.SUBDOC_BAD_MULTI, Body: vec(t, "01 00c1")}))
	_, err = c.Mutate(context.Background(), 668, "u:1234", m, nil)
	var se *SubdocError
	var cmd *gomemcached.ServerError
	if !errors.As(err, &se) || se.Index != 1 || se.Status != gomemcached.SUBDOC_PATH_MISMATCH ||
		se.Op != gomemcached.SUBDOC_COUNTER || se.Path != "login_count" {
		t.Fatalf("failure: %v", err)
	}
	if !errors.As(err, &cmd) || cmd.Status != gomemcached.SUBDOC_BAD_MULTI || gomemcached.IsFatal(err) {
		t.Errorf("the command's error: %v", cmd)
	}
	if se.Error() != `memcached: sub-document spec 1 (SUBDOC_COUNTER "login_count") failed: SUBDOC_PATH_MISMATCH` {
		t.Errorf("message %q", se.Error())
	}

	// Expiry, doc flags, durability and keeping the expiry, from the context.
	c, f = newWireFake(t, Features{FeatureSyncReplication, FeaturePreserveExpiry}, answerWith(gomemcached.MCResponse{}))
	m = new(MutateIn).Delete("old", 0).Replace("n", []byte("2"), SubdocXattr|SubdocExpandMacros).SetDoc([]byte("{}"))
	m.Expiry, m.DocFlags = 60, SubdocMkdoc|SubdocAccessDeleted
	cc := &ClientContext{DurabilityLevel: gomemcached.DuraMajority, DurabilityTimeout: 1500 * time.Millisecond, PreserveExpiry: true}
	if _, err := c.Mutate(context.Background(), 3, "doc", m, cc); err != nil {
		t.Fatal(err)
	}
	wantWire(t, "Mutate with everything", f.last(t, false), vec(t,
		"08",       // magic: flexible framing extras
		"d1",       // SUBDOC_MULTI_MUTATION
		"05",       // framing extras length
		"03",       // key length
		"05",       // extras: expiry + doc flags
		"00 0003",  // raw, vbucket 3
		"0000002c", // total body: 5 + 5 + 3 + 11 + 10 + 10
		"00000000 0000000000000000",
		"50",         // frame: preserve TTL (id 5, length 0)
		"13 01 05dc", // frame: durability (id 1, length 3), majority, 1500 ms
		"0000003c",   // expiry 60
		"05",         // MKDOC | ACCESS_DELETED
		lit("doc"),
		"c9 00 0003 00000000", lit("old"), // SUBDOC_DELETE
		"ca 14 0001 00000001", lit("n"), lit("2"), // REPLACE, XATTR_PATH | EXPAND_MACROS
		"01 00 0000 00000002", lit("{}"), // SET of the whole document
	))

	for _, tc := range []struct {
		res  gomemcached.MCResponse
		want error
	}{
		{gomemcached.MCResponse{Status: gomemcached.KEY_EEXISTS}, gomemcached.ErrKeyExists},
		{gomemcached.MCResponse{Status: gomemcached.SUBDOC_BAD_MULTI, Body: vec(t, "01 00")}, ErrBadResponse},
		{gomemcached.MCResponse{Body: vec(t, "07 0000 00000000")}, ErrBadResponse}, // index past the specs
		{gomemcached.MCResponse{Body: vec(t, "00 0000 00000009 00")}, ErrBadResponse},
		{gomemcached.MCResponse{Extras: make([]byte, 8)}, ErrBadResponse},
	} {
		c, _ := newWireFake(t, nil, answerWith(tc.res))
		if _, err := c.Mutate(context.Background(), 1, "k", new(MutateIn).DeleteDoc(), nil); !errors.Is(err, tc.want) {
			t.Errorf("%v % x: %v, want %v", tc.res.Status, tc.res.Body, err, tc.want)
		}
	}
	if _, err := c.Mutate(context.Background(), 1, "k", &MutateIn{}, nil); err != errNoSpecs {
		t.Errorf("no specs: %v", err)
	}
	big := &MutateIn{Specs: make([]MutateSpec, 257)}
	if _, err := c.Mutate(context.Background(), 1, "k", big, nil); !errors.Is(err, gomemcached.ErrFieldTooLong) {
		t.Errorf("257 specs: %v", err)
	}
	// Durability needs the feature.
	c, _ = newWireFake(t, nil, answerWith(gomemcached.MCResponse{}))
	if _, err := c.Mutate(context.Background(), 1, "k", new(MutateIn).DeleteDoc(), cc); err != ErrPreserveExpiryNotSupported {
		t.Errorf("without the features: %v", err)
	}
}

func TestDecodeLookupResults(t *testing.T) {
	body := vec(t, "0000 00000002", lit("ab"), "00c0 00000000")
	rs, err := DecodeLookupResults(nil, body)
	if err != nil || len(rs) != 2 || string(rs[0].Value) != "ab" || rs[1].Status != gomemcached.SUBDOC_PATH_NOT_FOUND {
		t.Fatalf("%+v, %v", rs, err)
	}
	for n := 1; n < len(body); n++ {
		if n == 8 {
			continue
		}
		if _, err := DecodeLookupResults(nil, body[:n]); !errors.Is(err, ErrBadResponse) {
			t.Errorf("cut at %d: %v", n, err)
		}
	}
	if _, err := (SubdocResult{Status: gomemcached.SUBDOC_PATH_NOT_FOUND}).Int(); !errors.Is(err, gomemcached.ErrPathNotFound) {
		t.Errorf("Int of a failed spec: %v", err)
	}
}

func TestGetBulkSubdocWire(t *testing.T) {
	c, f := newWireFake(t, nil, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		res := &gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
		switch string(req.Key) {
		case "a":
			res.Body = vec(t, "0000 00000001", lit("1"), "0000 00000002", lit("{}"))
		case "b":
			res.Status = gomemcached.KEY_ENOENT
		case "c":
			res.Status, res.Body = gomemcached.SUBDOC_BAD_MULTI, vec(t, "00c0 00000000 0000 00000002", lit("{}"))
		}
		return []*gomemcached.MCResponse{res}
	})
	rv := map[string]*gomemcached.MCResponse{}
	if err := c.GetBulk(4, []string{"a", "b", "c"}, rv, []string{"x"}, &ClientContext{DocumentSubDocPaths: true}); err != nil {
		t.Fatal(err)
	}
	if len(rv) != 2 || rv["a"] == nil || rv["c"] == nil || rv["c"].Status != gomemcached.SUBDOC_BAD_MULTI ||
		rv["a"].Opcode != gomemcached.SUBDOC_MULTI_LOOKUP {
		t.Errorf("results %v", rv)
	}
	if f.count() != 4 {
		t.Errorf("%d requests, want 3 lookups and a NOOP", f.count())
	}
	wantWire(t, "the fence", f.last(t, false), vec(t, "80 0a 0000 00 00 0004 00000000 00000000 0000000000000000"))
	f.mu.Lock()
	first := f.raw[0]
	f.mu.Unlock()
	clear(first[12:16])
	wantWire(t, "a lookup", first, vec(t,
		"80 d0 0001 00 00 0004 0000000a 00000000 0000000000000000",
		lit("a"), "c5 00 0001", lit("x"), "00 00 0000",
	))
	// One key with paths is a lookup too, not a GET.
	clear(rv)
	if err := c.GetBulk(4, []string{"a"}, rv, []string{"x"}); err != nil || rv["a"] == nil {
		t.Errorf("one key: %v, %v", rv, err)
	}
}

// subdocGocache returns a client on gocache holding the JSON document doc
// under key, skipping if gocache lacks sub-documents.
func subdocGocache(t *testing.T, doc string) (*Client, string) {
	t.Helper()
	c := couchbaseGocache(t)
	k := keyPrefix(t) + "doc"
	ok(t)(c.Set(0, k, 0, 0, []byte(doc)))
	_, err := c.Lookup(context.Background(), 0, k, new(LookupIn).Exists("x", 0), nil)
	failUnknown(t, err, "SUBDOC_MULTI_LOOKUP")
	return c, k
}

func TestLookupGocache(t *testing.T) {
	c, k := subdocGocache(t, `{"name":"ann","tags":["a","b","c"],"n":{"m":1}}`)
	ctx := context.Background()
	l := new(LookupIn).Get("name", 0).Exists("tags[1]", 0).Count("tags", 0).Get("nope", 0).Get("n.m", 0).Doc()
	r, err := c.Lookup(ctx, 0, k, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := r.Value(0); string(v) != `"ann"` || err != nil {
		t.Errorf("name: %q, %v", v, err)
	}
	if !r.Exists(1) {
		t.Errorf("tags[1]: %v", r.Err(1))
	}
	if n, err := r.Results[2].Uint(); n != 3 || err != nil {
		t.Errorf("count: %d, %v", n, err)
	}
	if err := r.Err(3); !errors.Is(err, gomemcached.ErrPathNotFound) {
		t.Errorf("nope: %v", err)
	}
	if v, _ := r.Value(4); string(v) != "1" {
		t.Errorf("n.m: %q", v)
	}
	if v, _ := r.Value(5); !strings.Contains(string(v), `"ann"`) {
		t.Errorf("document: %q", v)
	}
	if _, err := c.Lookup(ctx, 0, k+"absent", l, nil); !errors.Is(err, gomemcached.ErrKeyNotFound) {
		t.Errorf("missing document: %v", err)
	}
	// The reference's GetSubdoc, with document paths: the paths, then the document.
	res, err := c.GetSubdoc(0, k, []string{"name", "nope"}, &ClientContext{DocumentSubDocPaths: true})
	if err != nil || res.Status != gomemcached.SUBDOC_BAD_MULTI {
		t.Fatalf("GetSubdoc: %v, %v", res, err)
	}
	rs, err := DecodeLookupResults(nil, res.Body)
	if err != nil || len(rs) != 3 || string(rs[0].Value) != `"ann"` || rs[1].Status != gomemcached.SUBDOC_PATH_NOT_FOUND ||
		!strings.Contains(string(rs[2].Value), `"tags"`) {
		t.Errorf("GetSubdoc results: %+v, %v", rs, err)
	}
	rv := map[string]*gomemcached.MCResponse{}
	err = c.GetBulk(0, []string{k, k + "absent", k}, rv, []string{"name"}, &ClientContext{DocumentSubDocPaths: true})
	if err != nil || len(rv) != 1 || rv[k].Status != gomemcached.SUCCESS {
		t.Errorf("GetBulk with paths: %v, %v", rv, err)
	}
}

func TestMutateGocache(t *testing.T) {
	c, k := subdocGocache(t, `{"name":"ann","tags":["a"],"count":1}`)
	ctx := context.Background()
	before := ok(t)(c.Get(0, k))
	m := new(MutateIn).
		DictUpsert("name", []byte(`"bob"`), 0).
		DictAdd("new.deep", []byte(`true`), SubdocMkdirP).
		ArrayPushLast("tags", []byte(`"z"`), 0).
		ArrayPushFirst("tags", []byte(`"0"`), 0).
		ArrayInsert("tags[1]", []byte(`"i"`), 0).
		ArrayAddUnique("tags", []byte(`"u"`), 0).
		Counter("count", 41, 0).
		Replace("count2", []byte(`1`), 0)
	_, err := c.Mutate(ctx, 0, k, m, nil)
	var se *SubdocError
	if !errors.As(err, &se) || se.Index != 7 || !errors.Is(err, gomemcached.ErrPathNotFound) {
		t.Fatalf("Replace of a missing path: %v", err)
	}
	if after := ok(t)(c.Get(0, k)); string(after.Body) != string(before.Body) || after.Cas != before.Cas {
		t.Errorf("a failed multi-mutation changed the document: %s", after.Body)
	}
	m.Specs = m.Specs[:7]
	m.Cas = before.Cas
	r, err := c.Mutate(ctx, 0, k, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := r.Results[6].Int(); n != 42 || err != nil || r.Cas == before.Cas || r.Seqno == 0 {
		t.Errorf("result %+v (counter %d, %v)", r, n, err)
	}
	l := new(LookupIn).Get("name", 0).Get("new.deep", 0).Get("tags", 0).Get("count", 0)
	lr, err := c.Lookup(ctx, 0, k, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`"bob"`, `true`, `["0","i","a","z","u"]`, `42`}
	for i, w := range want {
		if v, err := lr.Value(i); string(v) != w || err != nil {
			t.Errorf("%s: %s, %v; want %s", l.Specs[i].Path, v, err, w)
		}
	}
	// A stale CAS, a missing document, and creating one.
	m.Cas = 0
	_, err = c.Mutate(ctx, 0, k, m, nil)
	if !errors.As(err, &se) || se.Index != 1 || se.Status != gomemcached.SUBDOC_PATH_EEXISTS {
		t.Errorf("DictAdd of an existing path: %v", err)
	}
	m2 := new(MutateIn).DictUpsert("a", []byte("1"), 0)
	m2.Cas = before.Cas
	if _, err := c.Mutate(ctx, 0, k, m2, nil); !errors.Is(err, gomemcached.ErrKeyExists) {
		t.Errorf("stale CAS: %v", err)
	}
	m2.Cas = 0
	if _, err := c.Mutate(ctx, 0, k+"new", m2, nil); !errors.Is(err, gomemcached.ErrKeyNotFound) {
		t.Errorf("missing document: %v", err)
	}
	m2.DocFlags = SubdocMkdoc
	m2.Expiry = 3600
	if _, err := c.Mutate(ctx, 0, k+"new", m2, nil); err != nil {
		t.Errorf("MKDOC: %v", err)
	} else if res := ok(t)(c.Get(0, k+"new")); string(res.Body) != `{"a":1}` {
		t.Errorf("created %s", res.Body)
	}
	m2.DocFlags = SubdocAdd
	if _, err := c.Mutate(ctx, 0, k+"new", m2, nil); !errors.Is(err, gomemcached.ErrKeyExists) {
		t.Errorf("ADD of an existing document: %v", err)
	}
	// Whole-document set and delete.
	if _, err := c.Mutate(ctx, 0, k, new(MutateIn).SetDoc([]byte(`{"w":1}`)), nil); err != nil {
		t.Errorf("SetDoc: %v", err)
	} else if res := ok(t)(c.Get(0, k)); string(res.Body) != `{"w":1}` {
		t.Errorf("after SetDoc: %s", res.Body)
	}
	if _, err := c.Mutate(ctx, 0, k, new(MutateIn).DeleteDoc(), nil); err != nil {
		t.Errorf("DeleteDoc: %v", err)
	}
	res, err := c.Get(0, k)
	wantStatus(t, res, err, gomemcached.KEY_ENOENT, gomemcached.ErrKeyNotFound)
}

func TestSetSubdocGocache(t *testing.T) {
	c, k := subdocGocache(t, `{"a":1}`)
	res, err := c.SetSubdoc(0, k, []SubDocOp{{Path: "b", Value: []byte(`2`)}, {Path: "a", Counter: true, Value: []byte("5")}}, false, 0, 0)
	if err != nil || res.Status != gomemcached.SUCCESS {
		t.Fatalf("SetSubdoc: %v, %v", res, err)
	}
	if got := ok(t)(c.Get(0, k)); string(got.Body) != `{"a":6,"b":2}` {
		t.Errorf("after SetSubdoc: %s", got.Body)
	}
	// MKDOC creates; ADD refuses an existing document.
	ok(t)(c.SetSubdoc(0, k+"2", []SubDocOp{{Path: "x", Value: []byte(`"y"`)}}, false, 0, 0))
	res, err = c.SetSubdoc(0, k+"2", []SubDocOp{{Path: "x", Value: []byte(`"y"`)}}, true, 0, 0)
	var mres *gomemcached.MCResponse
	if res != nil || !errors.As(err, &mres) || mres.Status != gomemcached.KEY_EEXISTS {
		t.Errorf("addOnly on an existing document: %v, %v", res, err)
	}
	// Whole document: replace, then delete.
	ok(t)(c.SetSubdoc(0, k+"2", []SubDocOp{{Value: []byte(`{"z":0}`)}}, false, 0, 0))
	if got := ok(t)(c.Get(0, k+"2")); string(got.Body) != `{"z":0}` {
		t.Errorf("after a whole-document SET: %s", got.Body)
	}
	ok(t)(c.SetSubdoc(0, k+"2", []SubDocOp{{}}, false, 0, 0))
	res, err = c.Get(0, k+"2")
	wantStatus(t, res, err, gomemcached.KEY_ENOENT, gomemcached.ErrKeyNotFound)
}

// Extended attributes: written and read by path, before the body's paths,
// with macros, and read from a deleted document that kept its system
// attributes (SubDocument.md, CMD_DELETE).
func TestSubdocXattrGocache(t *testing.T) {
	c, k := subdocGocache(t, `{"v":1}`)
	if !c.IsFeatureEnabled(FeatureXattr) {
		t.Fatal("gocache did not turn XATTR on")
	}
	ctx := context.Background()
	m := new(MutateIn).
		DictUpsert("_sys.rev", []byte(`"1-a"`), SubdocXattr|SubdocMkdirP).
		DictUpsert("user.crc", []byte(`"${Mutation.value_crc32c}"`), SubdocXattr|SubdocMkdirP|SubdocExpandMacros).
		DictUpsert("v", []byte(`2`), 0)
	if _, err := c.Mutate(ctx, 0, k, m, nil); err != nil {
		t.Fatal(err)
	}
	l := new(LookupIn).Get("_sys", SubdocXattr).Get("user.crc", SubdocXattr).Get("v", 0).Doc()
	r, err := c.Lookup(ctx, 0, k, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := r.Value(0); string(v) != `{"rev":"1-a"}` || err != nil {
		t.Errorf("_sys: %s, %v", v, err)
	}
	if v, err := r.Value(1); err != nil || len(v) < 3 || strings.Contains(string(v), "${") {
		t.Errorf("expanded macro: %s, %v", v, err)
	}
	if v, _ := r.Value(3); string(v) != `{"v":2}` {
		t.Errorf("the body keeps no attributes: %s", v)
	}
	// The reference's GetSubdoc reads attributes by default.
	res, err := c.GetSubdoc(0, k, []string{"_sys.rev"})
	if err != nil {
		t.Fatal(err)
	}
	if rs, err := DecodeLookupResults(nil, res.Body); err != nil || len(rs) != 2 || string(rs[0].Value) != `"1-a"` || string(rs[1].Value) != `{"v":2}` {
		t.Errorf("GetSubdoc: %+v, %v", rs, err)
	}
	// Attribute specs must come first.
	bad := new(MutateIn).DictUpsert("v", []byte(`3`), 0).DictUpsert("user.x", []byte(`1`), SubdocXattr)
	_, err = c.Mutate(ctx, 0, k, bad, nil)
	var se *gomemcached.ServerError
	if !errors.As(err, &se) || se.Status != gomemcached.SUBDOC_INVALID_XATTR_ORDER {
		t.Errorf("attributes after the body: %v", err)
	}
	// Deleting keeps the system attributes on a deleted document.
	if _, err := c.Mutate(ctx, 0, k, new(MutateIn).DeleteDoc(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(ctx, 0, k, new(LookupIn).Get("_sys", SubdocXattr), nil); !errors.Is(err, gomemcached.ErrKeyNotFound) {
		t.Errorf("a deleted document without AccessDeleted: %v", err)
	}
	dl := new(LookupIn).Get("_sys.rev", SubdocXattr)
	dl.DocFlags = SubdocAccessDeleted
	r, err = c.Lookup(ctx, 0, k, dl, nil)
	if err != nil || !r.Deleted {
		t.Fatalf("a deleted document with AccessDeleted: %+v, %v", r, err)
	}
	if v, _ := r.Value(0); string(v) != `"1-a"` {
		t.Errorf("_sys.rev of the deleted document: %s", v)
	}
}

// The CAS and seqno macros, expanded to the mutation's own.
func TestSubdocMacrosGocache(t *testing.T) {
	c, k := subdocGocache(t, `{"v":1}`)
	if !c.IsFeatureEnabled(FeatureXattr) {
		t.Fatal("gocache did not turn XATTR on")
	}
	ctx := context.Background()
	m := new(MutateIn).
		DictUpsert("m.cas", []byte(`"${Mutation.CAS}"`), SubdocXattr|SubdocMkdirP|SubdocExpandMacros).
		DictUpsert("m.seqno", []byte(`"${Mutation.seqno}"`), SubdocXattr|SubdocMkdirP|SubdocExpandMacros)
	mr, err := c.Mutate(ctx, 0, k, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Lookup(ctx, 0, k, new(LookupIn).Get("m.cas", SubdocXattr).Get("m.seqno", SubdocXattr), nil)
	if err != nil {
		t.Fatal(err)
	}
	// kv_engine writes both as "0x" and 16 hex digits; the CAS in
	// little-endian byte order.
	var le [8]byte
	binary.LittleEndian.PutUint64(le[:], mr.Cas)
	if v, _ := r.Value(0); string(v) != fmt.Sprintf(`"0x%016x"`, binary.BigEndian.Uint64(le[:])) {
		t.Errorf("${Mutation.CAS}: %s, CAS %#x", v, mr.Cas)
	}
	if v, _ := r.Value(1); string(v) != fmt.Sprintf(`"0x%016x"`, mr.Seqno) {
		t.Errorf("${Mutation.seqno}: %s, seqno %d", v, mr.Seqno)
	}
}
