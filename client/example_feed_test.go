package memcached_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	memcached "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/gocache"
)

// exampleServer starts an in-process gocache for the examples and
// returns its address and a function that stops it.
func exampleServer() (string, func()) {
	srv, err := gocache.New(gocache.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }
}

// Stream a vbucket's documents to its end seqno, saving the checkpoint
// after each event: a later feed resumes from it with StreamSpec.From.
func ExampleFeed() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	kv, err := memcached.Dial(ctx, "tcp", addr, memcached.ClientOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer kv.Close()
	for i, k := range []string{"apple", "banana", "cherry"} {
		kv.Set(0, k, i, 0, []byte(k+"'s value"))
	}

	dc, err := memcached.Dial(ctx, "tcp", addr, memcached.ClientOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	feed, err := memcached.NewFeed(ctx, dc, memcached.FeedOptions{Name: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer feed.Close()

	saved := map[uint16]memcached.Checkpoint{}
	feed.Add(memcached.StreamSpec{VBucket: 0, From: saved[0], End: 3})
	err = feed.Run(ctx, memcached.FeedHandlerFunc(func(ctx context.Context, ev *memcached.Event) error {
		switch ev.Kind {
		case memcached.EventMutation:
			// Key and Value are valid until the handler returns.
			fmt.Printf("seqno %d: %s = %q, flags %d\n", ev.Seqno, ev.Key, ev.Value, ev.Flags)
		case memcached.EventRollback:
			// Forget what was kept above ev.Seqno: the feed streams
			// again from there.
		case memcached.EventStreamEnd:
			fmt.Println("vbucket", ev.VBucket, "ended, reason", ev.Reason)
		}
		saved[ev.VBucket] = ev.Checkpoint
		return nil
	}))
	fmt.Println("Run:", err, "checkpoint seqno:", saved[0].Seqno)
	// Output:
	// seqno 1: apple = "apple's value", flags 0
	// seqno 2: banana = "banana's value", flags 1
	// seqno 3: cherry = "cherry's value", flags 2
	// vbucket 0 ended, reason 0
	// Run: <nil> checkpoint seqno: 3
}
