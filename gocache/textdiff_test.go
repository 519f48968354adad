package gocache_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

// The text and meta differential test replays one script of raw text
// exchanges against a fresh memcached 1.6.18 and a fresh gocache (in both
// connection models) and requires byte-identical answers, and the same
// closing of the connection, with these documented exceptions, applied to
// both servers' answers alike:
//   - CAS values are numbered in their order of first appearance in each
//     step's answer (<cas1>, <cas2>, ...), in gets/gats VALUE lines, meta
//     c flags and me's cas=; a step that needs a CAS sends the last one
//     its server answered ($CAS in the script);
//   - the meta flags newer than 1.6.18 (E, the explicit CAS, on ms and
//     mg): those steps compare gocache's answer with the newer
//     protocol.txt's (the step's newer field), and a CAS the step chose
//     with E is shown as is;
//   - the version string (VERSION <v>);
//   - statistics: a run of STAT lines is compared as "STAT lines" (the
//     names and values describe each server; stats.t checks them);
//   - me's cls= and size= (memcached's slab class and item header size);
//   - in steps marked spaces, spaces inside values: memcached pads a
//     shortened counter with spaces or not, as its threads happen to hold
//     the item (see fetched in diff_test.go).
//
// Most steps share one connection and end with "mn\r\n", the meta no-op,
// as a fence: its MN ends the step's answer. Hostile steps (framing that
// a fence could not follow: lines without an end, partial data blocks,
// binary junk, over-long lines) run alone on a new connection and read
// until the server closes it or stays quiet for a while.

const textFence = "mn\r\n"

// textStep is a piece of the script.
type textStep struct {
	name   string
	send   string        // $CAS is replaced by the last CAS the server answered
	alone  bool          // on its own connection, no fence, read until close or quiet
	pieces []string      // alone: sent one after another with a pause between
	sleep  time.Duration // before sending
	spaces bool          // compare values without their spaces
	// newer, if set, is gocache's expected answer (normalised, with the
	// fence's MN): where memcached 1.6.18 and the newer protocol.txt (1.6.45)
	// differ on the meta protocol, gocache follows the newer one.
	newer string
}

// fenced counts the MN answers a step's own mn commands produce.
func (st textStep) fenced() int {
	n := 0
	for _, line := range strings.Split(st.send, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "mn" || strings.HasPrefix(line, "mn ") {
			n++
		}
	}
	return n
}

func tx(name, send string) textStep { return textStep{name: name, send: send} }

func alone(name, send string) textStep { return textStep{name: name, send: send, alone: true} }

