package memcached

import (
	"context"
	"encoding/binary"
	"strconv"

	"github.com/f8e615c8/gomemcached"
)

// Document metadata (GET_META, engines/ep/docs/protocol/get_meta.md in
// kv_engine), random documents (GET_RANDOM_KEY, docs/BinaryProtocol.md
// §0xb6) and ValidateKey.

// GetMeta returns the metadata of key (GET_META, version 1: no request
// extras). The response's extras are deleted(4), flags(4), expiry(4) and
// the revision seqno(8), its CAS the document's; DecodeMeta reads them. A
// deleted document is answered while its tombstone lasts.
func (c *Client) GetMeta(vb uint16, key string, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	r := request{opcode: gomemcached.GET_META, vb: vb, key: key}
	if err := c.c.applyContext(&r, context); err != nil {
		return nil, err
	}
	return c.c.call(&r)
}

// GetRandomDoc returns a document picked at random by the server
// (GET_RANDOM_KEY): the response has its key and value. As in the
// reference, it reads the first context only for the collection
// (CollId), a user to impersonate (User, sent whether or not collections
// are on) and IncludeXATTRs. With collections on, the extras name the
// collection (4 bytes), followed by a byte 1 when IncludeXATTRs asks for
// the extended attributes too, and the key comes back with its collection
// id; without them there are no extras, and a collection other than the
// default fails with ErrNoCollections.
func (c *Client) GetRandomDoc(context ...*ClientContext) (*gomemcached.MCResponse, error) {
	var cc *ClientContext
	if len(context) > 0 {
		cc = context[0]
	}
	var ex [5]byte
	r := request{opcode: gomemcached.GET_RANDOM_KEY}
	var cid uint32
	if cc != nil {
		cid = cc.CollId
		if n := len(cc.User); n > 0 && n <= gomemcached.MAX_USER_LEN {
			r.frames, _ = gomemcached.AppendFrame(nil, gomemcached.FrameImpersonate, []byte(cc.User))
		}
	}
	switch {
	case !c.c.feat.collections.Load():
		if cid != 0 {
			return nil, ErrNoCollections
		}
	case cc != nil && cc.IncludeXATTRs:
		binary.BigEndian.PutUint32(ex[:4], cid)
		ex[4] = 1 // any value but 0 asks for the extended attributes
		r.extras = ex[:5]
	default:
		binary.BigEndian.PutUint32(ex[:4], cid)
		r.extras = ex[:4]
	}
	return c.c.call(&r)
}

// ValidateKey reports whether key exists, without reading or changing it:
// it sends a REPLACE with a CAS no document has (all ones), which fails
// with KEY_EEXISTS if the key exists and KEY_ENOENT if not. Other failures
// are returned as the error (unlike the reference, which crashes on a
// transport error).
func (c *Client) ValidateKey(vb uint16, key string, context ...*ClientContext) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	var ex [8]byte // flags and expiry 0
	r := request{opcode: gomemcached.REPLACE, vb: vb, key: key, cas: ^uint64(0), extras: ex[:]}
	if err := c.c.applyContext(&r, context); err != nil {
		return false, err
	}
	res, err := c.c.call(&r)
	if res == nil {
		return false, err
	}
	switch res.Status {
	case gomemcached.KEY_EEXISTS:
		return true, nil
	case gomemcached.KEY_ENOENT:
		return false, nil
	}
	return false, err
}

// DocMeta is a document's metadata, as GET_META returns it.
type DocMeta struct {
	// Deleted reports a deleted document (a tombstone).
	Deleted bool
	// Flags are the document's flags.
	Flags uint32
	// Expiry is when the document expires, in Unix seconds (0: never); for
	// a deleted document, when it was deleted.
	Expiry uint32
	// Seqno is the document's revision sequence number (the count of its
	// mutations, which conflict resolution compares).
	Seqno uint64
	// Cas is the document's CAS.
	Cas uint64
	// Datatype is the document's datatype (gomemcached.DatatypeFlagJSON,
	// ...), when HasDatatype says the server sent it (version 2).
	Datatype    uint8
	HasDatatype bool
}

// metaV2 is the one byte of GET_META's extras that asks for version 2 of
// the answer, with the datatype (version 1, the default, is without).
const metaV2 = 2

// DecodeMeta decodes the answer to GET_META: the extras deleted(4),
// flags(4), expiry(4), seqno(8), and for version 2 datatype(1), with the
// header's CAS. A failed status gives its *gomemcached.ServerError; extras
// of another size, ErrBadResponse.
func DecodeMeta(res *gomemcached.MCResponse) (DocMeta, error) {
	if err := serverError(res); err != nil {
		return DocMeta{}, err
	}
	e := res.Extras
	if len(e) != 20 && len(e) != 21 {
		return DocMeta{}, badBody(gomemcached.GET_META, "extras of "+strconv.Itoa(len(e))+" bytes, want 20 or 21")
	}
	m := DocMeta{
		Deleted: binary.BigEndian.Uint32(e[0:4]) != 0,
		Flags:   binary.BigEndian.Uint32(e[4:8]),
		Expiry:  binary.BigEndian.Uint32(e[8:12]),
		Seqno:   binary.BigEndian.Uint64(e[12:20]),
		Cas:     res.Cas,
	}
	if len(e) == 21 {
		m.Datatype, m.HasDatatype = e[20], true
	}
	return m, nil
}

// Meta returns the metadata of key, datatype included (GET_META version
// 2: one byte of request extras, 2). The ClientContext, if not nil, names
// the collection and a user to impersonate. A missing key fails with a
// *gomemcached.ServerError matching gomemcached.ErrKeyNotFound.
func (c *Client) Meta(ctx context.Context, vb uint16, key string, cc *ClientContext) (DocMeta, error) {
	if err := checkKey(key); err != nil {
		return DocMeta{}, err
	}
	ex := [1]byte{metaV2}
	r := request{opcode: gomemcached.GET_META, vb: vb, key: key, extras: ex[:]}
	if err := c.c.applyContext(&r, contexts(cc)); err != nil {
		return DocMeta{}, err
	}
	r.datatype = 0
	res, err := c.c.do(ctx, &r)
	if res == nil {
		return DocMeta{}, err
	}
	return DecodeMeta(res)
}
