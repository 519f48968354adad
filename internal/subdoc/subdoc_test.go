package subdoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// pathString renders a parsed path for comparison: keys as k:text,
// indexes as i:n, separated by spaces.
func pathString(p *Path) string {
	var parts []string
	for _, c := range p.c[:p.n] {
		if c.isIndex {
			parts = append(parts, "i:"+strconv.Itoa(c.index))
		} else {
			parts = append(parts, "k:"+string(c.key))
		}
	}
	return strings.Join(parts, " ")
}

func TestParsePath(t *testing.T) {
	deep := strings.Repeat("a.", MaxComponents-2) + "a" // 31 components
	for _, tc := range []struct {
		path, want string
		err        error
	}{
		{path: "", want: ""},
		{path: "type", want: "k:type"},
		{path: "pDistributors[0].dName", want: "k:pDistributors i:0 k:dName"},
		{path: "pDistributors[1].dAdded[2]", want: "k:pDistributors i:1 k:dAdded i:2"},
		{path: "pDistributors[-1].dAdded[-1]", want: "k:pDistributors i:-1 k:dAdded i:-1"},
		{path: "[0][1]", want: "i:0 i:1"},
		{path: "[-1].[-1]", want: "i:-1 i:-1"},
		{path: "`dot.ted.field`.subfield", want: "k:dot.ted.field k:subfield"},
		{path: "`back``tick``field`", want: "k:back`tick`field"},
		{path: "`field.with.\\\"quotes\\\"`", want: `k:field.with.\"quotes\"`},
		{path: "a`b`c", want: "k:abc"},
		{path: "`a[0]`", want: "k:a[0]"},
		{path: `\"quoted`, want: `k:\"quoted`},
		{path: "F\xc3\xbatbol", want: "k:F\xc3\xbatbol"},
		{path: "a.", want: "k:a"},        // subjson ignores a trailing dot
		{path: "a[0].", want: "k:a i:0"}, // and one after a bracket
		{path: "a[]", want: "k:a i:0"},   // and reads [] as [0]
		{path: deep, want: strings.TrimSpace(strings.Repeat("k:a ", MaxComponents-1))},
		{path: deep + ".a", err: ErrPathTooBig},
		{path: strings.Repeat("[0]", MaxComponents), err: ErrPathTooBig},
		{path: ".a", err: ErrPathInvalid},
		{path: "a..b", err: ErrPathInvalid},
		{path: "a]", err: ErrPathInvalid},
		{path: "a[0", err: ErrPathInvalid},
		{path: "a[x]", err: ErrPathInvalid},
		{path: "a[-2]", err: ErrPathInvalid},
		{path: "a[-10]", err: ErrPathInvalid},
		{path: "a[1]b", err: ErrPathInvalid},
		{path: "a[99999999999999999999999]", err: ErrPathInvalid},
		{path: "`a", err: ErrPathInvalid},
		{path: "a\"b", err: ErrPathInvalid},
		{path: "a\x01b", err: ErrPathInvalid},
		{path: "a\x1fb", err: ErrPathInvalid},
		{path: `a\u0041`, err: ErrPathInvalid},
		{path: `a\x`, err: ErrPathInvalid},
		{path: `a\`, err: ErrPathInvalid},
		{path: "``", err: ErrPathInvalid},
	} {
		var p Path
		err := ParsePath([]byte(tc.path), &p)
		if err != tc.err {
			t.Errorf("ParsePath(%q) = %v, want %v", tc.path, err, tc.err)
			continue
		}
		if err == nil && pathString(&p) != tc.want {
			t.Errorf("ParsePath(%q) = %q, want %q", tc.path, pathString(&p), tc.want)
		}
	}
}

// sample is the document of kv_engine's docs/SubDocument.md.
const sample = `{
  "type":"product",
  "pType":"toy",
  "pName": "Tickle Me Elmo",
  "pDetails": {
    "audience":"children"
  },
  "pDistributors":[
    {
      "dName": "Going Out of Business Wholesale",
      "dAdded": ["Feb", 36, 2025]
    }, {
      "dName": "Everything Must Go!",
      "dAdded": ["May", 72, 1492]
    }
  ],
  "dot.ted.field":null,
  "back` + "`" + `tick` + "`" + `field":null,
  "field.with.\"quotes\"":null
}`

func TestLookup(t *testing.T) {
	nest := func(n int, inner string) string {
		return strings.Repeat("[", n) + inner + strings.Repeat("]", n)
	}
	for _, tc := range []struct {
		doc  string
		op   Op
		path string
		want string
		err  error
	}{
		// The table of docs/SubDocument.md.
		{doc: sample, op: Get, path: "type", want: `"product"`},
		{doc: sample, op: Get, path: "pDistributors[0].dName", want: `"Going Out of Business Wholesale"`},
		{doc: sample, op: Get, path: "pDistributors[1].dAdded[2]", want: `1492`},
		{doc: sample, op: Get, path: "pDistributors[-1].dAdded[-1]", want: `1492`},
		{doc: sample, op: Get, path: "`dot.ted.field`", want: `null`},
		{doc: sample, op: Get, path: "`back``tick``field`", want: `null`},
		{doc: sample, op: Get, path: "`field.with.\\\"quotes\\\"`", want: `null`},
		{doc: sample, op: Get, path: "pDetails", want: "{\n    \"audience\":\"children\"\n  }"},
		{doc: sample, op: Get, path: "pDistributors.count", err: ErrPathMismatch},
		{doc: sample, op: Get, path: "pType.category", err: ErrPathMismatch},
		{doc: sample, op: Get, path: "pDetails[0]", err: ErrPathMismatch},
		{doc: sample, op: Get, path: "pDistributors[5]", err: ErrPathNotFound},
		{doc: sample, op: Get, path: "missing", err: ErrPathNotFound},
		{doc: sample, op: Get, path: "pDetails.missing.deeper", err: ErrPathNotFound},
		{doc: sample, op: Exists, path: "pDetails.audience"},
		{doc: sample, op: Exists, path: "pDetails.audiences", err: ErrPathNotFound},
		{doc: sample, op: GetCount, path: "", want: "8"},
		{doc: sample, op: GetCount, path: "pDistributors", want: "2"},
		{doc: sample, op: GetCount, path: "pDistributors[0]", want: "2"},
		{doc: sample, op: GetCount, path: "pDistributors[0].dAdded", want: "3"},
		{doc: sample, op: GetCount, path: "type", err: ErrPathMismatch},
		{doc: sample, op: GetCount, path: "nope", err: ErrPathNotFound},
		{doc: `[[]]`, op: GetCount, path: "[-1]", want: "0"},
		{doc: `{}`, op: GetCount, path: "", want: "0"},
		{doc: sample, op: Get, path: "", want: sample},
		{doc: sample, op: GetDoc, want: sample},
		{doc: "", op: GetDoc, err: ErrPathNotFound},
		{doc: "not json", op: GetDoc, want: "not json"},
		// Whitespace, negative indexes, escapes, duplicates.
		{doc: `[ 1, 2, 3,       4        ]`, op: Get, path: "[-1]", want: "4"},
		{doc: `[1,2,3,[4,5,6,[7,8,9]]]`, op: Get, path: "[-1].[-1].[-1]", want: "9"},
		{doc: `{"k1": ["first", {"k2":[6,7,8]},"last"] }`, op: Get, path: "k1[1].k2[-1]", want: "8"},
		{doc: `{"a":[]}`, op: Get, path: "a[-1]", err: ErrPathNotFound},
		{doc: `{"a":[]}`, op: Get, path: "a[0]", err: ErrPathNotFound},
		{doc: `{"a":{}}`, op: Get, path: "a[-1]", err: ErrPathMismatch},
		{doc: `{"\"quoted":true}`, op: Get, path: `\"quoted`, want: "true"},
		{doc: `{"a":1,"a":2}`, op: Get, path: "a", want: "1"},
		{doc: `{"a" : "x\"y"}`, op: Get, path: "a", want: `"x\"y"`},
		{doc: `{"a":{"b":{"c":[1,{"d":-1.5e3}]}}}`, op: Get, path: "a.b.c[1].d", want: "-1.5e3"},
		{doc: `"str"`, op: Get, path: "a", err: ErrPathMismatch},
		{doc: `12`, op: Get, path: "[0]", err: ErrPathMismatch},
		// subjson reads only as far as the match.
		{doc: `{"a":1,"b":`, op: Get, path: "a", want: "1"},
		{doc: `{"a":1,"b":`, op: Get, path: "c", err: ErrDocNotJSON},
		{doc: `{"a":tru}`, op: Get, path: "a", err: ErrDocNotJSON},
		{doc: `not json`, op: Get, path: "a", err: ErrPathMismatch}, // as jsonsl: 'n' starts null, which is no object
		{doc: `xnot json`, op: Get, path: "a", err: ErrDocNotJSON},
		{doc: ``, op: Get, path: "a", err: ErrDocNotJSON},
		{doc: `  `, op: Exists, path: "", err: ErrDocNotJSON},
		{doc: `{"a":"\x01"}`, op: Get, path: "a", err: ErrDocNotJSON},
		// Depth: 31 arrays hold a scalar at level 32, the deepest.
		{doc: nest(31, "1"), op: Get, path: strings.Repeat("[0]", 30), want: "[1]"},
		{doc: nest(31, "1"), op: Get, path: strings.Repeat("[0]", 31), want: "1"},
		{doc: nest(32, ""), op: Get, path: strings.Repeat("[0]", 31), want: "[]"},
		{doc: nest(32, "1"), op: Get, path: strings.Repeat("[0]", 31), err: ErrDocTooDeep},
		{doc: `{"array":` + nest(66, "") + `}`, op: Get, path: "dummy.path", err: ErrDocTooDeep},
		{doc: `{"array":` + nest(66, "") + `}`, op: Get, path: "dummy" + strings.Repeat(".dummy", 66), err: ErrPathTooBig},
		{doc: `{}`, op: Get, path: "a..b", err: ErrPathInvalid},
	} {
		got, err := Lookup([]byte(tc.doc), tc.op, []byte(tc.path))
		if err != tc.err {
			t.Errorf("%v(%.40q, %q) error %v, want %v", tc.op, tc.doc, tc.path, err, tc.err)
			continue
		}
		if err == nil && string(got) != tc.want {
			t.Errorf("%v(%.40q, %q) = %q, want %q", tc.op, tc.doc, tc.path, got, tc.want)
		}
	}
}

