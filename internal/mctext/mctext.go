// Package mctext holds what the server framework and gocache share of
// memcached's text and meta protocols: the tokenizer, the number parsers
// with memcached's exact rules, and which command lines announce a data
// block. It follows memcached 1.6.18's proto_text.c and util.c.
package mctext

import "bytes"

// KeyMaxLength is the longest key a text command takes (memcached's
// KEY_MAX_LENGTH).
const KeyMaxLength = 250

// MaxTokens is memcached's MAX_TOKENS: its tokenizer splits a line into
// at most MaxTokens-1 tokens, the rest staying unsplit. Fields splits the
// whole line; commands that count tokens compare against this bound.
const MaxTokens = 24

// MetaMaxOptLength is memcached's MFLAG_MAX_OPT_LENGTH: a meta command line
// of more tokens than this (counting memcached's terminal token) is refused.
const MetaMaxOptLength = 20

// Fields appends the space-separated tokens of line to dst, as memcached's
// tokenize_command splits them: only ' ' separates, runs of spaces make no
// empty tokens, and the line ends at its first NUL byte (memcached works on
// C strings).
func Fields(dst [][]byte, line []byte) [][]byte {
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	s := 0
	for i := 0; i < len(line); i++ {
		if line[i] == ' ' {
			if i > s {
				dst = append(dst, line[s:i:i])
			}
			s = i + 1
		}
	}
	if s < len(line) {
		dst = append(dst, line[s:len(line):len(line)])
	}
	return dst
}

// isspace is C's isspace in the C locale.
func isspace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// parse is C's strtoull/strtoll in base 10 over a token: optional leading
// white space, an optional sign, digits. It returns the magnitude, whether
// a '-' was seen, whether it overflowed 64 bits, and the index after the
// last digit (0 digits: end == start, where start is after white space
// and sign).
func parse(tok []byte) (mag uint64, neg, overflow bool, end int, digits int) {
	i := 0
	for i < len(tok) && isspace(tok[i]) {
		i++
	}
	if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
		neg = tok[i] == '-'
		i++
	}
	for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
		d := uint64(tok[i] - '0')
		if mag > (1<<64-1-d)/10 {
			overflow = true
		} else if !overflow {
			mag = mag*10 + d
		}
		i++
		digits++
	}
	return mag, neg, overflow, i, digits
}

// tail reports whether what follows a number is acceptable to memcached's
// safe_strto*: the end of the token (or a NUL, where C's string ends) or
// white space.
func tail(tok []byte, end int) bool {
	return end == len(tok) || tok[end] == 0 || isspace(tok[end])
}

// minus reports whether the token, as a C string (up to a NUL), holds a
// '-' anywhere: memcached's safe_strtoul and safe_strtoull refuse a value
// negative as a signed number when it does, even past the number
// ("18446744073709551615\t-").
func minus(tok []byte) bool {
	if i := bytes.IndexByte(tok, 0); i >= 0 {
		tok = tok[:i]
	}
	return bytes.IndexByte(tok, '-') >= 0
}

// ParseUint64 is memcached's safe_strtoull: a base-10 number that fits in 64
// bits, after optional white space and sign, followed by the end or white
// space. strtoull negates a number after a '-' ("-1" is 2^64-1,
// "-18446744073709551615" is 1); a result negative as a signed number is
// refused when the token holds a '-', so "-1" is refused and "-0" is 0.
func ParseUint64(tok []byte) (uint64, bool) {
	mag, neg, overflow, end, digits := parse(tok)
	if overflow || digits == 0 || !tail(tok, end) {
		return 0, false
	}
	v := mag
	if neg {
		v = -mag
	}
	if int64(v) < 0 && minus(tok) {
		return 0, false
	}
	return v, true
}

// ParseUint32 is memcached's safe_strtoul on a 64-bit machine: strtoul's
// unsigned long is 64 bits and the result is truncated to 32 bits, so
// "4294967296" is 0; a value negative as a signed long is refused when the
// token holds a '-' (so "-1" is refused, "-18446744073709551615" is 1).
func ParseUint32(tok []byte) (uint32, bool) {
	v, ok := ParseUint64(tok)
	return uint32(v), ok
}

// ParseInt64 is memcached's safe_strtoll: a signed base-10 number within
// 64 bits.
func ParseInt64(tok []byte) (int64, bool) {
	mag, neg, overflow, end, digits := parse(tok)
	if overflow || digits == 0 || !tail(tok, end) {
		return 0, false
	}
	if neg {
		if mag > 1<<63 {
			return 0, false
		}
		return int64(-mag), true
	}
	if mag > 1<<63-1 {
		return 0, false
	}
	return int64(mag), true
}

// ParseInt32 is memcached's safe_strtol on a 64-bit machine: strtol's long
// is 64 bits and the result is truncated to 32 bits, so "4294967297" is 1
// and "2147483648" is -2147483648.
func ParseInt32(tok []byte) (int32, bool) {
	v, ok := ParseInt64(tok)
	return int32(v), ok
}

// Storage commands and the token holding their data length.
var storageCommands = map[string]int{
	"set": 5, "add": 5, "replace": 5, "append": 5, "prepend": 5, "cas": 6,
}

// DataLen reports whether a command line, split by Fields, announces a data
// block that memcached reads after it, and the block's length without its
// "\r\n". It is the part of memcached's process_update_command and
// process_mset_command that runs before the block is read: a line they
// refuse at that point ("ERROR", "CLIENT_ERROR bad command line format")
// has no block, and what follows it is read as commands.
func DataLen(fields [][]byte) (int, bool) {
	if len(fields) == 0 {
		return 0, false
	}
	cmd := fields[0]
	if len(cmd) == 2 && cmd[0] == 'm' && cmd[1] == 's' {
		// ntokens counts memcached's terminal token: len(fields)+1.
		n := len(fields) + 1
		if n > MaxTokens {
			n = MaxTokens
		}
		if n < 4 || len(fields[1]) > KeyMaxLength || n > MetaMaxOptLength {
			return 0, false
		}
		return vlen(fields[2])
	}
	want, ok := storageCommands[string(cmd)]
	if !ok || len(fields) != want && len(fields) != want+1 {
		return 0, false
	}
	if len(fields[1]) > KeyMaxLength {
		return 0, false
	}
	if _, ok := ParseUint32(fields[2]); !ok {
		return 0, false
	}
	if _, ok := ParseInt32(fields[3]); !ok {
		return 0, false
	}
	n, ok := vlen(fields[4])
	if !ok {
		return 0, false
	}
	if want == 6 {
		if _, ok := ParseUint64(fields[5]); !ok {
			return 0, false
		}
	}
	return n, true
}

// vlen parses a data length as memcached does (safe_strtol, then 0 to
// INT_MAX-2).
func vlen(tok []byte) (int, bool) {
	v, ok := ParseInt32(tok)
	if !ok || v < 0 || v > 1<<31-1-2 {
		return 0, false
	}
	return int(v), true
}
