package gocache_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	refmc "github.com/couchbase/gomemcached"
	refc "github.com/couchbase/gomemcached/client"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	client "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// Flags of protocol_binary.h (path flags per spec, doc flags per command).
const (
	sdMkdir   = 0x01 // PathFlag::Mkdir_p
	sdXattr   = 0x04 // PathFlag::XattrPath
	sdMacros  = 0x10 // PathFlag::ExpandMacros
	sdBinary  = 0x20 // PathFlag::BinaryValue
	sdMkdoc   = 0x01 // DocFlag::Mkdoc
	sdAdd     = 0x02 // DocFlag::Add
	sdDeleted = 0x04 // DocFlag::AccessDeleted
	sdAsDel   = 0x08 // DocFlag::CreateAsDeleted
	sdRevive  = 0x10 // DocFlag::ReviveDocument

	opReplaceBodyWithXattr = gm.SUBDOC_REPLACE_BODY_WITH_XATTR
)

// sdFeatures are what a sub-document client negotiates.
var sdFeatures = client.Features{gm.FeatureXattr, gm.FeatureJSON, gm.FeatureMutationSeqno, gm.FeatureXError}

// sdConn is a client of a gocache server, with helpers for sub-document
// requests.
type sdConn struct {
	t *testing.T
	c *client.Client
}

func sdDial(t *testing.T, addr string, features client.Features) *sdConn {
	t.Helper()
	c, err := client.Dial(context.Background(), "tcp", addr, client.ClientOptions{Features: features})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &sdConn{t: t, c: c}
}

func sdServer(t *testing.T, cfg gocache.Config) (string, *sdConn) {
	t.Helper()
	_, addr := gocachetest.Start(t, cfg)
	return addr, sdDial(t, addr, sdFeatures)
}

// do sends req and returns its response, whatever its status.
func (s *sdConn) do(req gm.MCRequest) *gm.MCResponse {
	s.t.Helper()
	res, err := s.c.Send(&req)
	if res == nil {
		s.t.Fatalf("%v: %v", req.Opcode, err)
	}
	return res
}

// single is a single-path request: extras are path length, path flags,
// then extra (expiry, doc flags).
func single(op gm.CommandCode, key, path string, flags uint8, value string, extra ...byte) gm.MCRequest {
	ex := append(binary.BigEndian.AppendUint16(nil, uint16(len(path))), flags)
	return gm.MCRequest{Opcode: op, Key: []byte(key), Extras: append(ex, extra...), Body: []byte(path + value)}
}

// lspec and mspec are a multi-lookup and a multi-mutation spec.
func lspec(op gm.CommandCode, flags uint8, path string) []byte {
	b := binary.BigEndian.AppendUint16([]byte{byte(op), flags}, uint16(len(path)))
	return append(b, path...)
}

func mspec(op gm.CommandCode, flags uint8, path, value string) []byte {
	b := binary.BigEndian.AppendUint16([]byte{byte(op), flags}, uint16(len(path)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(value)))
	return append(append(b, path...), value...)
}

func multi(op gm.CommandCode, key string, extras []byte, specs ...[]byte) gm.MCRequest {
	return gm.MCRequest{Opcode: op, Key: []byte(key), Extras: extras, Body: bytes.Join(specs, nil)}
}

type lookupResult struct {
	status gm.Status
	value  string
}

func lookupResults(t *testing.T, body []byte) []lookupResult {
	t.Helper()
	var out []lookupResult
	for len(body) > 0 {
		if len(body) < 6 {
			t.Fatalf("lookup results truncated: % x", body)
		}
		n := int(binary.BigEndian.Uint32(body[2:]))
		out = append(out, lookupResult{gm.Status(binary.BigEndian.Uint16(body)), string(body[6 : 6+n])})
		body = body[6+n:]
	}
	return out
}

func (s *sdConn) set(key, value string) uint64 {
	s.t.Helper()
	res := s.do(gm.MCRequest{Opcode: gm.SET, Key: []byte(key), Extras: make([]byte, 8), Body: []byte(value), DataType: gm.DatatypeFlagJSON})
	if res.Status != gm.SUCCESS {
		s.t.Fatalf("SET %s: %v", key, res.Status)
	}
	return res.Cas
}

// body returns a document's body (with a whole-document GET, which leaves
// its xattrs out) and the lookup's status.
func (s *sdConn) body(key string, docFlags ...byte) (string, gm.Status) {
	s.t.Helper()
	res := s.do(multi(gm.SUBDOC_MULTI_LOOKUP, key, docFlags, lspec(gm.GET, 0, "")))
	if res.Status != gm.SUCCESS && res.Status != gm.SUBDOC_SUCCESS_DELETED && res.Status != gm.SUBDOC_BAD_MULTI &&
		res.Status != gm.SUBDOC_MULTI_PATH_FAILURE_DELETED {
		return "", res.Status
	}
	return lookupResults(s.t, res.Body)[0].value, res.Status
}

// get is a SUBDOC_GET: status and value.
func (s *sdConn) get(key, path string, flags uint8, extra ...byte) (gm.Status, string) {
	s.t.Helper()
	res := s.do(single(gm.SUBDOC_GET, key, path, flags, "", extra...))
	return res.Status, string(res.Body)
}

