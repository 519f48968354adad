package subdoc

import (
	"bytes"
	"strconv"
)

// Op is a sub-document operation.
type Op uint8

// Operations. Get, Exists, GetCount and GetDoc are lookups (see Lookup);
// the others mutations (see Mutate).
const (
	Get            Op = iota + 1 // the value at the path
	Exists                       // whether the path exists
	GetCount                     // the number of members or elements of the object or array at the path
	GetDoc                       // the whole document (the empty-path GET of a multi-lookup)
	DictAdd                      // add a key to an object; fails if it exists
	DictUpsert                   // add a key to an object, or replace its value
	Delete                       // remove the key or element at the path
	Replace                      // replace the value at the path
	ArrayPushLast                // append value(s) to the array at the path
	ArrayPushFirst               // prepend value(s) to the array at the path
	ArrayInsert                  // insert value(s) at the array index the path ends with
	ArrayAddUnique               // append a primitive to the array at the path unless there
	Counter                      // add a delta to the integer at the path (creating it as the delta)
	SetDoc                       // replace the whole document (the empty-path SET of a multi-mutation)
)

var opNames = [...]string{
	Get: "get", Exists: "exists", GetCount: "get_count", GetDoc: "get_doc",
	DictAdd: "dict_add", DictUpsert: "dict_upsert", Delete: "delete", Replace: "replace",
	ArrayPushLast: "array_push_last", ArrayPushFirst: "array_push_first",
	ArrayInsert: "array_insert", ArrayAddUnique: "array_add_unique", Counter: "counter",
	SetDoc: "set_doc",
}

func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// IsLookup reports whether o reads rather than changes.
func (o Op) IsLookup() bool { return o >= Get && o <= GetDoc }

// HasValue reports whether o takes a value.
func (o Op) HasValue() bool { return o >= DictAdd && o != Delete && o <= SetDoc }

// RootType returns the root a missing document is created with for o at
// path, as subjson's get_root_type: '[' for a path that starts with an
// index or an empty path of an array push, '{' for other paths, 0 when
// there is none (the document starts empty).
func RootType(o Op, path []byte) byte {
	for _, c := range path {
		if c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' {
			continue
		}
		if c == '[' {
			return '['
		}
		return '{'
	}
	switch o {
	case ArrayPushLast, ArrayPushFirst, ArrayAddUnique:
		return '['
	}
	return 0
}

// Lookup runs the lookup o on doc at path. Get's result slices doc;
// Exists has none; GetCount's is the count in decimal. GetDoc ignores the
// path and returns doc, or ErrPathNotFound if it is empty. A lookup reads
// doc only as far as the path leads, so it may succeed on a document that
// is malformed past the match (as subjson does).
func Lookup(doc []byte, o Op, path []byte) ([]byte, error) {
	var p Path
	if o != GetDoc {
		if err := ParsePath(path, &p); err != nil {
			return nil, err
		}
	}
	return LookupPath(doc, o, &p)
}

// LookupPath is Lookup with a parsed path.
func LookupPath(doc []byte, o Op, p *Path) ([]byte, error) {
	switch o {
	case GetDoc:
		if len(doc) == 0 {
			return nil, ErrPathNotFound
		}
		return doc, nil
	case Get, Exists, GetCount:
	default:
		return nil, errNotLookup
	}
	m, err := find(doc, p, p.n)
	if err != nil {
		return nil, err
	}
	if !m.found {
		return nil, ErrPathNotFound
	}
	switch o {
	case Exists:
		return nil, nil
	case GetCount:
		if k := m.kind(doc); k != '{' && k != '[' {
			return nil, ErrPathMismatch
		}
		return strconv.AppendInt(nil, int64(m.children), 10), nil
	}
	return doc[m.start:m.end], nil
}

// errNotLookup and errNotMutation: an operation given to the wrong
// function (a caller's bug).
var (
	errNotLookup   = ErrPathInvalid
	errNotMutation = ErrPathInvalid
)

// Mutate applies the mutation o at path to doc, with value (unless o is
// Delete), and appends the new document to dst. With mkdirP, missing
// objects on the path are created (subjson's _P operations). result is
// what the operation answers: Counter's new number, slicing out; nil for
// the others. SetDoc ignores the path and returns value as the document.
// doc is not modified; on error, out is dst.
func Mutate(dst, doc []byte, o Op, path, value []byte, mkdirP bool) (out, result []byte, err error) {
	mu := mutation{dst: dst, doc: doc, value: value, mkdirP: mkdirP}
	if o != SetDoc {
		if err := ParsePath(path, &mu.p); err != nil {
			return dst, nil, err
		}
	}
	return mu.run(o)
}