// textScript returns the steps: text commands, meta commands, a random mix
// and hostile input.
func textScript() []textStep {
	k250 := strings.Repeat("k", 250)
	k251 := strings.Repeat("k", 251)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	s := []textStep{
		tx("flush_all", "flush_all\r\n"),
		tx("get miss", "get a\r\n"),
		tx("gets miss", "gets a\r\n"),
		tx("set", "set a 5 0 3\r\nabc\r\n"),
		tx("get", "get a\r\n"),
		tx("gets", "gets a\r\n"),
		tx("get three times", "get a a a\r\n"),
		tx("get hits and misses", "get a b a c\r\n"),
		tx("gets several", "set b 6 0 1\r\nB\r\ngets a b c\r\n"),
		tx("get without a key", "get\r\n"),
		tx("gets without a key", "gets\r\n"),
		tx("get with a 250-byte key", "get "+k250+"\r\n"),
		tx("get with a 251-byte key", "get "+k251+"\r\n"),
		tx("get with a 251-byte key after others", "get a b "+k251+"\r\n"),
		tx("set with a 250-byte key", "set "+k250+" 1 0 2\r\nkk\r\nget "+k250+"\r\n"),
		tx("set with a 251-byte key", "set "+k251+" 1 0 2\r\nkk\r\n"),
		tx("get with double spaces", "get  a   b\r\n"),
		tx("get with a leading space", " get a\r\n"),
		tx("get with a tab", "get\ta\r\n"),
		tx("get with trailing spaces", "get a  \r\n"),
		tx("get with a lone newline", "get a\n"),
		tx("set with lone newlines", "set nl 0 0 2\nab\r\nget nl\n"),
		tx("uppercase command", "GET a\r\n"),
		tx("empty line", "\r\n"),
		tx("a space", " \r\n"),
		tx("bogus command", "bogus\r\n"),
		tx("bogus with arguments", "bogus a b c\r\n"),
		tx("nul in a command", "ge\x00t a\r\n"),
		tx("command prefix", "gett a\r\n"),
		tx("two-letter non-meta", "me\r\n"),
		tx("many tokens", "get "+strings.Repeat("x ", 30)+"a\r\n"),

		// Storage commands.
		tx("set flags 2^32-1", "set f 4294967295 0 1\r\nx\r\nget f\r\n"),
		tx("set flags 2^32", "set f 4294967296 0 1\r\nx\r\n"),
		tx("set flags negative", "set f -1 0 1\r\nx\r\n"),
		tx("set flags non-numeric", "set f abc 0 1\r\nx\r\n"),
		tx("set flags with a plus", "set f +5 0 1\r\nx\r\nget f\r\n"),
		tx("set exptime negative", "set e 0 -1 1\r\nx\r\nget e\r\n"),
		tx("set exptime non-numeric", "set e 0 abc 1\r\nx\r\n"),
		tx("set exptime overflowing", "set e 0 99999999999 1\r\nx\r\n"),
		tx("set exptime absolute in the past", "set e 0 2592001 1\r\nx\r\nget e\r\n"),
		tx("set exptime 30 days", "set e 0 2592000 1\r\nx\r\nget e\r\n"),
		tx("set length non-numeric", "set l 0 0 abc\r\nx\r\n"),
		tx("set length negative", "set l 0 0 -1\r\nx\r\n"),
		tx("set length 2^31", "set l 0 0 2147483648\r\n"),
		tx("set length 2^32", "set l 0 0 4294967296\r\n"),
		tx("set length overflowing", "set l 0 0 99999999999999999999\r\n"),
		tx("set too few tokens", "set l 0 0\r\n"),
		tx("set only a key", "set l\r\n"),
		tx("set empty value", "set empty 0 0 0\r\n\r\nget empty\r\n"),
		tx("set with a bogus sixth token", "set g 0 0 1 bogus\r\nx\r\n"),
		tx("set with too many tokens", "set g 0 0 1 noreply extra\r\nx\r\n"),
		tx("set noreply", "set n 1 0 1 noreply\r\nx\r\nget n\r\n"),
		tx("set bad data chunk", "set bad 0 0 1\r\nxyz\r\n"),
		tx("get after bad data chunk", "get bad\r\n"),
		tx("set bad data chunk terminator", "set bad 0 0 2\r\nxy\n\r\n"),
		tx("set value with CRLF inside", "set crlf 0 0 4\r\n\r\n\r\n\r\nget crlf\r\n"),
		tx("set binary value", "set bin 0 0 4\r\n\x00\x80\xff\n\r\nget bin\r\n"),
		tx("set too large", "set big 0 0 1048577\r\n"+strings.Repeat("x", 1048577)+"\r\nget big\r\n"),
		tx("set largest", "set big 0 0 1048000\r\n"+strings.Repeat("y", 1048000)+"\r\n"),
		tx("get largest", "get big\r\n"),
		tx("set too large drops the old value", "set big 0 0 2097152\r\n"+strings.Repeat("z", 2097152)+"\r\nget big\r\n"),
		tx("set too large noreply", "set big 0 0 1048577 noreply\r\n"+strings.Repeat("x", 1048577)+"\r\n"),
		tx("add existing", "add a 0 0 1\r\nx\r\n"),
		tx("add new", "add a2 7 0 2\r\nxy\r\nget a2\r\n"),
		tx("add noreply", "add a2 0 0 1 noreply\r\nx\r\nadd a3 0 0 1 noreply\r\nz\r\nget a2 a3\r\n"),
		tx("replace missing", "replace r 0 0 1\r\nx\r\n"),
		tx("replace", "replace a 9 0 3\r\nxyz\r\nget a\r\n"),
		tx("replace noreply", "replace r 0 0 1 noreply\r\nx\r\nreplace a 0 0 1 noreply\r\nq\r\nget a r\r\n"),
		tx("append missing", "append m 0 0 1\r\nx\r\n"),
		tx("prepend missing", "prepend m 0 0 1\r\nx\r\n"),
		tx("append", "append a 99 0 3\r\n-ap\r\nget a\r\n"),
		tx("prepend", "prepend a 99 0 3\r\npp-\r\nget a\r\n"),
		tx("append noreply", "append a 0 0 1 noreply\r\n!\r\nprepend a 0 0 1 noreply\r\n^\r\nget a\r\n"),
		tx("append bad data chunk", "append a 0 0 1\r\nxx\r\nget a\r\n"),
		tx("append past the item size limit", "set big 0 0 1048000\r\n"+strings.Repeat("y", 1048000)+"\r\nappend big 0 0 1000\r\n"+strings.Repeat("w", 1000)+"\r\n"),
		tx("get big after failed append", "get big\r\n"),

		// CAS.
		tx("cas base", "set c 3 0 1\r\nv\r\ngets c\r\n"),
		tx("cas", "cas c 4 0 1 $CAS\r\nw\r\ngets c\r\n"),
		tx("cas stale", "cas c 0 0 1 1\r\nx\r\n"),
		tx("cas missing", "cas nope 0 0 1 1\r\nx\r\n"),
		tx("cas noreply", "gets c\r\ncas c 5 0 1 $CAS noreply\r\ny\r\ngets c\r\n"),
		tx("cas stale noreply", "cas c 0 0 1 1 noreply\r\nx\r\nget c\r\n"),
		tx("cas without a cas", "cas c 0 0 1\r\nx\r\n"),
		tx("cas non-numeric", "cas c 0 0 1 abc\r\nx\r\n"),
		tx("cas negative", "cas c 0 0 1 -1\r\nx\r\n"),
		tx("cas 0", "cas c 0 0 1 0\r\nx\r\n"),
		tx("cas overflowing", "cas c 0 0 1 18446744073709551616\r\nx\r\n"),
		tx("cas bad data chunk", "gets c\r\ncas c 0 0 1 $CAS\r\nxx\r\nget c\r\n"),
		tx("cas after delete", "gets c\r\ndelete c\r\ncas c 0 0 1 $CAS\r\nx\r\n"),

		// Delete.
		tx("delete", "set d 0 0 1\r\nx\r\ndelete d\r\nget d\r\n"),
		tx("delete missing", "delete d\r\n"),
		tx("delete 0", "set d 0 0 1\r\nx\r\ndelete d 0\r\n"),
		tx("delete with a time", "set d 0 0 1\r\nx\r\ndelete d 1\r\n"),
		tx("delete noreply", "delete d noreply\r\ndelete d noreply\r\nget d\r\n"),
		tx("delete 0 noreply", "set d 0 0 1\r\nx\r\ndelete d 0 noreply\r\nget d\r\n"),
		tx("delete bogus", "delete d bogus\r\n"),
		tx("delete too many", "delete d 0 noreply x\r\n"),
		tx("delete without a key", "delete\r\n"),
		tx("delete a 251-byte key", "delete "+k251+"\r\n"),

		// Counters.
		tx("incr", "set n 0 0 1\r\n5\r\nincr n 10\r\nget n\r\n"),
		tx("decr", "decr n 3\r\nget n\r\n"),
		{name: "decr below 0", send: "decr n 100\r\nget n\r\n", spaces: true},
		tx("incr missing", "incr nope 1\r\n"),
		tx("decr missing", "decr nope 1\r\n"),
		tx("incr non-numeric value", "set nn 0 0 3\r\nabc\r\nincr nn 1\r\n"),
		tx("decr non-numeric value", "decr nn 1\r\n"),
		tx("incr non-numeric delta", "incr n abc\r\n"),
		tx("incr negative delta", "incr n -1\r\n"),
		tx("incr delta 2^64", "incr n 18446744073709551616\r\n"),
		tx("incr delta 2^64-1", "set n 0 0 1\r\n1\r\nincr n 18446744073709551615\r\n"),
		tx("incr wraps", "set n 0 0 20\r\n18446744073709551615\r\nincr n 2\r\n"),
		tx("incr value 2^64", "set n 0 0 20\r\n18446744073709551616\r\nincr n 1\r\n"),
		tx("incr value with spaces", "set n 0 0 3\r\n 12\r\nincr n 1\r\n"),
		tx("incr value with leading zeros", "set n 0 0 5\r\n00012\r\nincr n 1\r\nget n\r\n"),
		tx("incr value negative", "set n 0 0 2\r\n-1\r\nincr n 1\r\n"),
		tx("incr value empty", "set n 0 0 0\r\n\r\nincr n 1\r\n"),
		tx("incr grows", "set n 0 0 2\r\n99\r\nincr n 1\r\nget n\r\n"),
		tx("incr noreply", "set n 0 0 1\r\n1\r\nincr n 5 noreply\r\ndecr n 2 noreply\r\nget n\r\n"),
		tx("incr without a delta", "incr n\r\n"),
		tx("incr too many tokens", "incr n 1 noreply x\r\n"),
		tx("incr a 251-byte key", "incr "+k251+" 1\r\n"),
		tx("incr keeps flags", "set fl 77 0 1\r\n1\r\nincr fl 1\r\ngets fl\r\n"),

		// Touch and get-and-touch.
		tx("touch", "set t 1 0 1\r\nx\r\ntouch t 100\r\n"),
		tx("touch missing", "touch nope 100\r\n"),
		tx("touch non-numeric", "touch t abc\r\n"),
		tx("touch without an exptime", "touch t\r\n"),
		tx("touch noreply", "touch t 100 noreply\r\ntouch nope 1 noreply\r\nget t\r\n"),
		tx("touch into the past", "set tp 0 0 1\r\nx\r\ntouch tp -1\r\nget tp\r\n"),
		tx("gat", "gat 100 t\r\n"),
		tx("gats", "gats 100 t a nope\r\n"),
		tx("gat missing", "gat 100 nope\r\n"),
		tx("gat without a key", "gat 100\r\n"),
		tx("gat without anything", "gat\r\n"),
		tx("gat non-numeric", "gat abc t\r\n"),
		tx("gat into the past", "set tp 0 0 1\r\nx\r\ngat -1 tp\r\nget tp\r\n"),
		tx("gats 251-byte key", "gats 0 t "+k251+"\r\n"),

		// flush_all, version, verbosity, stats.
		tx("flush_all 0", "set fa 0 0 1\r\nx\r\nflush_all 0\r\nget fa\r\n"),
		tx("flush_all noreply", "set fa 0 0 1\r\nx\r\nflush_all noreply\r\nget fa\r\n"),
		tx("flush_all 0 noreply", "flush_all 0 noreply\r\n"),
		tx("flush_all non-numeric", "flush_all abc\r\n"),
		tx("flush_all negative", "flush_all -1\r\n"),
		tx("flush_all too many", "flush_all 0 noreply x\r\n"),
		tx("version", "version\r\n"),
		tx("version with arguments", "version x\r\n"),
		tx("verbosity", "verbosity 1\r\n"),
		tx("verbosity 0", "verbosity 0\r\n"),
		tx("verbosity without a level", "verbosity\r\n"),
		tx("verbosity noreply", "verbosity 1 noreply\r\n"),
		tx("verbosity non-numeric", "verbosity abc\r\n"),
		tx("verbosity too many", "verbosity 1 2 3\r\n"),
		tx("stats", "stats\r\n"),
		tx("stats reset", "stats reset\r\n"),
		tx("stats settings", "stats settings\r\n"),
		// (stats items after flush_all is left out: memcached counts the
		// flushed items its LRU has not yet reclaimed, gocache none.)
		tx("stats items", "set si 0 0 1\r\nx\r\nstats items\r\n"),
		tx("stats slabs", "stats slabs\r\n"),
		tx("stats sizes", "stats sizes\r\n"),
		tx("stats conns", "stats conns\r\n"),
		tx("stats bogus", "stats bogus\r\n"),
		tx("stats too many", "stats a b c d e f\r\n"),
		tx("stats detail bogus", "stats detail bogus\r\n"),
	}

	// The meta protocol.
	s = append(s,
		tx("mn", "mn\r\n"),
		tx("mn with a flag", "mn x\r\n"),
		tx("mg miss", "mg nope\r\n"),
		tx("mg miss with flags", "mg nope v k Oabc t c f s\r\n"),
		tx("mg miss quiet", "mg nope q v\r\nmg nope q k\r\n"),
		tx("ms", "ms m 2\r\nhi\r\n"),
		tx("mg no flags", "mg m\r\n"),
		tx("mg v", "mg m v\r\n"),
		tx("mg every return flag", "mg m v k f s t c h l Oop\r\n"),
		tx("mg flags in another order", "mg m Oop c s f k v\r\n"),
		tx("mg q hit", "mg m q v\r\nmg m q\r\n"),
		tx("mg k hit no v", "mg m k\r\n"),
		tx("ms F T", "ms mf 3 F123 T100\r\nabc\r\nmg mf v f t\r\n"),
		tx("ms F 2^32", "ms mf 1 F4294967296\r\nx\r\n"),
		tx("ms F negative", "ms mf 1 F-1\r\nx\r\n"),
		tx("ms T negative", "ms mf 1 T-1\r\nx\r\nmg mf v\r\n"),
		tx("ms T non-numeric", "ms mf 1 Tabc\r\nx\r\n"),
		tx("ms c k O", "ms mc 1 c k Oxyz\r\nx\r\n"),
		tx("ms q", "ms mq 1 q\r\nx\r\nmg mq v\r\n"),
		tx("ms q failure", "ms mq 1 q ME\r\nx\r\n"),
		tx("ms without a size", "ms mz\r\n"),
		tx("ms size non-numeric", "ms mz abc\r\nx\r\n"),
		tx("ms size negative", "ms mz -1\r\nx\r\n"),
		tx("ms size 2^32", "ms mz 4294967296\r\n"),
		tx("ms without a key", "ms\r\n"),
		tx("ms 251-byte key", "ms "+k251+" 1\r\nx\r\n"),
		tx("ms 250-byte key", "ms "+k250+" 1\r\nx\r\nmg "+k250+" v k\r\n"),
		tx("ms bad data chunk", "ms mb 1\r\nxyz\r\n"),
		tx("ms too large", "ms mbig 1048577\r\n"+strings.Repeat("x", 1048577)+"\r\nmg mbig\r\n"),
		tx("ms too large quiet", "ms mbig 1048577 q\r\n"+strings.Repeat("x", 1048577)+"\r\n"),
		tx("ms invalid flag", "ms mi 1 !\r\nx\r\n"),
		tx("ms duplicate flag", "ms mi 1 T1 T2\r\nx\r\n"),
		tx("ms mode E existing", "ms m 1 ME\r\nx\r\n"),
		tx("ms mode E new", "ms mE 1 ME\r\nx\r\nmg mE v\r\n"),
		tx("ms mode A", "ms m 2 MA\r\n-a\r\nmg m v\r\n"),
		tx("ms mode A missing", "ms mA 1 MA\r\nx\r\n"),
		tx("ms mode P", "ms m 2 MP\r\np-\r\nmg m v\r\n"),
		tx("ms mode P missing", "ms mP 1 MP\r\nx\r\n"),
		tx("ms mode R", "ms m 1 MR\r\nr\r\nmg m v\r\n"),
		tx("ms mode R missing", "ms mR 1 MR\r\nx\r\n"),
		tx("ms mode S", "ms m 1 MS\r\ns\r\nmg m v\r\n"),
		tx("ms mode lowercase", "ms m 1 Ms\r\nx\r\nms m 1 Ma\r\ny\r\nmg m v\r\n"),
		tx("ms mode invalid", "ms m 1 MX\r\nx\r\n"),
		tx("ms mode too long", "ms m 1 MSS\r\nx\r\n"),
		tx("ms mode empty", "ms m 1 M\r\nx\r\n"),
		tx("ms C", "mg m c\r\nms m 1 C$CAS c\r\nz\r\nmg m v c\r\n"),
		tx("ms C stale", "ms m 1 C1\r\nx\r\n"),
		tx("ms C missing", "ms nope 1 C1\r\nx\r\n"),
		tx("ms C non-numeric", "ms m 1 Cabc\r\nx\r\n"),
		tx("ms C mode A", "mg m c\r\nms m 1 MA C$CAS\r\n+\r\nmg m v\r\n"),
		textStep{name: "ms E explicit CAS (newer than 1.6.18)", send: "ms me 1 E12345\r\nx\r\nmg me c\r\n",
			newer: "HD\r\nHD c12345\r\nMN\r\n"},
		tx("ms I invalidate with an older CAS", "ms mI 1 c\r\nx\r\nms mI 1 I C1\r\ny\r\nmg mI v c\r\n"),
		tx("ms b", "ms "+b64("bin\x00key")+" 2 b\r\nbk\r\nmg "+b64("bin\x00key")+" b v k\r\n"),
		tx("ms b bad base64", "ms !!!! 1 b\r\nx\r\n"),
		tx("mg b with a plain key", "mg bin b v\r\n"),
		tx("mg b k on a binary key", "mg "+b64("\x01\x02")+" b k v\r\n"),
		tx("mg a 251-byte key", "mg "+k251+" v\r\n"),
		tx("mg without a key", "mg\r\n"),
		tx("mg invalid flag", "mg m !\r\n"),
		tx("mg duplicate flag", "mg m v v\r\n"),
		tx("mg opaque 32 bytes", "mg m O"+strings.Repeat("o", 31)+"\r\n"),
		tx("mg opaque 33 bytes", "mg m O"+strings.Repeat("o", 32)+"\r\n"),
		tx("mg T touch", "mg m T30 t v\r\n"),
		tx("mg T negative", "ms mt 1\r\nx\r\nmg mt T-1 v\r\nmg mt v\r\n"),
		tx("mg T non-numeric", "mg m Tabc\r\n"),
		tx("mg u", "mg m u v h\r\n"),
		tx("mg h l after fetches", "ms mh 1\r\nx\r\nmg mh h l\r\nmg mh h l\r\n"),
		textStep{name: "mg E (newer than 1.6.18)", send: "mg m c\r\nmg m E5 c\r\nmg m c\r\n",
			newer: "HD c<cas1>\r\nHD c<cas1>\r\nHD c<cas1>\r\nMN\r\n"},
		tx("mg with many flags", "mg m "+strings.Repeat("v ", 30)+"\r\n"),
		tx("mg tokens past the limit", "mg m v k f s t c h l O1 q u N1 R1 T1 a b d e g i j m n o p r w x y z\r\n"),

		// Vivify on miss, recache, stale items: the win, stale and
		// already-won flags.
		tx("mg N vivifies", "mg viv N30 v c t s\r\n"),
		tx("mg N again: already won", "mg viv N30 v c t\r\n"),
		tx("mg N quiet", "mg viv2 N30 q v\r\nmg viv2 N30 q v\r\n"),
		tx("ms clears the win", "ms viv 3 T60\r\nnew\r\nmg viv v\r\n"),
		tx("mg N non-numeric", "mg viv3 Nabc v\r\n"),
		tx("mg N negative", "mg viv4 N-1 v\r\nmg viv4 v\r\n"),
		tx("mg R wins below the TTL", "ms rc 1 T10\r\nx\r\nmg rc R30 v t\r\nmg rc R30 v t\r\n"),
		tx("mg R above the TTL", "ms rc2 1 T100\r\nx\r\nmg rc2 R30 v\r\n"),
		tx("mg R without a TTL", "ms rc3 1\r\nx\r\nmg rc3 R30 v\r\n"),
		tx("md I marks stale", "ms st 3 T100\r\nold\r\nmd st I T30\r\nmg st v c t\r\nmg st v\r\n"),
		tx("ms to a stale item with an older CAS", "ms st 1 I C1\r\nx\r\nmg st v\r\n"),
		tx("ms to a stale item with its CAS", "mg st c\r\nms st 3 C$CAS\r\nnew\r\nmg st v c\r\n"),
		tx("md I q", "ms st2 1\r\nx\r\nmd st2 I q\r\nmg st2 v\r\n"),
		tx("md I missing", "md nope I\r\n"),

		// md.
		tx("md", "ms dl 1\r\nx\r\nmd dl\r\nmg dl\r\n"),
		tx("md missing", "md dl\r\n"),
		tx("md q", "ms dl 1\r\nx\r\nmd dl q\r\nmd dl q\r\nmn\r\n"),
		tx("md k O", "ms dl 1\r\nx\r\nmd dl k Oab\r\nmd dl k Oab\r\n"),
		tx("md C", "ms dl 1\r\nx\r\nmd dl C1\r\nmg dl c\r\nmd dl C$CAS\r\n"),
		tx("md C non-numeric", "md dl Cabc\r\n"),
		tx("md T without I", "ms dl 1\r\nx\r\nmd dl T30\r\nmg dl\r\n"),
		tx("md b", "ms "+b64("del\x00")+" 1 b\r\nx\r\nmd "+b64("del\x00")+" b k\r\n"),
		tx("md invalid flag", "md dl !\r\n"),
		tx("md x (newer than 1.6.18)", "ms dl 1\r\nx\r\nmd dl x\r\nmg dl v\r\n"),
		tx("md without a key", "md\r\n"),
		tx("md a 251-byte key", "md "+k251+"\r\n"),

		// ma.
		tx("ma missing", "ma ctr\r\n"),
		tx("ma missing q", "ma ctr q\r\nmn\r\n"),
		tx("ma N creates with J", "ma ctr N0 J13 v\r\n"),
		tx("ma", "ma ctr v\r\n"),
		tx("ma D", "ma ctr D10 v\r\n"),
		tx("ma MD", "ma ctr MD D4 v\r\n"),
		tx("ma M-", "ma ctr M- v\r\n"),
		tx("ma M+ MI Mi", "ma ctr M+ v\r\nma ctr MI v\r\nma ctr Mi v\r\n"),
		tx("ma Md", "ma ctr Md v\r\n"),
		tx("ma decr below 0", "ma ctr MD D1000 v\r\n"),
		tx("ma wraps", "ms big 20\r\n18446744073709551615\r\nma big v\r\n"),
		tx("ma t c k O", "ma ctr t c k Oqq v\r\n"),
		tx("ma T", "ma ctr T100 t v\r\n"),
		tx("ma no v", "ma ctr\r\n"),
		tx("ma q success", "ma ctr q\r\nmn\r\n"),
		tx("ma N with TTL", "ma ctr2 N100 t v\r\n"),
		tx("ma J without N", "ma ctr3 J5 v\r\n"),
		tx("ma C", "mg ctr c\r\nma ctr C$CAS v\r\nma ctr C1 v\r\n"),
		tx("ma non-numeric value", "ms nn 3\r\nabc\r\nma nn v\r\n"),
		tx("ma D non-numeric", "ma ctr Dabc\r\n"),
		tx("ma D 2^64", "ma ctr D18446744073709551616\r\n"),
		tx("ma J non-numeric", "ma ctr4 N0 Jabc\r\n"),
		tx("ma mode invalid", "ma ctr MX\r\n"),
		tx("ma mode too long", "ma ctr MII\r\n"),
		tx("ma b", "ma "+b64("c\x00")+" b N0 J1 v k\r\n"),
		tx("ma invalid flag", "ma ctr !\r\n"),
		tx("ma without a key", "ma\r\n"),
		tx("ma a 251-byte key", "ma "+k251+"\r\n"),
		tx("ma keeps the value's width", "ms pad 4\r\n1000\r\nma pad MD v\r\nmg pad v\r\n"),

		// me.
		tx("me miss", "me nope\r\n"),
		tx("me", "ms dbg 3 T0\r\nabc\r\nme dbg\r\n"),
		tx("me after a fetch", "mg dbg v\r\nme dbg\r\n"),
		tx("me b", "ms "+b64("dbg\x00")+" 1 b\r\nx\r\nme "+b64("dbg\x00")+" b\r\n"),
		tx("me without a key", "me\r\n"),
		tx("me a 251-byte key", "me "+k251+"\r\n"),

		// Quiet mode fenced by mn: only misses and failures answer.
		tx("quiet pipeline", "ms q1 1 q\r\n1\r\nms q2 1 q MA\r\n2\r\nmg q1 q v k\r\nmg nope q v\r\nmd nope q\r\n"+
			"md q1 q\r\nma nope q\r\nma q3 q N0 J7\r\nmg q3 q v\r\nmn\r\n"),
		tx("text and meta share items", "set shared 42 0 5\r\nhello\r\nmg shared v f c\r\nms shared 5 F7\r\nworld\r\ngets shared\r\n"),
	)

	// A deterministic random mix of text and meta over a few keys.
	rng := rand.New(rand.NewPCG(2026, 12))
	keys := []string{"r0", "r1", "r2", "r3"}
	for i := range 300 {
		key := keys[rng.IntN(len(keys))]
		value := strings.Repeat(string(rune('a'+rng.IntN(26))), rng.IntN(200))
		if rng.IntN(3) == 0 {
			value = strconv.Itoa(rng.IntN(1000))
		}
		flags := rng.IntN(5)
		var cmd string
		switch rng.IntN(16) {
		case 0:
			cmd = fmt.Sprintf("set %s %d 0 %d\r\n%s\r\n", key, flags, len(value), value)
		case 1:
			cmd = fmt.Sprintf("add %s %d 0 %d\r\n%s\r\n", key, flags, len(value), value)
		case 2:
			cmd = fmt.Sprintf("replace %s %d 0 %d\r\n%s\r\n", key, flags, len(value), value)
		case 3:
			cmd = fmt.Sprintf("append %s 0 0 %d\r\n%s\r\n", key, len(value), value)
		case 4:
			cmd = fmt.Sprintf("prepend %s 0 0 %d\r\n%s\r\n", key, len(value), value)
		case 5:
			cmd = fmt.Sprintf("delete %s\r\n", key)
		case 6:
			cmd = fmt.Sprintf("incr %s %d\r\n", key, rng.IntN(50))
		case 7:
			cmd = fmt.Sprintf("decr %s %d\r\n", key, rng.IntN(50))
		case 8:
			cmd = fmt.Sprintf("gets %s %s\r\n", key, keys[rng.IntN(len(keys))])
		case 9:
			cmd = fmt.Sprintf("ms %s %d F%d\r\n%s\r\n", key, len(value), flags, value)
		case 10:
			cmd = fmt.Sprintf("mg %s v f s k c\r\n", key)
		case 11:
			cmd = fmt.Sprintf("ma %s N0 J%d v\r\n", key, rng.IntN(100))
		case 12:
			cmd = fmt.Sprintf("md %s q\r\n", key)
		case 13:
			cmd = fmt.Sprintf("ms %s %d MA\r\n%s\r\n", key, len(value), value)
		default:
			cmd = fmt.Sprintf("get %s\r\n", key)
		}
		s = append(s, textStep{name: fmt.Sprintf("random %d %s", i, cmd[:strings.IndexByte(cmd, ' ')]), send: cmd, spaces: true})
	}

	// Expiry, after the mix.
	s = append(s,
		tx("expiring set", "set ex1 0 1 1\r\nx\r\nms ex2 1 T1\r\ny\r\nset ex3 0 100 1\r\nz\r\ntouch ex3 1\r\n"),
		textStep{name: "after 2.1 s", send: "get ex1 ex2 ex3\r\nmg ex2 v\r\n", sleep: 2100 * time.Millisecond},
	)

	// Hostile input, each on its own connection.
	tenK := make([]string, 10000)
	for i := range tenK {
		tenK[i] = "k" + strconv.Itoa(i%50)
	}
	binGet, _ := (&gm.MCRequest{Opcode: gm.GET, Key: []byte("a"), Opaque: 7}).AppendTo(nil)
	binNoop, _ := (&gm.MCRequest{Opcode: gm.NOOP, Opaque: 8}).AppendTo(nil)
	s = append(s,
		alone("a line without its end", "get a"),
		alone("a line ending in a lone CR", "get a\r"),
		alone("a lone newline", "\n"),
		alone("lone newlines", "get a\nget b\nmn\n"),
		alone("a 1 MiB line without a newline", strings.Repeat("a", 1<<20)),
		alone("a 1 MiB line with a newline", strings.Repeat("a", 1<<20)+"\r\n"),
		alone("a 1 MiB set line", "set "+strings.Repeat("a", 1<<20)+" 0 0 1\r\nx\r\n"),
		alone("2048 bytes without a newline", strings.Repeat("b", 2048)),
		alone("2049 bytes without a newline", strings.Repeat("b", 2049)),
		alone("a get line of 1 MiB without a newline", "get "+strings.Repeat("k ", 1<<19)),
		alone("a gets line of 1 MiB without a newline", "gets "+strings.Repeat("k ", 1<<19)),
		alone("a mg line of 4 KiB without a newline", "mg "+strings.Repeat("k", 4096)),
		alone("a 10k-key get", "set k7 0 0 2\r\nv7\r\nget "+strings.Join(tenK, " ")+"\r\nmn\r\n"),
		alone("a 10k-key gets", "gets "+strings.Join(tenK, " ")+"\r\nmn\r\n"),
		alone("a 10k-key get with lone newline", "get "+strings.Join(tenK, " ")+"\nmn\r\n"),
		alone("a data block shorter than announced", "set short 0 0 10\r\nabc\r\n"),
		textStep{name: "a data block completed later", alone: true, pieces: []string{"set short 0 0 10\r\nabc\r\n", "get a\r\n", "get short\r\n"}},
		alone("a data block longer than announced", "set long 0 0 1\r\nabcdef\r\nget long\r\n"),
		alone("a data block without its CRLF", "set nocrlf 0 0 3\r\nabcXYget nocrlf\r\n"),
		alone("a meta data block longer than announced", "ms long 1\r\nabcdef\r\nmg long v\r\n"),
		alone("a negative length then its data", "set neg 0 0 -5\r\nhello\r\nget neg\r\n"),
		alone("an overflowing length then data", "set ovf 0 0 18446744073709551617\r\nhello\r\nget ovf\r\n"),
		// A value over the item size limit is read and dropped: memcached
		// answers once it has swallowed it all, gocache may answer at
		// once; what each has sent by the end is compared.
		textStep{name: "a too-large length, data sent later", alone: true, pieces: []string{
			"set huge 0 0 2097152\r\n", strings.Repeat("h", 1<<20), strings.Repeat("h", 1<<20) + "\r\nget huge\r\nget a\r\n"}},
		alone("an overflowing exptime", "set ovx 0 18446744073709551616 1\r\nx\r\nget ovx\r\n"),
		alone("a negative exptime overflowing int32", "set ovx 0 -2147483649 1\r\nx\r\nget ovx\r\n"),
		alone("binary junk after a text command", "get a\r\n\x80\x01\x02\x03\xff\xfe\r\nget a\r\n"),
		alone("a binary packet after text commands", "set a 0 0 1\r\nx\r\nget a\r\n"+string(binGet)+string(binNoop)),
		alone("a binary packet then text", string(binNoop)+"get a\r\n"),
		alone("nul bytes", "\x00\x00\x00\x00\r\nget a\r\n"),
		alone("a high byte first", "\xffget a\r\n"),
		alone("quit", "quit\r\nget a\r\n"),
		alone("quit with arguments", "quit now\r\nget a\r\n"),
		alone("mn without CRLF then quit", "mn\nquit\n"),
		alone("many commands in one write", strings.Repeat("get a\r\n", 2000)+"mn\r\n"),
		alone("many sets in one write", strings.Repeat("set p 0 0 1 noreply\r\nx\r\n", 2000)+"get p\r\nmn\r\n"),
		alone("a key with control bytes", "set ctl\x01\x7f 0 0 1\r\nx\r\nget ctl\x01\x7f\r\n"),
		alone("a key with a high byte", "set k\xff 0 0 1\r\nx\r\nget k\xff\r\nmg k\xff v\r\n"),

		// The connection the script shares saw none of that.
		tx("the shared connection after hostile input", "get a\r\nmg a v\r\n"),
	)
	return s
}

