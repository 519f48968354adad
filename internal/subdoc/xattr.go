package subdoc

import (
	"bytes"
	"encoding/binary"
	"slices"
	"unicode/utf8"
)

// MaxXattrKeyLen is the longest xattr key (kv_engine allows keys shorter
// than its SUBDOC_MAX_XATTR_LENGTH, 16).
const MaxXattrKeyLen = 15

// Blob is the extended-attributes section that starts a value whose
// datatype has the XATTR bit (0x04), as kv_engine lays it out: a 4-byte
// big-endian length of what follows, then the pairs, each a 4-byte
// big-endian length of the rest of the pair, the key, a NUL, the value
// (JSON), a NUL. The value's body follows the section. A nil Blob has no
// xattrs; kv_engine never stores a section without pairs (it clears the
// XATTR bit instead), and neither do Set and Delete.
//
// A Blob's methods other than Check expect one that Check accepts; on a
// malformed one they stop early, never panic.
type Blob []byte

// Split splits value, whose datatype has the XATTR bit, into its xattr
// section and its body, which slice value. Only the section's length is
// checked (see Check for the rest). Error: ErrXattrs.
func Split(value []byte) (Blob, []byte, error) {
	if len(value) < 4 {
		return nil, nil, ErrXattrs
	}
	n := binary.BigEndian.Uint32(value)
	if uint64(n) > uint64(len(value)-4) {
		return nil, nil, ErrXattrs
	}
	end := 4 + int(n)
	return Blob(value[:end:end]), value[end:], nil
}

// Join appends the value made of blob and body to dst. With no xattrs,
// that is the body alone, and the value's datatype loses the XATTR bit.
func Join(dst []byte, blob Blob, body []byte) []byte {
	return append(append(dst, blob...), body...)
}

// Check checks the section as kv_engine's xattr::validate: the lengths
// add up, every key is valid (ValidXattrKey, with nothing after it) and
// unique, every value is JSON.
func (b Blob) Check() error {
	if len(b) < 4 || int(binary.BigEndian.Uint32(b)) != len(b)-4 {
		return ErrXattrs
	}
	for i := 4; i < len(b); {
		if len(b)-i < 4+1+2 {
			return ErrXattrs
		}
		n := int(binary.BigEndian.Uint32(b[i:]))
		i += 4
		if n > len(b)-i {
			return ErrXattrs
		}
		pair := b[i : i+n]
		k := bytes.IndexByte(pair, 0)
		if k < 0 || k == n-1 || pair[n-1] != 0 {
			return ErrXattrs
		}
		key, value := pair[:k], pair[k+1:n-1]
		if kl, ok := ValidXattrKey(key); !ok || kl != len(key) || bytes.IndexByte(value, 0) >= 0 || !Valid(value) {
			return ErrXattrs
		}
		if _, dup := b[:i-4].get(key); dup {
			return ErrXattrs
		}
		i += n
	}
	return nil
}

// next returns the pair at offset i: key, value and the next pair's
// offset, or ok false at the end (or where the section is malformed).
func (b Blob) next(i int) (key, value []byte, next int, ok bool) {
	if i+4 > len(b) {
		return nil, nil, 0, false
	}
	n := int(binary.BigEndian.Uint32(b[i:]))
	i += 4
	if n < 2 || n > len(b)-i {
		return nil, nil, 0, false
	}
	pair := b[i : i+n-1] // without the value's NUL
	k := bytes.IndexByte(pair, 0)
	if k < 0 {
		return nil, nil, 0, false
	}
	return pair[:k], pair[k+1:], i + n, true
}

// Each calls f with every xattr in order until f returns false. key and
// value slice b.
func (b Blob) Each(f func(key, value []byte) bool) {
	for i := 4; ; {
		key, value, next, ok := b.next(i)
		if !ok || !f(key, value) {
			return
		}
		i = next
	}
}

// Get returns the value of the xattr key, slicing b.
func (b Blob) Get(key []byte) ([]byte, bool) { return b.get(key) }

func (b Blob) get(key []byte) ([]byte, bool) {
	for i := 4; ; {
		k, v, next, ok := b.next(i)
		if !ok {
			return nil, false
		}
		if bytes.Equal(k, key) {
			return v, true
		}
		i = next
	}
}

