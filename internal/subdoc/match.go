package subdoc

import "bytes"

// match is where a path leads in a document, as subjson's Match.
type match struct {
	found bool
	// Found: the value's span, the offset of its key's opening quote in
	// an object (-1 otherwise), its number of members or elements, and
	// whether it is its parent's first and last.
	start, end int
	key        int
	children   int
	first      bool
	last       bool
	// Not found: the deepest container the path reaches (its span, its
	// number of members or elements) and how many components led there:
	// p.c[depth] is the one missing. immediate: that container is the
	// one the path's last component would be in.
	parentStart, parentEnd int
	parentLen              int
	depth                  int
	immediate              bool
}

// kind returns the first byte of the found value: '{', '[', '"', 't',
// 'f', 'n', or that of a number.
func (m *match) kind(doc []byte) byte { return doc[m.start] }

// find follows the first n components of p in doc. It reads doc only as
// far as it must (as subjson does), so a document may be malformed past
// the match. Errors: ErrPathMismatch, ErrDocNotJSON, ErrDocTooDeep.
func find(doc []byte, p *Path, n int) (m match, err error) {
	i := skipWS(doc, 0)
	if i == len(doc) {
		return m, ErrDocNotJSON
	}
	m.key = -1
	m.first, m.last = true, true
	for d := 0; d < n; d++ {
		comp := &p.c[d]
		if i >= len(doc) {
			return m, ErrDocNotJSON
		}
		switch c := doc[i]; {
		case c == '{' && !comp.isIndex, c == '[' && comp.isIndex:
		case isValueStart(c):
			return m, ErrPathMismatch
		default:
			return m, ErrDocNotJSON
		}
		level := d + 2 // of the container's children
		if level > MaxDepth {
			return m, ErrDocTooDeep
		}
		final := d == n-1
		var v, vend, count int
		var e Error
		key := -1
		if doc[i] == '{' {
			j := skipWS(doc, i+1)
			for {
				if j >= len(doc) {
					return m, ErrDocNotJSON
				}
				if doc[j] == '}' && count == 0 {
					return notFound(m, i, j+1, 0, d, final), nil
				}
				if doc[j] != '"' {
					return m, ErrDocNotJSON
				}
				kend, ok := scanString(doc, j)
				if !ok {
					return m, ErrDocNotJSON
				}
				if v, ok = member(doc, j); !ok {
					return m, ErrDocNotJSON
				}
				if bytes.Equal(doc[j+1:kend-1], comp.key) {
					key = j
					break
				}
				if vend, _, e = scanValue(doc, v, level); e != 0 {
					return m, e
				}
				count++
				j = skipWS(doc, vend)
				if j < len(doc) && doc[j] == '}' {
					return notFound(m, i, j+1, count, d, final), nil
				}
				if j >= len(doc) || doc[j] != ',' {
					return m, ErrDocNotJSON
				}
				j = skipWS(doc, j+1)
			}
		} else {
			j := skipWS(doc, i+1)
			lastStart, lastEnd, lastChildren := -1, 0, 0
			for {
				if j >= len(doc) {
					return m, ErrDocNotJSON
				}
				if doc[j] == ']' && count == 0 {
					return notFound(m, i, j+1, 0, d, final), nil
				}
				if count == comp.index {
					v = j
					break
				}
				var children int
				if vend, children, e = scanValue(doc, j, level); e != 0 {
					return m, e
				}
				lastStart, lastEnd, lastChildren = j, vend, children
				count++
				j = skipWS(doc, vend)
				if j < len(doc) && doc[j] == ']' {
					if comp.index != -1 {
						return notFound(m, i, j+1, count, d, final), nil
					}
					// [-1]: the last element, read already.
					if !final {
						v = lastStart
						break
					}
					m.found, m.start, m.end, m.children = true, lastStart, lastEnd, lastChildren
					m.first, m.last = count == 1, true
					return m, nil
				}
				if j >= len(doc) || doc[j] != ',' {
					return m, ErrDocNotJSON
				}
				j = skipWS(doc, j+1)
			}
		}
		if !final {
			i = v
			continue
		}
		end, children, e := scanValue(doc, v, level)
		if e != 0 {
			return m, e
		}
		after := skipWS(doc, end)
		if after >= len(doc) {
			return m, ErrDocNotJSON
		}
		m.found, m.start, m.end, m.key, m.children = true, v, end, key, children
		m.first, m.last = count == 0, doc[after] != ','
		return m, nil
	}
	end, children, e := scanValue(doc, i, 1)
	if e != 0 {
		return m, e
	}
	m.found, m.start, m.end, m.children = true, i, end, children
	return m, nil
}

func notFound(m match, start, end, n, depth int, immediate bool) match {
	m.parentStart, m.parentEnd, m.parentLen, m.depth, m.immediate = start, end, n, depth, immediate
	return m
}
