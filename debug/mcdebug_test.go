package mcdebug

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
	memcached "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

func TestOpsJSON(t *testing.T) {
	var m Ops
	if m.String() != `{"bytes":{},"errs":{},"ops":{}}` {
		t.Errorf("empty: %s", m.String())
	}
	m.Count(int(gomemcached.GET), 30, nil)
	m.Count(int(gomemcached.GET), 30, nil)
	m.Count(int(gomemcached.SET), 40, io.EOF)
	m.Count(int(gomemcached.SET), 1, nil) // too short to know the opcode
	m.Count(-1, 0, io.ErrUnexpectedEOF)   // a failed read
	want := `{"bytes":{"GET":60,"SET":40,"total":101,"unknown":1},` +
		`"errs":{"SET":1,"total":2,"unknown":1},` +
		`"ops":{"GET":2,"total":3,"unknown":1}}`
	if m.String() != want {
		t.Errorf("got  %s\nwant %s", m.String(), want)
	}
	var v map[string]map[string]uint64
	if err := json.Unmarshal([]byte(m.String()), &v); err != nil {
		t.Error(err)
	}
}

func TestPublish(t *testing.T) {
	var s Stats
	name := fmt.Sprintf("mcdebug-test-%d", time.Now().UnixNano()) // expvar names are for good
	if err := s.Publish(name); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(name); !errors.Is(err, ErrNameTaken) {
		t.Errorf("second Publish: %v", err)
	}
	s.Sent.Count(int(gomemcached.NOOP), 24, nil)
	var got map[string]map[string]map[string]uint64
	if err := json.Unmarshal([]byte(expvar.Get(name).String()), &got); err != nil {
		t.Fatal(err)
	}
	if got["xmit"]["ops"]["NOOP"] != 1 || got["recv"] == nil || got["tap"] == nil {
		t.Errorf("published %v", got)
	}
	if d := Default(); d != Default() || expvar.Get("mc") == nil {
		t.Error(`Default is not published as "mc"`)
	}
}

// A client with the observer counts what it sends and receives.
func TestObserver(t *testing.T) {
	addr := peer.Memcached(t)
	var s Stats
	ctx := context.Background()
	c, err := memcached.Dial(ctx, "tcp", addr, memcached.ClientOptions{Observer: &s})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(0, "key", 0, 0, []byte("value")); err != nil {
		t.Fatal(err)
	}
	c.Get(0, "key")
	c.Get(0, "nope")
	c.Close()
	sent, recv := s.Sent.Snapshot(), s.Received.Snapshot()
	setBytes := uint64(24 + 8 + len("key") + len("value"))
	getBytes := uint64(24+len("key")) + uint64(24+len("nope"))
	if sent["ops"]["SET"] != 1 || sent["ops"]["GET"] != 2 || sent["bytes"]["SET"] != setBytes || sent["bytes"]["GET"] != getBytes {
		t.Errorf("sent %v", sent)
	}
	// A miss is a successful read: errs count failed reads, as in the
	// reference.
	if recv["ops"]["SET"] != 1 || recv["ops"]["GET"] != 2 || recv["bytes"]["SET"] != 24 {
		t.Errorf("received %v", recv)
	}
	// Closing the client ends its reader with an error, counted as unknown.
	if len(recv["errs"]) > 0 && recv["errs"]["unknown"] != 1 {
		t.Errorf("errors %v", recv["errs"])
	}
}

// InstallHooks counts clients created afterwards through the reference's
// hooks.
func TestInstallHooks(t *testing.T) {
	addr := peer.Memcached(t)
	var s Stats
	s.InstallHooks()
	c, err := memcached.Connect("tcp", addr)
	memcached.TransmitHook, memcached.ReceiveHook = nil, nil
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Set(0, "k", 0, 0, []byte("v")); err != nil {
		t.Fatal(err)
	}
	if s.Sent.Snapshot()["ops"]["SET"] != 1 || s.Received.Snapshot()["ops"]["SET"] != 1 {
		t.Errorf("hooks counted sent %v, received %v", s.Sent.String(), s.Received.String())
	}
}