type mutateCase struct {
	doc    string
	op     Op
	path   string
	value  string
	mkdir  bool
	want   string // the new document
	result string // Counter's
	err    error
}

func runMutate(t *testing.T, cases []mutateCase) {
	t.Helper()
	for _, tc := range cases {
		dst := []byte("prefix:")
		out, result, err := Mutate(dst, []byte(tc.doc), tc.op, []byte(tc.path), []byte(tc.value), tc.mkdir)
		name := fmt.Sprintf("%v(%.50q, %q, %.30q, mkdir %v)", tc.op, tc.doc, tc.path, tc.value, tc.mkdir)
		if err != tc.err {
			t.Errorf("%s error %v, want %v", name, err, tc.err)
			continue
		}
		if err != nil {
			if string(out) != "prefix:" {
				t.Errorf("%s failed with out %q", name, out)
			}
			continue
		}
		if !bytes.HasPrefix(out, dst) {
			t.Errorf("%s = %q: lost dst", name, out)
			continue
		}
		out = out[len(dst):]
		if string(out) != tc.want {
			t.Errorf("%s = %q, want %q", name, out, tc.want)
		}
		if string(result) != tc.result {
			t.Errorf("%s result %q, want %q", name, result, tc.result)
		}
		if tc.op != SetDoc && !json.Valid(out) {
			t.Errorf("%s made %q, not JSON", name, out)
		}
	}
}

