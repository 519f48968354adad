package subdoc

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzSubdoc runs an operation with an arbitrary path, document and
// value: it never panics, a lookup's value is JSON, a mutation makes JSON
// (and Counter's result is what the path then holds), and the scanner
// agrees with encoding/json.
func FuzzSubdoc(f *testing.F) {
	seeds := []struct {
		path, doc, value string
		op               Op
		mkdir            bool
	}{
		{"pDistributors[-1].dAdded[-1]", sample, "", Get, false},
		{"`back``tick``field`", sample, "", Exists, false},
		{"pDistributors", sample, "", GetCount, false},
		{"a.b.c", `{}`, `1`, DictUpsert, true},
		{"a", `{"a":1}`, `[1, 2]`, DictAdd, false},
		{"a[1]", `{"a":[1,2,3]}`, `"x"`, Replace, false},
		{"a", `{"a":1, "b":2}`, ``, Delete, false},
		{"", `[1 ]`, `2,3`, ArrayPushLast, false},
		{"a", `{"a":[ 2]}`, `1`, ArrayPushFirst, false},
		{"[2]", `[1,2,4]`, `3`, ArrayInsert, false},
		{"u", `{"u":["a",1]}`, `true`, ArrayAddUnique, false},
		{"c", `{"c":9223372036854775806}`, `1`, Counter, false},
		{"x.y", `{}`, `-5`, Counter, true},
		{"", `{"a":1}`, `[1]`, SetDoc, false},
		{"a", `{"a":[[[[[[[[[[]]]]]]]]]]}`, `{"k":[{}]}`, ArrayPushLast, true},
	}
	for _, s := range seeds {
		f.Add(s.path, []byte(s.doc), []byte(s.value), uint8(s.op), s.mkdir)
	}
	f.Fuzz(func(t *testing.T, path string, doc, value []byte, op uint8, mkdir bool) {
		if len(doc) > 1<<16 || len(path) > MaxPathLen {
			return
		}
		ok, std := Valid(doc), json.Valid(doc)
		if ok && !std {
			t.Fatalf("Valid(%q) but encoding/json refuses it", doc)
		}
		if std && !ok && checkDoc(doc) != ErrDocTooDeep {
			t.Fatalf("encoding/json takes %q, Valid refuses it: %v", doc, checkDoc(doc))
		}
		o := Op(op%uint8(SetDoc) + 1)
		orig := bytes.Clone(doc)
		if o.IsLookup() {
			got, err := Lookup(doc, o, []byte(path))
			if err == nil && o == Get && !json.Valid(got) {
				t.Fatalf("Get(%q, %q) = %q, not JSON", doc, path, got)
			}
			if !bytes.Equal(doc, orig) {
				t.Fatal("Lookup changed its document")
			}
			return
		}
		out, result, err := Mutate(nil, doc, o, []byte(path), value, mkdir)
		if !bytes.Equal(doc, orig) {
			t.Fatal("Mutate changed its document")
		}
		if err != nil || o == SetDoc {
			return
		}
		if !Valid(out) || !json.Valid(out) {
			t.Fatalf("%v(%q, %q, %q, %v) made %q, not JSON", o, doc, path, value, mkdir, out)
		}
		if o == Counter {
			got, err := Lookup(out, Get, []byte(path))
			if err != nil || !bytes.Equal(got, result) {
				t.Fatalf("counter %q: path holds %q, %v", result, got, err)
			}
		}
		if (o == DictUpsert || o == Replace) && json.Valid(value) {
			got, err := Lookup(out, Get, []byte(path))
			if err != nil || !bytes.Equal(got, bytes.Trim(value, " \t\r\n")) {
				t.Fatalf("%v(%q, %q, %q): path holds %q, %v", o, doc, path, value, got, err)
			}
		}
	})
}

// FuzzXattrs reads arbitrary bytes as an xattr section: no panic, and a
// section that Check accepts goes through its JSON form and back.
func FuzzXattrs(f *testing.F) {
	f.Add(blob("_sync", `{"rev":"1-a"}`, "meta", `[1,2]`))
	f.Add(blob("a", "1", "a", "2"))
	f.Add([]byte{0, 0, 0, 9, 0, 0, 0, 200, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		x, body, err := Split(b)
		if err != nil {
			return
		}
		x.Get([]byte("a"))
		x.Len()
		x.SystemSize()
		x.Set(nil, []byte("k"), []byte("1"))
		x.Delete(nil, []byte("a"))
		x.System(nil)
		j := x.AppendJSON(nil)
		if x.Check() != nil {
			return
		}
		y, err := BlobFromJSON(nil, j)
		if err != nil || y.Check() != nil && y != nil || y.Len() != x.Len() {
			t.Fatalf("%q: JSON %s back to %q, %v", x, j, y, err)
		}
		if !bytes.Equal(Join(nil, x, body), b) {
			t.Fatal("Join(Split) differs")
		}
	})
}
