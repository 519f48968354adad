package subdoc

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// blob builds a section by hand, as kv_engine lays it out (docs of
// include/xattr/blob.h): total length, then per pair length, key, NUL,
// value, NUL.
func blob(pairs ...string) []byte {
	var body []byte
	for i := 0; i < len(pairs); i += 2 {
		k, v := pairs[i], pairs[i+1]
		body = binary.BigEndian.AppendUint32(body, uint32(len(k)+len(v)+2))
		body = append(append(append(append(body, k...), 0), v...), 0)
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestXattrCodec(t *testing.T) {
	b := blob("_sync", `{"rev":"1-a"}`, "meta", `[1,2]`)
	// The wire bytes, field by field.
	want := []byte{
		0, 0, 0, 0x27, // total length: 39, the two pairs with their length fields
		0, 0, 0, 0x14, '_', 's', 'y', 'n', 'c', 0, '{', '"', 'r', 'e', 'v', '"', ':', '"', '1', '-', 'a', '"', '}', 0, // pair of 20 bytes
		0, 0, 0, 0x0b, 'm', 'e', 't', 'a', 0, '[', '1', ',', '2', ']', 0, // pair of 11 bytes
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("blob % x\nwant % x", b, want)
	}
	value := append(bytes.Clone(b), `{"body":true}`...)
	x, body, err := Split(value)
	if err != nil || !bytes.Equal(x, b) || string(body) != `{"body":true}` {
		t.Fatalf("Split = %q, %q, %v", x, body, err)
	}
	if err := x.Check(); err != nil {
		t.Fatal(err)
	}
	if v, ok := x.Get([]byte("meta")); !ok || string(v) != "[1,2]" {
		t.Errorf("Get(meta) = %q, %v", v, ok)
	}
	if _, ok := x.Get([]byte("nope")); ok {
		t.Error("Get(nope)")
	}
	if x.Len() != 2 || x.SystemSize() != 4+4+len("_sync")+len(`{"rev":"1-a"}`)+2 {
		t.Errorf("Len %d SystemSize %d", x.Len(), x.SystemSize())
	}
	if j := x.AppendJSON(nil); string(j) != `{"_sync":{"rev":"1-a"},"meta":[1,2]}` {
		t.Errorf("AppendJSON = %s", j)
	}
	if s := x.Set(nil, []byte("_sync"), []byte(`2`)); !bytes.Equal(s, blob("meta", `[1,2]`, "_sync", `2`)) {
		t.Errorf("Set = %q", s)
	}
	if s := x.Set(nil, []byte("new"), []byte(`"n"`)); !bytes.Equal(s, blob("_sync", `{"rev":"1-a"}`, "meta", `[1,2]`, "new", `"n"`)) {
		t.Errorf("Set new = %q", s)
	}
	if d := x.Delete(nil, []byte("meta")); !bytes.Equal(d, blob("_sync", `{"rev":"1-a"}`)) {
		t.Errorf("Delete = %q", d)
	}
	if d := x.Delete(nil, []byte("meta")).Delete(nil, []byte("_sync")); d != nil {
		t.Errorf("Delete all = %q", d)
	}
	if s := x.System([]byte("keep")); string(s) != string(blob("_sync", `{"rev":"1-a"}`)) {
		t.Errorf("System = %q", s)
	}
	if s := Blob(blob("user", "1")).System(nil); s != nil {
		t.Errorf("System of user only = %q", s)
	}
	if j := Join(nil, x, body); !bytes.Equal(j, value) {
		t.Errorf("Join = %q", j)
	}
	if j := Blob(nil).AppendJSON(nil); string(j) != "{}" {
		t.Errorf("empty AppendJSON = %s", j)
	}
	var keys []string
	x.Each(func(k, _ []byte) bool { keys = append(keys, string(k)); return false })
	if len(keys) != 1 || keys[0] != "_sync" {
		t.Errorf("Each stops: %q", keys)
	}
}

func TestBlobFromJSON(t *testing.T) {
	b, err := BlobFromJSON([]byte("x"), []byte(`{ "z" : [ 1 , "a b" ], "_a":{"k": true} }`))
	if err != nil || !bytes.Equal(b, blob("_a", `{"k":true}`, "z", `[1,"a b"]`)) {
		t.Errorf("BlobFromJSON = %q, %v", b, err)
	}
	b, err = BlobFromJSON(nil, []byte(`{"a": {"z": [ {"y":1, "x":[]} ], "b" : "s p"}}`))
	if err != nil || !bytes.Equal(b, blob("a", `{"b":"s p","z":[{"x":[],"y":1}]}`)) {
		t.Errorf("nested = %q, %v", b, err)
	}
	if b, err := BlobFromJSON(nil, []byte(`{}`)); b != nil || err != nil {
		t.Errorf("empty = %q, %v", b, err)
	}
	for _, obj := range []string{`[]`, `{"a":1,"a":2}`, `{"":1}`, `{"_":1}`, `{"$":1}`, `{"a.b":1}`, `{"0123456789abcdef":1}`, `{"!x":1}`} {
		if _, err := BlobFromJSON(nil, []byte(obj)); err == nil {
			t.Errorf("BlobFromJSON(%s) took it", obj)
		}
	}
	if _, err := BlobFromJSON(nil, []byte(`{`)); err != ErrDocNotJSON {
		t.Errorf("malformed: %v", err)
	}
}

func TestXattrCheck(t *testing.T) {
	good := blob("a", "1")
	for _, bad := range [][]byte{
		nil, {0, 0, 0}, {0, 0, 0, 1}, {0, 0, 0, 0, 1},
		blob("a", "x"),                            // value not JSON
		blob("a", "1", "a", "2"),                  // twice
		blob("!a", "1"),                           // reserved first byte
		blob("a.b", "1"),                          // '.' in a key
		blob("0123456789abcdef", "1"),             // 16 bytes
		append(good[:len(good)-1:len(good)-1], 1), // no NUL after the value
		{0, 0, 0, 8, 0, 0, 0, 9, 'a', 0, '1', 0},  // pair length past the end
		{0, 0, 0, 7, 0, 0, 0, 3, 'a', 0, 0},       // pair too short
	} {
		if Blob(bad).Check() == nil {
			t.Errorf("Check(% x) passed", bad)
		}
	}
	if _, _, err := Split([]byte{0, 0, 0, 9, 1}); err != ErrXattrs {
		t.Errorf("Split past the end: %v", err)
	}
	if _, _, err := Split([]byte{0, 0}); err != ErrXattrs {
		t.Errorf("Split short: %v", err)
	}
	// Malformed sections never panic the readers.
	for _, bad := range [][]byte{{0, 0, 0, 9, 0, 0, 0, 200, 'a'}, {0, 0, 0, 5, 0, 0, 0, 1, 'a'}, {0, 0, 0, 6, 0, 0, 0, 2, 'a', 'b'}} {
		Blob(bad).Get([]byte("a"))
		Blob(bad).Len()
		Blob(bad).AppendJSON(nil)
		Blob(bad).Set(nil, []byte("k"), []byte("1"))
	}
}

func TestValidXattrKey(t *testing.T) {
	for _, tc := range []struct {
		path string
		n    int
		ok   bool
	}{
		{"meta", 4, true}, {"meta.a.b", 4, true}, {"meta[0]", 4, true}, {"a]b", 3, true},
		{"_sync", 5, true}, {"_sync.rev", 5, true}, {"$document.CAS", 9, true}, {"$XTOC", 5, true},
		{"0123456789abcde", 15, true}, {"0123456789abcdef", 0, false}, {"0123456789abcde.x", 15, true},
		{"", 0, false}, {".a", 0, false}, {"[0]", 0, false}, {"_", 0, false}, {"$", 0, false}, {"_.a", 0, false},
		{"!a", 0, false}, {"-a", 0, false}, {"\x01a", 0, false}, {"a\x00", 0, false}, {"a.b\x00", 0, false},
		{"\xff", 0, false}, {"\xc3\xba", 2, true}, {"a\"b", 0, false}, {"a\\b", 0, false}, {" a", 2, true},
	} {
		n, ok := ValidXattrKey([]byte(tc.path))
		if n != tc.n || ok != tc.ok {
			t.Errorf("ValidXattrKey(%q) = %d, %v, want %d, %v", tc.path, n, ok, tc.n, tc.ok)
		}
	}
	if !IsSystemXattr([]byte("_a")) || IsSystemXattr([]byte("a")) || IsSystemXattr(nil) || !IsVirtualXattr([]byte("$d")) {
		t.Error("IsSystemXattr / IsVirtualXattr")
	}
}