// textTranscript is what a server answered to one step, normalised.
type textTranscript struct {
	answer string
	closed bool
}

// normaliser numbers one server's CAS values in their order of first
// appearance and remembers the last, raw, for $CAS.
type normaliser struct {
	cas  map[string]string
	last string
	send string // the step's commands: a CAS they chose (E<n>) is kept
}

func (n *normaliser) token(raw string) string {
	n.last = raw
	if strings.Contains(n.send, "E"+raw+"\r") || strings.Contains(n.send, "E"+raw+" ") {
		return raw
	}
	if t, ok := n.cas[raw]; ok {
		return t
	}
	if n.cas == nil {
		n.cas = map[string]string{}
	}
	t := fmt.Sprintf("<cas%d>", len(n.cas)+1)
	n.cas[raw] = t
	return t
}

// normalise rewrites a server's answer with the documented exceptions.
func (n *normaliser) normalise(raw []byte, spaces bool) string {
	var out strings.Builder
	inStats := false
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			out.WriteString("<partial>" + string(raw))
			break
		}
		line := string(raw[:i+1])
		raw = raw[i+1:]
		tok := strings.Fields(line)
		if len(tok) > 0 && tok[0] == "STAT" {
			if !inStats {
				out.WriteString("<STAT lines>\r\n")
			}
			inStats = true
			continue
		}
		inStats = false
		data := -1
		switch {
		case len(tok) >= 4 && tok[0] == "VALUE":
			if len(tok) == 5 {
				tok[4] = n.token(tok[4])
			}
			data, _ = strconv.Atoi(tok[3])
			line = strings.Join(tok, " ") + "\r\n"
		case len(tok) >= 1 && (tok[0] == "VA" || tok[0] == "HD" || tok[0] == "EN" || tok[0] == "NF" || tok[0] == "NS" || tok[0] == "EX"):
			for j := 1; j < len(tok); j++ {
				if len(tok[j]) > 1 && tok[j][0] == 'c' && tok[j][1] >= '0' && tok[j][1] <= '9' {
					tok[j] = "c" + n.token(tok[j][1:])
				}
			}
			if tok[0] == "VA" && len(tok) >= 2 {
				data, _ = strconv.Atoi(tok[1])
			}
			line = strings.Join(tok, " ") + "\r\n"
		case len(tok) >= 1 && tok[0] == "ME":
			for j := 2; j < len(tok); j++ {
				switch {
				case strings.HasPrefix(tok[j], "cas="):
					tok[j] = "cas=" + n.token(tok[j][4:])
				case strings.HasPrefix(tok[j], "cls="):
					tok[j] = "cls=N"
				case strings.HasPrefix(tok[j], "size="):
					tok[j] = "size=N"
				}
			}
			line = strings.Join(tok, " ") + "\r\n"
		case len(tok) >= 1 && tok[0] == "VERSION":
			line = "VERSION <v>\r\n"
		}
		out.WriteString(line)
		if data >= 0 {
			if data+2 > len(raw) {
				out.WriteString("<partial>" + string(raw))
				break
			}
			block := string(raw[:data+2])
			if spaces {
				block = strings.ReplaceAll(block, " ", "")
			}
			out.WriteString(block)
			raw = raw[data+2:]
		}
	}
	return out.String()
}

