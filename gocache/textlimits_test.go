package gocache_test

import (
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached/gocache"
)

// memcached's -o read_buf_mem_limit, split between its -t workers, bounds
// the response objects a connection may queue: a multi-key get that needs
// more answers "SERVER_ERROR out of memory writing get response", stacked
// pipelined answers over it close the connection unanswered, and both count
// in response_obj_oom (memcached's conn-limits.t, checked against
// memcached itself). A get within the limit, and any get without one, is
// answered.
func TestTextReadBufMemLimit(t *testing.T) {
	keys := strings.TrimSuffix(strings.Repeat("foo ", 500), " ")
	tpServers(t, []string{"-o", "read_buf_mem_limit=1", "-t", "32", "-R", "500"},
		gocache.Config{ReadBufMemLimit: 1 << 20, Threads: 32, ReqsPerEvent: 500},
		func(t *testing.T, addr string) {
			s := dialTP(t, addr)
			if got := s.do("set foo 0 0 1\r\nx\r\n"); got != "STORED\r\n" {
				t.Fatalf("set: %q", got)
			}
			if got, want := s.do("get foo foo foo\r\n"), strings.Repeat("VALUE foo 0 1\r\nx\r\n", 3)+"END\r\n"; got != want {
				t.Errorf("get of 3 keys: %q, want %q", got, want)
			}
			if got := tpStat(t, s, "stats", "response_obj_oom"); got != "0" {
				t.Errorf("response_obj_oom %s before any failure", got)
			}
			if got, want := s.do("get "+keys+"\r\n"), "SERVER_ERROR out of memory writing get response\r\n"; got != want {
				t.Errorf("get of 500 keys: %.80q, want %q", got, want)
			}
			if got := tpStat(t, s, "stats", "response_obj_oom"); got != "1" {
				t.Errorf("response_obj_oom %s after the get", got)
			}

			stacked := dialTP(t, addr)
			io.WriteString(stacked.c, strings.Repeat("mg foo v\r\n", 500))
			if got, closed := stacked.readAll(); got != "" || !closed {
				t.Errorf("500 stacked mg: read %.80q, closed %v; want the connection closed unanswered", got, closed)
			}
			if n, _ := strconv.Atoi(tpStat(t, s, "stats", "response_obj_oom")); n < 2 {
				t.Errorf("response_obj_oom %d after the stacked mg", n)
			}
			if got := s.do("get foo\r\n"); got != "VALUE foo 0 1\r\nx\r\nEND\r\n" {
				t.Errorf("get after: %q", got)
			}
		})
}

// Without read_buf_mem_limit nothing is refused: the same get is
// answered, and nothing counted.
func TestTextNoReadBufMemLimit(t *testing.T) {
	keys := strings.TrimSuffix(strings.Repeat("foo ", 500), " ")
	tpServers(t, []string{"-t", "32", "-R", "500"}, gocache.Config{Threads: 32, ReqsPerEvent: 500},
		func(t *testing.T, addr string) {
			s := dialTP(t, addr)
			s.do("set foo 0 0 1\r\nx\r\n")
			if got, want := s.do("get "+keys+"\r\n"), strings.Repeat("VALUE foo 0 1\r\nx\r\n", 500)+"END\r\n"; got != want {
				t.Errorf("get of 500 keys: %d bytes, want %d", len(got), len(want))
			}
			io.WriteString(s.c, strings.Repeat("mg foo v\r\n", 500))
			for range 500 {
				s.r.ReadString('\n')
				if line, _ := s.r.ReadString('\n'); line != "x\r\n" {
					t.Fatalf("stacked mg: %q", line)
				}
			}
			if got := tpStat(t, s, "stats", "response_obj_oom"); got != "0" {
				t.Errorf("response_obj_oom %s", got)
			}
		})
}

// memcached's -R: six sets in one write with -R 1 are answered, and the
// connection yields between them (conn_yields, issue_61.t); idle_kicks is
// reported, in memcached's place, only with an idle timeout, and counts
// the connections it closes (idle-timeout.t).
func TestTextConnYieldsAndIdleKicks(t *testing.T) {
	tpServers(t, []string{"-R", "1"}, gocache.Config{ReqsPerEvent: 1}, func(t *testing.T, addr string) {
		s := dialTP(t, addr)
		if got := s.do(strings.Repeat("set foobar 0 0 5\r\nBubba\r\n", 6)); got != strings.Repeat("STORED\r\n", 6) {
			t.Fatalf("sets: %q", got)
		}
		if n, _ := strconv.Atoi(tpStat(t, s, "stats", "conn_yields")); n < 5 {
			t.Errorf("conn_yields %d, want at least 5", n)
		}
		if out := s.do("stats\r\n"); strings.Contains(out, "idle_kicks") {
			t.Errorf("idle_kicks reported without an idle timeout")
		}
	})
	tpServers(t, []string{"-o", "idle_timeout=1"}, gocache.Config{IdleTimeout: time.Second}, func(t *testing.T, addr string) {
		s := dialTP(t, addr)
		out := s.do("stats\r\n")
		if i, j := strings.Index(out, "STAT auth_errors "), strings.Index(out, "STAT idle_kicks 0\r\nSTAT bytes_read "); i < 0 || j < i {
			t.Fatalf("idle_kicks 0 not between auth_errors and bytes_read in %q", out)
		}
		idle := dialTP(t, addr)
		idle.do("")
		idle.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if got, err := io.ReadAll(idle.r); len(got) > 0 || err != nil {
			t.Fatalf("idle connection: read %q, %v; want it closed", got, err)
		}
		s = dialTP(t, addr)
		if n, _ := strconv.Atoi(tpStat(t, s, "stats", "idle_kicks")); n < 1 {
			t.Errorf("idle_kicks %d after an idle connection was closed", n)
		}
	})
}