func TestSubdocSinglePath(t *testing.T) {
	_, c := sdServer(t, gocache.Config{})
	const doc = `{"name":"elmo","tags":["a","b"],"n":1,"obj":{"k":true},"s":"x"}`
	for _, tc := range []struct {
		name   string
		op     gm.CommandCode
		path   string
		flags  uint8
		value  string
		status gm.Status
		result string // the answer's value
		after  string // the body afterwards, if not doc
	}{
		{name: "get", op: gm.SUBDOC_GET, path: "obj.k", result: "true"},
		{name: "get array element", op: gm.SUBDOC_GET, path: "tags[-1]", result: `"b"`},
		{name: "get missing", op: gm.SUBDOC_GET, path: "nope", status: gm.SUBDOC_PATH_NOT_FOUND},
		{name: "get mismatch", op: gm.SUBDOC_GET, path: "tags.x", status: gm.SUBDOC_PATH_MISMATCH},
		{name: "get bad path", op: gm.SUBDOC_GET, path: "a..b", status: gm.SUBDOC_PATH_EINVAL},
		{name: "get too many components", op: gm.SUBDOC_GET, path: strings.Repeat("a.", 31) + "a", status: gm.SUBDOC_PATH_E2BIG},
		{name: "exists", op: gm.SUBDOC_EXISTS, path: "name"},
		{name: "exists missing", op: gm.SUBDOC_EXISTS, path: "nam", status: gm.SUBDOC_PATH_NOT_FOUND},
		{name: "get_count", op: gm.SUBDOC_GET_COUNT, path: "tags", result: "2"},
		{name: "get_count root", op: gm.SUBDOC_GET_COUNT, path: "", result: "5"},
		{name: "get_count scalar", op: gm.SUBDOC_GET_COUNT, path: "n", status: gm.SUBDOC_PATH_MISMATCH},
		{name: "dict_add", op: gm.SUBDOC_DICT_ADD, path: "new", value: `[1]`, after: `{"name":"elmo","tags":["a","b"],"n":1,"obj":{"k":true},"s":"x","new":[1]}`},
		{name: "dict_add exists", op: gm.SUBDOC_DICT_ADD, path: "name", value: `1`, status: gm.SUBDOC_PATH_EEXISTS},
		{name: "dict_add mkdir", op: gm.SUBDOC_DICT_ADD, path: "a.b", flags: sdMkdir, value: `1`, after: `{"name":"elmo","tags":["a","b"],"n":1,"obj":{"k":true},"s":"x","a":{"b":1}}`},
		{name: "dict_add no parent", op: gm.SUBDOC_DICT_ADD, path: "a.b", value: `1`, status: gm.SUBDOC_PATH_NOT_FOUND},
		{name: "dict_add index", op: gm.SUBDOC_DICT_ADD, path: "tags[5]", value: `1`, status: gm.SUBDOC_PATH_EINVAL},
		{name: "dict_add not JSON", op: gm.SUBDOC_DICT_ADD, path: "x", value: `elmo`, status: gm.SUBDOC_VALUE_CANTINSERT},
		{name: "dict_add too deep", op: gm.SUBDOC_DICT_ADD, path: "x", value: strings.Repeat("[", 32) + strings.Repeat("]", 32), status: gm.SUBDOC_VALUE_ETOODEEP},
		{name: "dict_upsert", op: gm.SUBDOC_DICT_UPSERT, path: "name", value: `"grover"`, after: `{"name":"grover","tags":["a","b"],"n":1,"obj":{"k":true},"s":"x"}`},
		{name: "delete", op: gm.SUBDOC_DELETE, path: "tags[0]", after: `{"name":"elmo","tags":["b"],"n":1,"obj":{"k":true},"s":"x"}`},
		{name: "delete missing", op: gm.SUBDOC_DELETE, path: "zz", status: gm.SUBDOC_PATH_NOT_FOUND},
		{name: "replace", op: gm.SUBDOC_REPLACE, path: "obj", value: `{}`, after: `{"name":"elmo","tags":["a","b"],"n":1,"obj":{},"s":"x"}`},
		{name: "replace missing", op: gm.SUBDOC_REPLACE, path: "zz", value: `{}`, status: gm.SUBDOC_PATH_NOT_FOUND},
		{name: "push_last", op: gm.SUBDOC_ARRAY_PUSH_LAST, path: "tags", value: `"c","d"`, after: `{"name":"elmo","tags":["a","b","c","d"],"n":1,"obj":{"k":true},"s":"x"}`},
		{name: "push_last not array", op: gm.SUBDOC_ARRAY_PUSH_LAST, path: "obj", value: `1`, status: gm.SUBDOC_PATH_MISMATCH},
		{name: "push_first", op: gm.SUBDOC_ARRAY_PUSH_FIRST, path: "tags", value: `"z"`, after: `{"name":"elmo","tags":["z","a","b"],"n":1,"obj":{"k":true},"s":"x"}`},
		{name: "push_first mkdir", op: gm.SUBDOC_ARRAY_PUSH_FIRST, path: "l", flags: sdMkdir, value: `0`, after: `{"name":"elmo","tags":["a","b"],"n":1,"obj":{"k":true},"s":"x","l":[0]}`},
		{name: "insert", op: gm.SUBDOC_ARRAY_INSERT, path: "tags[1]", value: `"m"`, after: `{"name":"elmo","tags":["a","m","b"],"n":1,"obj":{"k":true},"s":"x"}`},
		{name: "insert past end", op: gm.SUBDOC_ARRAY_INSERT, path: "tags[3]", value: `"m"`, status: gm.SUBDOC_PATH_NOT_FOUND},
		{name: "insert not an index", op: gm.SUBDOC_ARRAY_INSERT, path: "tags", value: `"m"`, status: gm.SUBDOC_PATH_EINVAL},
		{name: "add_unique", op: gm.SUBDOC_ARRAY_ADD_UNIQUE, path: "tags", value: `"c"`, after: `{"name":"elmo","tags":["a","b","c"],"n":1,"obj":{"k":true},"s":"x"}`},
		{name: "add_unique present", op: gm.SUBDOC_ARRAY_ADD_UNIQUE, path: "tags", value: `"a"`, status: gm.SUBDOC_PATH_EEXISTS},
		{name: "add_unique not primitive", op: gm.SUBDOC_ARRAY_ADD_UNIQUE, path: "tags", value: `[]`, status: gm.SUBDOC_VALUE_CANTINSERT},
		{name: "counter", op: gm.SUBDOC_COUNTER, path: "n", value: `41`, result: "42", after: `{"name":"elmo","tags":["a","b"],"n":42,"obj":{"k":true},"s":"x"}`},
		{name: "counter new", op: gm.SUBDOC_COUNTER, path: "c", value: `-3`, result: "-3", after: `{"name":"elmo","tags":["a","b"],"n":1,"obj":{"k":true},"s":"x","c":-3}`},
		{name: "counter on string", op: gm.SUBDOC_COUNTER, path: "s", value: `1`, status: gm.SUBDOC_PATH_MISMATCH},
		{name: "counter bad delta", op: gm.SUBDOC_COUNTER, path: "n", value: `1.5`, status: gm.SUBDOC_DELTA_EINVAL},
		{name: "counter overflow", op: gm.SUBDOC_COUNTER, path: "n", value: strconv.FormatInt(1<<63-1, 10), status: gm.SUBDOC_VALUE_CANTINSERT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.set("doc", doc)
			res := c.do(single(tc.op, "doc", tc.path, tc.flags, tc.value))
			if res.Status != tc.status || tc.status == gm.SUCCESS && string(res.Body) != tc.result {
				t.Fatalf("status %v body %q, want %v %q", res.Status, res.Body, tc.status, tc.result)
			}
			after := tc.after
			if after == "" {
				after = doc
			}
			if got, _ := c.body("doc"); got != after {
				t.Errorf("body %s, want %s", got, after)
			}
		})
	}
	// Results are JSON; a counter's too.
	c.set("doc", doc)
	if res := c.do(single(gm.SUBDOC_GET, "doc", "tags", 0, "")); res.DataType != gm.DatatypeFlagJSON || res.Cas == 0 {
		t.Errorf("GET: datatype %x cas %d", res.DataType, res.Cas)
	}
	if res := c.do(single(gm.SUBDOC_EXISTS, "doc", "tags", 0, "")); res.DataType != 0 || len(res.Body) != 0 {
		t.Errorf("EXISTS: datatype %x body %q", res.DataType, res.Body)
	}
}

