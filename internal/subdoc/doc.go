// Package subdoc is the JSON path engine behind Couchbase's sub-document
// commands, on []byte documents, with the semantics kv_engine gets from
// the subjson library: Lookup reads a path (Get, Exists, GetCount),
// Mutate changes one (DictAdd, DictUpsert, Delete, Replace, the array
// operations, Counter) and whole-document GetDoc and SetDoc stand for the
// empty-path specs of multi-path commands. Paths are parsed by ParsePath;
// every failure is an Error, which the server maps to its status.
//
// Mutations splice: the new document is the old one's bytes with the
// changed span replaced, so that everything else stays byte-identical.
// Values to insert are checked as JSON in the context they go into, and a
// mutated document is always JSON (the whole input is checked, where
// subjson stops reading at the match).
//
// The package also has the codec of the extended attributes (xattrs) that
// Couchbase keeps in front of a document's body when its datatype has the
// XATTR bit: Split, Blob and its methods, and the key rules (ValidXattrKey,
// IsSystemXattr).
//
// JSON is read by a scanner of its own over byte offsets (scan.go), on
// the standard library only: a splice needs the offsets of the spans it
// replaces, and the statuses need subjson's distinctions (mismatch, not
// found, not JSON, too deep), which a tree parser (valyala/fastjson) or a
// lenient path getter (tidwall/gjson, buger/jsonparser) do not give. It
// was chosen by BenchmarkParsers: it finds a path at the end of a 64 KiB
// document at about 370 MB/s without allocating (encoding/json's
// Decoder: 78 MB/s, 327 KB allocated) and checks a document at 370-560
// MB/s (encoding/json.Valid: 200-240 MB/s; fastjson's validator 390-400
// MB/s). gjson finds the path 3 times faster because it skips what it
// does not read without checking it.
//
// Nothing here knows the wire. Functions are safe for concurrent use; they
// never modify their inputs, and results may slice them (see each).
// Malformed input is an error, never a panic; memory is bounded by the
// input sizes, and nesting by MaxDepth.
package subdoc
