package gocache_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/internal/peer"
	"github.com/f8e615c8/gomemcached/sasl"
)

// The classic text protocol's answers, pinned byte for byte and checked
// against a real memcached 1.6.18: every case runs on one connection to
// memcached and to gocache (both connection models), each step followed
// by an mn whose MN ends its answers. CAS values in VALUE lines are
// masked ("#"); "{cas}" in a step is the last CAS a VALUE line gave.

type tpStep struct{ send, want string }

var tpLong = strings.Repeat("k", 251)

var tpCases = []struct {
	name  string
	steps []tpStep
}{
	{"get and set", []tpStep{
		{"get t1\r\n", "END\r\n"},
		{"set t1 5 0 3\r\nabc\r\n", "STORED\r\n"},
		{"get t1\r\n", "VALUE t1 5 3\r\nabc\r\nEND\r\n"},
		{"gets t1\r\n", "VALUE t1 5 3 #\r\nabc\r\nEND\r\n"},
		{"set t2 0 0 0\r\n\r\n", "STORED\r\n"},
		{"get t1 t2 nope t1\r\n", "VALUE t1 5 3\r\nabc\r\nVALUE t2 0 0\r\n\r\nVALUE t1 5 3\r\nabc\r\nEND\r\n"},
		{"bget t1\r\n", "VALUE t1 5 3\r\nabc\r\nEND\r\n"},
		{"get\r\n", "ERROR\r\n"},
		{"gets\r\n", "ERROR\r\n"},
		{"getx t1\r\n", "ERROR\r\n"},
		{"set t3 4294967295 0 1\r\nx\r\nget t3\r\n", "STORED\r\nVALUE t3 4294967295 1\r\nx\r\nEND\r\n"},
		// safe_strtoul on a 64-bit machine: truncated to 32 bits.
		{"set t3 4294967296 0 1\r\nx\r\nget t3\r\n", "STORED\r\nVALUE t3 0 1\r\nx\r\nEND\r\n"},
		{"set t3 -1 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
		{"set t3 0 0 -1\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"set t3 0 0 abc\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"set t3 0 abc 1\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"set t3 0 0\r\n", "ERROR\r\n"},
		{"set t3 0 0 1 noreply extra\r\n", "ERROR\r\n"},
		{"set " + tpLong + " 0 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
		{"get " + tpLong + "\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"get t1 " + tpLong + " t1\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"set t4 0 0 3\r\nabcde\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n"},
		{"set t4 0 0 1\r\n\x01\r\nget t4\r\n", "STORED\r\nVALUE t4 0 1\r\n\x01\r\nEND\r\n"},
		// Keys may hold any byte but space (and NUL, which ends the line
		// for memcached's C strings).
		{"set a\x01\tb 0 0 1\r\nx\r\nget a\x01\tb\r\n", "STORED\r\nVALUE a\x01\tb 0 1\r\nx\r\nEND\r\n"},
		{"set  t5   0 0  1 \r\ny\r\nget   t5  \r\n", "STORED\r\nVALUE t5 0 1\r\ny\r\nEND\r\n"},
		{"set t6 0 0 1\ny\r\nget t6\n", "STORED\r\nVALUE t6 0 1\r\ny\r\nEND\r\n"},
	}},
	{"storage modes", []tpStep{
		{"add m1 0 0 1\r\na\r\n", "STORED\r\n"},
		{"add m1 0 0 1\r\nb\r\n", "NOT_STORED\r\n"},
		{"replace m2 0 0 1\r\nb\r\n", "NOT_STORED\r\n"},
		{"replace m1 3 0 1\r\nc\r\nget m1\r\n", "STORED\r\nVALUE m1 3 1\r\nc\r\nEND\r\n"},
		{"append m1 9 0 2\r\nde\r\nprepend m1 9 0 2\r\nab\r\nget m1\r\n", "STORED\r\nSTORED\r\nVALUE m1 3 5\r\nabcde\r\nEND\r\n"},
		{"append m2 0 0 1\r\nx\r\n", "NOT_STORED\r\n"},
		{"prepend m2 0 0 1\r\nx\r\n", "NOT_STORED\r\n"},
		{"cas m2 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n"},
		{"gets m1\r\n", "VALUE m1 3 5 #\r\nabcde\r\nEND\r\n"},
		{"cas m1 0 0 1 0\r\nx\r\n", "EXISTS\r\n"},
		{"cas m1 0 0 1 99999999999\r\nx\r\n", "EXISTS\r\n"},
		{"cas m1 7 0 1 {cas}\r\nx\r\n", "STORED\r\n"},
		{"cas m1 7 0 1 {cas}\r\ny\r\n", "EXISTS\r\n"},
		{"get m1\r\n", "VALUE m1 7 1\r\nx\r\nEND\r\n"},
		{"cas m1 0 0 1\r\nx\r\n", "ERROR\r\nERROR\r\n"},
		{"cas m1 0 0 1 abc\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
		{"cas m2 0 0 1 0\r\nx\r\n", "NOT_FOUND\r\n"},
	}},
	{"noreply", []tpStep{
		{"set n1 0 0 1 noreply\r\na\r\n", ""},
		{"add n1 0 0 1 noreply\r\nb\r\n", ""},
		{"append n1 0 0 1 noreply\r\nc\r\nget n1\r\n", "VALUE n1 0 2\r\nac\r\nEND\r\n"},
		{"set n2 0 0 abc noreply\r\n", ""},
		{"set n2 0 0 2 noreply\r\nabcd\r\n", "ERROR\r\n"},
		{"incr n1 1 noreply\r\n", ""},
		{"set n3 0 0 1 noreply\r\n5\r\nincr n3 2 noreply\r\ndecr n3 1 noreply\r\nget n3\r\n", "VALUE n3 0 1\r\n6\r\nEND\r\n"},
		{"touch n3 100 noreply\r\ntouch nope 100 noreply\r\n", ""},
		{"delete n3 noreply\r\ndelete n3 noreply\r\nget n3\r\n", "END\r\n"},
		{"delete n1 0 noreply\r\nget n1\r\n", "END\r\n"},
		{"flush_all noreply\r\n", ""},
		{"flush_all 0 noreply\r\n", ""},
		{"verbosity 1 noreply\r\n", ""},
		{"get n1 noreply\r\n", "END\r\n"},
		{"cas n1 0 0 1 5 noreply\r\nx\r\n", ""},
		// noreply is the last token, whatever it follows.
		{"incr n1 noreply\r\n", ""},
		{"incr n1\r\n", "ERROR\r\n"},
		{"flush_all noreply 5\r\n", "CLIENT_ERROR invalid exptime argument\r\n"},
		{"verbosity noreply\r\ntouch n1 noreply\r\n", ""},
	}},
	{"incr and decr", []tpStep{
		{"incr c1 1\r\n", "NOT_FOUND\r\n"},
		{"decr c1 1\r\n", "NOT_FOUND\r\n"},
		{"set c1 0 0 2\r\n10\r\n", "STORED\r\n"},
		{"decr c1 1\r\nget c1\r\n", "9\r\nVALUE c1 0 2\r\n9 \r\nEND\r\n"},
		{"incr c1 1\r\nget c1\r\n", "10\r\nVALUE c1 0 2\r\n10\r\nEND\r\n"},
		{"decr c1 100\r\n", "0\r\n"},
		{"incr c1 18446744073709551615\r\n", "18446744073709551615\r\n"},
		{"incr c1 2\r\n", "1\r\n"},
		{"incr c1 18446744073709551616\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n"},
		{"incr c1 -1\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n"},
		{"incr c1 abc\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n"},
		{"incr c1\r\n", "ERROR\r\n"},
		{"incr c1 1 2 3\r\n", "ERROR\r\n"},
		{"incr " + tpLong + " 1\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"set c2 0 0 3\r\nabc\r\nincr c2 1\r\n", "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
		{"set c2 0 0 0\r\n\r\nincr c2 1\r\n", "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
		{"set c2 5 0 3\r\n 7 \r\nincr c2 1\r\nget c2\r\n", "STORED\r\n8\r\nVALUE c2 5 3\r\n8  \r\nEND\r\n"},
	}},
	{"touch and gat", []tpStep{
		{"touch g1 10\r\n", "NOT_FOUND\r\n"},
		{"set g1 3 0 2\r\nhi\r\n", "STORED\r\n"},
		{"touch g1 10\r\n", "TOUCHED\r\n"},
		{"touch g1 abc\r\n", "CLIENT_ERROR invalid exptime argument\r\n"},
		{"touch g1\r\n", "ERROR\r\n"},
		{"touch " + tpLong + " 1\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"gat 100 g1 nope\r\n", "VALUE g1 3 2\r\nhi\r\nEND\r\n"},
		{"gats 100 g1\r\n", "VALUE g1 3 2 #\r\nhi\r\nEND\r\n"},
		{"gat abc g1\r\n", "CLIENT_ERROR invalid exptime argument\r\n"},
		{"gat 10\r\n", "END\r\n"},
		{"gat\r\n", "ERROR\r\n"},
		{"gat -1 g1\r\n", "VALUE g1 3 2\r\nhi\r\nEND\r\n"},
		{"get g1\r\n", "END\r\n"},
		{"set g2 0 -1 1\r\nx\r\nget g2\r\n", "STORED\r\nEND\r\n"},
	}},
	{"delete", []tpStep{
		{"set d1 0 0 1\r\nx\r\n", "STORED\r\n"},
		{"delete d1\r\n", "DELETED\r\n"},
		{"delete d1\r\n", "NOT_FOUND\r\n"},
		{"set d1 0 0 1\r\nx\r\ndelete d1 0\r\n", "STORED\r\nDELETED\r\n"},
		{"delete d1 1\r\n", "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"},
		{"delete d1 0 0\r\n", "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"},
		{"delete d1 1 noreply\r\n", ""},
		{"delete\r\n", "ERROR\r\n"},
		{"delete a b c d\r\n", "ERROR\r\n"},
		{"delete " + tpLong + "\r\n", "CLIENT_ERROR bad command line format\r\n"},
	}},
	{"flush_all", []tpStep{
		{"set f1 0 0 1\r\nx\r\nflush_all\r\nget f1\r\n", "STORED\r\nOK\r\nEND\r\n"},
		{"flush_all 0\r\n", "OK\r\n"},
		{"flush_all -5\r\n", "OK\r\n"},
		{"flush_all abc\r\n", "CLIENT_ERROR invalid exptime argument\r\n"},
		{"flush_all noreply abc\r\n", "CLIENT_ERROR invalid exptime argument\r\n"},
		{"flush_all 1 2 3\r\n", "ERROR\r\n"},
		{"set f2 0 0 1\r\nx\r\nflush_all 100\r\nget f2\r\n", "STORED\r\nOK\r\nVALUE f2 0 1\r\nx\r\nEND\r\n"},
		{"flush_all\r\n", "OK\r\n"},
	}},
	{"other commands", []tpStep{
		{"\r\n", "ERROR\r\n"},
		{"x\r\n", "ERROR\r\n"},
		{"bogus\r\n", "ERROR\r\n"},
		{"GET / HTTP1.1\r\n", "ERROR\r\n"},
		{"verbosity\r\n", "ERROR\r\n"},
		{"verbosity 1\r\n", "OK\r\n"},
		{"verbosity 0 noreply\r\n", ""},
		{"verbosity abc\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"verbosity 1 2 3\r\n", "ERROR\r\n"},
		{"shutdown\r\n", "ERROR: shutdown not enabled\r\n"},
		{"cache_memlimit\r\n", "ERROR\r\n"},
		{"cache_memlimit abc\r\n", "ERROR\r\n"},
		{"cache_memlimit 5\r\n", "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"},
		{"cache_memlimit 2000000000\r\n", "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"},
		{"slabs\r\n", "ERROR\r\n"},
		{"slabs reassign a b\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"slabs reassign 3 3\r\n", "SAME src and dst class are identical\r\n"},
		{"slabs reassign 1 100\r\n", "BADCLASS invalid src or dst class id\r\n"},
		{"slabs reassign 1 2\r\n", "NOSPARE source class has no spare pages\r\n"},
		{"slabs automove 1\r\n", "OK\r\n"},
		{"slabs automove 3\r\n", "ERROR\r\n"},
		{"slabs automove x\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"slabs automove ratio\r\n", "ERROR\r\n"},
		{"slabs automove ratio 0.5\r\n", "OK\r\n"},
		{"lru\r\n", "ERROR\r\n"},
		{"lru bogus\r\n", "ERROR\r\n"},
		{"lru tune 10 10 0.1 2\r\n", "OK\r\n"},
		{"lru tune 50 50 0.1 2\r\n", "ERROR hot and warm pcts must not exceed 80\r\n"},
		{"lru tune 10 10 0 2\r\n", "ERROR hot/warm age factors must be greater than 0\r\n"},
		{"lru tune 10 10 x 2\r\n", "ERROR\r\n"},
		{"lru mode flat\r\n", "OK\r\n"},
		{"lru mode segmented\r\n", "OK\r\n"},
		{"lru mode other\r\n", "ERROR\r\n"},
		{"lru temp_ttl 10\r\n", "OK\r\n"},
		{"lru temp_ttl x\r\n", "ERROR\r\n"},
		{"lru_crawler\r\n", "ERROR\r\n"},
		{"lru_crawler bogus\r\n", "ERROR\r\n"},
		{"lru_crawler tocrawl x\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"lru_crawler tocrawl 10\r\n", "OK\r\n"},
		{"lru_crawler sleep 2000000\r\n", "CLIENT_ERROR sleep must be one second or less\r\n"},
		{"lru_crawler sleep 100\r\n", "OK\r\n"},
		{"lru_crawler crawl 0\r\n", "CLIENT_ERROR lru crawler disabled\r\n"},
		{"lru_crawler metadump all\r\n", "CLIENT_ERROR lru crawler disabled\r\n"},
		{"lru_crawler enable\r\n", "OK\r\n"},
		{"refresh_certs\r\n", "Error TLS not enabled\r\n"},
		{"refresh_certs noreply\r\n", "Error TLS not enabled\r\n"},
		{"misbehave\r\n", "ERROR\r\n"},
		{"debugtime 1\r\n", "ERROR\r\n"},
		{"extstore\r\n", "ERROR\r\n"},
		{"extstore item_size\r\n", "ERROR\r\n"},
		{"extstore item_size 5\r\n", "OK\r\n"},
		{"extstore item_size x\r\n", "ERROR\r\n"},
		{"extstore max_frag 0.5\r\n", "OK\r\n"},
		{"extstore free_memchunks 1 2\r\n", "OK\r\n"},
		{"extstore free_memchunks 99 2\r\n", "ERROR\r\n"},
		{"extstore bogus 1\r\n", "ERROR\r\n"},
		{"extstore item_age 5 noreply\r\n", ""},
	}},
	{"stats", []tpStep{
		{"stats detail\r\n", "CLIENT_ERROR usage: stats detail on|off|dump\r\n"},
		{"stats detail bogus\r\n", "CLIENT_ERROR usage: stats detail on|off|dump\r\n"},
		{"stats bogus\r\n", "ERROR\r\n"},
		{"stats sizes\r\n", "STAT sizes_status disabled\r\nEND\r\n"},
		{"stats cachedump\r\n", "CLIENT_ERROR bad command line\r\n"},
		{"stats cachedump 1\r\n", "CLIENT_ERROR bad command line\r\n"},
		{"stats cachedump a b\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"stats cachedump 64 0\r\n", "CLIENT_ERROR Illegal slab id\r\n"},
		{"stats cachedump 2 0\r\n", "END\r\n"},
		{"stats reset\r\n", "RESET\r\n"},
		{"stats extstore\r\n", "END\r\n"},
		{"stats proxy\r\n", "ERROR\r\n"},
		{"stats sizes_disable\r\n", "STAT sizes_status disabled\r\n"},
		{"stats sizes_enable\r\n", "STAT sizes_status enabled\r\n"},
		{"set sz 0 0 10\r\n0123456789\r\nset sz2 1 0 30\r\n012345678901234567890123456789\r\n", "STORED\r\nSTORED\r\n"},
		// 2+10+59 and 3+30+63 bytes, in buckets of 32.
		{"stats sizes\r\n", "STAT 96 2\r\nEND\r\n"},
		{"set sz3 0 0 100\r\n" + strings.Repeat("x", 100) + "\r\nstats sizes\r\n", "STORED\r\nSTAT 96 2\r\nSTAT 192 1\r\nEND\r\n"},
		{"stats sizes_disable\r\nstats sizes\r\n", "STAT sizes_status disabled\r\nSTAT sizes_status disabled\r\nEND\r\n"},
		{"delete sz\r\ndelete sz2\r\ndelete sz3\r\n", "DELETED\r\nDELETED\r\nDELETED\r\n"},
		{"stats detail on\r\n", "OK\r\n"},
		{"set a:1 0 0 1\r\nx\r\nget a:1 a:2 nocolon\r\ndelete a:3\r\n", "STORED\r\nVALUE a:1 0 1\r\nx\r\nEND\r\nNOT_FOUND\r\n"},
		{"stats detail dump\r\n", "PREFIX a get 2 hit 1 set 1 del 1\r\nEND\r\n"},
		{"stats detail off\r\n", "OK\r\n"},
		{"stats reset\r\nstats detail dump\r\n", "RESET\r\nEND\r\n"},
	}},
}

var tpVALUE = regexp.MustCompile(`(?m)^(VALUE \S+ \d+ \d+) (\d+)\r$`)

// tpSession is one text connection.
type tpSession struct {
	t   *testing.T
	c   net.Conn
	r   *bufio.Reader
	cas string // the last CAS a VALUE line gave
}

func dialTP(t *testing.T, addr string) *tpSession {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &tpSession{t: t, c: c, r: bufio.NewReader(c)}
}

// do sends a step and an mn, and returns what came before the MN, its
// CAS values masked.
func (s *tpSession) do(send string) string {
	s.t.Helper()
	send = strings.ReplaceAll(send, "{cas}", s.cas)
	s.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(s.c, send+"mn\r\n"); err != nil {
		s.t.Fatal(err)
	}
	var out strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("%q: read: %v (after %q)", send, err, out.String())
		}
		if line == "MN\r\n" {
			break
		}
		out.WriteString(line)
	}
	got := out.String()
	if m := tpVALUE.FindAllStringSubmatch(got, -1); len(m) > 0 {
		s.cas = m[len(m)-1][2]
	}
	return tpVALUE.ReplaceAllString(got, "$1 #\r")
}

// readAll reads what the server sends until it closes the connection (or
// 2 s pass), and whether it closed.
func (s *tpSession) readAll() (string, bool) {
	s.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(s.r)
	return string(b), err == nil
}

func runTPCases(t *testing.T, addr string) {
	for _, tc := range tpCases {
		t.Run(tc.name, func(t *testing.T) {
			s := dialTP(t, addr)
			for _, st := range tc.steps {
				if got := s.do(st.send); got != st.want {
					t.Errorf("%q:\n got  %q\n want %q", st.send, got, st.want)
				}
			}
		})
	}
}

// tpServers runs f against memcached started with mcArgs and against
// gocache configured by cfg on both connection models.
func tpServers(t *testing.T, mcArgs []string, cfg gocache.Config, f func(t *testing.T, addr string)) {
	t.Run("memcached", func(t *testing.T) { f(t, peer.Memcached(t, mcArgs...)) })
	for _, loops := range []int{0, 2} {
		t.Run(fmt.Sprintf("gocache event loops %d", loops), func(t *testing.T) {
			c := cfg
			c.EventLoops = loops
			_, addr := gocachetest.Start(t, c)
			f(t, addr)
		})
	}
}

func TestText(t *testing.T) {
	// lru_crawler crawl is answered as with memcached's crawler off.
	tpServers(t, []string{"-o", "no_lru_crawler"}, gocache.Config{}, runTPCases)
}

// With the LRU crawler on (memcached's default), a crawl removes what
// has expired.
func TestTextCrawler(t *testing.T) {
	steps := []tpStep{
		{"lru_crawler crawl all\r\n", "OK\r\n"},
		{"lru_crawler crawl 0\r\n", "BADCLASS invalid class id\r\n"},
		{"lru_crawler crawl 1,x\r\n", "BADCLASS invalid class id\r\n"},
		{"lru_crawler crawl 64\r\n", "BADCLASS invalid class id\r\n"},
		{"set cr 0 1 1\r\nx\r\n", "STORED\r\n"},
	}
	cfg := gocache.Config{Settings: map[string]string{"lru_crawler": "yes"}}
	tpServers(t, nil, cfg, func(t *testing.T, addr string) {
		s := dialTP(t, addr)
		for _, st := range steps {
			if got := s.do(st.send); got != st.want {
				t.Errorf("%q:\n got  %q\n want %q", st.send, got, st.want)
			}
		}
		time.Sleep(2100 * time.Millisecond)
		if got := s.do("lru_crawler crawl 1\r\n"); got != "OK\r\n" {
			t.Errorf("crawl: %q", got)
		}
		time.Sleep(200 * time.Millisecond)
		if got := tpStat(t, s, "stats", "curr_items"); got != "0" {
			t.Errorf("curr_items %s after a crawl, want 0", got)
		}
	})
}

// Closing answers: quit, a line that speaks HTTP.
func TestTextClose(t *testing.T) {
	for _, tc := range []struct{ name, send, want string }{
		{"quit", "set q 0 0 1\r\nx\r\nquit\r\nget q\r\n", "STORED\r\n"},
		{"HTTP", "get q\r\nGET / HTTP/1.1\r\nget q\r\n", "END\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tpServers(t, nil, gocache.Config{}, func(t *testing.T, addr string) {
				s := dialTP(t, addr)
				io.WriteString(s.c, tc.send)
				got, closed := s.readAll()
				if got != tc.want || !closed {
					t.Errorf("got %q (closed %v), want %q and a close", got, closed, tc.want)
				}
			})
		})
	}
}

// Values over the item size limit (memcached's -I, with its item header
// counted as item_size_ok counts it: 59 bytes and 4 more for non-zero
// flags), answered and swallowed, and a failed set removes the old value.
func TestTextItemSize(t *testing.T) {
	v := func(n int) string { return strings.Repeat("v", n) }
	steps := []tpStep{
		{"set s1 0 0 1\r\nx\r\n", "STORED\r\n"},
		// key 2 + value + 59 <= 1024.
		{"set s1 0 0 965\r\n" + v(965) + "\r\n", "SERVER_ERROR object too large for cache\r\n"},
		{"set s1 0 0 964\r\n" + v(964) + "\r\n", "SERVER_ERROR object too large for cache\r\n"},
		{"set s1 0 0 963\r\n" + v(963) + "\r\n", "STORED\r\n"},
		{"set s1 0 0 965\r\n" + v(965) + "\r\nget s1\r\n", "SERVER_ERROR object too large for cache\r\nEND\r\n"},
		{"set s1 1 0 959\r\n" + v(959) + "\r\n", "STORED\r\n"},
		{"set s1 1 0 960\r\n" + v(960) + "\r\n", "SERVER_ERROR object too large for cache\r\n"},
		{"set s2 0 0 1\r\nx\r\nadd s2 0 0 2000\r\n" + v(2000) + "\r\nget s2\r\n",
			"STORED\r\nSERVER_ERROR object too large for cache\r\nVALUE s2 0 1\r\nx\r\nEND\r\n"},
		{"gets s2\r\n", "VALUE s2 0 1 #\r\nx\r\nEND\r\n"},
		{"cas s2 0 0 2000 {cas}\r\n" + v(2000) + "\r\nget s2\r\n",
			"SERVER_ERROR object too large for cache\r\nVALUE s2 0 1\r\nx\r\nEND\r\n"},
		{"set s3 0 0 2000 noreply\r\n" + v(2000) + "\r\n", ""},
		// The block is swallowed whatever follows it.
		{"set s3 0 0 2000\r\n" + v(2002) + "get s2\r\n", "SERVER_ERROR object too large for cache\r\nVALUE s2 0 1\r\nx\r\nEND\r\n"},
	}
	tpServers(t, []string{"-I", "1024", "-o", "slab_chunk_max=1024"},
		gocache.Config{Cache: cache.Config{MaxItemSize: 1024}}, func(t *testing.T, addr string) {
			s := dialTP(t, addr)
			for _, st := range steps {
				if got := s.do(st.send); got != st.want {
					t.Errorf("%.60q:\n got  %q\n want %q", st.send, got, st.want)
				}
			}
			got := tpStat(t, s, "stats", "store_too_large")
			if got != "8" {
				t.Errorf("store_too_large %s, want 8", got)
			}
			// Each part fits, the whole does not.
			st := tpStep{"set s2 0 0 10\r\n" + v(10) + "\r\nappend s2 0 0 954\r\n" + v(954) + "\r\nget s2\r\n",
				"STORED\r\nNOT_STORED\r\nVALUE s2 0 10\r\n" + v(10) + "\r\nEND\r\n"}
			if got := s.do(st.send); got != st.want {
				t.Errorf("%.60q:\n got  %q\n want %q", st.send, got, st.want)
			}
			// An item that would grow too large is not counted as too large.
			if got := tpStat(t, s, "stats", "store_too_large"); got != "8" {
				t.Errorf("after the append: store_too_large %s, want 8", got)
			}
		})
}

// tpStat returns one statistic from a stats command.
func tpStat(t *testing.T, s *tpSession, cmd, name string) string {
	t.Helper()
	out := s.do(cmd + "\r\n")
	for _, line := range strings.Split(out, "\r\n") {
		if v, ok := strings.CutPrefix(line, "STAT "+name+" "); ok {
			return v
		}
	}
	t.Fatalf("%s: no %s in %q", cmd, name, out)
	return ""
}

// memcached's ascii authentication (-Y): nothing but a set carrying "user
// password" is served until one succeeds.
func TestTextAuth(t *testing.T) {
	file := filepath.Join(t.TempDir(), "authfile")
	if err := os.WriteFile(file, []byte("foo:bar\nbaaaz:quux\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := sasl.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	steps := []tpStep{
		{"get foo\r\n", "CLIENT_ERROR unauthenticated\r\n"},
		{"set foo 0 0 2\r\nhi\r\n", "CLIENT_ERROR bad authentication token format\r\n"},
		{"set foo 0 0 7\r\nfoo bab\r\n", "CLIENT_ERROR authentication failure\r\n"},
		{"set foo 0 0 7\r\nfoo barYZ", "CLIENT_ERROR bad command line termination\r\n"},
		{"delete foo\r\n", "CLIENT_ERROR unauthenticated\r\n"},
		{"set foo 0 0 7\r\nfoo bar\r\n", "STORED\r\n"},
		{"set toast 0 0 2\r\nhi\r\nget toast\r\n", "STORED\r\nVALUE toast 0 2\r\nhi\r\nEND\r\n"},
	}
	tpServers(t, []string{"-Y", file}, gocache.Config{Users: users, RequireAuth: true}, func(t *testing.T, addr string) {
		s := dialTP(t, addr)
		for _, st := range steps {
			got := s.lines(st.send, strings.Count(st.want, "\n"))
			if got != st.want {
				t.Errorf("%q:\n got  %q\n want %q", st.send, got, st.want)
			}
		}
		if got := tpStat(t, s, "stats", "auth_cmds"); got != "2" {
			t.Errorf("auth_cmds %s, want 2", got)
		}
		if got := tpStat(t, s, "stats", "auth_errors"); got != "1" {
			t.Errorf("auth_errors %s, want 1", got)
		}
	})
}

// lines sends a step and reads n answer lines. (Before it has
// authenticated, memcached answers only the first of pipelined commands
// until more input comes: no mn fence there.)
func (s *tpSession) lines(send string, n int) string {
	s.t.Helper()
	s.c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(s.c, send)
	var out strings.Builder
	for range n {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("%q: read: %v (after %q)", send, err, out.String())
		}
		out.WriteString(line)
	}
	return out.String()
}

// A value stored by text reads the same by binary GET (flags, CAS, value,
// an incremented counter's spaces), and one stored by binary SET the same
// by text; both expire by the same rules, and count in the same stats.
func TestTextAcrossProtocols(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	s := dialTP(t, addr)
	bc := gocachetest.Dial(t, addr)
	if got := s.do("set cross 42 0 5\r\nhello\r\ngets cross\r\n"); got != "STORED\r\nVALUE cross 42 5 #\r\nhello\r\nEND\r\n" {
		t.Fatalf("text set: %q", got)
	}
	res := bc.Do(gm.MCRequest{Opcode: gm.GET, Key: []byte("cross")})
	if res.Status != gm.SUCCESS || string(res.Body) != "hello" || binary.BigEndian.Uint32(res.Extras) != 42 || fmt.Sprint(res.Cas) != s.cas {
		t.Fatalf("binary GET of a text value: %v %q extras %x cas %d (text said %s)", res.Status, res.Body, res.Extras, res.Cas, s.cas)
	}
	res = bc.Do(gocachetest.SetRequest(0, "frombin", "binval", 7))
	if res.Status != gm.SUCCESS {
		t.Fatalf("binary SET: %v", res.Status)
	}
	if got := s.do("gets frombin\r\n"); got != "VALUE frombin 7 6 #\r\nbinval\r\nEND\r\n" || s.cas != fmt.Sprint(res.Cas) {
		t.Fatalf("text gets of a binary value: %q (cas %s, binary said %d)", got, s.cas, res.Cas)
	}
	// CAS from one protocol works in the other.
	if got := s.do(fmt.Sprintf("cas frombin 1 0 3\r\nnew\r\n%s", "")); got != "ERROR\r\nERROR\r\n" {
		t.Fatalf("short cas: %q", got)
	}
	if got := s.do(fmt.Sprintf("cas frombin 1 0 3 %d\r\nnew\r\n", res.Cas)); got != "STORED\r\n" {
		t.Fatalf("text cas with a binary CAS: %q", got)
	}
	// A counter shortened in place keeps memcached's padding both ways.
	s.do("set n 0 0 3\r\n100\r\n")
	dec := make([]byte, 20)
	binary.BigEndian.PutUint64(dec, 1)
	binary.BigEndian.PutUint32(dec[16:], 0xffffffff)
	if res := bc.Do(gm.MCRequest{Opcode: gm.DECREMENT, Key: []byte("n"), Extras: dec}); res.Status != gm.SUCCESS {
		t.Fatalf("binary DECR: %v", res.Status)
	}
	if got := s.do("get n\r\n"); got != "VALUE n 0 3\r\n99 \r\nEND\r\n" {
		t.Fatalf("text get of a binary-decremented counter: %q", got)
	}
	// Expired by text (negative exptime), gone for binary; expiring by
	// binary, gone for text.
	s.do("set gone 0 -1 1\r\nx\r\n")
	if res := bc.Do(gm.MCRequest{Opcode: gm.GET, Key: []byte("gone")}); res.Status != gm.KEY_ENOENT {
		t.Fatalf("binary GET of a text value set expired: %v", res.Status)
	}
	ex := make([]byte, 8)
	binary.BigEndian.PutUint32(ex[4:], 1)
	bc.Do(gm.MCRequest{Opcode: gm.SET, Key: []byte("soon"), Body: []byte("x"), Extras: ex})
	time.Sleep(2100 * time.Millisecond)
	if got := s.do("get soon\r\n"); got != "END\r\n" {
		t.Fatalf("text get of an expired binary value: %q", got)
	}
	// The counters are shared: text's gets and binary's count as one.
	before := tpStat(t, s, "stats", "get_hits")
	s.do("get cross\r\n")
	bc.Do(gm.MCRequest{Opcode: gm.GET, Key: []byte("cross")})
	if after := tpStat(t, s, "stats", "get_hits"); after != fmt.Sprint(tpAtoi(before)+2) {
		t.Fatalf("get_hits %s then %s, want 2 more", before, after)
	}
}

func tpAtoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

// text stats has memcached's names, in memcached's order, as many as
// memcached 1.6.18 with its LRU crawler and maintainer off.
func TestTextStatsNames(t *testing.T) {
	names := func(t *testing.T, addr string) []string {
		s := dialTP(t, addr)
		var out []string
		for _, line := range strings.Split(s.do("stats\r\n"), "\r\n") {
			if f := strings.Fields(line); len(f) >= 2 {
				out = append(out, f[1])
			}
		}
		return out
	}
	var want []string
	t.Run("memcached", func(t *testing.T) {
		want = names(t, peer.Memcached(t, "-o", "no_lru_crawler,no_lru_maintainer"))
	})
	if want == nil {
		t.Skip("no memcached")
	}
	_, addr := gocachetest.Start(t, gocache.Config{})
	if got := names(t, addr); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("stats names:\n got  %v\n want %v", got, want)
	}
}

// A get hit and a set on a reused connection allocate nothing in the
// server (the client here allocates nothing per command either).
func TestTextAllocs(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	set := []byte("set alloc 0 0 100\r\n" + strings.Repeat("v", 100) + "\r\n")
	get := []byte("get alloc\r\n")
	buf := make([]byte, 4096)
	roundTrip := func(cmd []byte, end []byte) {
		if _, err := c.Write(cmd); err != nil {
			t.Fatal(err)
		}
		n := 0
		for !bytes.HasSuffix(buf[:n], end) {
			m, err := c.Read(buf[n:])
			if err != nil {
				t.Fatal(err)
			}
			n += m
		}
	}
	for range 100 {
		roundTrip(set, []byte("STORED\r\n"))
		roundTrip(get, []byte("END\r\n"))
	}
	getAllocs := testing.AllocsPerRun(2000, func() { roundTrip(get, []byte("END\r\n")) })
	setAllocs := testing.AllocsPerRun(2000, func() { roundTrip(set, []byte("STORED\r\n")) })
	t.Logf("allocations per command: get hit %.2f, set %.2f", getAllocs, setAllocs)
	if getAllocs > 0.1 {
		t.Errorf("get hit: %.2f allocations per command, want 0", getAllocs)
	}
	// A set allocates the stored item and nothing else.
	if setAllocs > 1.1 {
		t.Errorf("set: %.2f allocations per command, want the item's 1", setAllocs)
	}
}

// shutdown, enabled (memcached's -A): a bad mode is refused; shutdown
// closes the connection and stops the server.
func TestTextShutdown(t *testing.T) {
	tpServers(t, []string{"-A"}, gocache.Config{ShutdownCommand: true}, func(t *testing.T, addr string) {
		s := dialTP(t, addr)
		if got := s.do("shutdown bogus\r\n"); got != "CLIENT_ERROR invalid shutdown mode\r\n" {
			t.Errorf("shutdown bogus: %q", got)
		}
		if got := s.do("shutdown graceful x\r\n"); got != "CLIENT_ERROR invalid shutdown mode\r\n" {
			t.Errorf("shutdown graceful x: %q", got)
		}
		io.WriteString(s.c, "shutdown\r\n")
		if got, closed := s.readAll(); got != "" || !closed {
			t.Fatalf("shutdown: %q (closed %v)", got, closed)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				break
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatal("still accepting 5 s after shutdown")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// Without CAS (memcached's -C), a flush takes what is stored in its
// second with it.
func TestTextFlushNoCAS(t *testing.T) {
	tpServers(t, []string{"-C"}, gocache.Config{DisableCAS: true}, func(t *testing.T, addr string) {
		s := dialTP(t, addr)
		for range 5 {
			// At a second's very end the set may fall in the next.
			got := s.do("flush_all\r\nset nc 0 0 1\r\nx\r\nget nc\r\n")
			if got == "OK\r\nSTORED\r\nEND\r\n" {
				return
			}
		}
		t.Error("a value stored in the second of a flush survived it 5 times")
	})
}