func TestSubdocDocumentErrors(t *testing.T) {
	_, c := sdServer(t, gocache.Config{Cache: cache.Config{MaxItemSize: 4096}})
	if res := c.do(single(gm.SUBDOC_GET, "missing", "a", 0, "")); res.Status != gm.KEY_ENOENT {
		t.Errorf("lookup of a missing document: %v", res.Status)
	}
	if res := c.do(single(gm.SUBDOC_DICT_UPSERT, "missing", "a", 0, "1")); res.Status != gm.KEY_ENOENT {
		t.Errorf("mutation of a missing document: %v", res.Status)
	}
	cas := c.set("doc", `{"a":1}`)
	if res := c.do(single(gm.SUBDOC_DICT_UPSERT, "doc", "a", 0, "2")); res.Status != gm.SUCCESS || res.Cas == cas || res.Cas == 0 {
		t.Errorf("upsert: %v cas %d (was %d)", res.Status, res.Cas, cas)
	}
	// CAS must match, for lookups too.
	for _, op := range []gm.CommandCode{gm.SUBDOC_GET, gm.SUBDOC_DICT_UPSERT} {
		req := single(op, "doc", "a", 0, "")
		if op == gm.SUBDOC_DICT_UPSERT {
			req.Body = append(req.Body, '3')
		}
		req.Cas = cas
		if res := c.do(req); res.Status != gm.KEY_EEXISTS {
			t.Errorf("%v with a stale CAS: %v", op, res.Status)
		}
	}
	// A body that is not JSON.
	c.do(gm.MCRequest{Opcode: gm.SET, Key: []byte("text"), Extras: make([]byte, 8), Body: []byte("not json")})
	if res := c.do(single(gm.SUBDOC_GET, "text", "a", 0, "")); res.Status != gm.SUBDOC_DOC_NOT_JSON {
		t.Errorf("lookup in text: %v", res.Status)
	}
	if res := c.do(single(gm.SUBDOC_DICT_UPSERT, "text", "a", 0, "1")); res.Status != gm.SUBDOC_DOC_NOT_JSON {
		t.Errorf("mutation of text: %v", res.Status)
	}
	// A JSON body stored without the JSON datatype is JSON all the same
	// (kv_engine finds out when it is stored).
	c.do(gm.MCRequest{Opcode: gm.SET, Key: []byte("plain"), Extras: make([]byte, 8), Body: []byte(`{"a":[1]}`)})
	if st, v := c.get("plain", "a[0]", 0); st != gm.SUCCESS || v != "1" {
		t.Errorf("lookup in JSON stored raw: %v %q", st, v)
	}
	// Too deep a document.
	c.set("deep", strings.Repeat("[", 40)+strings.Repeat("]", 40))
	if res := c.do(single(gm.SUBDOC_GET, "deep", strings.Repeat("[0]", 31), 0, "")); res.Status != gm.SUBDOC_DOC_E2DEEP {
		t.Errorf("lookup in a deep document: %v", res.Status)
	}
	// A result past the item size limit.
	c.set("big", `{"a":[]}`)
	big := `"` + strings.Repeat("x", 3000) + `"`
	if res := c.do(single(gm.SUBDOC_ARRAY_PUSH_LAST, "big", "a", 0, big)); res.Status != gm.SUCCESS {
		t.Fatalf("first push: %v", res.Status)
	}
	if res := c.do(single(gm.SUBDOC_ARRAY_PUSH_LAST, "big", "a", 0, big)); res.Status != gm.E2BIG {
		t.Errorf("push past the limit: %v", res.Status)
	}
	if got, _ := c.body("big"); len(got) != len(big)+8 {
		t.Errorf("the failed push changed the document: %d bytes", len(got))
	}
}

func TestSubdocTokensDatatypeExpiry(t *testing.T) {
	addr, c := sdServer(t, gocache.Config{})
	c.set("doc", `{"n":1}`)
	res := c.do(single(gm.SUBDOC_COUNTER, "doc", "n", 0, "1"))
	if res.Status != gm.SUCCESS || len(res.Extras) != 16 || string(res.Body) != "2" || res.DataType != gm.DatatypeFlagJSON {
		t.Fatalf("counter: %v extras % x body %q datatype %x", res.Status, res.Extras, res.Body, res.DataType)
	}
	seqno := binary.BigEndian.Uint64(res.Extras[8:])
	_, doc := c.get("doc", "$document", sdXattr)
	var fields map[string]any
	if err := json.Unmarshal([]byte(doc), &fields); err != nil {
		t.Fatal(err)
	}
	if fields["CAS"] != fmt.Sprintf("0x%016x", res.Cas) || fields["seqno"] != fmt.Sprintf("0x%016x", seqno) ||
		fields["vbucket_uuid"] != fmt.Sprintf("0x%016x", binary.BigEndian.Uint64(res.Extras)) {
		t.Errorf("$document %s, token % x cas %x", doc, res.Extras, res.Cas)
	}
	// Without MutationSeqno and JSON: no token, raw results.
	plain := sdDial(t, addr, client.Features{gm.FeatureXError})
	res = plain.do(single(gm.SUBDOC_COUNTER, "doc", "n", 0, "1"))
	if res.Status != gm.SUCCESS || len(res.Extras) != 0 || res.DataType != 0 || string(res.Body) != "3" {
		t.Errorf("counter without features: %v extras % x datatype %x body %q", res.Status, res.Extras, res.DataType, res.Body)
	}
	// Expiry: extras of 7 bytes set it; a mutation without clears it, as
	// kv_engine's do; a mutation with PreserveTTL keeps it.
	exp := uint32(time.Now().Add(time.Hour).Unix())
	res = c.do(single(gm.SUBDOC_DICT_UPSERT, "doc", "e", 0, "1", binary.BigEndian.AppendUint32(nil, exp)...))
	if res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	if _, v := c.get("doc", "$document.exptime", sdXattr); v != strconv.Itoa(int(exp)) {
		t.Errorf("exptime %s, want %d", v, exp)
	}
	c.do(single(gm.SUBDOC_DICT_UPSERT, "doc", "e", 0, "2"))
	if _, v := c.get("doc", "$document.exptime", sdXattr); v != "0" {
		t.Errorf("exptime after a mutation without one: %s", v)
	}
	// User flags: extras of 11 bytes (expiry, flags) set them; others keep them.
	c.do(single(gm.SUBDOC_DICT_UPSERT, "doc", "e", 0, "3", append(make([]byte, 4), 0, 0, 0, 42)...))
	c.do(single(gm.SUBDOC_DICT_UPSERT, "doc", "e", 0, "4"))
	if _, v := c.get("doc", "$document.flags", sdXattr); v != "42" {
		t.Errorf("flags %s", v)
	}
}

