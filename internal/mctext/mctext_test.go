package mctext

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// The number parsers against C's: each row is what strtoull, strtoul,
// strtoll and strtol (glibc, 64-bit longs) give under memcached's
// safe_strtoull, safe_strtoul, safe_strtoll and safe_strtol rules (the end
// pointer past at least one digit, then the end or white space; no
// ERANGE; for the unsigned ones, a result negative as a signed number
// refused if the string holds a '-'), read off a C program built with gcc
// against this table; "-" is refused. The 32-bit ones truncate a 64-bit
// long, as memcached's casts do.
func TestParseLikeC(t *testing.T) {
	for _, tc := range []struct{ in, u64, u32, i64, i32 string }{
		{"", "-", "-", "-", "-"},
		{"-", "-", "-", "-", "-"},
		{"+", "-", "-", "-", "-"},
		{"+1", "1", "1", "1", "1"},
		{"-0", "0", "0", "0", "0"},
		{"0", "0", "0", "0", "0"},
		{"1", "1", "1", "1", "1"},
		{"4294967295", "4294967295", "4294967295", "4294967295", "-1"},
		{"4294967296", "4294967296", "0", "4294967296", "0"},
		{"4294967297", "4294967297", "1", "4294967297", "1"},
		{"-4294967295", "-", "-", "-4294967295", "1"},
		{"-4294967296", "-", "-", "-4294967296", "0"},
		{"2147483647", "2147483647", "2147483647", "2147483647", "2147483647"},
		{"2147483648", "2147483648", "2147483648", "2147483648", "-2147483648"},
		{"-2147483648", "-", "-", "-2147483648", "-2147483648"},
		{"-2147483649", "-", "-", "-2147483649", "2147483647"},
		{"9223372036854775807", "9223372036854775807", "4294967295", "9223372036854775807", "-1"},
		{"9223372036854775808", "9223372036854775808", "0", "-", "-"},
		{"-9223372036854775808", "-", "-", "-9223372036854775808", "0"},
		{"-9223372036854775809", "9223372036854775807", "4294967295", "-", "-"},
		{"18446744073709551615", "18446744073709551615", "4294967295", "-", "-"},
		{"18446744073709551616", "-", "-", "-", "-"},
		{"-18446744073709551615", "1", "1", "-", "-"},
		{"-18446744073709551616", "-", "-", "-", "-"},
		{"-1", "-", "-", "-1", "-1"},
		{" 1", "1", "1", "1", "1"},
		{"\t1", "1", "1", "1", "1"},
		{"1 ", "1", "1", "1", "1"},
		{"1\t", "1", "1", "1", "1"},
		{"1\r", "1", "1", "1", "1"},
		{"1\n", "1", "1", "1", "1"},
		{"\v\f+7\r", "7", "7", "7", "7"},
		{"1x", "-", "-", "-", "-"},
		{"12a", "-", "-", "-", "-"},
		{"a12", "-", "-", "-", "-"},
		{"0x10", "-", "-", "-", "-"},
		{"010", "10", "10", "10", "10"},
		{"1.5", "-", "-", "-", "-"},
		{"--1", "-", "-", "-", "-"},
		{"+-1", "-", "-", "-", "-"},
		{"- 1", "-", "-", "-", "-"},
		{"00000000000000000000000000001", "1", "1", "1", "1"},
		{"99999999999999999999999", "-", "-", "-", "-"},
		{"18446744073709551615\t-", "-", "-", "-", "-"},
		{"4294967295\t-", "4294967295", "4294967295", "4294967295", "-1"},
		// C strings end at a NUL (never in a token Fields returns).
		{"1\x00x", "1", "1", "1", "1"},
		{"\x001", "-", "-", "-", "-"},
		{"18446744073709551615\x00-", "18446744073709551615", "4294967295", "-", "-"},
	} {
		tok := []byte(tc.in)
		show := func(v any, ok bool) string {
			if !ok {
				return "-"
			}
			return fmt.Sprint(v)
		}
		u64, ok1 := ParseUint64(tok)
		u32, ok2 := ParseUint32(tok)
		i64, ok3 := ParseInt64(tok)
		i32, ok4 := ParseInt32(tok)
		got := []string{show(u64, ok1), show(u32, ok2), show(i64, ok3), show(i32, ok4)}
		if want := []string{tc.u64, tc.u32, tc.i64, tc.i32}; !reflect.DeepEqual(got, want) {
			t.Errorf("%q: ParseUint64, ParseUint32, ParseInt64, ParseInt32 = %q, want %q", tc.in, got, want)
		}
	}
}