func TestMutateDict(t *testing.T) {
	runMutate(t, []mutateCase{
		{doc: `{}`, op: DictAdd, path: "a", value: `1`, want: `{"a":1}`},
		{doc: `{"b":2}`, op: DictAdd, path: "a", value: `1`, want: `{"b":2,"a":1}`},
		{doc: `{ "b" : 2 }`, op: DictAdd, path: "a", value: ` [1, 2] `, want: `{ "b" : 2 ,"a": [1, 2] }`},
		{doc: `{"a":0}`, op: DictAdd, path: "a", value: `1`, err: ErrPathExists},
		{doc: `{"a":0}`, op: DictUpsert, path: "a", value: `1`, want: `{"a":1}`},
		{doc: `{"a": "x" ,"b":2}`, op: DictUpsert, path: "a", value: `{"n":null}`, want: `{"a": {"n":null} ,"b":2}`},
		{doc: `{}`, op: DictUpsert, path: "a.b", value: `1`, err: ErrPathNotFound},
		{doc: `{}`, op: DictUpsert, path: "a.b.c", value: `1`, mkdir: true, want: `{"a":{"b":{"c":1}}}`},
		{doc: `{"x":1}`, op: DictAdd, path: "a.b", value: `true`, mkdir: true, want: `{"x":1,"a":{"b":true}}`},
		{doc: `{"a":{}}`, op: DictAdd, path: "a.b.c", value: `"v"`, mkdir: true, want: `{"a":{"b":{"c":"v"}}}`},
		{doc: `{"a":[]}`, op: DictAdd, path: "a[0].b", value: `1`, mkdir: true, err: ErrPathNotFound},
		{doc: `{}`, op: DictAdd, path: "a[0].b", value: `1`, mkdir: true, err: ErrPathNotFound},
		{doc: `{"a":[null]}`, op: DictUpsert, path: "a[0]", value: `true`, err: ErrPathInvalid},
		{doc: `{"a":[null]}`, op: DictUpsert, path: "a[1]", value: `true`, err: ErrPathInvalid},
		{doc: `{"a":[null]}`, op: DictUpsert, path: "a[-1]", value: `true`, err: ErrPathInvalid},
		{doc: `{"a":[{}]}`, op: DictUpsert, path: "a[-1].k", value: `1`, want: `{"a":[{"k":1}]}`},
		{doc: `{"a":1}`, op: DictUpsert, path: "a.b", value: `1`, mkdir: true, err: ErrPathMismatch},
		{doc: `[]`, op: DictUpsert, path: "key", value: `1`, err: ErrPathMismatch},
		{doc: `[]`, op: DictUpsert, path: "key", value: `blah`, err: ErrValueCantInsert},
		{doc: `{}`, op: DictUpsert, path: "", value: `1`, err: ErrValueCantInsert},
		{doc: `{}`, op: DictUpsert, path: "a", value: `1,2`, err: ErrValueCantInsert},
		{doc: `{}`, op: DictUpsert, path: "a", value: `1,"k2":2`, want: `{"a":1,"k2":2}`}, // subjson's FIXME
		{doc: `{}`, op: DictUpsert, path: "a", value: `{ "foo" }`, err: ErrValueCantInsert},
		{doc: `{}`, op: DictUpsert, path: "a", value: `nul`, err: ErrValueCantInsert},
		{doc: `{}`, op: DictUpsert, path: "a", value: `2.`, err: ErrValueCantInsert},
		{doc: `{}`, op: DictUpsert, path: "a", value: `2.0e+`, err: ErrValueCantInsert},
		{doc: `{}`, op: DictUpsert, path: "a", value: `   `, err: ErrValueCantInsert},
		{doc: `{}`, op: DictUpsert, path: "a", value: ``, err: ErrValueEmpty},
		{doc: `{}`, op: DictUpsert, path: "a", value: strings.Repeat("[", 31) + strings.Repeat("]", 31), want: `{"a":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `}`},
		{doc: `{}`, op: DictUpsert, path: "a", value: strings.Repeat("[", 32) + strings.Repeat("]", 32), err: ErrValueTooDeep},
		{doc: `{}`, op: DictUpsert, path: `another.\"nested.field`, value: `null`, mkdir: true, want: `{"another":{"\"nested":{"field":null}}}`},
		{doc: `{}`, op: DictUpsert, path: "F\xc3\xbatbol", value: `"value"`, want: "{\"F\xc3\xbatbol\":\"value\"}"},
		{doc: `{"a":1,}`, op: DictUpsert, path: "b", value: `1`, err: ErrDocNotJSON},
		{doc: `{"a":1} x`, op: DictUpsert, path: "a", value: `1`, err: ErrDocNotJSON},
		{doc: `{"a":1}`, op: DictUpsert, path: "a[", value: `1`, err: ErrPathInvalid},
		// Replace.
		{doc: `{"a":1}`, op: Replace, path: "a", value: `2`, want: `{"a":2}`},
		{doc: `{"a":[1,2,3]}`, op: Replace, path: "a[1]", value: `"x"`, want: `{"a":[1,"x",3]}`},
		{doc: `{"a":[1,2,3]}`, op: Replace, path: "a[-1]", value: `4`, want: `{"a":[1,2,4]}`},
		{doc: `{"a":[1,2,3]}`, op: Replace, path: "a[3]", value: `4`, err: ErrPathNotFound},
		{doc: `{"a":1}`, op: Replace, path: "b", value: `2`, err: ErrPathNotFound},
		{doc: `{"a":1}`, op: Replace, path: "b", value: `2`, mkdir: true, err: ErrPathNotFound},
		{doc: `{"a":1}`, op: Replace, path: "", value: `2`, err: ErrValueCantInsert},
		{doc: `{"a":[1]}`, op: Replace, path: "a[0]", value: `1,2`, err: ErrValueCantInsert},
		// SetDoc is whole-document.
		{doc: `{"a":1}`, op: SetDoc, value: `[1]`, want: `[1]`},
	})
}

func TestMutateDelete(t *testing.T) {
	runMutate(t, []mutateCase{
		{doc: `{"a":1}`, op: Delete, path: "a", want: `{}`},
		{doc: `{"a":1,"b":2}`, op: Delete, path: "a", want: `{"b":2}`},
		{doc: `{"a":1,"b":2}`, op: Delete, path: "b", want: `{"a":1}`},
		{doc: `{"a":1, "b":2, "c":3}`, op: Delete, path: "b", want: `{"a":1,  "c":3}`},
		{doc: `{ "a" : 1 , "b":2 }`, op: Delete, path: "a", want: `{  "b":2 }`},
		{doc: `{"a":1 , "b" : 2 }`, op: Delete, path: "b", want: `{"a":1  }`},
		{doc: `{"0": 1,"1": 2.0}`, op: Delete, path: "0", want: `{"1": 2.0}`},
		{doc: `[1,2]`, op: Delete, path: "[0]", want: `[2]`},
		{doc: `[1,2]`, op: Delete, path: "[1]", want: `[1]`},
		{doc: `[1,2]`, op: Delete, path: "[-1]", want: `[1]`},
		{doc: `[1]`, op: Delete, path: "[-1]", want: `[]`},
		{doc: `[0,[1,[2]],{"key":"val"}]`, op: Delete, path: "[1][1][0]", want: `[0,[1,[]],{"key":"val"}]`},
		{doc: `[0,[1,[]],{"key":"val"}]`, op: Delete, path: "[1][1]", want: `[0,[1],{"key":"val"}]`},
		{doc: `{"a":{"b":[1,2,3]}}`, op: Delete, path: "a.b[1]", want: `{"a":{"b":[1,3]}}`},
		{doc: `{"a":1}`, op: Delete, path: "b", err: ErrPathNotFound},
		{doc: `[]`, op: Delete, path: "[-1]", err: ErrPathNotFound},
		{doc: `{"a":1}`, op: Delete, path: "", err: ErrValueCantInsert},
		{doc: `{"a":1}`, op: Delete, path: "a[0]", err: ErrPathMismatch},
	})
}

func TestMutateArray(t *testing.T) {
	runMutate(t, []mutateCase{
		// ArrayPushLast.
		{doc: `{"a":[]}`, op: ArrayPushLast, path: "a", value: `1`, want: `{"a":[1]}`},
		{doc: `{"a":[ ]}`, op: ArrayPushLast, path: "a", value: `1`, want: `{"a":[1]}`},
		{doc: `{"a":[1]}`, op: ArrayPushLast, path: "a", value: `2`, want: `{"a":[1,2]}`},
		{doc: `{"a":[1 ]}`, op: ArrayPushLast, path: "a", value: `2,3`, want: `{"a":[1 ,2,3]}`},
		{doc: `{"a":[4,5,6]}`, op: ArrayPushLast, path: "a", value: `7,8,9`, want: `{"a":[4,5,6,7,8,9]}`},
		{doc: `{"a":[1]}`, op: ArrayPushLast, path: "a", value: `{"foo":"bar"}`, want: `{"a":[1,{"foo":"bar"}]}`},
		{doc: `{}`, op: ArrayPushLast, path: "a", value: `1`, err: ErrPathNotFound},
		{doc: `{}`, op: ArrayPushLast, path: "a.b", value: `1`, mkdir: true, want: `{"a":{"b":[1]}}`},
		{doc: `{"a":{}}`, op: ArrayPushLast, path: "a", value: `1`, err: ErrPathMismatch},
		{doc: `{"a":[null]}`, op: ArrayPushLast, path: "a[1]", value: `true`, mkdir: true, err: ErrPathNotFound},
		{doc: `[null]`, op: ArrayPushLast, path: "foo.bar", value: `null`, mkdir: true, err: ErrPathMismatch},
		{doc: `{"a":[]}`, op: ArrayPushLast, path: "a", value: `1,`, err: ErrValueCantInsert},
		{doc: `{"a":[]}`, op: ArrayPushLast, path: "a", value: `1],[2`, err: ErrValueCantInsert},
		{doc: `{"a":[]}`, op: ArrayPushLast, path: "a", value: ` `, err: ErrValueCantInsert},
		{doc: `[1,2,3,[4,5,6,[7,8]]]`, op: ArrayPushLast, path: "[-1].[-1]", value: `10`, want: `[1,2,3,[4,5,6,[7,8,10]]]`},
		// With an empty path, subjson appends by the document's last bytes.
		{doc: `[]`, op: ArrayPushLast, value: `null`, want: `[null]`},
		{doc: `[ ]`, op: ArrayPushLast, value: `1`, want: `[1]`},
		{doc: `[0, {"1": 1}]`, op: ArrayPushLast, value: `123`, want: `[0, {"1": 1},123]`},
		{doc: `[1 ] `, op: ArrayPushLast, value: `2`, want: `[1,2] `},
		{doc: `{}`, op: ArrayPushLast, value: `1`, err: ErrPathMismatch},
		{doc: `"x"`, op: ArrayPushLast, value: `1`, err: ErrDocNotJSON},
		{doc: `nonjson`, op: ArrayPushLast, value: `123`, err: ErrDocNotJSON},
		{doc: `[]`, op: ArrayPushLast, value: `notjson`, err: ErrValueCantInsert},
		// ArrayPushFirst.
		{doc: `{"a":[]}`, op: ArrayPushFirst, path: "a", value: `1`, want: `{"a":[1]}`},
		{doc: `{"a":[ 2]}`, op: ArrayPushFirst, path: "a", value: `1`, want: `{"a":[ 1,2]}`},
		{doc: `{"a":[4,5,6]}`, op: ArrayPushFirst, path: "a", value: `1,2,3`, want: `{"a":[1,2,3,4,5,6]}`},
		{doc: `{}`, op: ArrayPushFirst, path: "a", value: `123`, err: ErrPathNotFound},
		{doc: `{}`, op: ArrayPushFirst, path: "a", value: `123`, mkdir: true, want: `{"a":[123]}`},
		{doc: `{"a":{}}`, op: ArrayPushFirst, path: "a", value: `1`, err: ErrPathMismatch},
		{doc: `{"a":"s"}`, op: ArrayPushFirst, path: "a", value: `1`, err: ErrPathMismatch},
		{doc: `[2]`, op: ArrayPushFirst, value: `1`, want: `[1,2]`},
		{doc: `[]`, op: ArrayPushFirst, value: `1`, want: `[1]`},
		{doc: `{}`, op: ArrayPushFirst, value: `1`, err: ErrPathMismatch},
		// ArrayInsert.
		{doc: `[1,2,4,5]`, op: ArrayInsert, path: "[2]", value: `3`, want: `[1,2,3,4,5]`},
		{doc: `[1,2,3,4,5]`, op: ArrayInsert, path: "[0]", value: `0`, want: `[0,1,2,3,4,5]`},
		{doc: `[0,1,2,3,4,5]`, op: ArrayInsert, path: "[6]", value: `6`, want: `[0,1,2,3,4,5,6]`},
		{doc: `[]`, op: ArrayInsert, path: "[0]", value: `6`, want: `[6]`},
		{doc: `{"a":[1,2,6]}`, op: ArrayInsert, path: "a[2]", value: `3,4,5`, want: `{"a":[1,2,3,4,5,6]}`},
		{doc: `[1,2,3,5]`, op: ArrayInsert, path: "[-1]", value: `4`, err: ErrPathInvalid},
		{doc: `[1,2,3]`, op: ArrayInsert, path: "[4]", value: `null`, err: ErrPathNotFound},
		{doc: `[]`, op: ArrayInsert, path: "[1]", value: `null`, err: ErrPathNotFound},
		{doc: `[1,2,3]`, op: ArrayInsert, path: "[0].anything", value: `null`, err: ErrPathInvalid},
		{doc: `{}`, op: ArrayInsert, path: "non_exist[0]", value: `null`, err: ErrPathNotFound},
		{doc: `{}`, op: ArrayInsert, path: "non_exist[0]", value: `null`, mkdir: true, err: ErrPathNotFound},
		{doc: `[]`, op: ArrayInsert, path: "[0]", value: `blah`, err: ErrValueCantInsert},
		{doc: `{}`, op: ArrayInsert, path: "[0]", value: `null`, err: ErrPathMismatch},
		{doc: `[]`, op: ArrayInsert, path: "", value: `null`, err: ErrPathInvalid},
		// ArrayAddUnique.
		{doc: `{}`, op: ArrayAddUnique, path: "u", value: `"value"`, mkdir: true, want: `{"u":["value"]}`},
		{doc: `{}`, op: ArrayAddUnique, path: "u", value: `"value"`, err: ErrPathNotFound},
		{doc: `{"u":["value"]}`, op: ArrayAddUnique, path: "u", value: `"value"`, err: ErrPathExists},
		{doc: `{"u":["value"]}`, op: ArrayAddUnique, path: "u", value: `1`, want: `{"u":["value",1]}`},
		{doc: `{"u":["value",1]}`, op: ArrayAddUnique, path: "u", value: `"1"`, want: `{"u":["value",1,"1"]}`},
		{doc: `{"u":[1.0,true]}`, op: ArrayAddUnique, path: "u", value: `1`, want: `{"u":[1.0,true,1]}`},
		{doc: `{"u":[1.0,true]}`, op: ArrayAddUnique, path: "u", value: `true`, err: ErrPathExists},
		{doc: `{"u":["23"]}`, op: ArrayAddUnique, path: "u", value: `1234`, want: `{"u":["23",1234]}`}, // not subjson's inner compare
		{doc: `{"u":[]}`, op: ArrayAddUnique, path: "u", value: `[]`, err: ErrValueCantInsert},
		{doc: `{"u":[]}`, op: ArrayAddUnique, path: "u", value: `1,2,3`, err: ErrValueCantInsert},
		{doc: `{"u":[1,[]]}`, op: ArrayAddUnique, path: "u", value: `2`, err: ErrPathMismatch},
		{doc: `{"u":[2,[]]}`, op: ArrayAddUnique, path: "u", value: `2`, err: ErrPathExists},
		{doc: `{"u":{}}`, op: ArrayAddUnique, path: "u", value: `2`, err: ErrPathMismatch},
		{doc: `[]`, op: ArrayAddUnique, value: `0`, mkdir: true, want: `[0]`},
		{doc: `[0]`, op: ArrayAddUnique, value: `0`, err: ErrPathExists},
	})
}

func TestMutateCounter(t *testing.T) {
	max, min := strconv.FormatInt(maxInt64, 10), strconv.FormatInt(minInt64, 10)
	runMutate(t, []mutateCase{
		{doc: `{}`, op: Counter, path: "counter", value: `1`, mkdir: true, want: `{"counter":1}`, result: "1"},
		{doc: `{}`, op: Counter, path: "counter", value: `1`, want: `{"counter":1}`, result: "1"},
		{doc: `{"counter":1}`, op: Counter, path: "counter", value: `-101`, want: `{"counter":-100}`, result: "-100"},
		{doc: `{"c": 5 }`, op: Counter, path: "c", value: `5`, want: `{"c": 10 }`, result: "10"},
		{doc: `{"counter":-100}`, op: Counter, path: "counter", value: max, want: `{"counter":` + strconv.FormatInt(maxInt64-100, 10) + `}`, result: strconv.FormatInt(maxInt64-100, 10)},
		{doc: `{"min":0, "max":0}`, op: Counter, path: "min", value: min, want: `{"min":` + min + `, "max":0}`, result: min},
		{doc: `{"c":` + strconv.FormatInt(maxInt64-1, 10) + `}`, op: Counter, path: "c", value: `1`, want: `{"c":` + max + `}`, result: max},
		{doc: `{"c":` + strconv.FormatInt(maxInt64-1, 10) + `}`, op: Counter, path: "c", value: `2`, err: ErrDeltaOverflow},
		{doc: `{"c":` + strconv.FormatInt(minInt64+1, 10) + `}`, op: Counter, path: "c", value: `-2`, err: ErrDeltaOverflow},
		{doc: `{"c":9999999999999999999999999999999}`, op: Counter, path: "c", value: `1`, err: ErrNumTooBig},
		{doc: `{"c":3.14}`, op: Counter, path: "c", value: `1`, err: ErrPathMismatch},
		{doc: `{"c":1e3}`, op: Counter, path: "c", value: `1`, err: ErrPathMismatch},
		{doc: `{"c":"1"}`, op: Counter, path: "c", value: `1`, err: ErrPathMismatch},
		{doc: `{"c":[]}`, op: Counter, path: "c", value: `1`, err: ErrPathMismatch},
		{doc: `[]`, op: Counter, path: "[0]", value: `42`, err: ErrPathNotFound},
		{doc: `[]`, op: Counter, path: "[0]", value: `42`, mkdir: true, err: ErrPathNotFound},
		{doc: `[-20]`, op: Counter, path: "[0]", value: `1`, want: `[-19]`, result: "-19"},
		{doc: `{"a":[null]}`, op: Counter, path: "a[1]", value: `100`, mkdir: true, err: ErrPathNotFound},
		{doc: `{}`, op: Counter, path: "a[0]", value: `1`, mkdir: true, err: ErrPathInvalid},
		{doc: `{}`, op: Counter, path: "a.b", value: `3`, err: ErrPathNotFound},
		{doc: `{}`, op: Counter, path: "a.b", value: `3`, mkdir: true, want: `{"a":{"b":3}}`, result: "3"},
		{doc: `{}`, op: Counter, path: "p", value: `bad`, err: ErrDeltaInvalid},
		{doc: `{}`, op: Counter, path: "p", value: `3.14`, err: ErrDeltaInvalid},
		{doc: `{}`, op: Counter, path: "p", value: `-`, err: ErrDeltaInvalid},
		{doc: `{}`, op: Counter, path: "p", value: `43f`, err: ErrDeltaInvalid},
		{doc: `{}`, op: Counter, path: "p", value: `0`, err: ErrDeltaInvalid},
		{doc: `{}`, op: Counter, path: "p", value: `-0`, err: ErrDeltaInvalid},
		{doc: `{}`, op: Counter, path: "p", value: `01`, err: ErrDeltaInvalid},
		{doc: `{}`, op: Counter, path: "p", value: `+1`, err: ErrDeltaInvalid},
		{doc: `{}`, op: Counter, path: "p", value: ` 1`, err: ErrDeltaInvalid},
		{doc: `{}`, op: Counter, path: "p", value: `9223372036854775808`, err: ErrDeltaInvalid},
		{doc: `{}`, op: Counter, path: "p", value: ``, err: ErrValueEmpty},
	})
}

// TestDeepPath mirrors subjson's: the longest path each operation takes,
// and what one more component gives.
func TestDeepPath(t *testing.T) {
	deepPath := func(n int, index bool) string {
		var b strings.Builder
		for i := 0; i < n-1; i++ {
			fmt.Fprintf(&b, "P%d.", i)
		}
		if index {
			b.WriteString("[0]")
		} else {
			fmt.Fprintf(&b, "P%d", n-1)
		}
		return b.String()
	}
	for _, tc := range []struct {
		op       Op
		key, idx bool // last component kinds tried
		implicit bool // the operation works one level below the path
	}{
		{Get, true, true, false}, {Exists, true, true, false}, {Replace, true, true, false},
		{Delete, true, true, false}, {DictUpsert, true, false, false}, {DictAdd, true, false, false},
		{ArrayPushFirst, true, true, true}, {ArrayPushLast, true, true, true},
		{ArrayAddUnique, true, true, true}, {ArrayInsert, false, true, false},
		{Counter, true, true, false}, {GetCount, true, true, false},
	} {
		for _, index := range []bool{false, true} {
			if index && !tc.idx || !index && !tc.key {
				continue
			}
			n := MaxComponents - 1
			if tc.implicit {
				n--
			}
			var err error
			run := func(path string) {
				if tc.op.IsLookup() {
					_, err = Lookup([]byte(`{}`), tc.op, []byte(path))
				} else {
					_, _, err = Mutate(nil, []byte(`{}`), tc.op, []byte(path), []byte("123"), false)
				}
			}
			run(deepPath(n, index))
			if err == ErrPathTooBig {
				t.Errorf("%v with %d components: %v", tc.op, n, err)
			}
			run(deepPath(n+1, index))
			want := ErrPathTooBig
			if tc.implicit {
				want = ErrValueTooDeep
			}
			if err != want {
				t.Errorf("%v with %d components: %v, want %v", tc.op, n+1, err, want)
			}
		}
	}
}

// TestDepth: what a mutation may make deep.
func TestDepth(t *testing.T) {
	nest := func(n int, inner string) string {
		return strings.Repeat("[", n) + inner + strings.Repeat("]", n)
	}
	runMutate(t, []mutateCase{
		// The deepest array element is at level 32.
		{doc: nest(31, "1"), op: Replace, path: strings.Repeat("[0]", 31), value: "2", want: nest(31, "2")},
		{doc: nest(31, "1"), op: Replace, path: strings.Repeat("[0]", 30), value: "[3,4]", want: nest(30, "[3,4]")},
		{doc: nest(31, "1"), op: Replace, path: strings.Repeat("[0]", 30), value: "[[5]]", err: ErrValueTooDeep},
		{doc: nest(31, ""), op: ArrayPushLast, path: strings.Repeat("[0]", 30), value: "1", want: nest(31, "1")},
		{doc: nest(31, ""), op: ArrayPushLast, path: strings.Repeat("[0]", 30), value: "[]", want: nest(31, "[]")},
		{doc: nest(31, ""), op: ArrayPushLast, path: strings.Repeat("[0]", 30), value: "[1]", err: ErrValueTooDeep},
		{doc: nest(33, ""), op: Replace, path: "[0]", value: "1", err: ErrDocTooDeep},
	})
}

func TestRootType(t *testing.T) {
	for _, tc := range []struct {
		op   Op
		path string
		want byte
	}{
		{DictUpsert, "a.b", '{'}, {DictUpsert, " [0]", '['}, {ArrayPushLast, "", '['},
		{ArrayPushFirst, "", '['}, {ArrayAddUnique, "", '['}, {Counter, "", 0}, {Get, "", 0},
		{ArrayPushLast, "a", '{'},
	} {
		if got := RootType(tc.op, []byte(tc.path)); got != tc.want {
			t.Errorf("RootType(%v, %q) = %q, want %q", tc.op, tc.path, got, tc.want)
		}
	}
}

// TestValid compares the scanner with encoding/json on documents within
// the depth limit.
func TestValid(t *testing.T) {
	for _, doc := range []string{
		`{}`, `[]`, ` 1 `, `-0`, `-0.5e+10`, `1E5`, `"\u00e9\n"`, `{"a":[true,false,null,{"b":""}]}`,
		``, ` `, `{`, `}`, `[1,]`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{1:2}`, `01`, `1.`, `.5`, `-`, `1e`, `+1`,
		`tru`, `nulll`, `"abc`, `"\x"`, `"\u12g4"`, "\"\x1f\"", "\"\x7f\"", `[1 2]`, `{"a":1 "b":2}`, `1 2`,
		`[` + strings.Repeat(`{"a":[`, 10) + `1` + strings.Repeat(`]}`, 10) + `]`, "\xff", `"\xff"`,
	} {
		if got, want := Valid([]byte(doc)), json.Valid([]byte(doc)); got != want {
			t.Errorf("Valid(%q) = %v, encoding/json says %v", doc, got, want)
		}
	}
	if Valid([]byte(strings.Repeat("[", 33) + strings.Repeat("]", 33))) {
		t.Error("Valid accepts 33 levels")
	}
}

func TestErrors(t *testing.T) {
	var err error = ErrPathNotFound
	var e Error
	if !errors.As(err, &e) || e != ErrPathNotFound || err.Error() != "subdoc: path not found" {
		t.Errorf("error %v", err)
	}
	if Error(200).Error() != "subdoc: unknown error" || Op(99).String() != "op(99)" || Counter.String() != "counter" {
		t.Error("names")
	}
	if _, err := Lookup([]byte(`{}`), DictAdd, nil); err == nil {
		t.Error("Lookup took a mutation")
	}
	if _, _, err := Mutate(nil, []byte(`{}`), Get, nil, nil, false); err == nil {
		t.Error("Mutate took a lookup")
	}
	for o := Get; o <= SetDoc; o++ {
		if o.IsLookup() == (o >= DictAdd) {
			t.Errorf("%v IsLookup %v", o, o.IsLookup())
		}
		if o.HasValue() != (o >= DictAdd && o != Delete) {
			t.Errorf("%v HasValue %v", o, o.HasValue())
		}
	}
}