func TestSubdocDocFlags(t *testing.T) {
	addr, c := sdServer(t, gocache.Config{})
	// MKDOC creates the document, from the root the path implies.
	if res := c.do(single(gm.SUBDOC_DICT_UPSERT, "made", "a.b", 0, "1", sdMkdoc)); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	if got, _ := c.body("made"); got != `{"a":{"b":1}}` {
		t.Errorf("made %s", got)
	}
	if res := c.do(single(gm.SUBDOC_ARRAY_PUSH_LAST, "list", "", 0, "1", sdMkdoc)); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	if got, _ := c.body("list"); got != `[1]` {
		t.Errorf("list %s", got)
	}
	// MKDOC on a document that exists changes it.
	if res := c.do(single(gm.SUBDOC_DICT_UPSERT, "made", "c", 0, "2", sdMkdoc)); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	// ADD creates only.
	if res := c.do(single(gm.SUBDOC_DICT_UPSERT, "made", "d", 0, "2", sdAdd)); res.Status != gm.KEY_EEXISTS {
		t.Errorf("ADD on a document: %v", res.Status)
	}
	if res := c.do(single(gm.SUBDOC_DICT_UPSERT, "added", "d", 0, "2", sdAdd)); res.Status != gm.SUCCESS {
		t.Errorf("ADD: %v", res.Status)
	}
	// CREATE_AS_DELETED: a deleted document holding a system xattr.
	res := c.do(single(gm.SUBDOC_DICT_UPSERT, "ghost", "_txn.id", sdXattr, `"t1"`, sdAdd|sdAsDel|sdDeleted))
	if res.Status != gm.SUBDOC_SUCCESS_DELETED {
		t.Fatalf("create as deleted: %v", res.Status)
	}
	if st, _ := c.get("ghost", "_txn.id", sdXattr); st != gm.KEY_ENOENT {
		t.Errorf("deleted document read without ACCESS_DELETED: %v", st)
	}
	if st, v := c.get("ghost", "_txn.id", sdXattr, sdDeleted); st != gm.SUBDOC_SUCCESS_DELETED || v != `"t1"` {
		t.Errorf("deleted document with ACCESS_DELETED: %v %q", st, v)
	}
	if st, v := c.get("ghost", "$document.deleted", sdXattr, sdDeleted); st != gm.SUBDOC_SUCCESS_DELETED || v != "true" {
		t.Errorf("$document.deleted: %v %q", st, v)
	}
	// Its body must stay empty.
	if res := c.do(single(gm.SUBDOC_DICT_UPSERT, "ghost", "a", 0, "1", sdDeleted)); res.Status != gm.SUBDOC_DOC_NOT_JSON {
		t.Errorf("body path of a deleted document: %v", res.Status)
	}
	// Xattrs of a deleted document may change; it stays deleted.
	if res := c.do(single(gm.SUBDOC_DICT_UPSERT, "ghost", "_txn.n", sdXattr, "1", sdDeleted)); res.Status != gm.SUBDOC_SUCCESS_DELETED {
		t.Errorf("xattr of a deleted document: %v", res.Status)
	}
	// REVIVED_DOC brings it back to life, only a deleted one.
	if res := c.do(single(gm.SUBDOC_DICT_UPSERT, "made", "_x", sdXattr, "1", sdDeleted|sdRevive)); res.Status != gm.SUBDOC_CAN_ONLY_REVIVE_DELETED_DOCUMENTS {
		t.Errorf("revive a live document: %v", res.Status)
	}
	res = c.do(single(gm.SUBDOC_DICT_UPSERT, "ghost", "_txn.state", sdXattr, `"done"`, sdDeleted|sdRevive))
	if res.Status != gm.SUCCESS {
		t.Fatalf("revive: %v", res.Status)
	}
	if st, v := c.get("ghost", "_txn", sdXattr); st != gm.SUCCESS || v != `{"id":"t1","n":1,"state":"done"}` {
		t.Errorf("revived: %v %s", st, v)
	}
	// A transaction's way: stage the body in an xattr of a document
	// created deleted, then make it the body and revive the document.
	res = c.do(single(gm.SUBDOC_DICT_UPSERT, "staged", "txn.staged", sdXattr|sdMkdir, `{"a": 1}`, sdMkdoc|sdAsDel|sdDeleted))
	if res.Status != gm.SUBDOC_SUCCESS_DELETED {
		t.Fatalf("stage: %v", res.Status)
	}
	if res := c.do(single(opReplaceBodyWithXattr, "staged", "txn.staged", sdXattr, "", sdDeleted|sdRevive)); res.Status != gm.SUCCESS {
		t.Fatalf("replace body with xattr: %v", res.Status)
	}
	if got, st := c.body("staged"); st != gm.SUCCESS || got != `{"a":1}` {
		t.Errorf("staged body %q %v", got, st)
	}
	// REVIVED_DOC without ACCESS_DELETED, and with CREATE_AS_DELETED, are
	// EINVAL (multi-path validator); so is SET with ACCESS_DELETED (its
	// traits). EINVAL closes the connection.
	for _, req := range []gm.MCRequest{
		multi(gm.SUBDOC_MULTI_MUTATION, "ghost", []byte{sdRevive}, mspec(gm.SUBDOC_DICT_UPSERT, sdXattr, "_a", "1")),
		multi(gm.SUBDOC_MULTI_MUTATION, "ghost", []byte{sdRevive | sdDeleted | sdAsDel}, mspec(gm.SUBDOC_DICT_UPSERT, sdXattr, "_a", "1")),
		multi(gm.SUBDOC_MULTI_MUTATION, "ghost", []byte{sdDeleted}, mspec(gm.SET, 0, "", `{}`)),
		single(gm.SUBDOC_DICT_UPSERT, "x", "a", 0, "1", sdAdd|sdMkdoc),
		single(gm.SUBDOC_DICT_UPSERT, "x", "a", 0, "1", sdMkdoc|sdAsDel), // body path
		single(gm.SUBDOC_DICT_UPSERT, "x", "_a", sdXattr, "1", sdAsDel),  // neither MKDOC nor ADD
		single(gm.SUBDOC_ARRAY_INSERT, "x", "a[0]", 0, "1", sdMkdoc),     // insert takes no MKDOC
		single(gm.SUBDOC_GET, "x", "a", 0, "", sdMkdoc),                  // a lookup
		single(gm.SUBDOC_DICT_UPSERT, "x", "a", 0, "1", 0x40),            // unknown doc flag
	} {
		invalid(t, addr, req)
	}
	withCAS := single(gm.SUBDOC_DICT_UPSERT, "x", "a", 0, "1", sdAdd)
	withCAS.Cas = 1
	invalid(t, addr, withCAS)
}

// invalid sends req on a connection of its own and checks it is answered
// EINVAL and the connection closed, as for any malformed request.
func invalid(t *testing.T, addr string, req gm.MCRequest) {
	t.Helper()
	c := dialRaw(t, addr)
	c.hello(0x06, 0x07, 0x0b)
	res := c.do(req)
	if res.Status != gm.EINVAL || !c.ended() {
		t.Errorf("%v extras % x body %q: %v, want EINVAL and the connection closed", req.Opcode, req.Extras, req.Body, res.Status)
	}
}

