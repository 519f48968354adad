package cache

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

// TestChangesFunc: a cursor's callback is called when the change it reads
// next is logged (not for the changes after it, until it has read them),
// for changes lost, for a state change of its vbucket and for its close;
// a cursor of another vbucket is not called.
func TestChangesFunc(t *testing.T) {
	c, _ := newTest(t, Config{ChangeLog: 4})
	var calls, other atomic.Int64
	cur, err := c.ChangesFunc(0, func() { calls.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	far, _ := c.ChangesFunc(1, func() { other.Add(1) })
	defer far.Close()
	if _, err := c.ChangesFunc(uint16(len(c.vbs)), func() {}); !errors.Is(err, ErrNoVBucket) {
		t.Fatalf("no such vbucket: %v", err)
	}
	for i := range 3 {
		c.Store(0, Set, fmt.Appendf(nil, "k%d", i), Write{Value: k("v")})
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d calls after 3 changes, none read", n)
	}
	if ch, err := cur.Next(nil, 2); err != nil || len(ch) != 2 {
		t.Fatalf("Next: %d changes, %v", len(ch), err)
	}
	c.Store(0, Set, k("k3"), Write{Value: k("v")})
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d calls after a change behind one unread", n)
	}
	if ch, err := cur.Next(nil, 0); err != nil || len(ch) != 2 {
		t.Fatalf("Next: %d changes, %v", len(ch), err)
	}
	c.Store(0, Set, k("k4"), Write{Value: k("v")})
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d calls after a change with all read, want 2", n)
	}
	if ch, err := cur.Next(nil, 0); err != nil || len(ch) != 1 {
		t.Fatalf("Next: %d changes, %v", len(ch), err)
	}
	c.Flush(0)
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d calls after a flush", n)
	}
	if _, err := cur.Next(nil, 0); !errors.Is(err, ErrChangesLost) {
		t.Fatalf("after a flush: %v", err)
	}
	if err := c.SetState(0, Replica); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 4 {
		t.Fatalf("%d calls after a state change", n)
	}
	before := calls.Load()
	cur.Close()
	if n := calls.Load(); n != before+1 {
		t.Fatalf("%d calls after Close, want %d", n, before+1)
	}
	if n := other.Load(); n > 1 {
		t.Fatalf("vbucket 1's cursor called %d times", n) // at most for the flush
	}
}