// Fields splits as memcached's tokenizer: at spaces only, no empty
// fields, up to the first NUL.
func TestFields(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" ", nil},
		{"   ", nil},
		{"a", []string{"a"}},
		{" a ", []string{"a"}},
		{"get  a   b", []string{"get", "a", "b"}},
		{"a\tb c", []string{"a\tb", "c"}},
		{"a\rb\r", []string{"a\rb\r"}},
		{"\r", []string{"\r"}},
		{"get a\x00b c", []string{"get", "a"}},
		{"\x00get a", nil},
		{strings.Repeat("k ", 30), strings.Fields(strings.Repeat("k ", 30))}, // past MaxTokens: all of them
	} {
		var got []string
		for _, f := range Fields(nil, []byte(tc.in)) {
			got = append(got, string(f))
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Fields(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Each field's capacity ends with it: appending to one never
	// overwrites the line.
	line := []byte("set k 0")
	f := Fields(nil, line)
	_ = append(f[1], 'X')
	if string(line) != "set k 0" {
		t.Errorf("appending to a field changed the line: %q", line)
	}
	dst, get := make([][]byte, 0, 8), []byte("get a b c")
	if a := testing.AllocsPerRun(100, func() { dst = Fields(dst[:0], get) }); a != 0 {
		t.Errorf("Fields into a large enough dst: %v allocations", a)
	}
}

// DataLen: which lines memcached reads a data block after, and its length.
func TestDataLen(t *testing.T) {
	k250, k251 := strings.Repeat("k", 250), strings.Repeat("k", 251)
	for _, tc := range []struct {
		line string
		n    int // -1: no block
	}{
		{"set k 0 0 5", 5},
		{"add k 0 0 5", 5},
		{"replace k 0 0 5", 5},
		{"append k 0 0 5", 5},
		{"prepend k 0 0 5", 5},
		{"cas k 0 0 5 1", 5},
		{"set k 0 0 5 noreply", 5},
		{"set k 0 0 5 anything", 5},
		{"cas k 0 0 5 1 noreply", 5},
		{"set k 0 0 0", 0},
		{"set k 0 0", -1},
		{"set k 0 0 5 noreply x", -1},
		{"cas k 0 0 5", -1},
		{"cas k 0 0 5 x", -1},
		{"cas k 0 0 5 -1", -1},
		{"cas k 0 0 5 18446744073709551615", 5},
		{"SET k 0 0 5", -1},
		{"sets k 0 0 5", -1},
		{"get k 0 0 5", -1},
		{"set " + k250 + " 0 0 5", 5},
		{"set " + k251 + " 0 0 5", -1},
		{"set k x 0 5", -1},
		{"set k -1 0 5", -1},
		{"set k 4294967296 0 5", 5}, // flags truncated to 0
		{"set k 0 x 5", -1},
		{"set k 0 -1 5", 5},
		{"set k 0 9223372036854775807 5", 5},
		{"set k 0 9223372036854775808 5", -1},
		{"set k 0 0 -1", -1},
		{"set k 0 0 x", -1},
		{"set k 0 0 2147483645", 2147483645},
		{"set k 0 0 2147483646", -1}, // over INT_MAX-2
		{"set k 0 0 4294967295", -1}, // -1 as 32 bits
		{"set k 0 0 4294967297", 1},  // 1 as 32 bits
		{"set k 0 0 5\t", 5},
		{"set k 0 0 +5", 5},
		{"ms k 5", 5},
		{"ms k 5 T0 F1 q", 5},
		{"ms k", -1},
		{"ms", -1},
		{"ms k -1", -1},
		{"ms k x", -1},
		{"ms " + k251 + " 5", -1},
		{"ms k 5" + strings.Repeat(" T", 16), 5},  // 20 tokens with memcached's terminal one
		{"ms k 5" + strings.Repeat(" T", 17), -1}, // 21: "options flags too long"
		{"mg k 5", -1},
		{"", -1},
	} {
		n, ok := DataLen(Fields(nil, []byte(tc.line)))
		if !ok {
			n = -1
		}
		if n != tc.n {
			t.Errorf("DataLen(%.40q) = %d, want %d", tc.line, n, tc.n)
		}
	}
}

// A number parser never allocates, whatever its input.
func TestParseAllocs(t *testing.T) {
	toks := [][]byte{[]byte("18446744073709551615"), []byte("-1"), []byte(strconv.Itoa(1 << 40)), []byte("x")}
	dst, set := make([][]byte, 0, 8), []byte("set k 0 0 5")
	if a := testing.AllocsPerRun(100, func() {
		for _, tok := range toks {
			ParseUint64(tok)
			ParseUint32(tok)
			ParseInt64(tok)
			ParseInt32(tok)
		}
		dst = Fields(dst[:0], set)
		DataLen(dst)
	}); a != 0 {
		t.Errorf("%v allocations", a)
	}
}
