package memcached

// GET_COLLECTIONS_MANIFEST and COLLECTIONS_GET_CID: golden request bytes,
// decoding of answers, and the methods against gocache. Source: kv_engine's
// docs/Collections.md (§0xba, §0xbb, "Returned Manifest Uid", and the
// manifest example of §0xb9).

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// The manifest of Collections.md's §0xb9 example.
const docManifest = `{
  "uid": "a2",
  "scopes": [
    {
      "name": "_default",
      "uid": "0",
      "collections": [
        {
          "name": "_default",
          "uid": "0"
        },
        {
          "name": "brewery",
          "uid": "1c",
          "maxTTL": 1
        }
      ]
    }
  ]
}`

func TestCollectionsWire(t *testing.T) {
	cidExtras := vec(t, "00000000000000a2", "0000001c") // manifest uid 0xa2, collection 0x1c (§0xbb "Extras")
	c, f := newWireFake(t, Features{FeatureCollections}, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		res := &gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
		switch req.Opcode {
		case gomemcached.GET_COLLECTIONS_MANIFEST:
			res.Body = []byte(docManifest)
		case gomemcached.COLLECTIONS_GET_CID:
			if string(req.Body) == "_default.brewery" {
				res.Extras = cidExtras
			} else {
				res.Status, res.Body = gomemcached.UNKNOWN_COLLECTION, []byte(`{"manifest_uid":"1f"}`)
			}
		}
		return []*gomemcached.MCResponse{res}
	})
	res := ok(t)(c.GetCollectionsManifest())
	wantWire(t, "GetCollectionsManifest", f.last(t, false), vec(t,
		"80 ba 0000", // GET_COLLECTIONS_MANIFEST: "MUST NOT have a key"
		"00 00 0000", // "MUST NOT have extras", raw, vbucket 0
		"00000000",   // "MUST NOT have a value"
		"00000000 0000000000000000",
	))
	m, err := DecodeManifest(res.Body)
	if err != nil || m.UID != 0xa2 || len(m.Scopes) != 1 || len(m.Scopes[0].Collections) != 2 {
		t.Fatalf("DecodeManifest: %+v, %v", m, err)
	}
	if b := m.Scopes[0].Collections[1]; b.Name != "brewery" || b.UID != 0x1c || b.MaxTTL == nil || *b.MaxTTL != 1 {
		t.Errorf("brewery: %+v", b)
	}
	if d := m.Scopes[0].Collections[0]; d.MaxTTL != nil || d.UID != 0 {
		t.Errorf("_default: %+v", d)
	}
	if cid, found := m.CollectionID("", "brewery"); !found || cid != 0x1c {
		t.Errorf("CollectionID: %#x, %v", cid, found)
	}
	if _, found := m.CollectionID("_default", "beer"); found {
		t.Error("found a collection that is not there")
	}
	if _, found := m.CollectionID("app", ""); found || m.Scope("_default") == nil {
		t.Error("scopes")
	}

	res = ok(t)(c.CollectionsGetCID("_default", "brewery"))
	wantWire(t, "CollectionsGetCID", f.last(t, false), vec(t,
		"80 bb 0000",       // COLLECTIONS_GET_CID, "MUST NOT have a key"
		"00 00 0000",       // no extras, raw, vbucket 0
		"00000010",         // total body: the path
		"00000000",         // opaque
		"0000000000000000", // CAS
		lit("_default.brewery"),
	))
	cid, uid, err := DecodeCollectionID(res)
	if err != nil || cid != 0x1c || uid != 0xa2 {
		t.Errorf("DecodeCollectionID: %#x, %#x, %v", cid, uid, err)
	}
	res, err = c.CollectionsGetCID("_default", "beer")
	wantStatus(t, res, err, gomemcached.UNKNOWN_COLLECTION, gomemcached.ErrUnknownCollection)
	if uid, found := ManifestUIDOf(err); !found || uid != 0x1f {
		t.Errorf("ManifestUIDOf: %#x, %v", uid, found)
	}

	ctx := context.Background()
	if cid, uid, err := c.CollectionID(ctx, "_default", "brewery"); err != nil || cid != 0x1c || uid != 0xa2 {
		t.Errorf("CollectionID: %#x, %#x, %v", cid, uid, err)
	}
	_, _, err = c.CollectionID(ctx, "_default", "beer")
	var se *gomemcached.ServerError
	if !errors.Is(err, gomemcached.ErrUnknownCollection) || !errors.As(err, &se) {
		t.Errorf("CollectionID of an unknown collection: %v", err)
	}
	if uid, found := ManifestUIDOf(err); !found || uid != 0x1f {
		t.Errorf("ManifestUIDOf a ServerError: %#x, %v", uid, found)
	}
	if m, err := c.Manifest(ctx); err != nil || m.UID != 0xa2 {
		t.Errorf("Manifest: %+v, %v", m, err)
	}
}

