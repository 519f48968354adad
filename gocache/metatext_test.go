package gocache_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

// The meta protocol's answers, pinned byte for byte and checked against a
// real memcached 1.6.18: every case runs on one connection to memcached
// and to gocache (both connection models), each step followed by an mn
// whose MN ends its answers. What differs between two honest servers is
// masked: CAS values (" c<n>", "cas="), seconds since last access ("l",
// "la=") and me's memory details ("cls=", "size="). "{cas}" in a step is
// the last CAS that connection was answered.

type metaStep struct{ send, want string }

var metaCases = []struct {
	name  string
	steps []metaStep
}{
	{"miss and no-op", []metaStep{
		{"mg m1 v\r\n", "EN\r\n"},
		{"mg m1 v k Oab q\r\n", ""},
		{"mg m1 k Oab\r\n", "EN km1 Oab\r\n"},
		{"mg m1 Oab k\r\n", "EN Oab km1\r\n"},
		{"mn\r\n", ""}, // the step's own MN is the fence: one MN each
	}},
	{"set and get", []metaStep{
		{"ms m2 2 T100 F7 c k O1\r\nhi\r\n", "HD c# km2 O1\r\n"},
		{"mg m2 s v t f k O9\r\n", "VA 2 s2 t100 f7 km2 O9\r\nhi\r\n"},
		{"mg m2\r\n", "HD\r\n"},
		{"mg m2 q s\r\n", "HD s2\r\n"},
		{"me m2\r\n", "ME m2 exp=-100 la=# cas=# fetch=yes cls=# size=#\r\n"},
		{"me nothere\r\n", "EN\r\n"},
	}},
	{"hit before and no update", []metaStep{
		{"ms m3 3 T100\r\nhit\r\n", "HD\r\n"},
		{"mg m3 h u\r\n", "HD h0\r\n"},
		{"mg m3 h\r\n", "HD h0\r\n"},
		{"mg m3 h l\r\n", "HD h1 l#\r\n"},
	}},
	{"vivify, win and recache", []metaStep{
		{"mg m4 s c v N30 t\r\n", "VA 0 s0 c# t30 W\r\n\r\n"},
		{"mg m4 s t v N30\r\n", "VA 0 s0 t30 Z\r\n\r\n"},
		{"ms m4 2 C5000 T120\r\nnu\r\n", "EX\r\n"},
		{"mg m4 c\r\n", "HD c# Z\r\n"},
		{"ms m4 2 C{cas} T120\r\nmu\r\n", "HD\r\n"},
		{"mg m4 s k t v N30\r\n", "VA 2 s2 km4 t120\r\nmu\r\n"},
		{"mg m4 s t v R130\r\n", "VA 2 s2 t120 W\r\nmu\r\n"},
		{"mg m4 s t v R130\r\n", "VA 2 s2 t120 Z\r\nmu\r\n"},
		{"mg m5 t N30 q\r\n", "HD t-1 W\r\n"}, // t before N: the expiry before N set it
		{"mg m5b N30 t q\r\n", "HD t30 W\r\n"},
		{"mg m6 t N-1\r\n", "HD t-1 W\r\n"},
	}},
	{"touch", []metaStep{
		{"ms m7 2 T100\r\nab\r\n", "HD\r\n"},
		{"mg m7 t T30\r\n", "HD t100\r\n"},
		{"mg m7 t\r\n", "HD t30\r\n"},
		{"mg m7 T20 t\r\n", "HD t20\r\n"},
		{"mg m7 T0 t\r\n", "HD t-1\r\n"},
	}},
	{"invalidate and serve stale", []metaStep{
		{"ms m8 3\r\nmoo\r\n", "HD\r\n"},
		{"mg m8 s v\r\n", "VA 3 s3\r\nmoo\r\n"},
		{"md m8 I T30\r\n", "HD\r\n"},
		{"mg m8 s t v\r\n", "VA 3 s3 t30 X W\r\nmoo\r\n"},
		{"mg m8 s t c v\r\n", "VA 3 s3 t30 c# Z X\r\nmoo\r\n"},
		{"ms m8 1 T90 C1\r\nf\r\n", "EX\r\n"},
		{"ms m8 1 I T90 C1\r\nf\r\n", "HD\r\n"},
		{"mg m8 s t v c\r\n", "VA 1 s1 t30 c# Z X\r\nf\r\n"},
		{"ms m8 1 T90 C{cas}\r\ng\r\n", "HD\r\n"},
		{"mg m8 s t v\r\n", "VA 1 s1 t90\r\ng\r\n"},
	}},
	{"set modes", []metaStep{
		{"ms m9 2 ME\r\nxx\r\n", "HD\r\n"},
		{"ms m9 2 ME\r\nyy\r\n", "NS\r\n"},
		{"ms m9 2 ME C1\r\nyy\r\n", "NS\r\n"},
		{"ms m9 2 MA\r\nzz\r\n", "HD\r\n"},
		{"ms m9 2 MP\r\naa\r\n", "HD\r\n"},
		{"mg m9 v\r\n", "VA 6\r\naaxxzz\r\n"},
		{"ms m9 2 MR\r\nrr\r\n", "HD\r\n"},
		{"ms m10 2 MR\r\nrr\r\n", "NS\r\n"},
		{"ms m10 2 MR C1\r\nrr\r\n", "NF\r\n"},
		{"ms m10 2 C1\r\nrr\r\n", "NF\r\n"},
		{"ms m10 2 MA\r\nrr\r\n", "NS\r\n"},
		{"ms m10 2 MP C1\r\nrr\r\n", "NS\r\n"},
		{"ms m10 2 ME C1 c\r\nrr\r\n", "HD c#\r\n"},
		{"ms m10 2 MA C1 c\r\nrr\r\n", "EX c0\r\n"},
		{"ms m10 2 MS q\r\nss\r\n", ""},
		{"ms m10 2 C0 c k\r\nzz\r\n", "EX c0 km10\r\n"},
		{"ms m10 2 MR C0 I\r\nzz\r\n", "EX\r\n"},
		{"ms m10x 2 C0 c\r\nzz\r\n", "NF c0\r\n"},
		{"ms m10x 2 MA C0\r\nzz\r\n", "NS\r\n"},
		{"ms m10 2 MX\r\nss\r\n", "CLIENT_ERROR invalid mode for ms M token\r\n"},
		{"mg m10 v\r\n", "VA 2\r\nss\r\n"},
	}},
	{"delete", []metaStep{
		{"ms m11 2\r\nab\r\n", "HD\r\n"},
		{"md m11 C1 k\r\n", "EX km11\r\n"},
		{"md m11 C0 O2\r\n", "EX O2\r\n"},
		{"md m11 C0 I q\r\n", "EX\r\n"},
		{"md m11x C0\r\n", "NF\r\n"},
		{"md m11 q\r\n", ""},
		{"md m11 q O5\r\n", "NF O5\r\n"},
		{"md m11\r\n", "NF\r\n"},
	}},
	{"arithmetic", []metaStep{
		{"ma m12\r\n", "NF\r\n"},
		{"ma m12 q\r\n", "NF\r\n"},
		{"ma m12 N0 J13 v t\r\n", "VA 2 t-1\r\n13\r\n"},
		{"ma m12 v\r\n", "VA 2\r\n14\r\n"},
		{"ma m12 MD D20 v\r\n", "VA 1\r\n0\r\n"},
		{"ma m12 M+ D5 q\r\n", ""},
		{"ma m12 M- v t T30\r\n", "VA 1 t-1\r\n4\r\n"},
		{"ma m12 T20 t v\r\n", "VA 1 t20\r\n5\r\n"},
		{"ma m12 C1 O7 k\r\n", "EX O7 km12\r\n"},
		{"ma m12 C0 v\r\n", "VA 1\r\n6\r\n"}, // C0: no check
		{"ma m12 MX\r\n", "CLIENT_ERROR invalid mode for ma M token\r\n"},
		{"ma m12 Dx\r\n", "CLIENT_ERROR invalid or duplicate flag\r\n"},
		{"ms m13 2\r\nab\r\n", "HD\r\n"},
		{"ma m13\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
		{"ma m14 N30 J5 t q\r\n", "HD t30\r\n"},
	}},
	{"base64 keys", []metaStep{
		{"ms Ymlu/w== 2 b k c\r\nhi\r\n", "HD kYmlu/w== b c#\r\n"},
		{"mg Ymlu/w== b k v\r\n", "VA 2 kYmlu/w== b\r\nhi\r\n"},
		{"me Ymlu/w== b\r\n", "ME Ymlu/w== exp=-1 la=# cas=# fetch=yes cls=# size=#\r\n"},
		{"mg Ymlu/w== k\r\n", "EN km1\r\n" /* replaced below */},
		{"md Ymlu/w== b k\r\n", "HD kYmlu/w== b\r\n"},
		{"mg Ymlu/w== b k\r\n", "EN kYmlu/w== b\r\n"},
		{"ms m15 2 T0\r\nxy\r\n", "HD\r\n"},
		{"mg bTE1 b k v\r\n", "VA 2 km15\r\nxy\r\n"},
		{"mg b!!! b\r\n", "CLIENT_ERROR error decoding key\r\n"},
		{"me b!!! b\r\n", "CLIENT_ERROR bad command line format\r\n"},
	}},
	{"errors", []metaStep{
		{"mg\r\n", "ERROR\r\n"},
		{"mz m1\r\n", "ERROR\r\n"},
		{"me\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"mg m1 m o o\r\n", "CLIENT_ERROR invalid flag\r\n"},
		{"mg m1 s s\r\n", "CLIENT_ERROR duplicate flag\r\n"},
		{"mg m1 Tx\r\n", "CLIENT_ERROR bad token in command line format\r\n"},
		{"mg m1 MAB\r\n", "CLIENT_ERROR incorrect length for M token\r\n"},
		{"mg " + strings.Repeat("k", 251) + " v\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"mg m1 a b c d e f g h i j k l m n o p q r\r\n", "CLIENT_ERROR options flags are too long\r\n"},
		{"md m1 a b c d e f g h i j k l m n o p q r\r\n", "CLIENT_ERROR options flags too long\r\n"},
		{"mg m1 O123456789012345678901234567890123\r\n", "CLIENT_ERROR opaque token too long\r\n"},
		{"md m1 x\r\n", "CLIENT_ERROR invalid or duplicate flag\r\n"},
		{"ms m1\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"ms m1 x\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"ms m1 -1\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"ms m1 2 F-1\r\nhi\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"ms m1 2 C\r\nhi\r\n", "CLIENT_ERROR bad token in command line format\r\n"},
		{"ms m1 2 O123456789012345678901234567890123\r\nhi\r\n", "CLIENT_ERROR opaque token too long\r\n"},
		{"ms m1 2 q\r\nhiX\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n"},
		{"mg m1 v\r\n", "EN\r\n"},
	}},
	{"opaque over the limit, found late", []metaStep{
		// memcached checks an opaque's length while it writes the
		// answer: what the flags before it did is done.
		{"mg o1 N30 O123456789012345678901234567890123\r\n", "CLIENT_ERROR opaque token too long\r\n"},
		{"mg o1 t v\r\n", "VA 0 t30\r\n\r\n"}, // created, and no one won it
		{"mg o2 O123456789012345678901234567890123 N30\r\n", "CLIENT_ERROR opaque token too long\r\n"},
		{"mg o2 t s\r\n", "HD t-1 s0\r\n"},
		{"ms o3 2 T100\r\nhi\r\n", "HD\r\n"},
		{"mg o3 T30 O123456789012345678901234567890123 h\r\n", "CLIENT_ERROR opaque token too long\r\n"},
		{"mg o3 O123456789012345678901234567890123 T50\r\n", "CLIENT_ERROR opaque token too long\r\n"},
		{"mg o3 t h\r\n", "HD t30 h0\r\n"},
		{"md o3 I\r\n", "HD\r\n"},
		{"mg o3 O123456789012345678901234567890123\r\n", "CLIENT_ERROR opaque token too long\r\n"},
		{"mg o3 s\r\n", "HD s2 X W\r\n"}, // the stale item's token was not handed out
		{"ma o4 N0 J5 O123456789012345678901234567890123\r\n", "CLIENT_ERROR opaque token too long\r\n"},
		{"ma o4 v\r\n", "VA 1\r\n6\r\n"},
		{"ma o4 T30 O123456789012345678901234567890123 v\r\n", "CLIENT_ERROR opaque token too long\r\n"},
		{"ma o4 t v\r\n", "VA 1 t30\r\n8\r\n"},
		{"ma o5 O123456789012345678901234567890123\r\n", "CLIENT_ERROR opaque token too long\r\n"},
		{"ms o6 2\r\nhi\r\n", "HD\r\n"},
		{"ma o6 O123456789012345678901234567890123\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
	}},
	{"quiet pipeline", []metaStep{
		{"ms m16 2 q\r\nbo\r\nmg m16 v q\r\nmg m16 v q\r\nmg m16miss v q\r\nmd m16 q\r\nmg m16 v q\r\n",
			"VA 2\r\nbo\r\nVA 2\r\nbo\r\n"},
	}},
}

func init() {
	// A base64 key stored with b reads, without b, under its bytes.
	for i := range metaCases {
		if metaCases[i].name == "base64 keys" {
			metaCases[i].steps[3] = metaStep{"mg bin\xff k\r\n", "HD kYmlu/w== b\r\n"}
		}
	}
}

var (
	metaCAS  = regexp.MustCompile(` c([1-9]\d*)`)
	metaMask = []struct {
		re   *regexp.Regexp
		with string
	}{
		{metaCAS, " c#"},
		{regexp.MustCompile(`cas=\d+`), "cas=#"},
		{regexp.MustCompile(` l\d+`), " l#"},
		{regexp.MustCompile(`la=\d+`), "la=#"},
		{regexp.MustCompile(`cls=\d+ size=\d+`), "cls=# size=#"},
	}
)

// metaSession is one text connection.
type metaSession struct {
	t   *testing.T
	c   net.Conn
	r   *bufio.Reader
	cas string // the last CAS answered
}

func dialMeta(t *testing.T, addr string) *metaSession {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &metaSession{t: t, c: c, r: bufio.NewReader(c)}
}

// do sends a step and an mn, and returns what came before the MN, masked.
func (s *metaSession) do(send string) string {
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
	if m := metaCAS.FindAllStringSubmatch(got, -1); len(m) > 0 {
		s.cas = m[len(m)-1][1]
	}
	for _, m := range metaMask {
		got = m.re.ReplaceAllString(got, m.with)
	}
	return got
}

func runMetaCases(t *testing.T, addr string) {
	for _, tc := range metaCases {
		t.Run(tc.name, func(t *testing.T) {
			s := dialMeta(t, addr)
			for _, st := range tc.steps {
				if got := s.do(st.send); got != st.want {
					t.Errorf("%q:\n got  %q\n want %q", st.send, got, st.want)
				}
			}
		})
	}
}

func TestMetaText(t *testing.T) {
	t.Run("memcached", func(t *testing.T) {
		runMetaCases(t, peer.Memcached(t))
	})
	for _, loops := range []int{0, 2} {
		t.Run(fmt.Sprintf("gocache event loops %d", loops), func(t *testing.T) {
			_, addr := gocachetest.Start(t, gocache.Config{EventLoops: loops})
			runMetaCases(t, addr)
		})
	}
}

// A value stored by ms reads the same by binary GET (flags, CAS, value),
// and one stored by binary SET the same by mg; text get and gets agree.
func TestMetaTextAcrossProtocols(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	s := dialMeta(t, addr)
	if got := s.do("ms cross 5 F42 T100 c\r\nhello\r\n"); got != "HD c#\r\n" {
		t.Fatalf("ms: %q", got)
	}
	cas := s.cas
	bc := gocachetest.Dial(t, addr)
	res := bc.Do(gm.MCRequest{Opcode: gm.GET, Key: []byte("cross")})
	if res.Status != gm.SUCCESS || string(res.Body) != "hello" || binary.BigEndian.Uint32(res.Extras) != 42 || fmt.Sprint(res.Cas) != cas {
		t.Fatalf("binary GET of a meta value: %v %q extras %x cas %d (meta said %s)", res.Status, res.Body, res.Extras, res.Cas, cas)
	}
	res = bc.Do(gocachetest.SetRequest(0, "frombin", "binval", 7))
	if res.Status != gm.SUCCESS {
		t.Fatalf("binary SET: %v", res.Status)
	}
	s.cas = ""
	if got := s.do("mg frombin v f c t\r\n"); got != "VA 6 f7 c# t-1\r\nbinval\r\n" || s.cas != fmt.Sprint(res.Cas) {
		t.Fatalf("mg of a binary value: %q (cas %s, binary said %d)", got, s.cas, res.Cas)
	}
	// Text get and gets: the same flags and CAS.
	got := s.do("gets cross\r\n")
	if got == "ERROR\r\n" {
		t.Skip("!!! text get is not served yet: the text-protocol half of this test waits for it")
	}
	if want := fmt.Sprintf("VALUE cross 42 5 %s\r\nhello\r\nEND\r\n", cas); got != want {
		t.Fatalf("gets of a meta value: %q, want %q", got, want)
	}
}

// mg hits on a reused connection allocate nothing in the server, ms
// stores only their item (the client here allocates nothing per command either, so the
// process's count is the server's).
func TestMetaTextAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("measures allocations")
	}
	for _, loops := range []int{0, 2} {
		t.Run(fmt.Sprintf("event loops %d", loops), func(t *testing.T) {
			_, addr := gocachetest.Start(t, gocache.Config{EventLoops: loops})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			value := bytes.Repeat([]byte("v"), 100)
			set := append([]byte("ms alloc 100 T0 F3\r\n"), append(value, "\r\n"...)...)
			get := []byte("mg alloc s v f t c\r\n")
			buf := make([]byte, 4096)
			roundTrip := func(req []byte, want int) {
				if _, err := c.Write(req); err != nil {
					t.Fatal(err)
				}
				for n := 0; n < want; {
					m, err := c.Read(buf)
					if err != nil {
						t.Fatal(err)
					}
					n += m
				}
			}
			roundTrip(set, len("HD\r\n"))
			// The one allocation is the stored item itself (key, value and
			// record in one piece), as for a binary SET.
			a := testing.AllocsPerRun(200, func() { roundTrip(set, len("HD\r\n")) })
			if a > 1.1 {
				t.Errorf("ms: %.2f allocations per command, want the item's 1", a)
			}
			t.Logf("ms: %.2f allocations per command", a)
			// A hit is a header line and the value's: two newlines.
			hit := func() {
				if _, err := c.Write(get); err != nil {
					t.Fatal(err)
				}
				for lines := 0; lines < 2; {
					m, err := c.Read(buf)
					if err != nil {
						t.Fatal(err)
					}
					lines += bytes.Count(buf[:m], []byte("\n"))
				}
			}
			hit()
			a = testing.AllocsPerRun(200, hit)
			if a > 0.1 {
				t.Errorf("mg: %.2f allocations per command", a)
			}
			t.Logf("mg: %.2f allocations per command", a)
		})
	}
}

// E, memcached 1.6.27's flag (1.6.18 refuses it as invalid), gives a
// change the client's CAS: ms, md with I, ma, and an mg that vivifies.
func TestMetaTextExplicitCAS(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	s := dialMeta(t, addr)
	for _, st := range []metaStep{
		{"ms e1 2 E5000 c\r\nhi\r\n", "HD c#\r\n"},
		{"mg e1 c\r\n", "HD c5000\r\n"},
		{"ms e1 2 C5000 E6000 c\r\nho\r\n", "HD c6000\r\n"},
		{"md e1 I E7000\r\n", "HD\r\n"},
		{"mg e1 c v\r\n", "VA 2 c7000 X W\r\nho\r\n"},
		{"ma e2 N0 J1 E8000 c\r\n", "HD c8000\r\n"},
		{"ma e2 E8001 c v\r\n", "VA 1 c8001\r\n2\r\n"},
		{"mg e3 N30 E9000 c\r\n", "HD c9000 W\r\n"},
		{"mg e3 Ex\r\n", "CLIENT_ERROR bad token in command line format\r\n"},
	} {
		got := strings.ReplaceAll(s.do(st.send), " c#", " c"+s.cas) // the mask hides CAS values: put it back
		want := strings.ReplaceAll(st.want, " c#", " c"+s.cas)
		if got != want {
			t.Errorf("%q:\n got  %q\n want %q", st.send, got, want)
		}
	}
}

// A value over the item size limit is refused, its block read and
// dropped, and the key's present value removed, whatever the mode (as
// memcached: a client must not read the value it meant to replace).
func TestMetaTextTooLarge(t *testing.T) {
	big := strings.Repeat("x", 2000)
	steps := []metaStep{
		{"ms tl 2\r\nhi\r\n", "HD\r\n"},
		{"ms tl 2000\r\n" + big + "\r\n", "SERVER_ERROR object too large for cache\r\n"},
		{"mg tl v\r\n", "EN\r\n"},
		{"ms tl 2\r\nhi\r\n", "HD\r\n"},
		{"ms tl 2000 MA q\r\n" + big + "\r\n", "SERVER_ERROR object too large for cache\r\n"},
		{"mg tl v\r\n", "EN\r\n"},
		{"ms tl 900\r\n" + big[:900] + "\r\n", "HD\r\n"},
		{"ms tl 900 MA\r\n" + big[:900] + "\r\n", "NS\r\n"}, // the sum is too large: not stored, the value stays
		{"mg tl s\r\n", "HD s900\r\n"},
	}
	run := func(t *testing.T, addr string) {
		s := dialMeta(t, addr)
		for _, st := range steps {
			if got := s.do(st.send); got != st.want {
				t.Errorf("%.40q:\n got  %q\n want %q", st.send, got, st.want)
			}
		}
	}
	t.Run("memcached", func(t *testing.T) { run(t, peer.Memcached(t, "-I", "1024", "-o", "slab_chunk_max=512")) })
	t.Run("gocache", func(t *testing.T) {
		_, addr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{MaxItemSize: 1024}})
		run(t, addr)
	})
}