func TestSubdocXattrs(t *testing.T) {
	addr, c := sdServer(t, gocache.Config{})
	cas := c.set("doc", `{"body":true}`)
	// Lookups of xattrs a document does not have.
	if st, _ := c.get("doc", "meta", sdXattr); st != gm.SUBDOC_PATH_NOT_FOUND {
		t.Errorf("missing xattr: %v", st)
	}
	// A user and a system xattr, the second made with MKDIR_P.
	if res := c.do(single(gm.SUBDOC_DICT_UPSERT, "doc", "meta", sdXattr, `{"v": 1}`)); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	if res := c.do(single(gm.SUBDOC_DICT_UPSERT, "doc", "_sync.rev.n", sdXattr|sdMkdir, `"1-a"`)); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	if res := c.do(single(gm.SUBDOC_ARRAY_PUSH_LAST, "doc", "meta.list", sdXattr|sdMkdir, `1`)); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	for _, tc := range []struct{ path, want string }{
		{"meta", `{"list":[1],"v":1}`}, // compact, keys sorted, as kv_engine rebuilds xattrs
		{"meta.v", "1"}, {"_sync.rev.n", `"1-a"`}, {"$XTOC", `["_sync","meta"]`},
		{"$document.datatype", `["json","xattr"]`}, {"$document.value_bytes", "13"}, {"$document.deleted", "false"},
		{"$document.value_crc32c", fmt.Sprintf(`"0x%08x"`, crc32.Checksum([]byte(`{"body":true}`), crc32.MakeTable(crc32.Castagnoli)))},
		{"$document.revid", `"4"`},
	} {
		if st, v := c.get("doc", tc.path, sdXattr); st != gm.SUCCESS || v != tc.want {
			t.Errorf("%s: %v %s, want %s", tc.path, st, v, tc.want)
		}
	}
	if st, v := c.get("doc", "$vbucket.HLC.mode", sdXattr); st != gm.SUCCESS || v != `"real"` {
		t.Errorf("$vbucket: %v %s", st, v)
	}
	// The body is untouched; a body path still reads it.
	if got, _ := c.body("doc"); got != `{"body":true}` {
		t.Errorf("body %s", got)
	}
	if st, v := c.get("doc", "body", 0); st != gm.SUCCESS || v != "true" {
		t.Errorf("body path: %v %s", st, v)
	}
	// The $document of the current version: its CAS is the document's.
	res := c.do(single(gm.SUBDOC_GET, "doc", "$document.CAS", sdXattr, ""))
	if string(res.Body) != fmt.Sprintf(`"0x%016x"`, res.Cas) || res.Cas == cas {
		t.Errorf("$document.CAS %s, CAS %x", res.Body, res.Cas)
	}
	// Delete an xattr; the last one gone, the datatype loses XATTR.
	for _, path := range []string{"meta", "_sync"} {
		if res := c.do(single(gm.SUBDOC_DELETE, "doc", path, sdXattr, "")); res.Status != gm.SUCCESS {
			t.Fatalf("delete %s: %v", path, res.Status)
		}
	}
	if _, v := c.get("doc", "$document.datatype", sdXattr); v != `["json"]` {
		t.Errorf("datatype after deleting every xattr: %s", v)
	}
	// Errors of xattr paths, answered whole.
	for _, tc := range []struct {
		req    gm.MCRequest
		status gm.Status
	}{
		{single(gm.SUBDOC_GET, "doc", "$nope", sdXattr, ""), gm.SUBDOC_XATTR_UNKNOWN_VATTR},
		{single(gm.SUBDOC_DICT_UPSERT, "doc", "$document.x", sdXattr, "1"), gm.SUBDOC_XATTR_CANT_MODIFY_VATTR},
		{single(gm.SUBDOC_GET, "doc", "!bad", sdXattr, ""), gm.XATTR_EINVAL},
		{single(gm.SUBDOC_GET, "doc", "sixteen_bytes_ok", sdXattr, ""), gm.XATTR_EINVAL},
		{single(gm.SUBDOC_DICT_UPSERT, "doc", "a", sdMacros, `"${Mutation.CAS}"`), gm.SUBDOC_XATTR_INVALID_FLAG},
		{single(gm.SUBDOC_DICT_UPSERT, "doc", "a", sdXattr|sdMacros, `"${Mutation.nope}"`), gm.SUBDOC_XATTR_UNKNOWN_MACRO},
		{single(gm.SUBDOC_DICT_UPSERT, "doc", "a", sdXattr|sdMacros, `"${$document.nope}"`), gm.SUBDOC_XATTR_UNKNOWN_VATTR_MACRO},
		{single(gm.SUBDOC_DICT_UPSERT, "doc", "a", sdXattr, `"cb-content-base64-encoded:!!"`), gm.XATTR_EINVAL},
	} {
		if res := c.do(tc.req); res.Status != tc.status {
			t.Errorf("%v %q: %v, want %v", tc.req.Opcode, tc.req.Body, res.Status, tc.status)
		}
	}
	// Without the XATTR feature, xattr paths are not supported.
	noX := sdDial(t, addr, client.Features{gm.FeatureXError})
	if st, _ := noX.get("doc", "meta", sdXattr); st != gm.NOT_SUPPORTED {
		t.Errorf("xattr without XATTR: %v", st)
	}
	// Virtual macros: the document as it was.
	before := c.do(single(gm.SUBDOC_GET, "doc", "$document.CAS", sdXattr, ""))
	res = c.do(multi(gm.SUBDOC_MULTI_MUTATION, "doc", nil,
		mspec(gm.SUBDOC_DICT_UPSERT, sdXattr|sdMacros|sdMkdir, "m.cas", `"${$document.CAS}"`),
		mspec(gm.SUBDOC_DICT_UPSERT, sdXattr|sdMacros|sdMkdir, "m.bytes", `"${$document.value_bytes}"`),
		mspec(gm.SUBDOC_DICT_UPSERT, sdXattr|sdMacros|sdMkdir, "m.crc", `"${Mutation.value_crc32c}"`),
		mspec(gm.SUBDOC_DICT_UPSERT, 0, "body", `false`)))
	if res.Status != gm.SUCCESS {
		t.Fatalf("virtual macros: %v % x", res.Status, res.Body)
	}
	want := fmt.Sprintf(`{"bytes":13,"cas":%s,"crc":"0x%08x"}`, before.Body,
		crc32.Checksum([]byte(`{"body":false}`), crc32.MakeTable(crc32.Castagnoli)))
	if st, v := c.get("doc", "m", sdXattr); st != gm.SUCCESS || v != want {
		t.Errorf("macros made %s, want %s", v, want)
	}
	// ${Mutation.CAS} and ${Mutation.seqno} need the CAS and seqno the
	// store gives the change.
	res = c.do(multi(gm.SUBDOC_MULTI_MUTATION, "doc", nil,
		mspec(gm.SUBDOC_DICT_UPSERT, sdXattr|sdMacros|sdMkdir, "txn.cas", `"${Mutation.CAS}"`),
		mspec(gm.SUBDOC_DICT_UPSERT, sdXattr|sdMacros|sdMkdir, "txn.seqno", `"${Mutation.seqno}"`)))
	if res.Status != gm.SUCCESS || len(res.Extras) != 16 {
		t.Fatalf("${Mutation.CAS}: %v, extras %x", res.Status, res.Extras)
	}
	// The CAS is written byte-reversed, as kv_engine writes it.
	var le [8]byte
	binary.LittleEndian.PutUint64(le[:], res.Cas)
	want = fmt.Sprintf(`{"cas":"0x%016x","seqno":"0x%016x"}`, binary.BigEndian.Uint64(le[:]), binary.BigEndian.Uint64(res.Extras[8:]))
	if _, v := c.get("doc", "txn", sdXattr); v != want {
		t.Errorf("${Mutation.CAS}: %s, want %s", v, want)
	}
	// Binary values: kept base64-encoded, given back as they were with
	// the flag.
	bin := "\x00\xffbin"
	if res := c.do(single(gm.SUBDOC_DICT_UPSERT, "doc", "blob", sdXattr|sdBinary, bin)); res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	if st, v := c.get("doc", "blob", sdXattr|sdBinary); st != gm.SUCCESS || v != bin {
		t.Errorf("binary: %v %q", st, v)
	}
	if _, v := c.get("doc", "blob", sdXattr); !strings.HasPrefix(v, `"cb-content-base64-encoded:`) {
		t.Errorf("binary read as JSON: %s", v)
	}
	if st, _ := c.get("doc", "m", sdXattr|sdBinary); st != gm.SUBDOC_FIELD_NOT_BINARY_VALUE {
		t.Errorf("binary read of JSON: %v", st)
	}
}