// Len returns the number of xattrs.
func (b Blob) Len() int {
	n := 0
	b.Each(func(_, _ []byte) bool { n++; return true })
	return n
}

// appendPair appends one pair to a section being built in dst from
// offset start (where its length field is), and updates that length.
func appendPair(dst []byte, start int, key, value []byte) []byte {
	if len(dst) == start {
		dst = append(dst, 0, 0, 0, 0)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(key)+len(value)+2))
	dst = append(dst, key...)
	dst = append(dst, 0)
	dst = append(dst, value...)
	dst = append(dst, 0)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// filter appends to dst the section with the pairs of b that keep
// accepts, then, if value is not nil, key=value; nil if none remain.
func (b Blob) filter(dst []byte, keep func(k []byte) bool, key, value []byte) Blob {
	start := len(dst)
	b.Each(func(k, v []byte) bool {
		if keep(k) {
			dst = appendPair(dst, start, k, v)
		}
		return true
	})
	if value != nil {
		dst = appendPair(dst, start, key, value)
	}
	if len(dst) == start {
		return nil
	}
	return Blob(dst[start:])
}

// Set appends to dst the section with key set to value (after the other
// pairs, as kv_engine's Blob::set puts it) and returns it.
func (b Blob) Set(dst, key, value []byte) Blob {
	return b.filter(dst, func(k []byte) bool { return !bytes.Equal(k, key) }, key, value)
}

// Delete appends to dst the section without key and returns it (nil if
// no pair remains).
func (b Blob) Delete(dst, key []byte) Blob {
	return b.filter(dst, func(k []byte) bool { return !bytes.Equal(k, key) }, nil, nil)
}

// System appends to dst the section with only the system xattrs (what a
// deleted document keeps) and returns it (nil if there are none).
func (b Blob) System(dst []byte) Blob {
	return b.filter(dst, IsSystemXattr, nil, nil)
}

// SystemSize is the bytes the system xattrs take, counted as kv_engine
// counts them against their own quota: each pair with its length field,
// and the section's length field; 0 with no xattrs.
func (b Blob) SystemSize() int {
	if len(b) == 0 {
		return 0
	}
	n := 4
	b.Each(func(k, v []byte) bool {
		if IsSystemXattr(k) {
			n += 4 + len(k) + len(v) + 2
		}
		return true
	})
	return n
}

// AppendJSON appends the xattrs to dst as one JSON object, key by key in
// their order ({} with none): the document that xattr paths are run on,
// as kv_engine's Blob::to_string.
func (b Blob) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	n := 0
	b.Each(func(k, v []byte) bool {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, '"')
		dst = append(dst, k...)
		dst = append(dst, '"', ':')
		dst = append(dst, v...)
		return true
	})
	return append(dst, '}')
}

