package memcached

// GET_META, GET_RANDOM_KEY and ValidateKey: golden request bytes, decoding
// of answers, and the methods against gocache. Sources of the vectors:
// kv_engine's engines/ep/docs/protocol/get_meta.md (GET_META),
// docs/BinaryProtocol.md §0xb6 and the request header and flexible
// framing sections (GET_RANDOM_KEY, frames), docs/Collections.md (LEB128
// collection ids in keys).

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
)

func TestGetMetaWire(t *testing.T) {
	c, f := newWireFake(t, nil, answerWith(gomemcached.MCResponse{Extras: make([]byte, 20)}))
	ok(t)(c.GetMeta(3, "mykey"))
	wantWire(t, "GetMeta", f.last(t, false), vec(t,
		"80",               // magic: request (BinaryProtocol.md, Magic Byte)
		"a0",               // opcode: GET_META (get_meta.md)
		"0005",             // key length
		"00",               // extras length: none, version 1 (get_meta.md, "Can have 1 byte extras")
		"00",               // datatype: raw
		"0003",             // vbucket
		"00000005",         // total body: the key
		"00000000",         // opaque (the client's, zeroed)
		"0000000000000000", // CAS
		lit("mykey"),       // key
	))
	// Meta asks for version 2: the get_meta.md request example exactly.
	if _, err := c.Meta(context.Background(), 3, "mykey", nil); err != nil {
		t.Fatal(err)
	}
	wantWire(t, "Meta", f.last(t, false), vec(t,
		"80 a0 0005",       // magic, GET_META, key length 5
		"01",               // extras length 1
		"00 0003",          // datatype raw, vbucket 3
		"00000006",         // total body: extras + key
		"00000000",         // opaque
		"0000000000000000", // CAS
		"02",               // ReqExtMeta: version 2, with the datatype (get_meta.md, "Extras - version2")
		lit("mykey"),
	))
}

func TestGetMetaWireCollections(t *testing.T) {
	c, f := newWireFake(t, Features{FeatureCollections}, answerWith(gomemcached.MCResponse{Extras: make([]byte, 21)}))
	if _, err := c.Meta(context.Background(), 3, "mykey", &ClientContext{CollId: 0x80}); err != nil {
		t.Fatal(err)
	}
	wantWire(t, "Meta in collection 0x80", f.last(t, false), vec(t,
		"80 a0",
		"0007",             // key length: 2 bytes of collection id + 5 (Collections.md: "Includes the leb128 size")
		"01 00 0003",       // extras 1, raw, vbucket 3
		"00000008",         // total body
		"00000000",         // opaque
		"0000000000000000", // CAS
		"02",               // version 2
		"80 01",            // collection id 0x80 in LEB128 (Collections.md)
		lit("mykey"),
	))
	ok(t)(c.GetMeta(0, "k"))
	wantWire(t, "GetMeta in the default collection", f.last(t, false), vec(t,
		"80 a0 0002 00 00 0000 00000002 00000000 0000000000000000",
		"00", // the default collection, id 0
		lit("k"),
	))
}

// The version 2 answer of get_meta.md's "Get Meta Binary Response".
// Erratum: the document's table says the datatype is 0x03 while its bytes
// say 0x01; the bytes are used.
func TestDecodeMeta(t *testing.T) {
	pkt := vec(t,
		"81 a0 0000",       // response, GET_META, no key
		"15",               // extras length 21
		"00 0000",          // datatype raw, status SUCCESS
		"00000015",         // total body 21
		"00000000",         // opaque
		"0000000000000001", // CAS 1
		"00000000",         // deleted: no
		"00000001",         // flags 1
		"00000007",         // expiry 7
		"0000000000000009", // seqno 9
		"01",               // datatype JSON
	)
	var res gomemcached.MCResponse
	if _, err := res.Receive(bytesReader(pkt), nil); err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMeta(&res)
	want := DocMeta{Flags: 1, Expiry: 7, Seqno: 9, Cas: 1, Datatype: 1, HasDatatype: true}
	if err != nil || m != want {
		t.Errorf("v2: %+v, %v; want %+v", m, err, want)
	}
	// Version 1: the same without the datatype; a deleted document.
	v1 := gomemcached.MCResponse{Opcode: gomemcached.GET_META, Cas: 5, Extras: vec(t,
		"00000001", "deadbeef", "5f5e0ff0", "0000000000000102")}
	m, err = DecodeMeta(&v1)
	want = DocMeta{Deleted: true, Flags: 0xdeadbeef, Expiry: 0x5f5e0ff0, Seqno: 0x102, Cas: 5}
	if err != nil || m != want {
		t.Errorf("v1: %+v, %v; want %+v", m, err, want)
	}
	for _, n := range []int{0, 19, 22} {
		bad := gomemcached.MCResponse{Opcode: gomemcached.GET_META, Extras: make([]byte, n)}
		if _, err := DecodeMeta(&bad); !errors.Is(err, ErrBadResponse) || gomemcached.IsFatal(err) {
			t.Errorf("%d bytes of extras: %v", n, err)
		}
	}
	miss := gomemcached.MCResponse{Opcode: gomemcached.GET_META, Status: gomemcached.KEY_ENOENT}
	var se *gomemcached.ServerError
	if _, err := DecodeMeta(&miss); !errors.Is(err, gomemcached.ErrKeyNotFound) || !errors.As(err, &se) {
		t.Errorf("missing key: %v", err)
	}
}