// The win token goes to exactly one of many clients racing on one key:
// for a vivifying miss (N), a stale item (after md I) and an item about to
// expire (R), on memcached and on gocache.
func TestMetaTextOneWinner(t *testing.T) {
	run := func(t *testing.T, addr string) {
		setup := dialMeta(t, addr)
		const clients, rounds = 8, 20
		conns := make([]*metaSession, clients)
		for i := range conns {
			conns[i] = dialMeta(t, addr)
		}
		for r := range rounds {
			for _, tc := range []struct{ name, prep, send string }{
				{"vivify", "", "mg w%d-n N30 s t\r\n"},
				{"stale", "ms w%[1]d-i 2\r\nhi\r\nmd w%[1]d-i I\r\n", "mg w%d-i s v\r\n"},
				{"recache", "ms w%d-r 2 T10\r\nhi\r\n", "mg w%d-r R30 s\r\n"},
			} {
				if tc.prep != "" {
					setup.do(fmt.Sprintf(tc.prep, r))
				}
				send := fmt.Sprintf(tc.send, r)
				answers := make([]string, clients)
				errs := make([]error, clients)
				start := make(chan struct{})
				done := make(chan int)
				for i, s := range conns {
					go func() {
						<-start
						s.c.SetDeadline(time.Now().Add(5 * time.Second))
						_, errs[i] = io.WriteString(s.c, send+"mn\r\n")
						for errs[i] == nil {
							var line string
							line, errs[i] = s.r.ReadString('\n')
							if line == "MN\r\n" {
								break
							}
							answers[i] += line
						}
						done <- i
					}()
				}
				close(start)
				for range conns {
					<-done
				}
				wins := 0
				for i, a := range answers {
					if errs[i] != nil {
						t.Fatalf("%s: client %d: %v", tc.name, i, errs[i])
					}
					if strings.Contains(strings.SplitN(a, "\r\n", 2)[0], " W") {
						wins++
					} else if !strings.Contains(a, " Z") {
						t.Errorf("%s round %d: a loser's answer %q has no Z", tc.name, r, a)
					}
				}
				if wins != 1 {
					t.Fatalf("%s round %d: %d winners: %q", tc.name, r, wins, answers)
				}
			}
		}
	}
	t.Run("memcached", func(t *testing.T) { run(t, peer.Memcached(t)) })
	for _, loops := range []int{0, 2} {
		t.Run(fmt.Sprintf("gocache event loops %d", loops), func(t *testing.T) {
			_, addr := gocachetest.Start(t, gocache.Config{EventLoops: loops})
			run(t, addr)
		})
	}
}