// textConn is a connection and what it has read.
type textConn struct {
	c      net.Conn
	buf    []byte
	eof    bool
	writes chan []byte
}

func dialText(t *testing.T, addr string) *textConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tc := &textConn{c: c, writes: make(chan []byte, 8)}
	go func() {
		for p := range tc.writes {
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			c.Write(p) // an error: the server closed, which the reads see
		}
	}()
	return tc
}

// send writes p in the background, in order (a server may close before
// reading it all, or answer before it has read it all).
func (tc *textConn) send(p []byte) { tc.writes <- p }

func (tc *textConn) close() {
	close(tc.writes)
	tc.c.Close()
}

// readUntil reads until done says the answer is complete, the server
// closes, or nothing arrives for quiet (at most 1 s once part of an
// answer has come), all within limit.
func (tc *textConn) readUntil(done func([]byte) bool, quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	chunk := make([]byte, 64<<10)
	for !tc.eof && (done == nil || !done(tc.buf)) {
		wait := quiet
		if len(tc.buf) > 0 && wait > time.Second {
			wait = time.Second // an answer came but no fence
		}
		d := time.Now().Add(wait)
		if d.After(deadline) {
			d = deadline
		}
		tc.c.SetReadDeadline(d)
		n, err := tc.c.Read(chunk)
		tc.buf = append(tc.buf, chunk[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return
			}
			// EOF, or a reset: the server closed.
			tc.eof = true
			return
		}
	}
}