func TestSubdocMulti(t *testing.T) {
	addr, c := sdServer(t, gocache.Config{})
	c.set("doc", `{"a":1,"b":[1,2],"c":{"d":"e"}}`)
	c.do(single(gm.SUBDOC_DICT_UPSERT, "doc", "_x", sdXattr, `{"y":2}`))
	// Lookups: each spec answered; one failing makes MULTI_PATH_FAILURE.
	res := c.do(multi(gm.SUBDOC_MULTI_LOOKUP, "doc", nil,
		lspec(gm.SUBDOC_GET, sdXattr, "_x.y"), lspec(gm.SUBDOC_EXISTS, sdXattr, "_z"),
		lspec(gm.SUBDOC_GET, 0, "c.d"), lspec(gm.SUBDOC_EXISTS, 0, "a"), lspec(gm.SUBDOC_GET_COUNT, 0, "b"),
		lspec(gm.SUBDOC_GET, 0, "zz"), lspec(gm.GET, 0, "")))
	want := []lookupResult{{0, "2"}, {gm.SUBDOC_PATH_NOT_FOUND, ""}, {0, `"e"`}, {0, ""}, {0, "2"},
		{gm.SUBDOC_PATH_NOT_FOUND, ""}, {0, `{"a":1,"b":[1,2],"c":{"d":"e"}}`}}
	if res.Status != gm.SUBDOC_BAD_MULTI || res.Cas == 0 || fmt.Sprint(lookupResults(t, res.Body)) != fmt.Sprint(want) {
		t.Errorf("lookup: %v cas %d %v", res.Status, res.Cas, lookupResults(t, res.Body))
	}
	if res := c.do(multi(gm.SUBDOC_MULTI_LOOKUP, "doc", nil, lspec(gm.SUBDOC_GET, 0, "a"))); res.Status != gm.SUCCESS {
		t.Errorf("lookup: %v", res.Status)
	}
	// Mutations are all or nothing: the third fails, nothing changes.
	before := c.do(multi(gm.SUBDOC_MULTI_LOOKUP, "doc", nil, lspec(gm.GET, 0, "")))
	res = c.do(multi(gm.SUBDOC_MULTI_MUTATION, "doc", nil,
		mspec(gm.SUBDOC_DICT_UPSERT, sdXattr, "_x", `1`), mspec(gm.SUBDOC_DICT_UPSERT, 0, "a", `2`),
		mspec(gm.SUBDOC_COUNTER, 0, "c", `1`), mspec(gm.SUBDOC_DICT_UPSERT, 0, "f", `3`)))
	if res.Status != gm.SUBDOC_BAD_MULTI || !bytes.Equal(res.Body, []byte{2, 0x00, byte(gm.SUBDOC_PATH_MISMATCH)}) || len(res.Extras) != 0 {
		t.Errorf("failed mutation: %v % x extras % x", res.Status, res.Body, res.Extras)
	}
	after := c.do(multi(gm.SUBDOC_MULTI_LOOKUP, "doc", nil, lspec(gm.GET, 0, "")))
	if after.Cas != before.Cas || !bytes.Equal(after.Body, before.Body) {
		t.Errorf("a failed multi-mutation changed the document")
	}
	if _, v := c.get("doc", "_x", sdXattr); v != `{"y":2}` {
		t.Errorf("a failed multi-mutation changed an xattr: %s", v)
	}
	// Success: the counters' values, by index; the token in the extras.
	res = c.do(multi(gm.SUBDOC_MULTI_MUTATION, "doc", nil,
		mspec(gm.SUBDOC_COUNTER, sdXattr, "_x.y", `5`), mspec(gm.SUBDOC_DICT_UPSERT, 0, "a", `2`),
		mspec(gm.SUBDOC_COUNTER, 0, "n", `7`), mspec(gm.SUBDOC_ARRAY_PUSH_LAST, 0, "b", `3`)))
	wantBody := []byte{0, 0, 0, 0, 0, 0, 1, '7', 2, 0, 0, 0, 0, 0, 1, '7'}
	if res.Status != gm.SUCCESS || !bytes.Equal(res.Body, wantBody) || len(res.Extras) != 16 || res.DataType != 0 {
		t.Errorf("mutation: %v % x extras % x", res.Status, res.Body, res.Extras)
	}
	if got, _ := c.body("doc"); got != `{"a":2,"b":[1,2,3],"c":{"d":"e"},"n":7}` {
		t.Errorf("body %s", got)
	}
	// Whole-document SET, then DELETE: the body and user xattrs go, the
	// system xattrs stay with the deleted document.
	c.do(single(gm.SUBDOC_DICT_UPSERT, "doc", "user", sdXattr, `1`))
	res = c.do(multi(gm.SUBDOC_MULTI_MUTATION, "doc", nil, mspec(gm.SUBDOC_DICT_UPSERT, sdXattr, "_x.z", `3`), mspec(gm.SET, 0, "", `[1]`)))
	if res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	if got, _ := c.body("doc"); got != `[1]` {
		t.Errorf("after SET: %s", got)
	}
	res = c.do(multi(gm.SUBDOC_MULTI_MUTATION, "doc", nil, mspec(gm.DELETE, 0, "", "")))
	if res.Status != gm.SUCCESS {
		t.Fatal(res.Status)
	}
	if _, st := c.body("doc"); st != gm.KEY_ENOENT {
		t.Errorf("after DELETE: %v", st)
	}
	res = c.do(multi(gm.SUBDOC_MULTI_LOOKUP, "doc", []byte{sdDeleted},
		lspec(gm.SUBDOC_GET, sdXattr, "_x"), lspec(gm.SUBDOC_GET, sdXattr, "user")))
	if res.Status != gm.SUBDOC_MULTI_PATH_FAILURE_DELETED || fmt.Sprint(lookupResults(t, res.Body)) != fmt.Sprint([]lookupResult{{0, `{"y":7,"z":3}`}, {gm.SUBDOC_PATH_NOT_FOUND, ""}}) {
		t.Errorf("deleted document: %v %v", res.Status, lookupResults(t, res.Body))
	}
	res = c.do(multi(gm.SUBDOC_MULTI_LOOKUP, "doc", []byte{sdDeleted}, lspec(gm.SUBDOC_GET, sdXattr, "_x.y")))
	if res.Status != gm.SUBDOC_SUCCESS_DELETED {
		t.Errorf("deleted document: %v", res.Status)
	}
	// A document with no system xattrs is gone for good.
	c.set("plain", `{}`)
	c.do(multi(gm.SUBDOC_MULTI_MUTATION, "plain", nil, mspec(gm.DELETE, 0, "", "")))
	if st, _ := c.get("plain", "_x", sdXattr, sdDeleted); st != gm.SUBDOC_PATH_NOT_FOUND && st != gm.KEY_ENOENT {
		t.Errorf("deleted plain document: %v", st)
	}
	// MKDOC with a multi-mutation: created from the first path's root.
	res = c.do(multi(gm.SUBDOC_MULTI_MUTATION, "new", []byte{sdMkdoc}, mspec(gm.SUBDOC_DICT_UPSERT, sdXattr, "_m", `1`), mspec(gm.SUBDOC_COUNTER, 0, "a.b", "1")))
	if got, _ := c.body("new"); res.Status != gm.SUCCESS || got != `{"a":{"b":1}}` {
		t.Errorf("MKDOC: %v %s", res.Status, got)
	}
	// What the multi-path validator refuses with a status.
	seventeen := make([][]byte, 17)
	for i := range seventeen {
		seventeen[i] = lspec(gm.SUBDOC_GET, 0, "a")
	}
	for _, tc := range []struct {
		name   string
		req    gm.MCRequest
		status gm.Status
	}{
		{"17 paths", multi(gm.SUBDOC_MULTI_LOOKUP, "doc", nil, seventeen...), gm.SUBDOC_INVALID_COMBO},
		{"no path", multi(gm.SUBDOC_MULTI_LOOKUP, "doc", nil), gm.SUBDOC_INVALID_COMBO},
		{"mutation in a lookup", multi(gm.SUBDOC_MULTI_LOOKUP, "doc", nil, lspec(gm.SUBDOC_DELETE, 0, "a")), gm.SUBDOC_INVALID_COMBO},
		{"lookup in a mutation", multi(gm.SUBDOC_MULTI_MUTATION, "doc", nil, mspec(gm.SUBDOC_GET, 0, "a", "")), gm.SUBDOC_INVALID_COMBO},
		{"not a subdoc op", multi(gm.SUBDOC_MULTI_LOOKUP, "doc", nil, lspec(gm.NOOP, 0, "")), gm.SUBDOC_INVALID_COMBO},
		{"xattr after body", multi(gm.SUBDOC_MULTI_LOOKUP, "doc", nil, lspec(gm.SUBDOC_GET, 0, "a"), lspec(gm.SUBDOC_GET, sdXattr, "_x")), gm.SUBDOC_INVALID_XATTR_ORDER},
		{"after DELETE", multi(gm.SUBDOC_MULTI_MUTATION, "doc", nil, mspec(gm.DELETE, 0, "", ""), mspec(gm.SUBDOC_DICT_UPSERT, 0, "a", "1")), gm.SUBDOC_INVALID_COMBO},
		{"DELETE after a body path", multi(gm.SUBDOC_MULTI_MUTATION, "doc", nil, mspec(gm.SUBDOC_DICT_UPSERT, 0, "a", "1"), mspec(gm.DELETE, 0, "", "")), gm.SUBDOC_INVALID_COMBO},
	} {
		if res := c.do(tc.req); res.Status != tc.status {
			t.Errorf("%s: %v, want %v", tc.name, res.Status, tc.status)
		}
	}
	// What it refuses as malformed (EINVAL, connection closed).
	for _, req := range []gm.MCRequest{
		multi(gm.SUBDOC_MULTI_LOOKUP, "doc", nil, []byte{byte(gm.SUBDOC_GET), 0, 0}),                               // spec truncated
		multi(gm.SUBDOC_MULTI_LOOKUP, "doc", nil, []byte{byte(gm.SUBDOC_GET), 0, 0, 9, 'a'}),                       // path truncated
		multi(gm.SUBDOC_MULTI_MUTATION, "doc", nil, []byte{byte(gm.SUBDOC_DICT_UPSERT), 0, 0, 1, 0, 0, 0, 9, 'a'}), // value truncated
		multi(gm.SUBDOC_MULTI_LOOKUP, "doc", []byte{0, 0, 0, 0}, lspec(gm.SUBDOC_GET, 0, "a")),                     // expiry on a lookup
		multi(gm.SUBDOC_MULTI_MUTATION, "doc", []byte{0, 0}, mspec(gm.SUBDOC_DICT_UPSERT, 0, "a", "1")),            // extras of 2
		multi(gm.SUBDOC_MULTI_LOOKUP, "", nil, lspec(gm.SUBDOC_GET, 0, "a")),                                       // no key
		multi(gm.SUBDOC_MULTI_LOOKUP, "doc", nil, lspec(gm.SUBDOC_GET, 0, "")),                                     // empty path
		multi(gm.SUBDOC_MULTI_LOOKUP, "doc", nil, lspec(gm.GET, 0, "a")),                                           // a path for the whole document
		multi(gm.SUBDOC_MULTI_MUTATION, "doc", nil, mspec(gm.SUBDOC_DICT_UPSERT, 0, "a", "")),                      // no value
		multi(gm.SUBDOC_MULTI_MUTATION, "doc", nil, mspec(gm.SUBDOC_DELETE, 0, "a", "1")),                          // a value for DELETE
		multi(gm.SUBDOC_MULTI_LOOKUP, "doc", nil, lspec(gm.SUBDOC_GET, sdMkdir, "a")),                              // MKDIR_P on a lookup
		multi(gm.SUBDOC_MULTI_LOOKUP, "doc", nil, lspec(gm.SUBDOC_GET, 0, strings.Repeat("a", 1025))),              // path too long
		multi(gm.SUBDOC_MULTI_MUTATION, "doc", []byte{sdMkdoc}, mspec(gm.SUBDOC_ARRAY_INSERT, 0, "a[0]", "1")),     // insert takes no MKDOC
	} {
		invalid(t, addr, req)
	}
}

