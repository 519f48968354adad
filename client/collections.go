package memcached

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/f8e615c8/gomemcached"
)

// Collections: the manifest (GET_COLLECTIONS_MANIFEST, 0xba) and
// collection ids (COLLECTIONS_GET_CID, 0xbb), kv_engine's
// docs/Collections.md. Keys name their collection by id (see
// ClientContext.CollId), once HELLO turned collections on.

// GetCollectionsManifest returns the bucket's collections manifest, the
// JSON document of the response's value (DecodeManifest reads it). A
// failed status (NO_COLLECTIONS_MANIFEST, UNKNOWN_COMMAND from servers
// without collections, ...) is returned as the error too.
func (c *Client) GetCollectionsManifest() (*gomemcached.MCResponse, error) {
	return c.c.call(&request{opcode: gomemcached.GET_COLLECTIONS_MANIFEST})
}

// CollectionsGetCID asks for the id of collection in scope (the request's
// value is "scope.collection"; empty names mean _default). The response's
// extras are the manifest uid(8) and the collection id(4) (see
// DecodeCollectionID). An unknown scope or collection fails with
// UNKNOWN_SCOPE or UNKNOWN_COLLECTION, returned as the error too, whose
// value names the manifest uid the server looked in (ManifestUIDOf).
func (c *Client) CollectionsGetCID(scope string, collection string) (*gomemcached.MCResponse, error) {
	return c.c.call(&request{opcode: gomemcached.COLLECTIONS_GET_CID, body: []byte(scope + "." + collection)})
}

// DecodeCollectionID decodes the answer to COLLECTIONS_GET_CID: the
// extras manifest uid(8), collection id(4). A failed status gives its
// *gomemcached.ServerError.
func DecodeCollectionID(res *gomemcached.MCResponse) (cid uint32, manifestUID uint64, err error) {
	if err := serverError(res); err != nil {
		return 0, 0, err
	}
	if len(res.Extras) != 12 {
		return 0, 0, badBody(gomemcached.COLLECTIONS_GET_CID, "extras of "+strconv.Itoa(len(res.Extras))+" bytes, want 12")
	}
	return binary.BigEndian.Uint32(res.Extras[8:12]), binary.BigEndian.Uint64(res.Extras[0:8]), nil
}

// CollectionID returns the id of collection in scope ("" means _default
// for either), and the uid of the manifest it was found in. An unknown
// scope or collection fails with a *gomemcached.ServerError matching
// gomemcached.ErrUnknownScope or ErrUnknownCollection.
func (c *Client) CollectionID(ctx context.Context, scope, collection string) (cid uint32, manifestUID uint64, err error) {
	res, err := c.c.do(ctx, &request{opcode: gomemcached.COLLECTIONS_GET_CID, body: []byte(scope + "." + collection)})
	if res == nil {
		return 0, 0, err
	}
	return DecodeCollectionID(res)
}

// Manifest returns the bucket's collections manifest, decoded.
func (c *Client) Manifest(ctx context.Context) (*Manifest, error) {
	res, err := c.c.do(ctx, &request{opcode: gomemcached.GET_COLLECTIONS_MANIFEST})
	if err != nil {
		return nil, err
	}
	return DecodeManifest(res.Body)
}

// Manifest is a bucket's collections manifest: its scopes and their
// collections. Uids are hexadecimal strings in the JSON and numbers here.
type Manifest struct {
	UID    uint64
	Scopes []ManifestScope
}

// ManifestScope is a scope of a Manifest.
type ManifestScope struct {
	Name        string
	UID         uint32
	Collections []ManifestCollection
}

// ManifestCollection is a collection of a ManifestScope.
type ManifestCollection struct {
	Name string
	UID  uint32
	// MaxTTL is the collection's maximum expiry in seconds, nil if the
	// manifest sets none.
	MaxTTL *uint32
	// History reports that the collection keeps its change history.
	History bool
}

