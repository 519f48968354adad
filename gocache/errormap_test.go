package gocache

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	gm "github.com/f8e615c8/gomemcached"
)

// errorMapWant lists the statuses the map must describe, with the names
// kv_engine's error_map_v2.json gives them.
var errorMapWant = map[gm.Status]string{
	gm.SUCCESS:            "SUCCESS",
	gm.KEY_ENOENT:         "KEY_ENOENT",
	gm.KEY_EEXISTS:        "KEY_EEXISTS",
	gm.E2BIG:              "E2BIG",
	gm.EINVAL:             "EINVAL",
	gm.NOT_STORED:         "NOT_STORED",
	gm.DELTA_BADVAL:       "DELTA_BADVAL",
	gm.NOT_MY_VBUCKET:     "NOT_MY_VBUCKET",
	gm.NO_BUCKET:          "NO_BUCKET",
	gm.AUTH_STALE:         "AUTH_STALE",
	gm.AUTH_ERROR:         "AUTH_ERROR",
	gm.AUTH_CONTINUE:      "AUTH_CONTINUE",
	gm.ERANGE:             "ERANGE",
	gm.EACCESS:            "EACCESS",
	gm.ROLLBACK:           "ROLLBACK",
	gm.UNKNOWN_COMMAND:    "UNKNOWN_COMMAND",
	gm.ENOMEM:             "ENOMEM",
	gm.NOT_SUPPORTED:      "NOT_SUPPORTED",
	gm.EINTERNAL:          "EINTERNAL",
	gm.EBUSY:              "EBUSY",
	gm.TMPFAIL:            "ETMPFAIL",
	gm.UNKNOWN_COLLECTION: "UNKNOWN_COLLECTION",

	gm.DURABILITY_INVALID_LEVEL: "DurabilityInvalidLevel",

	gm.CAS_VALUE_INVALID:                        "CAS_VALUE_INVALID",
	gm.CANNOT_APPLY_COLLECTIONS_MANIFEST:        "CANNOT_APPLY_COLLECTIONS_MANIFEST",
	gm.COLLECTIONS_MANIFEST_AHEAD:               "COLLECTIONS_MANIFEST_AHEAD",
	gm.UNKNOWN_SCOPE:                            "UNKNOWN_SCOPE",
	gm.DCP_STREAMID_INVALID:                     "DCP_STREAMID_INVALID",
	gm.RANGE_SCAN_CANCELLED:                     "RangeScanCancelled",
	gm.RANGE_SCAN_MORE:                          "RangeScanMore",
	gm.RANGE_SCAN_COMPLETE:                      "RangeScanComplete",
	gm.VBUUID_NOT_EQUAL:                         "VbUuidNotEqual",
	gm.XATTR_EINVAL:                             "XATTR_EINVAL",
	gm.SUBDOC_FIELD_NOT_BINARY_VALUE:            "SUBDOC_FIELD_NOT_BINARY_VALUE",
	gm.SUBDOC_PATH_NOT_FOUND:                    "SUBDOC_PATH_ENOENT",
	gm.SUBDOC_PATH_MISMATCH:                     "SUBDOC_PATH_MISMATCH",
	gm.SUBDOC_PATH_EINVAL:                       "SUBDOC_PATH_EINVAL",
	gm.SUBDOC_PATH_E2BIG:                        "SUBDOC_PATH_E2BIG",
	gm.SUBDOC_DOC_E2DEEP:                        "SUBDOC_PATH_E2DEEP",
	gm.SUBDOC_VALUE_CANTINSERT:                  "SUBDOC_VALUE_CANTINSERT",
	gm.SUBDOC_DOC_NOT_JSON:                      "SUBDOC_DOC_NOTJSON",
	gm.SUBDOC_NUM_ERANGE:                        "SUBDOC_NUM_ERANGE",
	gm.SUBDOC_DELTA_EINVAL:                      "SUBDOC_DELTA_EINVAL",
	gm.SUBDOC_PATH_EEXISTS:                      "SUBDOC_PATH_EEXISTS",
	gm.SUBDOC_VALUE_ETOODEEP:                    "SUBDOC_VALUE_ETOODEEP",
	gm.SUBDOC_INVALID_COMBO:                     "SUBDOC_INVALID_COMBO",
	gm.SUBDOC_BAD_MULTI:                         "SUBDOC_MULTI_PATH_FAILURE",
	gm.SUBDOC_SUCCESS_DELETED:                   "SUBDOC_SUCCESS_DELETED",
	gm.SUBDOC_XATTR_INVALID_FLAG:                "SUBDOC_XATTR_INVALID_FLAG_COMBO",
	gm.SUBDOC_XATTR_INVALID_KEY:                 "SUBDOC_XATTR_INVALID_KEY_COMBO",
	gm.SUBDOC_XATTR_UNKNOWN_MACRO:               "SUBDOC_XATTR_UNKNOWN_MACRO",
	gm.SUBDOC_XATTR_UNKNOWN_VATTR:               "SUBDOC_XATTR_UNKNOWN_VATTR",
	gm.SUBDOC_XATTR_CANT_MODIFY_VATTR:           "SUBDOC_XATTR_CANT_MODIFY_VATTR",
	gm.SUBDOC_MULTI_PATH_FAILURE_DELETED:        "SUBDOC_MULTI_PATH_FAILURE_DELETED",
	gm.SUBDOC_INVALID_XATTR_ORDER:               "SUBDOC_INVALID_XATTR_ORDER",
	gm.SUBDOC_XATTR_UNKNOWN_VATTR_MACRO:         "SUBDOC_XATTR_UNKNOWN_VATTR_MACRO",
	gm.SUBDOC_CAN_ONLY_REVIVE_DELETED_DOCUMENTS: "SUBDOC_CAN_ONLY_REVIVE_DELETED_DOCUMENTS",
	gm.SUBDOC_DELETED_DOCUMENT_CANT_HAVE_VALUE:  "SUBDOC_DELETED_DOCUMENT_CANT_HAVE_VALUE",
}