// MutatePath is Mutate with a parsed path.
func MutatePath(dst, doc []byte, o Op, p *Path, value []byte, mkdirP bool) (out, result []byte, err error) {
	mu := mutation{dst: dst, doc: doc, p: *p, value: value, mkdirP: mkdirP}
	return mu.run(o)
}

func (mu *mutation) run(o Op) (out, result []byte, err error) {
	switch o {
	case DictAdd, DictUpsert, Replace:
		err = mu.store(o)
	case Delete:
		err = mu.remove()
	case ArrayPushFirst:
		err = mu.prepend()
	case ArrayPushLast:
		err = mu.append(false)
	case ArrayAddUnique:
		err = mu.append(true)
	case ArrayInsert:
		err = mu.insert()
	case Counter:
		err = mu.counter()
	case SetDoc:
		mu.out = append(mu.dst, mu.value...)
	default:
		err = errNotMutation
	}
	if err != nil {
		return mu.dst, nil, err
	}
	return mu.out, mu.result, nil
}

// mutation is one Mutate call.
type mutation struct {
	dst, doc []byte
	p        Path // by value: escape analysis keeps it on the stack
	value    []byte
	mkdirP   bool
	out      []byte
	result   []byte
}

// Contexts a value is checked in (subjson's Validator modes).
const (
	inObject = iota // one value, as an object member's (see check)
	inArray         // one value or more, comma-separated, as array elements
	unique          // one primitive
)

// check checks the value for context ctx, nesting at most depth levels
// (it is placed where the document has MaxDepth-depth levels above it).
func (mu *mutation) check(ctx, depth int) error {
	v := mu.value
	if len(v) == 0 {
		return ErrValueEmpty
	}
	level := MaxDepth - depth + 1
	i := skipWS(v, 0)
	for {
		if i == len(v) {
			return ErrValueCantInsert
		}
		if ctx == unique && (v[i] == '{' || v[i] == '[') {
			return ErrValueCantInsert
		}
		end, _, err := scanValue(v, i, level)
		switch err {
		case 0:
		case ErrDocTooDeep:
			return ErrValueTooDeep
		default:
			return ErrValueCantInsert
		}
		i = skipWS(v, end)
		if i == len(v) {
			return nil
		}
		if ctx == unique || v[i] != ',' {
			return ErrValueCantInsert
		}
		i = skipWS(v, i+1)
		if ctx == inObject {
			// subjson checks "{"k":" value "}", so more members may
			// follow (a FIXME in its tests); kept, as the result is
			// JSON all the same.
			var ok bool
			if i, ok = member(v, i); !ok {
				return ErrValueCantInsert
			}
		}
	}
}

// find follows the first n components of the path, and then reads the
// rest of the document, so that what a mutation makes is always JSON
// (and the document is read once).
func (mu *mutation) find(n int) (match, error) {
	doc := mu.doc
	m, err := find(doc, &mu.p, n)
	if err != nil {
		return m, err
	}
	// The match (or the deepest container) is inside one container per
	// component that led to it.
	depth, at := n, m.end
	if !m.found {
		depth, at = m.depth, m.parentEnd
	}
	var open [MaxDepth]byte
	for d := range depth {
		open[d] = '{'
		if mu.p.c[d].isIndex {
			open[d] = '['
		}
	}
	end, _, e := scan(doc, at, 1, &open, depth, true)
	if e != 0 {
		return m, e
	}
	if skipWS(doc, end) != len(doc) {
		return m, ErrDocNotJSON
	}
	return m, nil
}

// splice sets out to doc[:a], then parts, then doc[b:].
func (mu *mutation) splice(a, b int, parts ...[]byte) {
	out := append(mu.dst, mu.doc[:a]...)
	for _, part := range parts {
		out = append(out, part...)
	}
	mu.out = append(out, mu.doc[b:]...)
}

var (
	comma      = []byte(",")
	quote      = []byte(`"`)
	quoteColon = []byte(`":`)
	commaQuote = []byte(`,"`)
)