// Scope returns the scope named name ("" means _default), nil if none.
func (m *Manifest) Scope(name string) *ManifestScope {
	if name == "" {
		name = "_default"
	}
	for i := range m.Scopes {
		if m.Scopes[i].Name == name {
			return &m.Scopes[i]
		}
	}
	return nil
}

// CollectionID returns the id of collection in scope ("" means _default
// for either), and whether the manifest has it.
func (m *Manifest) CollectionID(scope, collection string) (uint32, bool) {
	s := m.Scope(scope)
	if s == nil {
		return 0, false
	}
	if collection == "" {
		collection = "_default"
	}
	for _, c := range s.Collections {
		if c.Name == collection {
			return c.UID, true
		}
	}
	return 0, false
}

// The manifest as JSON.
type jsonManifest struct {
	UID    string `json:"uid"`
	Scopes []struct {
		Name        string `json:"name"`
		UID         string `json:"uid"`
		Collections []struct {
			Name    string  `json:"name"`
			UID     string  `json:"uid"`
			MaxTTL  *uint32 `json:"maxTTL"`
			History bool    `json:"history"`
		} `json:"collections"`
	} `json:"scopes"`
}

// DecodeManifest decodes a collections manifest, the JSON document
// GET_COLLECTIONS_MANIFEST returns: {"uid": hex, "scopes": [{"name",
// "uid": hex, "collections": [{"name", "uid": hex, "maxTTL", "history"},
// ...]}, ...]}; other keys are ignored. It fails, with ErrBadResponse,
// for JSON that does not parse and for a missing or malformed uid.
func DecodeManifest(body []byte) (*Manifest, error) {
	const op = gomemcached.GET_COLLECTIONS_MANIFEST
	var j jsonManifest
	if err := json.Unmarshal(body, &j); err != nil {
		return nil, &bodyError{op: op, detail: "manifest", cause: err}
	}
	uid, err := strconv.ParseUint(j.UID, 16, 64)
	if err != nil {
		return nil, badBody(op, "manifest uid "+strconv.Quote(j.UID))
	}
	m := &Manifest{UID: uid, Scopes: make([]ManifestScope, 0, len(j.Scopes))}
	for _, js := range j.Scopes {
		suid, err := strconv.ParseUint(js.UID, 16, 32)
		if err != nil {
			return nil, badBody(op, "scope uid "+strconv.Quote(js.UID))
		}
		s := ManifestScope{Name: js.Name, UID: uint32(suid), Collections: make([]ManifestCollection, 0, len(js.Collections))}
		for _, jc := range js.Collections {
			cuid, err := strconv.ParseUint(jc.UID, 16, 32)
			if err != nil {
				return nil, badBody(op, "collection uid "+strconv.Quote(jc.UID))
			}
			s.Collections = append(s.Collections, ManifestCollection{Name: jc.Name, UID: uint32(cuid), MaxTTL: jc.MaxTTL, History: jc.History})
		}
		m.Scopes = append(m.Scopes, s)
	}
	return m, nil
}

// ManifestUIDOf returns the manifest uid a server names in the value of
// an UNKNOWN_COLLECTION or UNKNOWN_SCOPE answer ({"manifest_uid": hex}),
// found in err's chain as an *gomemcached.MCResponse (the reference's
// methods) or a *gomemcached.ServerError (the new ones), and whether
// there was one.
func ManifestUIDOf(err error) (uint64, bool) {
	var body []byte
	var res *gomemcached.MCResponse
	var se *gomemcached.ServerError
	switch {
	case errors.As(err, &res):
		body = res.Body
	case errors.As(err, &se):
		body = se.Body
	default:
		return 0, false
	}
	var v struct {
		UID string `json:"manifest_uid"`
	}
	if json.Unmarshal(body, &v) != nil || v.UID == "" {
		return 0, false
	}
	uid, perr := strconv.ParseUint(v.UID, 16, 64)
	return uid, perr == nil
}