// fencedDone returns a test that an answer ends with the fence's MN, the
// step's own mn answers (want of them) coming before it.
func fencedDone(want int) func([]byte) bool {
	return func(b []byte) bool {
		if !bytes.HasSuffix(b, []byte("MN\r\n")) {
			return false
		}
		n := 0
		for line := range bytes.Lines(b) {
			if string(line) == "MN\r\n" {
				n++
			}
		}
		return n >= want+1
	}
}

// playText runs the script against addr.
func playText(t *testing.T, addr string, steps []textStep) []textTranscript {
	t.Helper()
	var n normaliser
	out := make([]textTranscript, len(steps))
	shared := dialText(t, addr)
	defer func() { shared.close() }()
	unfenced := 0
	for i, st := range steps {
		if unfenced > 50 {
			// The server does not follow the script's framing: stop
			// rather than wait out every step.
			for j := i; j < len(steps); j++ {
				out[j].answer = "<not run: more than 50 steps without a fence>"
			}
			break
		}
		time.Sleep(st.sleep)
		n.cas, n.send = nil, st.send // CAS values are numbered per step
		last := n.last
		if last == "" {
			last = "0"
		}
		if st.alone {
			tc := dialText(t, addr)
			pieces := st.pieces
			if pieces == nil {
				pieces = []string{st.send}
			}
			for _, p := range pieces {
				tc.send([]byte(p))
				tc.readUntil(nil, 500*time.Millisecond, 10*time.Second)
			}
			tc.close()
			out[i] = textTranscript{answer: n.normalise(tc.buf, st.spaces), closed: tc.eof}
			continue
		}
		send := strings.ReplaceAll(st.send, "$CAS", last) + textFence
		shared.buf = shared.buf[:0]
		shared.send([]byte(send))
		shared.readUntil(fencedDone(st.fenced()), 2*time.Second, 10*time.Second)
		out[i] = textTranscript{answer: n.normalise(shared.buf, st.spaces), closed: shared.eof}
		if !shared.eof && !fencedDone(st.fenced())(shared.buf) {
			out[i].answer += "<no fence>"
		}
		if shared.eof || !fencedDone(st.fenced())(shared.buf) {
			if !shared.eof {
				unfenced++
			}
			shared.close()
			shared = dialText(t, addr)
		}
	}
	return out
}

