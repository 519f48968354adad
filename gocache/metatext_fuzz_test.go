package gocache_test

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// FuzzMetaCommand sends arbitrary meta-protocol input (a command name and
// whatever follows it, data blocks included) to a gocache server: no
// input may make a handler panic, and afterwards a fresh connection still
// reads a key stored before the fuzzing began, unchanged, and gets its
// fence answered.
func FuzzMetaCommand(f *testing.F) {
	for _, seed := range []string{
		"mg k v\r\n",
		"mg k s v f t c k h l O123 q\r\n",
		"mg a2V5 b v k\r\n",
		"mg k N30 v c\r\nmg k v c\r\n",
		"mg k R30 T10 v\r\n",
		"mg k E99 v\r\n",
		"ms k 2\r\nhi\r\n",
		"ms k 2 T0 F5 C0 I q\r\nhi\r\n",
		"ms k 2 MA\r\nhi\r\nms k 2 MP\r\nhi\r\nms k 2 MR\r\nhi\r\nms k 2 ME\r\nhi\r\n",
		"ms k 18446744073709551616\r\n",
		"ms k -1\r\n\r\n",
		"ms k 3 b\r\nabc\r\n",
		"ms %%% 1 b\r\nx\r\n",
		"md k q\r\nmd k I T30\r\nmg k v c\r\n",
		"md k C12345 E77\r\n",
		"ma k\r\nma k N0 J13 D7 MI v\r\nma k MD D18446744073709551615 v t c\r\n",
		"ma k D99999999999999999999\r\n",
		"mn\r\n",
		"me k\r\nme " + strings.Repeat("x", 300) + "\r\n",
		"mg " + strings.Repeat("k", 251) + " v\r\n",
		"mg k " + strings.Repeat("O", 40) + "\r\n",
		"mg k " + strings.Repeat("v ", 30) + "\r\n",
		"ms k 5 W\r\nhello\r\nmg k v W X Z\r\n",
		"mx k\r\n",
		"m\r\n",
	} {
		f.Add([]byte(seed))
	}
	var panics atomic.Int64
	_, addr := gocachetest.Start(f, gocache.Config{
		Cache:  cache.Config{MaxBytes: 8 << 20},
		Logger: slog.New(panicLog{&panics}),
	})
	send := func(t testing.TB, in string, want string) {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(nc, in); err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		r := bufio.NewReader(nc)
		for got.Len() < len(want) {
			line, err := r.ReadString('\n')
			got.WriteString(line)
			if err != nil {
				break
			}
		}
		if got.String() != want {
			t.Fatalf("sent %q, got %q, want %q", in, got.String(), want)
		}
	}
	// The sentinel's key starts with a byte no seed's key does, so only
	// a mutation that guessed it (never, in practice) could change it.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		f.Fatal(err)
	}
	io.WriteString(nc, "ms _sentinel_ 4 T0\r\nkeep\r\n")
	if line, err := bufio.NewReader(nc).ReadString('\n'); err != nil || line != "HD\r\n" {
		f.Fatalf("storing the sentinel: %q, %v", line, err)
	}
	nc.Close()
	f.Fuzz(func(t *testing.T, input []byte) {
		if len(input) > 0 && input[0] != 'm' {
			input = append([]byte("m"), input...)
		}
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(time.Second))
		nc.Write(input)
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		io.Copy(io.Discard, nc)
		nc.Close()
		if n := panics.Load(); n != 0 {
			t.Fatalf("%d handler panics", n)
		}
		send(t, "mg _sentinel_ v\r\nmn\r\n", "VA 4\r\nkeep\r\nMN\r\n")
	})
}