func TestSubdocSingleValidation(t *testing.T) {
	addr, _ := sdServer(t, gocache.Config{})
	for _, req := range []gm.MCRequest{
		single(gm.SUBDOC_GET, "", "a", 0, ""),                   // no key
		single(gm.SUBDOC_GET, "doc", "", 0, ""),                 // empty path
		single(gm.SUBDOC_GET, "doc", "a", 0, "v"),               // a value on a lookup
		single(gm.SUBDOC_DICT_UPSERT, "doc", "a", 0, ""),        // no value
		single(gm.SUBDOC_GET, "doc", "a", sdMkdir, ""),          // MKDIR_P on a lookup
		single(gm.SUBDOC_GET, "doc", "a", 0x02, ""),             // an unknown path flag
		single(gm.SUBDOC_GET, "doc", "a", 0, "", 0, 0, 0, 0),    // expiry on a lookup
		single(gm.SUBDOC_DICT_UPSERT, "doc", "a", 0, "1", 0, 0), // extras of 5
		single(gm.SUBDOC_ARRAY_INSERT, "doc", "a[0]", sdMkdir, "1"),
		single(gm.SUBDOC_GET, "doc", strings.Repeat("a", 1025), 0, ""),
		single(opReplaceBodyWithXattr, "doc", "a", 0, ""),                                       // XATTR_PATH is mandatory
		{Opcode: gm.SUBDOC_GET, Key: []byte("doc"), Extras: []byte{0, 9, 0}, Body: []byte("a")}, // path past the value
	} {
		invalid(t, addr, req)
	}
}

// TestSubdocWireVectors checks requests and answers byte for byte, from
// the examples of kv_engine's docs/SubDocument.md (§Wire Protocol Format).
func TestSubdocWireVectors(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	r := gm.NewReader(nc)
	exchange := func(name string, req []byte, want []byte) gm.MCResponse {
		t.Helper()
		if _, err := nc.Write(req); err != nil {
			t.Fatal(err)
		}
		var res gm.MCResponse
		if err := r.ReadResponse(&res); err != nil {
			t.Fatal(err)
		}
		got := res.Bytes()
		// The CAS (bytes 16-23) is the server's: compare the rest.
		if len(got) != len(want) || !bytes.Equal(got[:16], want[:16]) || !bytes.Equal(got[24:], want[24:]) {
			t.Errorf("%s:\n got % x\nwant % x", name, got, want)
		}
		return res
	}
	set := func(key, value string) {
		t.Helper()
		req := gm.MCRequest{Opcode: gm.SET, VBucket: 668, Key: []byte(key), Extras: make([]byte, 8), Body: []byte(value), Opaque: 1}
		if _, err := req.Transmit(nc); err != nil {
			t.Fatal(err)
		}
		var res gm.MCResponse
		if err := r.ReadResponse(&res); err != nil || res.Status != gm.SUCCESS {
			t.Fatalf("SET: %v %v", res.Status, err)
		}
	}

	// "Setting the rank of a game for a user": DICT_UPSERT with MKDIR_P.
	set("user:hugo_chavez", `{}`)
	exchange("DICT_UPSERT", bytes.Join([][]byte{
		{0x80, 0xc8},                    // magic: request; opcode: SUBDOC_DICT_UPSERT
		{0x00, 0x10},                    // key length: 16
		{0x03},                          // extras length: 3
		{0x00},                          // datatype: raw
		{0x02, 0x9c},                    // vbucket: 668
		{0x00, 0x00, 0x00, 52},          // body length: 3 + 16 + 21 + 12 (the doc says 50: its value, Comandante, is not JSON; quoted here)
		{0x00, 0x00, 0xfe, 0xe5},        // opaque: 0xFEE5
		{0, 0, 0, 0, 0, 0, 0, 0},        // cas: 0 (the doc's 0xDEADBEEF would have to be the document's)
		{0x00, 0x15},                    // extras: path length 21
		{0x01},                          // extras: flags MKDIR_P
		[]byte("user:hugo_chavez"),      // key
		[]byte("games.revolution.rank"), // path
		[]byte(`"Comandante"`),          // value
	}, nil), bytes.Join([][]byte{
		{0x81, 0xc8},             // magic: response; opcode
		{0x00, 0x00},             // key length: 0
		{0x00},                   // extras length: 0 (no MutationSeqno)
		{0x00},                   // datatype: raw
		{0x00, 0x00},             // status: SUCCESS
		{0x00, 0x00, 0x00, 0x00}, // body length: 0
		{0x00, 0x00, 0xfe, 0xe5}, // opaque
		{0, 0, 0, 0, 0, 0, 0, 0}, // cas: the document's new one
	}, nil))

	// MULTI_LOOKUP of from, to, bcc (EXISTS), subject, body (EXISTS).
	set("u:1234", `{"date":"22/16/2015","from":"mnunberg","to":"couchbase","subject":"Subdoc Commands","body":"This is the updated spec blah blah blah"}`)
	exchange("MULTI_LOOKUP", bytes.Join([][]byte{
		{0x80, 0xd0},                             // magic; opcode: SUBDOC_MULTI_LOOKUP
		{0x00, 0x06},                             // key length: 6
		{0x01},                                   // extras length: 1 (doc flags)
		{0x00},                                   // datatype
		{0x02, 0x9c},                             // vbucket: 668
		{0x00, 0x00, 0x00, 47},                   // body length: 47, as the doc
		{0x00, 0x00, 0xfe, 0xe5},                 // opaque
		{0, 0, 0, 0, 0, 0, 0, 0},                 // cas
		{0x00},                                   // extras: doc flags none
		[]byte("u:1234"),                         // key
		{0xc5, 0x00, 0x00, 0x04}, []byte("from"), // GET, flags 0, path length 4
		{0xc5, 0x00, 0x00, 0x02}, []byte("to"),
		{0xc6, 0x00, 0x00, 0x03}, []byte("bcc"), // EXISTS
		{0xc5, 0x00, 0x00, 0x07}, []byte("subject"),
		{0xc6, 0x00, 0x00, 0x04}, []byte("body"),
	}, nil), bytes.Join([][]byte{
		{0x81, 0xd0}, {0x00, 0x00}, {0x00}, {0x00},
		{0x00, 0xcc},                                      // status: SUBDOC_MULTI_PATH_FAILURE (the doc says SUCCESS, but bcc is missing)
		{0x00, 0x00, 0x00, 68},                            // body length: 68, as the doc
		{0x00, 0x00, 0xfe, 0xe5},                          // opaque
		{0, 0, 0, 0, 0, 0, 0, 0},                          // cas: the document's
		{0x00, 0x00}, {0, 0, 0, 10}, []byte(`"mnunberg"`), // status, value length, value
		{0x00, 0x00}, {0, 0, 0, 11}, []byte(`"couchbase"`),
		{0x00, 0xc0}, {0, 0, 0, 0}, // PATH_ENOENT
		{0x00, 0x00}, {0, 0, 0, 17}, []byte(`"Subdoc Commands"`),
		{0x00, 0x00}, {0, 0, 0, 0}, // EXISTS: no value
	}, nil))

	// MULTI_MUTATION: ARRAY_ADD_UNIQUE a login location, COUNTER
	// login_count, DICT_UPSERT state (the doc's BODYLEN, 87, counts these
	// three; it lists a fourth, REMOVE, too).
	set("u:1234", `{"login_count":41}`)
	mutation := bytes.Join([][]byte{
		{0x80, 0xd1}, {0x00, 0x06}, {0x01}, {0x00}, {0x02, 0x9c},
		{0x00, 0x00, 0x00, 87},   // body length: 87, as the doc
		{0x00, 0x00, 0xfe, 0xe5}, // opaque
		{0, 0, 0, 0, 0, 0, 0, 0}, // cas
		{0x00},                   // extras: doc flags none
		[]byte("u:1234"),
		{0xce, 0x01, 0x00, 15, 0, 0, 0, 13}, []byte("login_locations"), []byte(`"192.168.3.4"`), // ARRAY_ADD_UNIQUE, MKDIR_P
		{0xcf, 0x01, 0x00, 11, 0, 0, 0, 1}, []byte("login_count"), []byte("1"), // COUNTER, MKDIR_P
		{0xc8, 0x01, 0x00, 5, 0, 0, 0, 11}, []byte("state"), []byte(`"logged_in"`), // DICT_UPSERT, MKDIR_P
	}, nil)
	exchange("MULTI_MUTATION", mutation, bytes.Join([][]byte{
		{0x81, 0xd1}, {0x00, 0x00}, {0x00}, {0x00}, {0x00, 0x00},
		{0x00, 0x00, 0x00, 9},    // body length: 9, as the doc
		{0x00, 0x00, 0xfe, 0xe5}, // opaque
		{0, 0, 0, 0, 0, 0, 0, 0}, // cas
		{0x01},                   // index 1 (COUNTER)
		{0x00, 0x00},             // status SUCCESS
		{0, 0, 0, 2},             // value length 2
		[]byte("42"),
	}, nil))
	// The same when login_count is no number: the second fails.
	set("u:1234", `{"login_count":"x"}`)
	exchange("MULTI_MUTATION failure", mutation, bytes.Join([][]byte{
		{0x81, 0xd1}, {0x00, 0x00}, {0x00}, {0x00},
		{0x00, 0xcc},             // status: SUBDOC_MULTI_PATH_FAILURE
		{0x00, 0x00, 0x00, 3},    // body length: 3 (the doc says 1; index and status are 3 bytes)
		{0x00, 0x00, 0xfe, 0xe5}, // opaque
		{0, 0, 0, 0, 0, 0, 0, 0}, // cas
		{0x01},                   // index 1
		{0x00, 0xc1},             // status: SUBDOC_PATH_MISMATCH
	}, nil))
}

