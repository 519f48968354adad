package memcached_test

import (
	"fmt"
	"log"
	"math"

	"github.com/f8e615c8/gomemcached"
	memcached "github.com/f8e615c8/gomemcached/client"
)

// A DCP consumer of one vbucket: open the connection as a producer
// connection with a flow-control window, start the feed, request the
// stream from the latest vbuuid, and read its events.
func ExampleUprFeed() {
	c, err := memcached.Connect("tcp", "localhost:11210")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	logs, err := c.UprGetFailoverLog([]uint16{0})
	if err != nil {
		log.Fatal(err)
	}
	vbuuid, _, _ := logs[0].Latest()

	feed, _ := c.NewUprFeed()
	defer feed.Close()
	if err := feed.UprOpen("example", 0, 1<<20); err != nil {
		log.Fatal(err)
	}
	feed.StartFeed()
	feed.UprRequestStream(0, 1, 0, vbuuid, 0, math.MaxUint64, 0, 0)
	for ev := range feed.GetUprEventCh() {
		switch ev.Opcode {
		case gomemcached.UPR_STREAMREQ:
			if ev.Status != gomemcached.SUCCESS {
				log.Fatalf("stream refused: %v (rollback to %d)", ev.Error, ev.Seqno)
			}
		case gomemcached.UPR_MUTATION:
			fmt.Printf("%s = %s (seqno %d)\n", ev.Key, ev.Value, ev.Seqno)
		case gomemcached.UPR_STREAMEND:
			return
		}
	}
	log.Print(feed.GetError())
}