// compareText requires gocache's transcripts to be memcached's.
func compareText(t *testing.T, steps []textStep, mc, gc []textTranscript) int {
	t.Helper()
	diffs := 0
	for i, st := range steps {
		a, b := mc[i], gc[i]
		if st.newer != "" {
			if b.answer != st.newer || b.closed {
				diffs++
				t.Errorf("step %d %q (newer than memcached 1.6.18):\n sent:      %s\n want:      %q\n gocache:   %q closed=%v",
					i, st.name, clip(st.send, nil), st.newer, b.answer, b.closed)
			}
			continue
		}
		if a == b {
			continue
		}
		diffs++
		if diffs <= 40 {
			t.Errorf("step %d %q:\n sent:      %s\n memcached: %s closed=%v\n gocache:   %s closed=%v",
				i, st.name, clip(st.send, st.pieces), clip(a.answer, nil), a.closed, clip(b.answer, nil), b.closed)
		}
	}
	if diffs > 40 {
		t.Errorf("%d more differences left out", diffs-40)
	}
	return diffs
}

// clip quotes s (or its pieces) for a message, long runs shortened.
func clip(s string, pieces []string) string {
	if pieces != nil {
		s = strings.Join(pieces, "<pause>")
	}
	if len(s) > 300 {
		return fmt.Sprintf("%q...(%d bytes)...%q", s[:200], len(s), s[len(s)-60:])
	}
	return strconv.Quote(s)
}

