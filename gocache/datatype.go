package gocache

import (
	"github.com/golang/snappy"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/internal/subdoc"
)

// storedValue returns the value and datatype to store for a mutation: a
// Snappy value is inflated (only clients that negotiated Snappy may send
// one), the JSON flag is kept only for clients that negotiated JSON (as
// memcached, gocache otherwise ignores the datatype), and a value that
// starts with extended attributes is taken only from clients that
// negotiated XATTR, and only valid. ok is false when the request must be
// refused with EINVAL.
func storedValue(st *connState, req *gm.MCRequest) (value []byte, datatype uint8, ok bool) {
	value, dt := req.Body, req.DataType
	if dt&gm.DatatypeFlagXattrs != 0 && !st.features.Has(gm.FeatureXattr) {
		return nil, 0, false
	}
	if dt&gm.DatatypeFlagCompressed != 0 {
		if !st.features.Has(gm.FeatureSnappy) {
			return nil, 0, false
		}
		n, err := snappy.DecodedLen(value)
		if err != nil || n > gm.MaxBodyLen {
			return nil, 0, false
		}
		if value, err = snappy.Decode(nil, value); err != nil {
			return nil, 0, false
		}
	}
	if st.features.Has(gm.FeatureJSON) {
		datatype = dt & gm.DatatypeFlagJSON
	}
	if dt&gm.DatatypeFlagXattrs != 0 {
		blob, _, err := subdoc.Split(value)
		if err != nil || blob.Check() != nil {
			return nil, 0, false
		}
		datatype |= gm.DatatypeFlagXattrs
	}
	return value, datatype, true
}

// systemXattrs is what a deleted document keeps of its value, as
// kv_engine keeps it: the system xattrs (keys starting with _), nil if it
// has none.
func systemXattrs(value []byte) []byte {
	blob, _, err := subdoc.Split(value)
	if err != nil {
		return nil
	}
	return blob.System(nil)
}

// docBody is the value of an item as the plain commands answer it: a
// document's extended attributes, if it has any, are left out.
func docBody(it *cache.Item) []byte {
	if it.Datatype&gm.DatatypeFlagXattrs == 0 {
		return it.Value
	}
	if _, body, err := subdoc.Split(it.Value); err == nil {
		return body
	}
	return it.Value
}

// sentDatatype is the datatype a stored item is answered with: its JSON
// flag for clients that negotiated JSON. Values are stored inflated, so
// nothing is ever sent compressed.
func sentDatatype(st *connState, stored uint8) uint8 {
	if st.features.Has(gm.FeatureJSON) {
		return stored & gm.DatatypeFlagJSON
	}
	return 0
}
