package gocache_test

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// lru_crawler's answers, as memcached 1.6.18 gives them, from a server
// started with its crawler off. No step starts a crawl while one that
// was just started may still run (that answer is BUSY). Not here:
// "metadump ," (gocache answers NOTSTARTED no items to crawl, as
// memcached does, but memcached keeps the connection as its dump's
// client all the same and hands it back when its crawler stops, which
// upsets the connection).
func TestCrawlerCommands(t *testing.T) {
	steps := []tpStep{
		{"lru_crawler crawl 1\r\n", "CLIENT_ERROR lru crawler disabled\r\n"},
		{"lru_crawler crawl hash\r\n", "CLIENT_ERROR lru crawler disabled\r\n"},
		{"lru_crawler metadump all\r\n", "CLIENT_ERROR lru crawler disabled\r\n"},
		{"lru_crawler sleep 0\r\n", "OK\r\n"},
		{"lru_crawler tocrawl 5\r\n", "OK\r\n"},
		{"lru_crawler disable\r\n", "OK\r\n"},
		{"lru_crawler enable\r\n", "OK\r\n"},
		{"lru_crawler enable\r\n", "ERROR failed to start lru crawler thread\r\n"},
		{"lru_crawler crawl hash\r\n", "ERROR an unknown error happened\r\n"},
		{"lru_crawler crawl ,\r\n", "NOTSTARTED no items to crawl\r\n"},
		{"lru_crawler crawl 0\r\n", "BADCLASS invalid class id\r\n"},
		{"lru_crawler crawl 64\r\n", "BADCLASS invalid class id\r\n"},
		{"lru_crawler crawl -1\r\n", "BADCLASS invalid class id\r\n"},
		{"lru_crawler crawl 1,x\r\n", "BADCLASS invalid class id\r\n"},
		{"lru_crawler crawl 1,,99\r\n", "BADCLASS invalid class id\r\n"},
		{"lru_crawler metadump 0\r\n", "BADCLASS invalid class id\r\n"},
		{"lru_crawler sleep 1000001\r\n", "CLIENT_ERROR sleep must be one second or less\r\n"},
		{"lru_crawler sleep x\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"lru_crawler sleep 1000000\r\n", "OK\r\n"},
		{"lru_crawler sleep 100\r\n", "OK\r\n"},
		{"lru_crawler tocrawl -1\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"lru_crawler tocrawl 4294967296\r\n", "OK\r\n"}, // safe_strtoul's truncation
		{"lru_crawler\r\n", "ERROR\r\n"},
		{"lru_crawler foo\r\n", "ERROR\r\n"},
		{"lru_crawler crawl\r\n", "ERROR\r\n"},
		{"lru_crawler crawl 1 2\r\n", "ERROR\r\n"},
		{"lru_crawler enable x\r\n", "ERROR\r\n"},
		{"lru_crawler metadump\r\n", "ERROR\r\n"},
		{"lru_crawler mgdump 1\r\n", "ERROR\r\n"}, // 1.6.18 has no mgdump
		{"lru_crawler disable\r\n", "OK\r\n"},
		{"lru_crawler disable\r\n", "OK\r\n"},
	}
	tpServers(t, []string{"-o", "no_lru_crawler"}, gocache.Config{}, func(t *testing.T, addr string) {
		s := dialTP(t, addr)
		if got := tpStat(t, s, "stats settings", "lru_crawler"); got != "no" {
			t.Errorf("stats settings: lru_crawler %s, want no", got)
		}
		for _, st := range steps {
			if got := s.do(st.send); got != st.want {
				t.Errorf("%q:\n got  %q\n want %q", st.send, got, st.want)
			}
		}
		// memcached's crawler thread turns the setting off as it ends,
		// soon after the OK (lru-crawler.t waits for it too).
		for i := 0; i < 20 && tpStat(t, s, "stats settings", "lru_crawler") != "no"; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		for name, want := range map[string]string{"lru_crawler": "no", "lru_crawler_sleep": "100", "lru_crawler_tocrawl": "0"} {
			if got := tpStat(t, s, "stats settings", name); got != want {
				t.Errorf("stats settings: %s %s, want %s", name, got, want)
			}
		}
	})
}

// crawlerConfig is gocache with its crawler on and no sweeper, as
// cmd/gocache runs for memcached's -o no_modern,lru_crawler.
var crawlerConfig = gocache.Config{
	Settings: map[string]string{"lru_crawler": "yes"},
	Cache:    cache.Config{SweepInterval: -1},
}

var crawlerArgs = []string{"-o", "no_modern,lru_crawler"}

// waitCrawl waits for the crawl under way to end.
func waitCrawl(t *testing.T, s *tpSession) {
	t.Helper()
	for range 100 {
		if tpStat(t, s, "stats", "lru_crawler_running") == "0" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the crawl does not end")
}

// A crawl reclaims, in the background, what has expired in the classes
// it is given, and counts it.
func TestCrawlerReclaims(t *testing.T) {
	tpServers(t, crawlerArgs, crawlerConfig, func(t *testing.T, addr string) {
		s := dialTP(t, addr)
		var send strings.Builder
		for i := range 30 {
			fmt.Fprintf(&send, "set keep%d 0 0 2 noreply\r\nok\r\nset short%d 0 1 2 noreply\r\nok\r\n", i, i)
		}
		if got := s.do(send.String()); got != "" {
			t.Fatalf("sets: %q", got)
		}
		time.Sleep(2100 * time.Millisecond)
		if got := tpStat(t, s, "stats slabs", "1:used_chunks"); got != "60" {
			t.Errorf("used_chunks %s before the crawl, want 60", got)
		}
		if got := s.do("lru_crawler crawl 2,3\r\n"); got != "OK\r\n" { // other classes: nothing to do
			t.Fatalf("crawl 2,3: %q", got)
		}
		waitCrawl(t, s)
		if got := s.do("lru_crawler crawl 1\r\n"); got != "OK\r\n" {
			t.Fatalf("crawl 1: %q", got)
		}
		waitCrawl(t, s)
		for _, c := range []struct{ cmd, name, want string }{
			{"stats slabs", "1:used_chunks", "30"},
			{"stats items", "items:1:crawler_reclaimed", "30"},
			{"stats items", "items:1:crawler_items_checked", "60"},
			{"stats items", "items:1:expired_unfetched", "30"},
			{"stats", "crawler_reclaimed", "30"},
			{"stats", "reclaimed", "0"}, // memcached counts the crawler's apart
			{"stats items", "items:1:reclaimed", "0"},
			{"stats", "crawler_items_checked", "60"},
			{"stats", "lru_crawler_starts", "2"},
			{"stats", "curr_items", "30"},
		} {
			if got := tpStat(t, s, c.cmd, c.name); got != c.want {
				t.Errorf("%s: %s %s, want %s", c.cmd, c.name, got, c.want)
			}
		}
		if got := s.do("get keep1 short1\r\n"); got != "VALUE keep1 0 2\r\nok\r\nEND\r\n" {
			t.Errorf("get after the crawl: %q", got)
		}
		// Every item gone, the class stays, its chunks free.
		if got := s.do("flush_all\r\nlru_crawler crawl all\r\n"); got != "OK\r\nOK\r\n" {
			t.Errorf("flush and crawl: %q", got)
		}
		waitCrawl(t, s)
		if got := tpStat(t, s, "stats slabs", "1:used_chunks"); got != "0" {
			t.Errorf("used_chunks %s after flush and crawl, want 0", got)
		}
		if got := s.do("stats reset\r\n"); got != "RESET\r\n" {
			t.Errorf("stats reset: %q", got)
		}
		if got := tpStat(t, s, "stats", "crawler_reclaimed"); got != "0" {
			t.Errorf("crawler_reclaimed %s after stats reset", got)
		}
	})
}

// metadump reads a metadump's lines up to END, sorted, with the times and
// CAS values (which differ between servers) masked.
func metadump(t *testing.T, s *tpSession, cmd string) []string {
	t.Helper()
	s.c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(s.c, cmd); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("%q: %v after %d lines", cmd, err, len(lines))
		}
		if line == "END\r\n" {
			break
		}
		lines = append(lines, dumpTimes.ReplaceAllString(line, "$1#"))
	}
	slices.Sort(lines)
	return lines
}

var dumpTimes = regexp.MustCompile(`( la=| cas=| exp=)[0-9]+`)

// metadump lists the live items, as memcached does, and the connection
// goes on after it.
func TestCrawlerMetadump(t *testing.T) {
	tpServers(t, crawlerArgs, crawlerConfig, func(t *testing.T, addr string) {
		s := dialTP(t, addr)
		send := "set plain 0 0 2\r\nok\r\nset flagged 5 3600 2\r\nok\r\nset b%20x 0 0 3\r\nabc\r\n" +
			"set gone 0 1 1\r\nx\r\nset big 0 0 600\r\n" + strings.Repeat("v", 600) + "\r\nget plain\r\n"
		if got := s.do(send); !strings.HasSuffix(got, "VALUE plain 0 2\r\nok\r\nEND\r\n") {
			t.Fatalf("sets: %q", got)
		}
		time.Sleep(2100 * time.Millisecond) // memcached's clock: past its second
		want := []string{
			"key=b%2520x exp=-1 la=# cas=# fetch=no cls=1 size=67\n",
			"key=big exp=-1 la=# cas=# fetch=no cls=10 size=662\n",
			"key=flagged exp=# la=# cas=# fetch=no cls=1 size=72\n",
			"key=plain exp=-1 la=# cas=# fetch=yes cls=1 size=66\n",
		}
		for _, cmd := range []string{"lru_crawler metadump all\r\n", "lru_crawler metadump hash\r\n"} {
			if got := metadump(t, s, cmd); !slices.Equal(got, want) {
				t.Errorf("%q:\n got  %q\n want %q", cmd, got, want)
			}
		}
		want = slices.Delete(want, 1, 2)
		if got := metadump(t, s, "lru_crawler metadump 1,2\r\n"); !slices.Equal(got, want) {
			t.Errorf("metadump 1,2:\n got  %q\n want %q", got, want)
		}
		if got := metadump(t, s, "lru_crawler metadump 5\r\n"); len(got) != 0 {
			t.Errorf("metadump 5: %q", got)
		}
		if got := s.do("get plain\r\n"); got != "VALUE plain 0 2\r\nok\r\nEND\r\n" {
			t.Errorf("get after the dumps: %q", got)
		}
	})
}

// Commands queued before a metadump refuse it.
func TestCrawlerMetadumpPipelined(t *testing.T) {
	if _, ok := any(memcached.ResponseWriter{}).(interface{ Buffered() int }); !ok {
		t.Skip("server.ResponseWriter has no Buffered: gocache cannot tell answers are queued")
	}
	tpServers(t, crawlerArgs, crawlerConfig, func(t *testing.T, addr string) {
		s := dialTP(t, addr)
		want := "EN\r\nERROR cannot pipeline other commands before metadump\r\n"
		if got := s.do("mg foo v\r\nlru_crawler metadump all\r\n"); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

// A metadump of many items streams each once, whichever the connection
// model, and leaves the connection usable.
func TestCrawlerMetadumpMany(t *testing.T) {
	const n = 50000
	tpServers(t, crawlerArgs, crawlerConfig, func(t *testing.T, addr string) {
		s := dialTP(t, addr)
		var send strings.Builder
		for i := range n {
			fmt.Fprintf(&send, "set many%d 0 0 1 noreply\r\nz\r\n", i)
		}
		if got := s.do(send.String()); got != "" {
			t.Fatalf("sets: %q", got)
		}
		for _, cmd := range []string{"lru_crawler metadump hash\r\n", "lru_crawler metadump all\r\n"} {
			lines := metadump(t, s, cmd)
			if len(lines) != n || len(slices.Compact(lines)) != n {
				t.Errorf("%q: %d lines, want %d distinct", cmd, len(lines), n)
			}
		}
		if got := s.do("get many7\r\n"); got != "VALUE many7 0 1\r\nz\r\nEND\r\n" {
			t.Errorf("get after the dump: %q", got)
		}
	})
}

// While a crawl runs, another crawl or a metadump is refused.
func TestCrawlerBusy(t *testing.T) {
	tpServers(t, crawlerArgs, crawlerConfig, func(t *testing.T, addr string) {
		s := dialTP(t, addr)
		var send strings.Builder
		for i := range 3000 {
			fmt.Fprintf(&send, "set busy%d 0 0 1 noreply\r\nz\r\n", i)
		}
		send.WriteString("lru_crawler sleep 1000000\r\n")
		if got := s.do(send.String()); got != "OK\r\n" {
			t.Fatalf("sets: %q", got)
		}
		if got := s.do("lru_crawler crawl all\r\n"); got != "OK\r\n" {
			t.Fatalf("crawl: %q", got)
		}
		busy := "BUSY currently processing crawler request\r\n"
		for _, cmd := range []string{"lru_crawler crawl 1\r\n", "lru_crawler metadump all\r\n"} {
			if got := s.do(cmd); got != busy {
				t.Errorf("%q during a crawl: %q", cmd, got)
			}
		}
		if got := tpStat(t, s, "stats", "lru_crawler_running"); got != "1" {
			t.Errorf("lru_crawler_running %s during a crawl", got)
		}
		if got := s.do("lru_crawler sleep 0\r\n"); got != "OK\r\n" {
			t.Fatalf("sleep 0: %q", got)
		}
		waitCrawl(t, s)
		if got := tpStat(t, s, "stats", "crawler_items_checked"); got != "3000" {
			t.Errorf("crawler_items_checked %s, want 3000", got)
		}
	})
}