// The reference client's GetSubdoc and SetSubdoc against gocache.
func TestSubdocReferenceClient(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	c, err := refc.Connect("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.EnableFeatures(refc.Features{refc.FeatureXattr, refc.FeatureXerror, refc.FeatureDataType, refc.FeatureMutationToken}); err != nil {
		t.Fatal(err)
	}
	// SetSubdoc: MKDOC, an xattr and the whole body.
	res, err := c.SetSubdoc(0, "ref", []refc.SubDocOp{
		{Xattr: true, Path: "_sync", Value: []byte(`{"rev":"1-abc"}`)},
		{Path: "", Value: []byte(`{"type":"user"}`)},
	}, false, 0, 0)
	if err != nil || res.Status != refmc.SUCCESS || res.Cas == 0 {
		t.Fatalf("SetSubdoc: %v %v", res, err)
	}
	// GetSubdoc: the xattrs asked for, then the whole body.
	res, err = c.GetSubdoc(0, "ref", []string{"_sync", "$document.CAS"})
	if err != nil || res.Status != refmc.SUCCESS {
		t.Fatalf("GetSubdoc: %v %v", res, err)
	}
	got := lookupResults(t, res.Body)
	want := []lookupResult{{0, `{"rev":"1-abc"}`}, {0, fmt.Sprintf(`"0x%016x"`, res.Cas)}, {0, `{"type":"user"}`}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("GetSubdoc: %v, want %v", got, want)
	}
	// SetSubdoc with addOnly on a document that exists.
	if _, err := c.SetSubdoc(0, "ref", []refc.SubDocOp{{Path: "a", Value: []byte("1")}}, true, 0, 0); err == nil {
		t.Error("SetSubdoc addOnly on an existing document succeeded")
	}
}

// BenchmarkSubdoc measures sub-document commands end to end on loopback:
// a lookup of a path at the end of the document and a mutation there,
// on 1 KiB and 64 KiB documents.
func BenchmarkSubdoc(b *testing.B) {
	_, addr := gocachetest.Start(b, gocache.Config{Cache: cache.Config{MaxItemSize: 1 << 20}})
	c, err := client.Dial(context.Background(), "tcp", addr, client.ClientOptions{Features: sdFeatures})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, size := range []struct {
		name string
		n    int
	}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}} {
		var doc bytes.Buffer
		doc.WriteString(`{"items":[`)
		for i := 0; doc.Len() < size.n-60; i++ {
			if i > 0 {
				doc.WriteByte(',')
			}
			fmt.Fprintf(&doc, `{"n":%d,"name":"item %d","price":%d.99}`, i, i, i%100)
		}
		doc.WriteString(`],"meta":{"visits":41,"owner":"x"}}`)
		key := "bench" + size.name
		set := gm.MCRequest{Opcode: gm.SET, Key: []byte(key), Extras: make([]byte, 8), Body: doc.Bytes(), DataType: gm.DatatypeFlagJSON}
		if _, err := c.Send(&set); err != nil {
			b.Fatal(err)
		}
		for _, op := range []struct {
			name string
			req  gm.MCRequest
		}{
			{"get", gm.MCRequest{Opcode: gm.GET, Key: []byte(key)}}, // the baseline: the whole document
			{"lookup", single(gm.SUBDOC_GET, key, "meta.owner", 0, "")},
			{"mutate", single(gm.SUBDOC_COUNTER, key, "meta.visits", 0, "1")},
		} {
			b.Run(op.name+"/"+size.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(doc.Len()))
				for b.Loop() {
					req := op.req
					if res, err := c.Send(&req); err != nil || res.Status != gm.SUCCESS {
						b.Fatal(res, err)
					}
				}
			})
		}
	}
}