// BlobFromJSON appends to dst the section that holds the members of the
// JSON object obj, and returns it (nil for an empty object): the inverse
// of AppendJSON after paths have changed the object. As kv_engine, which
// rebuilds the section from a parsed object, keys come out sorted and
// values without insignificant white space, their objects' keys sorted
// too (see compact). Keys must be valid xattr
// keys. Errors: ErrDocNotJSON (obj is not an object), ErrXattrs (a key
// is not valid, or is there twice).
func BlobFromJSON(dst []byte, obj []byte) (Blob, error) {
	if err := checkDoc(obj); err != nil {
		return nil, err
	}
	i := skipWS(obj, 0)
	if obj[i] != '{' {
		return nil, ErrDocNotJSON
	}
	type kv struct{ k, v []byte }
	var members []kv
	i = skipWS(obj, i+1)
	for obj[i] != '}' {
		kend, _ := scanString(obj, i)
		v, _ := member(obj, i)
		vend, _, _ := scanValue(obj, v, 2)
		members = append(members, kv{obj[i+1 : kend-1], obj[v:vend]})
		i = skipWS(obj, vend)
		if obj[i] == ',' {
			i = skipWS(obj, i+1)
		}
	}
	slices.SortStableFunc(members, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	start := len(dst)
	var value []byte
	for n, m := range members {
		if kl, ok := ValidXattrKey(m.k); !ok || kl != len(m.k) || n > 0 && bytes.Equal(m.k, members[n-1].k) {
			return nil, ErrXattrs
		}
		value = compact(value[:0], m.v)
		dst = appendPair(dst, start, m.k, value)
	}
	if len(dst) == start {
		return nil, nil
	}
	return Blob(dst[start:]), nil
}

// compact appends JSON value v to dst as kv_engine writes a value it has
// parsed (nlohmann's dump): without insignificant white space, and with
// the members of every object sorted by key (stably; keys compared as
// their JSON text). Numbers and strings are kept as they are.
func compact(dst, v []byte) []byte {
	i := skipWS(v, 0)
	if i == len(v) {
		return dst
	}
	out, _ := canonical(dst, v, i, 1)
	return out
}

// canonical appends the value at v[i] (JSON, as BlobFromJSON checked) and
// returns the offset past it.
func canonical(dst, v []byte, i, level int) ([]byte, int) {
	switch v[i] {
	case '[':
		dst = append(dst, '[')
		i = skipWS(v, i+1)
		for n := 0; v[i] != ']'; n++ {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst, i = canonical(dst, v, i, level+1)
			if i = skipWS(v, i); v[i] == ',' {
				i = skipWS(v, i+1)
			}
		}
		return append(dst, ']'), i + 1
	case '{':
		type pair struct{ key, value []byte }
		var members []pair
		i = skipWS(v, i+1)
		for v[i] != '}' {
			kend, _ := scanString(v, i)
			start, _ := member(v, i)
			end, _, _ := scanValue(v, start, level+1)
			members = append(members, pair{v[i:kend], v[start:end]})
			if i = skipWS(v, end); v[i] == ',' {
				i = skipWS(v, i+1)
			}
		}
		slices.SortStableFunc(members, func(a, b pair) int { return bytes.Compare(a.key, b.key) })
		dst = append(dst, '{')
		for n, m := range members {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = append(append(dst, m.key...), ':')
			dst, _ = canonical(dst, m.value, 0, level+1)
		}
		return append(dst, '}'), i + 1
	}
	end, _, _ := scanValue(v, i, level)
	return append(dst, v[i:end]...), end
}

// IsSystemXattr reports whether key names a system xattr (one that starts
// with '_', which a deleted document keeps).
func IsSystemXattr(key []byte) bool { return len(key) > 0 && key[0] == '_' }

// IsVirtualXattr reports whether key (or path) names a virtual xattr, one
// the server makes up ("$document", "$XTOC", "$vbucket").
func IsVirtualXattr(key []byte) bool { return len(key) > 0 && key[0] == '$' }

// isPunct and isCntrl are C's ispunct and iscntrl in the C locale.
func isPunct(c byte) bool {
	return c >= 0x21 && c <= 0x2f || c >= 0x3a && c <= 0x40 || c >= 0x5b && c <= 0x60 || c >= 0x7b && c <= 0x7e
}

func isCntrl(c byte) bool { return c < 0x20 || c == 0x7f }

// ValidXattrKey checks the xattr key that starts path (the path of an
// XATTR_PATH spec) as kv_engine's is_valid_xattr_key, and returns its
// length: the key ends at the first '.' or '[' (no backtick escapes); it
// is 1 to MaxXattrKeyLen bytes, does not start with punctuation or a
// control character other than '_' (system xattrs) or '$' (virtual
// ones), which need a second byte. The whole path must be UTF-8 without
// NUL. Beyond kv_engine, the key may hold no '"', '\\' or control
// character, which could not be written into the JSON that paths run on.
func ValidXattrKey(path []byte) (n int, ok bool) {
	if !utf8.Valid(path) || bytes.IndexByte(path, 0) >= 0 {
		return 0, false
	}
	n = len(path)
	if i := bytes.IndexAny(path, ".["); i >= 0 {
		n = i
	}
	if n == 0 || n > MaxXattrKeyLen {
		return 0, false
	}
	if c := path[0]; c < utf8.RuneSelf && (isPunct(c) || isCntrl(c)) {
		if c != '_' && c != '$' || n == 1 {
			return 0, false
		}
	}
	for _, c := range path[:n] {
		if c == '"' || c == '\\' || c < 0x20 {
			return 0, false
		}
	}
	return n, true
}