func TestGetRandomDocWire(t *testing.T) {
	c, f := newWireFake(t, nil, answerWith(gomemcached.MCResponse{Key: []byte("k"), Body: []byte("v")}))
	ok(t)(c.GetRandomDoc())
	wantWire(t, "no collections", f.last(t, false), vec(t,
		"80 b6 0000", // GET_RANDOM_KEY, no key (BinaryProtocol.md §0xb6 "MUST NOT have key")
		"00 00 0000", // no extras without collections ("MAY have extras if client has enabled collections")
		"00000000 00000000 0000000000000000",
	))
	if _, err := c.GetRandomDoc(&ClientContext{CollId: 9}); err != ErrNoCollections {
		t.Errorf("a collection without collections: %v", err)
	}
	// The reference sends the user to impersonate whether or not
	// collections are on.
	ok(t)(c.GetRandomDoc(&ClientContext{User: "bob"}))
	wantWire(t, "impersonating", f.last(t, false), vec(t,
		"08",       // magic: request with flexible framing extras (BinaryProtocol.md)
		"b6",       // GET_RANDOM_KEY
		"04",       // framing extras length
		"00",       // key length
		"00 00",    // extras length, datatype
		"0000",     // vbucket
		"00000004", // total body: the frame
		"00000000 0000000000000000",
		"43", lit("bob"), // frame id 4 (impersonate), length 3, the user
	))

	c, f = newWireFake(t, Features{FeatureCollections}, answerWith(gomemcached.MCResponse{Key: []byte("\x00k"), Body: []byte("v")}))
	ok(t)(c.GetRandomDoc())
	wantWire(t, "collections, default", f.last(t, false), vec(t,
		"80 b6 0000",
		"04 00 0000", // extras: the collection id, 4 bytes
		"00000004 00000000 0000000000000000",
		"00000000", // collection 0 in network byte order (§0xb6)
	))
	ok(t)(c.GetRandomDoc(&ClientContext{CollId: 0xcafe, IncludeXATTRs: true}))
	wantWire(t, "collections, xattrs", f.last(t, false), vec(t,
		"80 b6 0000",
		"05 00 0000", // extras: collection id and the xattr byte
		"00000005 00000000 0000000000000000",
		"0000cafe", // collection
		"01",       // "a single byte set to a value != 0" asks for the xattrs (§0xb6)
	))
}

func TestValidateKeyWire(t *testing.T) {
	var status gomemcached.Status
	c, f := newWireFake(t, nil, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		return []*gomemcached.MCResponse{{Opcode: req.Opcode, Opaque: req.Opaque, Status: status}}
	})
	cases := []struct {
		status gomemcached.Status
		exists bool
		err    error
	}{
		{gomemcached.KEY_EEXISTS, true, nil},
		{gomemcached.KEY_ENOENT, false, nil},
		{gomemcached.NOT_MY_VBUCKET, false, gomemcached.ErrNotMyVBucket},
	}
	for _, tc := range cases {
		status = tc.status
		exists, err := c.ValidateKey(7, "key")
		if exists != tc.exists || (tc.err == nil) != (err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Errorf("%v: %v, %v", tc.status, exists, err)
		}
	}
	wantWire(t, "ValidateKey", f.last(t, false), vec(t,
		"80 03 0003",       // REPLACE, key length 3
		"08 00 0007",       // extras 8, raw, vbucket 7
		"0000000b",         // total body: extras + key
		"00000000",         // opaque
		"ffffffffffffffff", // CAS: all ones, which no document has
		"00000000",         // flags
		"00000000",         // expiry
		lit("key"),
	))
	c.Close()
	if exists, err := c.ValidateKey(7, "key"); exists || !errors.Is(err, ErrClosed) {
		t.Errorf("closed: %v, %v", exists, err)
	}
}