// TestErrorMapCoversSource checks that every status gocache's code names
// (gm.X where X is a status's name) is in errorMapWant, so that a status
// added to a handler without its error map entry fails here.
func TestErrorMapCoversSource(t *testing.T) {
	byName := map[string]gm.Status{}
	for st, name := range gm.StatusNames {
		byName[name] = st
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	seen := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "gm" {
				return true
			}
			if st, ok := byName[sel.Sel.Name]; ok {
				seen++
				if _, ok := errorMapWant[st]; !ok {
					t.Errorf("%s: gm.%s is not in the error map", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
	}
	if seen < 10 {
		t.Fatalf("found only %d status names in gocache's code", seen)
	}
}

// errorMapRetryWant lists the statuses that carry a retry specification in
// version 2.
var errorMapRetryWant = map[gm.Status]bool{gm.ENOMEM: true, gm.EBUSY: true, gm.TMPFAIL: true}

// errorMapV2Attrs is every attribute a version-2 map may use: the
// version-1 set and those added with version 2 (seen in kv_engine's
// error_map_v2.json).
var errorMapV2Attrs = map[string]bool{"rate-limit": true, "system-constraint": true, "no-retry": true}

type parsedRetry struct {
	Strategy    *string `json:"strategy"`
	Interval    *int    `json:"interval"`
	After       *int    `json:"after"`
	Ceil        *int    `json:"ceil"`
	MaxDuration *int    `json:"max-duration"`
}

type parsedError struct {
	Name  *string      `json:"name"`
	Desc  *string      `json:"desc"`
	Attrs []string     `json:"attrs"`
	Retry *parsedRetry `json:"retry"`
}

type parsedMap struct {
	Version  *int                   `json:"version"`
	Revision *int                   `json:"revision"`
	Errors   map[string]parsedError `json:"errors"`
}

var errorMapKey = regexp.MustCompile(`^(0|[1-9a-f][0-9a-f]{0,3})$`)

// parseErrorMap decodes doc strictly: unknown fields fail at either level.
func parseErrorMap(t *testing.T, doc []byte) parsedMap {
	t.Helper()
	if !json.Valid(doc) {
		t.Fatalf("not JSON: %s", doc)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		t.Fatal(err)
	}
	for k := range top {
		if k != "version" && k != "revision" && k != "errors" {
			t.Errorf("unexpected top-level field %q", k)
		}
	}
	var m parsedMap
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if m.Version == nil || m.Revision == nil || m.Errors == nil {
		t.Fatalf("missing version, revision or errors: %s", doc)
	}
	if *m.Revision < 1 {
		t.Errorf("revision %d, want at least 1", *m.Revision)
	}
	return m
}

func checkRetry(t *testing.T, key string, r *parsedRetry) {
	t.Helper()
	if r.Strategy == nil || r.Interval == nil || r.After == nil {
		t.Errorf("%s: retry lacks strategy, interval or after", key)
		return
	}
	switch *r.Strategy {
	case "constant":
		if r.Ceil != nil {
			t.Errorf("%s: ceil on a constant strategy", key)
		}
	case "linear", "exponential":
	default:
		t.Errorf("%s: unknown strategy %q", key, *r.Strategy)
	}
	if *r.Interval <= 0 || *r.After < 0 {
		t.Errorf("%s: interval %d, after %d", key, *r.Interval, *r.After)
	}
	if r.Ceil != nil && *r.Ceil < *r.Interval {
		t.Errorf("%s: ceil %d below interval %d", key, *r.Ceil, *r.Interval)
	}
	if r.MaxDuration != nil && *r.MaxDuration < *r.After+*r.Interval {
		t.Errorf("%s: max-duration %d leaves no room for a retry", key, *r.MaxDuration)
	}
}

func TestErrorMapDocuments(t *testing.T) {
	for _, version := range []uint16{1, 2} {
		doc, got, ok := errorMap(version)
		if !ok || got != version {
			t.Fatalf("errorMap(%d) = version %d, ok %v", version, got, ok)
		}
		m := parseErrorMap(t, doc)
		if *m.Version != int(version) {
			t.Errorf("v%d: document says version %d", version, *m.Version)
		}
		if len(m.Errors) != len(errorMapWant) {
			t.Errorf("v%d: %d entries, want %d", version, len(m.Errors), len(errorMapWant))
		}
		for key, e := range m.Errors {
			if !errorMapKey.MatchString(key) {
				t.Errorf("v%d: key %q is not lower-case hex without prefix or leading zeros", version, key)
				continue
			}
			code, err := strconv.ParseUint(key, 16, 16)
			if err != nil {
				t.Errorf("v%d: key %q: %v", version, key, err)
				continue
			}
			st := gm.Status(code)
			want, listed := errorMapWant[st]
			if !listed {
				t.Errorf("v%d: unexpected entry %s", version, key)
				continue
			}
			if e.Name == nil || *e.Name != want {
				t.Errorf("v%d %s: name %v, want %q", version, key, e.Name, want)
			}
			if e.Desc == nil || *e.Desc == "" {
				t.Errorf("v%d %s: no desc", version, key)
			}
			if e.Attrs == nil || len(e.Attrs) == 0 {
				t.Errorf("v%d %s: no attrs", version, key)
			}
			seen := map[string]bool{}
			for _, a := range e.Attrs {
				if seen[a] {
					t.Errorf("v%d %s: attribute %q twice", version, key, a)
				}
				seen[a] = true
				if !errorMapV1Attrs[a] && (version == 1 || !errorMapV2Attrs[a]) {
					t.Errorf("v%d %s: attribute %q not allowed in version %d", version, key, a, version)
				}
			}
			switch {
			case version == 1 && e.Retry != nil:
				t.Errorf("v1 %s: has a retry specification", key)
			case version == 2 && errorMapRetryWant[st] && e.Retry == nil:
				t.Errorf("v2 %s: no retry specification", key)
			case version == 2 && !errorMapRetryWant[st] && e.Retry != nil:
				t.Errorf("v2 %s: unexpected retry specification", key)
			case e.Retry != nil:
				checkRetry(t, key, e.Retry)
				if seen["auto-retry"] {
					t.Errorf("v2 %s: auto-retry set", key)
				}
			}
		}
		for st := range errorMapWant {
			if _, ok := m.Errors[strconv.FormatUint(uint64(st), 16)]; !ok {
				t.Errorf("v%d: no entry for %#x", version, uint16(st))
			}
		}
	}
}

// The temporary failures must say so in both versions.
func TestErrorMapTemporaryAttrs(t *testing.T) {
	want := map[gm.Status][]string{
		gm.ENOMEM:  {"temp", "retry-later"},
		gm.EBUSY:   {"temp", "retry-now"},
		gm.TMPFAIL: {"temp", "retry-now"},
	}
	for _, version := range []uint16{1, 2} {
		doc, _, _ := errorMap(version)
		m := parseErrorMap(t, doc)
		for st, attrs := range want {
			e := m.Errors[strconv.FormatUint(uint64(st), 16)]
			if !slices.Equal(e.Attrs, attrs) {
				t.Errorf("v%d %#x: attrs %v, want %v", version, uint16(st), e.Attrs, attrs)
			}
		}
	}
}

func TestErrorMapVersions(t *testing.T) {
	if doc, v, ok := errorMap(0); ok || v != 0 || doc != nil {
		t.Errorf("errorMap(0) = %d bytes, version %d, ok %v; want nothing", len(doc), v, ok)
	}
	for _, tc := range []struct{ max, want uint16 }{
		{1, gm.ErrorMapCB50}, {2, gm.ErrorMapCB75}, {3, 2}, {100, 2}, {0xffff, 2},
	} {
		doc, v, ok := errorMap(tc.max)
		if !ok || v != tc.want {
			t.Errorf("errorMap(%d) = version %d, ok %v; want %d", tc.max, v, ok, tc.want)
			continue
		}
		var head struct{ Version int }
		if err := json.Unmarshal(doc, &head); err != nil || head.Version != int(tc.want) {
			t.Errorf("errorMap(%d): document version %d (%v), want %d", tc.max, head.Version, err, tc.want)
		}
	}
}

// The documents are built once and do not change between calls.
func TestErrorMapStable(t *testing.T) {
	for _, version := range []int{1, 2} {
		a, _, _ := errorMap(uint16(version))
		if b := buildErrorMap(version); !bytes.Equal(a, b) {
			t.Errorf("v%d: rebuilt document differs:\n%s\n%s", version, a, b)
		}
		if c, _, _ := errorMap(uint16(version)); &a[0] != &c[0] {
			t.Errorf("v%d: document not cached", version)
		}
	}
}

// Apart from the version and the retry hints, both versions carry the same
// entries.
func TestErrorMapV1MatchesV2(t *testing.T) {
	d1, _, _ := errorMap(1)
	d2, _, _ := errorMap(2)
	m1, m2 := parseErrorMap(t, d1), parseErrorMap(t, d2)
	if *m1.Revision != *m2.Revision {
		t.Errorf("revisions %d and %d differ", *m1.Revision, *m2.Revision)
	}
	for key, e2 := range m2.Errors {
		e1 := m1.Errors[key]
		var kept []string
		for _, a := range e2.Attrs {
			if errorMapV1Attrs[a] {
				kept = append(kept, a)
			}
		}
		if *e1.Name != *e2.Name || *e1.Desc != *e2.Desc || !slices.Equal(e1.Attrs, kept) {
			t.Errorf("%s: v1 %+v differs from v2 %+v", key, e1, e2)
		}
	}
}

// The entries are in ascending code order, each code once.
func TestErrorMapOrder(t *testing.T) {
	for i := 1; i < len(errorCodes); i++ {
		if errorCodes[i-1].status >= errorCodes[i].status {
			t.Errorf("entry %d (%#x) not after %#x", i, uint16(errorCodes[i].status), uint16(errorCodes[i-1].status))
		}
	}
}

// The map uses kv_engine's spelling of names. gm.StatusNames follows
// github.com/couchbase/gomemcached, which differs for 0x86: kv_engine calls
// it ETMPFAIL, gomemcached TMPFAIL, and kv_engine spells the durability
// statuses in camel case. Every other listed status agrees.
func TestErrorMapNamesMatchStatusNames(t *testing.T) {
	differ := map[gm.Status][2]string{
		gm.TMPFAIL:                   {"TMPFAIL", "ETMPFAIL"},
		gm.DURABILITY_INVALID_LEVEL:  {"DURABILITY_INVALID_LEVEL", "DurabilityInvalidLevel"},
		gm.RANGE_SCAN_CANCELLED:      {"RANGE_SCAN_CANCELLED", "RangeScanCancelled"},
		gm.RANGE_SCAN_MORE:           {"RANGE_SCAN_MORE", "RangeScanMore"},
		gm.RANGE_SCAN_COMPLETE:       {"RANGE_SCAN_COMPLETE", "RangeScanComplete"},
		gm.VBUUID_NOT_EQUAL:          {"VBUUID_NOT_EQUAL", "VbUuidNotEqual"},
		gm.SUBDOC_PATH_NOT_FOUND:     {"SUBDOC_PATH_NOT_FOUND", "SUBDOC_PATH_ENOENT"},
		gm.SUBDOC_DOC_E2DEEP:         {"SUBDOC_DOC_E2DEEP", "SUBDOC_PATH_E2DEEP"},
		gm.SUBDOC_DOC_NOT_JSON:       {"SUBDOC_DOC_NOT_JSON", "SUBDOC_DOC_NOTJSON"},
		gm.SUBDOC_BAD_MULTI:          {"SUBDOC_BAD_MULTI", "SUBDOC_MULTI_PATH_FAILURE"},
		gm.SUBDOC_XATTR_INVALID_FLAG: {"SUBDOC_XATTR_INVALID_FLAG", "SUBDOC_XATTR_INVALID_FLAG_COMBO"},
		gm.SUBDOC_XATTR_INVALID_KEY:  {"SUBDOC_XATTR_INVALID_KEY", "SUBDOC_XATTR_INVALID_KEY_COMBO"},
	}
	for _, c := range errorCodes {
		gmName, ok := gm.StatusNames[c.status]
		if !ok {
			t.Errorf("%#x (%s) is not in gm.StatusNames", uint16(c.status), c.Name)
			continue
		}
		if d, ok := differ[c.status]; ok {
			if gmName != d[0] || c.Name != d[1] {
				t.Errorf("%#x: gm %q, map %q; the documented difference is %q vs %q", uint16(c.status), gmName, c.Name, d[0], d[1])
			}
			continue
		}
		if gmName != c.Name {
			t.Errorf("%#x: gm.StatusNames says %q, the map %q", uint16(c.status), gmName, c.Name)
		}
	}
}