func TestDecodeCollectionsMalformed(t *testing.T) {
	for _, body := range []string{``, `{`, `{"uid":"xyz","scopes":[]}`, `{"scopes":[]}`,
		`{"uid":"1","scopes":[{"name":"s","uid":"100000000"}]}`,
		`{"uid":"1","scopes":[{"name":"s","uid":"8","collections":[{"name":"c","uid":"0x9"}]}]}`} {
		if m, err := DecodeManifest([]byte(body)); !errors.Is(err, ErrBadResponse) {
			t.Errorf("%q: %+v, %v", body, m, err)
		}
	}
	for _, n := range []int{0, 8, 13} {
		res := &gomemcached.MCResponse{Opcode: gomemcached.COLLECTIONS_GET_CID, Extras: make([]byte, n)}
		if _, _, err := DecodeCollectionID(res); !errors.Is(err, ErrBadResponse) {
			t.Errorf("%d bytes of extras: %v", n, err)
		}
	}
	if _, found := ManifestUIDOf(errors.New("x")); found {
		t.Error("a manifest uid in a plain error")
	}
	if _, found := ManifestUIDOf(&gomemcached.MCResponse{Status: gomemcached.UNKNOWN_COLLECTION, Body: []byte(`{"error":{}}`)}); found {
		t.Error("a manifest uid in a body without one")
	}
}

func TestCollectionsGocache(t *testing.T) {
	c := couchbaseGocache(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.GetCollectionsManifest()
	failUnknown(t, err, "GET_COLLECTIONS_MANIFEST")
	mustOK(t, res, err)
	m, err := DecodeManifest(res.Body)
	if err != nil || m.UID != manifestUID {
		t.Fatalf("manifest: %+v, %v", m, err)
	}
	if cid, found := m.CollectionID("", "c1"); !found || cid != testCollection {
		t.Errorf("c1: %#x, %v", cid, found)
	}
	if s := m.Scope("app"); s == nil || s.UID != testScope || len(s.Collections) != 1 ||
		s.Collections[0].MaxTTL == nil || *s.Collections[0].MaxTTL != 3600 {
		t.Errorf("scope app: %+v", s)
	}
	if m2, err := c.Manifest(ctx); err != nil || m2.UID != manifestUID || len(m2.Scopes) != 2 {
		t.Errorf("Manifest: %+v, %v", m2, err)
	}

	res, err = c.CollectionsGetCID("app", "things")
	failUnknown(t, err, "COLLECTIONS_GET_CID")
	cid, uid, err := DecodeCollectionID(mustOK(t, res, err))
	if err != nil || cid != testAppThings || uid != manifestUID {
		t.Errorf("app.things: %#x, %#x, %v", cid, uid, err)
	}
	for _, path := range [][2]string{{"", ""}, {"_default", "_default"}, {"", "c1"}} {
		cid, _, err := c.CollectionID(ctx, path[0], path[1])
		want := uint32(0)
		if path[1] == "c1" {
			want = testCollection
		}
		if err != nil || cid != want {
			t.Errorf("%q.%q: %#x, %v", path[0], path[1], cid, err)
		}
	}
	res, err = c.CollectionsGetCID("app", "nothing")
	wantStatus(t, res, err, gomemcached.UNKNOWN_COLLECTION, gomemcached.ErrUnknownCollection)
	if uid, found := ManifestUIDOf(err); !found || uid != manifestUID {
		t.Errorf("manifest uid of UNKNOWN_COLLECTION: %#x, %v", uid, found)
	}
	_, _, err = c.CollectionID(ctx, "nowhere", "c1")
	if !errors.Is(err, gomemcached.ErrUnknownScope) {
		t.Errorf("unknown scope: %v", err)
	}

	// Keys in a collection are apart from the default collection's.
	k := keyPrefix(t) + "coll"
	ok(t)(c.Set(0, k, 0, 0, []byte("in c1"), &ClientContext{CollId: testCollection}))
	res, err = c.Get(0, k)
	wantStatus(t, res, err, gomemcached.KEY_ENOENT, gomemcached.ErrKeyNotFound)
	if res := ok(t)(c.Get(0, k, &ClientContext{CollId: testCollection})); string(res.Body) != "in c1" {
		t.Errorf("Get in c1: %q", res.Body)
	}
	res, err = c.Get(0, k, &ClientContext{CollId: 0x77})
	if !errors.Is(err, gomemcached.ErrUnknownCollection) {
		t.Errorf("Get in an unknown collection: %v, %v", res, err)
	}
}