// store is DictAdd, DictUpsert and Replace.
func (mu *mutation) store(o Op) error {
	p := &mu.p
	if p.n == 0 {
		return ErrValueCantInsert
	}
	if err := mu.check(inObject, MaxDepth-p.n); err != nil {
		return err
	}
	m, err := mu.find(p.n)
	if err != nil {
		return err
	}
	if o != Replace && p.last().isIndex {
		return ErrPathInvalid
	}
	switch {
	case m.found && o == DictAdd:
		return ErrPathExists
	case m.found:
		mu.splice(m.start, m.end, mu.value)
		return nil
	case o == Replace:
		return ErrPathNotFound
	case !m.immediate && !mu.mkdirP:
		return ErrPathNotFound
	}
	_, err = mu.create(&m, false)
	return err
}

// create adds the missing components p.c[m.depth:] to the deepest
// container the path reached, as objects, with the value innermost (in
// an array, for an array push): subjson's mkdir_p (which, for one
// component, is adding a key to its object). Missing array elements
// cannot be created: ErrPathNotFound. It returns where the value is in
// out.
func (mu *mutation) create(m *match, array bool) (start int, err error) {
	p := &mu.p
	for d := m.depth; d < p.n; d++ {
		if p.c[d].isIndex {
			return 0, ErrPathNotFound
		}
	}
	at := m.parentEnd - 1 // the container's closing '}'
	out := append(mu.dst, mu.doc[:at]...)
	if m.parentLen > 0 {
		out = append(out, commaQuote...)
	} else {
		out = append(out, quote...)
	}
	out = append(out, p.c[m.depth].key...)
	out = append(out, quoteColon...)
	for d := m.depth + 1; d < p.n; d++ {
		out = append(out, `{"`...)
		out = append(out, p.c[d].key...)
		out = append(out, quoteColon...)
	}
	if array {
		out = append(out, '[')
	}
	start = len(out)
	out = append(out, mu.value...)
	if array {
		out = append(out, ']')
	}
	for d := m.depth + 1; d < p.n; d++ {
		out = append(out, '}')
	}
	mu.out = append(out, mu.doc[at:]...)
	return start, nil
}

// remove is Delete: the key and value (or the element) go, and the
// comma that separated them from a sibling.
func (mu *mutation) remove() error {
	if mu.p.n == 0 {
		return ErrValueCantInsert
	}
	m, err := mu.find(mu.p.n)
	if err != nil {
		return err
	}
	if !m.found {
		return ErrPathNotFound
	}
	a, b := m.start, m.end
	if m.key >= 0 {
		a = m.key
	}
	switch {
	case m.first && m.last:
	case m.last: // drop the comma before it
		a = bytes.LastIndexByte(mu.doc[:a], ',')
	default: // and the comma after it
		b += bytes.IndexByte(mu.doc[b:], ',') + 1
	}
	mu.splice(a, b)
	return nil
}

// singleton puts the value into the empty array at [start, end).
func (mu *mutation) singleton(start, end int) {
	mu.splice(start+1, end-1, mu.value)
}

// appendTo puts the value after the last element of the array at
// [start, end), which has n elements.
func (mu *mutation) appendTo(start, end, n int) {
	if n == 0 {
		mu.singleton(start, end)
		return
	}
	mu.splice(end-1, end-1, comma, mu.value)
}

// prepend is ArrayPushFirst.
func (mu *mutation) prepend() error {
	p := &mu.p
	if err := mu.check(inArray, MaxDepth-1-p.n); err != nil {
		return err
	}
	// Look for the first element.
	if err := p.push(component{index: 0, isIndex: true}); err != nil {
		return err
	}
	m, err := mu.find(p.n)
	p.n--
	switch {
	case err != nil:
		return err
	case m.found:
		mu.splice(m.start, m.start, mu.value, comma)
	case m.immediate: // the array is empty
		mu.singleton(m.parentStart, m.parentEnd)
	case mu.mkdirP:
		_, err = mu.create(&m, true)
		return err
	default:
		return ErrPathNotFound
	}
	return nil
}

// append is ArrayPushLast and (addUnique) ArrayAddUnique.
func (mu *mutation) append(addUnique bool) error {
	p := &mu.p
	ctx := inArray
	if addUnique {
		ctx = unique
	}
	if err := mu.check(ctx, MaxDepth-1-p.n); err != nil {
		return err
	}
	if p.n == 0 && !addUnique {
		return mu.appendRoot()
	}
	m, err := mu.find(p.n)
	switch {
	case err != nil:
		return err
	case !m.found && mu.mkdirP:
		_, err = mu.create(&m, true)
		return err
	case !m.found:
		return ErrPathNotFound
	case m.kind(mu.doc) != '[':
		return ErrPathMismatch
	}
	if addUnique {
		if err := mu.unique(&m); err != nil {
			return err
		}
	}
	mu.appendTo(m.start, m.end, m.children)
	return nil
}

