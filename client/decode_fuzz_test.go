package memcached

import (
	"bytes"
	"testing"

	"github.com/f8e615c8/gomemcached"
)

// FuzzDecoders feeds arbitrary values to every decoder of the Couchbase
// extensions: none may panic, and what they return must slice the input
// within its bounds.
func FuzzDecoders(f *testing.F) {
	seeds := [][]byte{
		{0x04, 'k', 'e', 'y', '0', 0x05, 'k', 'e', 'y', '1', '1'},
		{0x80, 0x01, 'x'},
		{0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 1, 4, 'k', 'e', 'y', '0', 6, 'v', 'a', 'l', 'u', 'e', '0'},
		{0, 0, 0, 0, 0, 2, '4', '2', 0, 0xc0, 0, 0, 0, 0},
		{1, 0, 0, 0, 0, 0, 2, '4', '2'},
		{0, 3, 0, 2, 'a', 'b', 0x81, 0, 0, 0, 0, 0, 0, 0, 0xff},
		{0, 0, 5, 0, 0, 0, 0, 0, 0xab, 0xcd, 0xef, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x20},
		[]byte(`{"uid":"2a","scopes":[{"name":"_default","uid":"0","collections":[{"name":"c","uid":"8","maxTTL":5}]}]}`),
		make([]byte, 21),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	within := func(t *testing.T, what string, in, part []byte) {
		if len(part) == 0 {
			return
		}
		// part must lie inside in.
		start := bytes.Index(in, part)
		if start < 0 {
			t.Fatalf("%s % x is not in the input", what, part)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if keys, err := DecodeScanKeys(nil, in); err == nil {
			n := 0
			for _, k := range keys {
				within(t, "key", in, k)
				n += len(k)
			}
			if n > len(in) {
				t.Fatalf("%d bytes of keys from %d", n, len(in))
			}
		}
		if docs, err := DecodeScanDocuments(nil, in); err == nil {
			for _, d := range docs {
				within(t, "document key", in, d.Key)
				within(t, "document value", in, d.Value)
			}
		}
		if rs, err := DecodeLookupResults(nil, in); err == nil {
			for _, r := range rs {
				within(t, "lookup value", in, r.Value)
			}
		}
		for _, st := range []gomemcached.Status{gomemcached.SUCCESS, gomemcached.SUBDOC_BAD_MULTI} {
			res := &gomemcached.MCResponse{Opcode: gomemcached.SUBDOC_MULTI_MUTATION, Status: st, Body: in}
			if r, err := DecodeMutateResult(res, 4); err == nil {
				for _, x := range r.Results {
					within(t, "mutation value", in, x.Value)
				}
			}
			res.Extras, res.Body = in, nil
			DecodeMutateResult(res, 1)
			DecodeLookupResult(&gomemcached.MCResponse{Status: st, Body: in})
		}
		if keys, err := DecodeObserve(nil, in); err == nil {
			for _, k := range keys {
				within(t, "observed key", in, k.Key)
			}
		}
		DecodeObserveSeq(in)
		DecodeVbSeqnos(nil, in)
		DecodeManifest(in)
		DecodeMeta(&gomemcached.MCResponse{Extras: in})
		DecodeCollectionID(&gomemcached.MCResponse{Extras: in})
		ManifestUIDOf(&gomemcached.MCResponse{Status: gomemcached.UNKNOWN_COLLECTION, Body: in})
	})
}