func TestTextDifferentialAgainstMemcached(t *testing.T) {
	steps := textScript()
	start := time.Now()
	mc := playText(t, peer.Memcached(t, "-t", "2"), steps)
	t.Logf("memcached played %d steps in %v", len(steps), time.Since(start).Round(time.Millisecond))
	if path := os.Getenv("TEXTDIFF_DUMP"); path != "" {
		// TEXTDIFF_DUMP=file writes memcached's answers, step by step.
		var b strings.Builder
		for i, st := range steps {
			fmt.Fprintf(&b, "step %d %q\n sent: %s\n got:  %s closed=%v\n", i, st.name, clip(st.send, st.pieces), clip(mc[i].answer, nil), mc[i].closed)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The script is deterministic on memcached itself.
	again := playText(t, peer.Memcached(t, "-t", "2"), steps)
	for i := range steps {
		if steps[i].newer == "" && mc[i] != again[i] {
			t.Fatalf("memcached answers step %d %q differently on a second run:\n %s closed=%v\n %s closed=%v",
				i, steps[i].name, clip(mc[i].answer, nil), mc[i].closed, clip(again[i].answer, nil), again[i].closed)
		}
	}
	for _, loops := range []int{0, -1} {
		t.Run(fmt.Sprintf("event loops %d", loops), func(t *testing.T) {
			_, addr := gocachetest.Start(t, gocache.Config{EventLoops: loops})
			gc := playText(t, addr, steps)
			if d := compareText(t, steps, mc, gc); d > 0 {
				t.Logf("%d of %d steps differ", d, len(steps))
			} else {
				t.Logf("%d steps: memcached and gocache answered alike", len(steps))
			}
		})
	}
}
