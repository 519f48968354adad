package subdoc

// Limits, as subjson's and kv_engine's.
const (
	// MaxPathLen is the longest path in bytes (kv_engine's
	// SUBDOC_PATH_MAX_LENGTH; the server refuses longer ones with EINVAL).
	MaxPathLen = 1024
	// MaxComponents is the most components of a path, counting the root
	// as subjson does: a path has at most MaxComponents-1 of its own.
	MaxComponents = 32
	// MaxDepth is the deepest a document nests, counted as jsonsl counts
	// levels: the root value is level 1, its members level 2, and every
	// value (scalars too) has a level.
	MaxDepth = 32
)

// component is one step of a path: a key (as raw JSON string text, with
// the path's backtick escapes removed) or an array index, -1 for the last
// element.
type component struct {
	key     []byte
	index   int
	isIndex bool
}

// Path is a parsed path: the components after the root. The zero value is
// the empty path, the document itself. Keys may slice the text parsed.
type Path struct {
	n   int
	c   [MaxComponents - 1]component
	buf []byte // keys with backtick escapes, unescaped
}

// Len returns the number of components.
func (p *Path) Len() int { return p.n }

func (p *Path) last() *component { return &p.c[p.n-1] }

// push adds a component, or fails with ErrPathTooBig when the path is full.
func (p *Path) push(c component) error {
	if p.n == len(p.c) {
		return ErrPathTooBig
	}
	p.c[p.n] = c
	p.n++
	return nil
}

// ParsePath parses s into p, as subjson does. Components are separated by
// '.'; "[n]" is an index into an array and "[-1]" its last element; a
// component in backticks may hold '.', '[' and ']', and two backticks
// stand for one. Keys are compared with a document's keys as JSON text,
// so they may hold JSON escapes (except \u) but no bare '"' or control
// character. Errors: ErrPathInvalid, ErrPathTooBig.
//
// subjson's leniencies are kept: "[]" is index 0, and a trailing '.' is
// ignored.
func ParsePath(s []byte, p *Path) error {
	p.n = 0
	p.buf = p.buf[:0]
	for i := 0; i < len(s); {
		if s[i] == '[' {
			n, err := p.bracket(s[i:])
			if err != nil {
				return err
			}
			i += n
			switch {
			case i == len(s), s[i] == '[':
			case s[i] == '.':
				i++
			default:
				return ErrPathInvalid
			}
			continue
		}
		n, err := p.str(s[i:])
		if err != nil {
			return err
		}
		i += n
	}
	return nil
}

// bracket parses "[digits]" or "[-1]" at the start of s and returns the
// bytes used.
func (p *Path) bracket(s []byte) (int, error) {
	end := 1
	for end < len(s) && s[end] != ']' {
		end++
	}
	if end == len(s) {
		return 0, ErrPathInvalid
	}
	num := s[1:end]
	if len(num) > 0 && num[0] == '-' {
		if len(num) != 2 || num[1] != '1' {
			return 0, ErrPathInvalid
		}
		return end + 1, p.push(component{index: -1, isIndex: true})
	}
	v := 0
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, ErrPathInvalid
		}
		if v > (maxInt-int(c-'0'))/10 {
			return 0, ErrPathInvalid
		}
		v = v*10 + int(c-'0')
	}
	return end + 1, p.push(component{index: v, isIndex: true})
}

const maxInt = int(^uint(0) >> 1)

// jsonEscape reports whether c may follow a backslash in a JSON string.
func jsonEscape(c byte) bool {
	switch c {
	case '"', '/', '\\', 'b', 'f', 'n', 'r', 't', 'u':
		return true
	}
	return false
}

// str parses a key component at the start of s, up to an unescaped '.'
// (consumed) or '[' (not consumed), and returns the bytes used.
func (p *Path) str(s []byte) (int, error) {
	inTicks, inEscape := false, false
	ticks := 0
	end, used := len(s), len(s)
	for i, c := range s {
		switch {
		case inEscape:
			// subjson cannot match \u escapes in paths.
			if !jsonEscape(c) || c == 'u' {
				return 0, ErrPathInvalid
			}
			inEscape = false
		case c == '\\':
			inEscape = true
		case c == '"' || c < 0x20:
			// (subjson lets 0x1f through, which would make a key
			// that is not JSON.)
			return 0, ErrPathInvalid
		}
		if c == '`' {
			ticks++
			inTicks = !inTicks
		}
		if inTicks {
			continue
		}
		if c == ']' {
			return 0, ErrPathInvalid
		}
		if c == '[' || c == '.' {
			if inEscape {
				return 0, ErrPathInvalid
			}
			end, used = i, i
			if c == '.' {
				used++
			}
			break
		}
	}
	if end == len(s) && (inTicks || inEscape) {
		return 0, ErrPathInvalid
	}
	key := s[:end]
	if len(key) > 1 && key[0] == '`' && key[len(key)-1] == '`' {
		key = key[1 : len(key)-1]
		ticks -= 2
	}
	if p.n == len(p.c) {
		return 0, ErrPathTooBig
	}
	if len(key) == 0 {
		return 0, ErrPathInvalid
	}
	if ticks > 0 {
		start := len(p.buf)
		for i := 0; i < len(key); i++ {
			switch {
			case key[i] != '`':
				p.buf = append(p.buf, key[i])
			case i+1 < len(key) && key[i+1] == '`':
				p.buf = append(p.buf, '`')
				i++
			}
		}
		key = p.buf[start:len(p.buf):len(p.buf)]
	}
	return used, p.push(component{key: key})
}
