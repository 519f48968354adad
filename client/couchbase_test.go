package memcached

// End-to-end tests of the Couchbase extensions (meta, observe, seqnos,
// collections, sub-documents, range scans) run against gocache, in
// process. A test whose command gocache does not serve yet (it answers
// UNKNOWN_COMMAND) skips with a message starting "!!!", so that the skip
// stands out; any other failure fails.

import (
	"bytes"
	"errors"
	"testing"

	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// The collections of couchbaseManifest.
const (
	testCollection = 0x8  // _default.c1
	testScope      = 0x8  // app
	testAppThings  = 0x9  // app.things
	manifestUID    = 0x2a // the manifest's uid
)

// couchbaseManifest is the manifest of couchbaseGocache's bucket.
const couchbaseManifest = `{"uid":"2a","scopes":[
 {"name":"_default","uid":"0","collections":[{"name":"_default","uid":"0"},{"name":"c1","uid":"8"}]},
 {"name":"app","uid":"8","collections":[{"name":"things","uid":"9","maxTTL":3600}]}]}`

// couchbaseFeatures are the features couchbaseGocache's clients ask for.
var couchbaseFeatures = Features{FeatureCollections, FeatureXattr, FeatureDataType, FeatureMutationToken, FeatureXerror}

// couchbaseGocache starts gocache with couchbaseManifest and returns a
// client that asked for couchbaseFeatures (gocache turns on those it has),
// both ended with the test.
func couchbaseGocache(t *testing.T) *Client {
	t.Helper()
	_, addr := gocachetest.Start(t, gocache.Config{
		Cache:    cache.Config{MaxItemSize: 2 << 20},
		Manifest: []byte(couchbaseManifest),
	})
	c := dialT(t, addr, ClientOptions{Features: couchbaseFeatures})
	if !c.CollectionEnabled() {
		t.Fatal("gocache did not turn collections on")
	}
	return c
}

// failUnknown fails the test if err says the server does not know the
// command op: gocache serves every command these tests use.
func failUnknown(t *testing.T, err error, op string) {
	t.Helper()
	if errors.Is(err, gomemcached.ErrUnknownCommand) {
		t.Fatalf("gocache does not know %s", op)
	}
}

// bytesReader reads b.
func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