// gocache serves GET_META, GET_RANDOM_KEY and the REPLACE of ValidateKey.
func TestMetaGocache(t *testing.T) {
	c := couchbaseGocache(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k := keyPrefix(t) + "meta"
	set := ok(t)(c.Set(0, k, 0xf1a9, 0, []byte(`{"a":1}`)))

	res, err := c.GetMeta(0, k)
	failUnknown(t, err, "GET_META")
	mustOK(t, res, err)
	m, err := DecodeMeta(res)
	if err != nil || m.Deleted || m.Flags != 0xf1a9 || m.Cas != set.Cas || m.Seqno == 0 || m.HasDatatype {
		t.Errorf("GetMeta: %+v, %v (CAS of the set %#x)", m, err, set.Cas)
	}
	m2, err := c.Meta(ctx, 0, k, nil)
	if err != nil || !m2.HasDatatype || m2.Flags != 0xf1a9 || m2.Cas != set.Cas {
		t.Errorf("Meta: %+v, %v", m2, err)
	}
	if m2.Datatype&gomemcached.DatatypeFlagJSON == 0 {
		t.Logf("datatype %#x: gocache does not detect JSON", m2.Datatype)
	}
	_, err = c.Meta(ctx, 0, k+"absent", nil)
	var se *gomemcached.ServerError
	if !errors.Is(err, gomemcached.ErrKeyNotFound) || !errors.As(err, &se) {
		t.Errorf("Meta of a missing key: %v", err)
	}
	res, err = c.GetMeta(0, k+"absent")
	wantStatus(t, res, err, gomemcached.KEY_ENOENT, gomemcached.ErrKeyNotFound)

	// After a delete, the tombstone's metadata, while it lasts.
	ok(t)(c.Del(0, k))
	if m3, err := c.Meta(ctx, 0, k, nil); err == nil && (!m3.Deleted || m3.Seqno <= m.Seqno) {
		t.Errorf("Meta of a deleted document: %+v", m3)
	} else if err != nil && !errors.Is(err, gomemcached.ErrKeyNotFound) {
		t.Errorf("Meta of a deleted document: %v", err)
	}
}

func TestRandomDocGocache(t *testing.T) {
	c := couchbaseGocache(t)
	k := keyPrefix(t) + "random"
	res, err := c.GetRandomDoc()
	failUnknown(t, err, "GET_RANDOM_KEY")
	if err == nil || !errors.Is(err, gomemcached.ErrKeyNotFound) {
		t.Errorf("an empty bucket: %v, %v", res, err)
	}
	ok(t)(c.Set(0, k, 0, 0, []byte("v")))
	res = ok(t)(c.GetRandomDoc())
	cid, key, err := gomemcached.SplitCollectionID(res.Key)
	if err != nil || cid != 0 || string(key) != k || string(res.Body) != "v" {
		t.Errorf("random document %q (collection %d) = %q, %v", key, cid, res.Body, err)
	}
	res, err = c.GetRandomDoc(&ClientContext{CollId: testCollection})
	wantStatus(t, res, err, gomemcached.KEY_ENOENT, gomemcached.ErrKeyNotFound)
	res, err = c.GetRandomDoc(&ClientContext{CollId: 0x7777})
	if !errors.Is(err, gomemcached.ErrUnknownCollection) {
		t.Errorf("unknown collection: %v, %v", res, err)
	}
}

func TestValidateKeyGocache(t *testing.T) {
	c := couchbaseGocache(t)
	k := keyPrefix(t) + "validate"
	if exists, err := c.ValidateKey(0, k); exists || err != nil {
		t.Errorf("missing key: %v, %v", exists, err)
	}
	ok(t)(c.Set(0, k, 0, 0, []byte("keep")))
	if exists, err := c.ValidateKey(0, k); !exists || err != nil {
		t.Errorf("existing key: %v, %v", exists, err)
	}
	if res := ok(t)(c.Get(0, k)); string(res.Body) != "keep" {
		t.Errorf("ValidateKey changed the value: %q", res.Body)
	}
	if exists, err := c.ValidateKey(0, k, &ClientContext{CollId: testCollection}); exists || err != nil {
		t.Errorf("in another collection: %v, %v", exists, err)
	}
}
