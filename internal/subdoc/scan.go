package subdoc

// The scanner: a strict JSON (RFC 8259) reader over byte offsets. It
// allocates nothing, keeps its open containers on a fixed stack (so its
// memory is bounded by MaxDepth) and reports ErrDocNotJSON for anything
// that is not JSON, ErrDocTooDeep for nesting past MaxDepth. It does not
// check that strings are UTF-8, as neither encoding/json nor jsonsl does.

// plain marks the bytes a JSON string holds as they are: not '"', not
// '\\', not a control character.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipWS returns the offset of the first byte at or after i that is not
// JSON white space.
func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// scanString returns the offset just past the string that starts at
// b[i] == '"'.
func scanString(b []byte, i int) (int, bool) {
	i++
	for {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case '"':
			return i + 1, true
		case '\\':
			if i+1 >= len(b) {
				return 0, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return 0, false
				}
				i += 6
			default:
				return 0, false
			}
		default: // a control character
			return 0, false
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber returns the offset just past the number that starts at b[i],
// and whether it is an integer (no fraction, no exponent).
func scanNumber(b []byte, i int) (end int, integer, ok bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return 0, false, false
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return 0, false, false
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		integer = false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		integer = false
	}
	return i, integer, true
}

// scanLiteral returns the offset just past true, false or null at b[i].
func scanLiteral(b []byte, i int) (int, bool) {
	var lit string
	switch b[i] {
	case 't':
		lit = "true"
	case 'f':
		lit = "false"
	case 'n':
		lit = "null"
	default:
		return 0, false
	}
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// isValueStart reports whether c may begin a JSON value.
func isValueStart(c byte) bool {
	switch c {
	case '{', '[', '"', '-', 't', 'f', 'n':
		return true
	}
	return isDigit(c)
}

// member reads an object member's key and colon at b[i] (white space
// skipped) and returns the offset of its value.
func member(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	i, ok := scanString(b, i)
	if !ok {
		return 0, false
	}
	i = skipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		return 0, false
	}
	return skipWS(b, i+1), true
}

// scanValue scans the value that starts at b[i] (not white space) at
// nesting level level (the root is 1), and returns the offset just past
// it and, for a container, its number of members or elements.
func scanValue(b []byte, i, level int) (end, children int, err Error) {
	var open [MaxDepth]byte
	return scan(b, i, level, &open, 0, false)
}

// scan reads JSON at b[i] inside the n containers open[:n] (outermost
// first; '{' or '['), the outermost at level level: if after, a value has
// just ended at i, else one starts there. It reads until the outermost
// container closes (or, with n 0, the value ends) and returns the offset
// past that, and the number of values read directly inside the
// outermost container.
func scan(b []byte, i, level int, open *[MaxDepth]byte, n int, after bool) (end, children int, err Error) {
	for {
		if !after {
			// A value starts at i, at level level+n.
			if i >= len(b) {
				return 0, 0, ErrDocNotJSON
			}
			if level+n > MaxDepth {
				return 0, 0, ErrDocTooDeep
			}
			if n == 1 {
				children++
			}
			var ok bool
			switch c := b[i]; c {
			case '{', '[':
				j := skipWS(b, i+1)
				if j >= len(b) {
					return 0, 0, ErrDocNotJSON
				}
				if b[j] == c+2 { // '{'+2 is '}', '['+2 is ']'
					i, ok = j+1, true
					break
				}
				open[n] = c
				n++
				if c == '{' {
					if j, ok = member(b, j); !ok {
						return 0, 0, ErrDocNotJSON
					}
				}
				i = j
				continue
			case '"':
				i, ok = scanString(b, i)
			case 't', 'f', 'n':
				i, ok = scanLiteral(b, i)
			default:
				i, _, ok = scanNumber(b, i)
			}
			if !ok {
				return 0, 0, ErrDocNotJSON
			}
		}
		// A value ended at i: close containers, or go to the next value.
		after = false
		for {
			if n == 0 {
				return i, children, 0
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, 0, ErrDocNotJSON
			}
			if b[i] == open[n-1]+2 {
				n--
				i++
				continue
			}
			if b[i] != ',' {
				return 0, 0, ErrDocNotJSON
			}
			i = skipWS(b, i+1)
			if open[n-1] == '{' {
				var ok bool
				if i, ok = member(b, i); !ok {
					return 0, 0, ErrDocNotJSON
				}
			}
			break
		}
	}
}

// checkDoc checks that doc is one JSON value, with white space around it
// at most.
func checkDoc(doc []byte) error {
	i := skipWS(doc, 0)
	if i == len(doc) {
		return ErrDocNotJSON
	}
	end, _, err := scanValue(doc, i, 1)
	if err != 0 {
		return err
	}
	if skipWS(doc, end) != len(doc) {
		return ErrDocNotJSON
	}
	return nil
}

// Valid reports whether doc is JSON that nests no deeper than MaxDepth.
func Valid(doc []byte) bool { return checkDoc(doc) == nil }