// unique fails with ErrPathExists if the array m has the value, and with
// ErrPathMismatch if it has an object or array before that.
func (mu *mutation) unique(m *match) error {
	doc := mu.doc
	v := bytes.Trim(mu.value, " \t\r\n")
	for i := skipWS(doc, m.start+1); doc[i] != ']'; {
		if doc[i] == '{' || doc[i] == '[' {
			return ErrPathMismatch
		}
		end, _, err := scanValue(doc, i, MaxDepth)
		if err != 0 {
			return err
		}
		if bytes.Equal(doc[i:end], v) {
			return ErrPathExists
		}
		i = skipWS(doc, end)
		if doc[i] == ',' {
			i = skipWS(doc, i+1)
		}
	}
	return nil
}

// appendRoot is ArrayPushLast with an empty path, which subjson does
// without parsing: by the document's last bytes.
func (mu *mutation) appendRoot() error {
	doc := mu.doc
	m, err := mu.find(0)
	if err != nil {
		return err
	}
	switch m.kind(doc) {
	case '[':
	case '{':
		return ErrPathMismatch
	default:
		return ErrDocNotJSON
	}
	close := m.end - 1
	k := close - 1
	for isWS(doc[k]) {
		k--
	}
	if m.children == 0 {
		mu.splice(k+1, close, mu.value)
	} else {
		mu.splice(k+1, close, comma, mu.value)
	}
	return nil
}

// insert is ArrayInsert: the path ends with the index the value takes.
func (mu *mutation) insert() error {
	p := &mu.p
	if err := mu.check(inArray, MaxDepth-p.n); err != nil {
		return err
	}
	if p.n == 0 || !p.last().isIndex || p.last().index < 0 {
		return ErrPathInvalid
	}
	m, err := mu.find(p.n)
	switch {
	case err != nil:
		return err
	case m.found:
		mu.splice(m.start, m.start, mu.value, comma)
	case !m.immediate:
		return ErrPathNotFound
	case p.last().index == m.parentLen: // one past the end
		mu.appendTo(m.parentStart, m.parentEnd, m.parentLen)
	default:
		return ErrPathNotFound
	}
	return nil
}

// counter is Counter: the value is the delta, a non-zero int64 in
// decimal with no sign but '-', no leading zero, nothing else.
func (mu *mutation) counter() error {
	delta, err := parseDelta(mu.value)
	if err != nil {
		return err
	}
	m, err := mu.find(mu.p.n)
	if err != nil {
		return err
	}
	doc := mu.doc
	if !m.found {
		if !mu.mkdirP && !m.immediate {
			return ErrPathNotFound
		}
		if doc[m.parentStart] != '{' {
			return ErrPathNotFound
		}
		if mu.p.last().isIndex {
			return ErrPathInvalid
		}
		// Created as the delta: value is the delta's text already.
		start, err := mu.create(&m, false)
		if err != nil {
			return err
		}
		mu.result = mu.out[start : start+len(mu.value) : start+len(mu.value)]
		return nil
	}
	num := doc[m.start:m.end]
	if k := num[0]; k != '-' && !isDigit(k) {
		return ErrPathMismatch
	}
	if _, integer, _ := scanNumber(num, 0); !integer {
		return ErrPathMismatch
	}
	cur, perr := strconv.ParseInt(string(num), 10, 64)
	if perr != nil {
		return ErrNumTooBig
	}
	if delta >= 0 && cur >= 0 && cur > maxInt64-delta || delta < 0 && cur < 0 && delta < minInt64-cur {
		return ErrDeltaOverflow
	}
	var buf [20]byte
	text := strconv.AppendInt(buf[:0], cur+delta, 10)
	mu.splice(m.start, m.end, text)
	start := len(mu.dst) + m.start
	mu.result = mu.out[start : start+len(text) : start+len(text)]
	return nil
}

const (
	maxInt64 = 1<<63 - 1
	minInt64 = -1 << 63
)

// parseDelta reads Counter's delta as subjson does.
func parseDelta(v []byte) (int64, error) {
	if len(v) == 0 {
		return 0, ErrValueEmpty
	}
	digits := v
	if digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || digits[0] == '0' {
		return 0, ErrDeltaInvalid
	}
	for _, c := range digits {
		if !isDigit(c) {
			return 0, ErrDeltaInvalid
		}
	}
	d, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || d == 0 {
		return 0, ErrDeltaInvalid
	}
	return d, nil
}
