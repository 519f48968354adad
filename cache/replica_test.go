package cache

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// replicaCache returns a cache whose vbucket 0 is a replica.
func replicaCache(t *testing.T, cfg Config) (*Cache, *fakeClock) {
	t.Helper()
	c, clk := newTest(t, cfg)
	if err := c.SetState(0, Replica); err != nil {
		t.Fatal(err)
	}
	return c, clk
}

func TestReplicaApply(t *testing.T) {
	exp := time.Unix(1_700_000_100, 0)
	type step struct {
		snap       [2]uint64 // a snapshot to start first, if [1] != 0
		key, value string
		seqno      uint64
		meta       Meta
		advance    bool // AdvanceSeqno instead of Replicate
		wantErr    error
	}
	tests := []struct {
		name  string
		cfg   Config
		steps []step
		// after the steps: the high seqno, and each key's item (nil
		// value: no live item).
		high  uint64
		items map[string]*Item
	}{
		{
			name: "stores keep the producer's metadata",
			steps: []step{
				{snap: [2]uint64{0, 10}, key: "a", value: "1", seqno: 3, meta: Meta{CAS: 77, Rev: 5, Flags: 9, Datatype: 1, Expires: exp}},
				{key: "b", value: "2", seqno: 7, meta: Meta{CAS: 78, Rev: 1}},
			},
			high: 7,
			items: map[string]*Item{
				"a": {Value: []byte("1"), CAS: 77, Rev: 5, Flags: 9, Datatype: 1, Expires: exp, Seqno: 3},
				"b": {Value: []byte("2"), CAS: 78, Rev: 1, Seqno: 7},
			},
		},
		{
			name: "a later change of a key replaces it, whatever its revision",
			steps: []step{
				{snap: [2]uint64{0, 10}, key: "a", value: "1", seqno: 1, meta: Meta{CAS: 90, Rev: 8}},
				{key: "a", value: "2", seqno: 2, meta: Meta{CAS: 5, Rev: 2}},
			},
			high:  2,
			items: map[string]*Item{"a": {Value: []byte("2"), CAS: 5, Rev: 2, Seqno: 2}},
		},
		{
			name: "an older or equal seqno is refused",
			steps: []step{
				{snap: [2]uint64{0, 10}, key: "a", value: "1", seqno: 4, meta: Meta{CAS: 1, Rev: 1}},
				{key: "a", value: "2", seqno: 4, meta: Meta{CAS: 2, Rev: 2}, wantErr: ErrSeqnoOrder},
				{key: "b", value: "2", seqno: 3, meta: Meta{CAS: 2, Rev: 2}, wantErr: ErrSeqnoOrder},
			},
			high:  4,
			items: map[string]*Item{"a": {Value: []byte("1"), CAS: 1, Rev: 1, Seqno: 4}, "b": nil},
		},
		{
			name: "a seqno outside the snapshot is refused",
			steps: []step{
				{snap: [2]uint64{5, 8}, key: "a", value: "1", seqno: 9, meta: Meta{CAS: 1, Rev: 1}, wantErr: ErrSeqnoOrder},
				{key: "a", value: "1", seqno: 4, meta: Meta{CAS: 1, Rev: 1}, wantErr: ErrSeqnoOrder},
				{key: "a", value: "1", seqno: 8, meta: Meta{CAS: 1, Rev: 1}},
			},
			high:  8,
			items: map[string]*Item{"a": {Value: []byte("1"), CAS: 1, Rev: 1, Seqno: 8}},
		},
		{
			name:  "no change before a snapshot",
			steps: []step{{key: "a", value: "1", seqno: 1, meta: Meta{CAS: 1, Rev: 1}, wantErr: ErrSeqnoOrder}},
			high:  0,
			items: map[string]*Item{"a": nil},
		},
		{
			name: "a deletion leaves a tombstone with the producer's metadata",
			cfg:  Config{TombstoneTTL: time.Minute},
			steps: []step{
				{snap: [2]uint64{0, 10}, key: "a", value: "1", seqno: 1, meta: Meta{CAS: 10, Rev: 1}},
				{key: "a", seqno: 2, meta: Meta{CAS: 11, Rev: 2, Deleted: true}},
			},
			high:  2,
			items: map[string]*Item{"a": {CAS: 11, Rev: 2, Seqno: 2, Deleted: true}},
		},
		{
			name: "a deletion without tombstones removes the key",
			steps: []step{
				{snap: [2]uint64{0, 10}, key: "a", value: "1", seqno: 1, meta: Meta{CAS: 10, Rev: 1}},
				{key: "a", seqno: 2, meta: Meta{CAS: 11, Rev: 2, Deleted: true}},
				{key: "gone", seqno: 3, meta: Meta{CAS: 12, Rev: 4, Deleted: true}},
			},
			high:  3,
			items: map[string]*Item{"a": nil, "gone": nil},
		},
		{
			name: "a change too large takes its seqno and removes the older version",
			cfg:  Config{MaxItemSize: 100},
			steps: []step{
				{snap: [2]uint64{0, 10}, key: "a", value: "1", seqno: 1, meta: Meta{CAS: 10, Rev: 1}},
				{key: "a", value: string(make([]byte, 200)), seqno: 2, meta: Meta{CAS: 11, Rev: 2}, wantErr: ErrTooLarge},
			},
			high:  2,
			items: map[string]*Item{"a": nil},
		},
		{
			name: "seqnos past 32 bits",
			steps: []step{
				{snap: [2]uint64{1 << 40, 1<<47 + 10}, key: "a", value: "1", seqno: 1<<40 + 3, meta: Meta{CAS: 10, Rev: 1}},
				{key: "b", value: "2", seqno: 1<<47 + 5, meta: Meta{CAS: 11, Rev: 1}},
			},
			high: 1<<47 + 5,
			items: map[string]*Item{
				"a": {Value: []byte("1"), CAS: 10, Rev: 1, Seqno: 1<<40 + 3},
				"b": {Value: []byte("2"), CAS: 11, Rev: 1, Seqno: 1<<47 + 5},
			},
		},
		{
			name: "seqno advanced",
			steps: []step{
				{snap: [2]uint64{0, 10}, key: "a", value: "1", seqno: 1, meta: Meta{CAS: 10, Rev: 1}},
				{seqno: 6, advance: true},
				{seqno: 6, advance: true, wantErr: ErrSeqnoOrder},
				{seqno: 11, advance: true, wantErr: ErrSeqnoOrder},
			},
			high:  6,
			items: map[string]*Item{"a": {Value: []byte("1"), CAS: 10, Rev: 1, Seqno: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := replicaCache(t, tt.cfg)
			for i, s := range tt.steps {
				if s.snap[1] != 0 {
					if err := c.ReplicaSnapshot(0, s.snap[0], s.snap[1], 0); err != nil {
						t.Fatalf("step %d: ReplicaSnapshot: %v", i, err)
					}
				}
				var err error
				if s.advance {
					err = c.AdvanceSeqno(0, s.seqno)
				} else {
					var value []byte
					if s.value != "" {
						value = []byte(s.value)
					}
					err = c.Replicate(0, k(s.key), value, s.seqno, s.meta)
				}
				if !errors.Is(err, s.wantErr) || (err == nil) != (s.wantErr == nil) {
					t.Fatalf("step %d: err = %v, want %v", i, err, s.wantErr)
				}
				var se *SeqnoError
				if errors.Is(err, ErrSeqnoOrder) && !errors.As(err, &se) {
					t.Fatalf("step %d: %v is no *SeqnoError", i, err)
				}
			}
			if high, _ := c.HighSeqno(0); high != tt.high {
				t.Errorf("high seqno %d, want %d", high, tt.high)
			}
			for key, want := range tt.items {
				got, ok := lookupAny(c, key)
				switch {
				case want == nil && ok && !got.Deleted:
					t.Errorf("%q: %+v, want none", key, got)
				case want == nil:
				case !ok:
					t.Errorf("%q: missing, want %+v", key, want)
				case string(got.Value) != string(want.Value) || got.CAS != want.CAS || got.Rev != want.Rev ||
					got.Flags != want.Flags || got.Datatype != want.Datatype || got.Seqno != want.Seqno ||
					got.Deleted != want.Deleted || !want.Deleted && !got.Expires.Equal(want.Expires):
					t.Errorf("%q: %+v, want %+v", key, got, want)
				}
			}
		})
	}
}

// lookupAny reads key in vbucket 0 whatever its state, its tombstone
// when it has no live item.
func lookupAny(c *Cache, key string) (Item, bool) {
	st := c.State(0)
	k, ok := c.locateIn(0, []byte(key), st)
	if !ok {
		return Item{}, false
	}
	it := k.live
	if it == nil {
		it = k.tomb
	}
	var out Item
	if it != nil {
		out = it.export()
	}
	c.unlock(k.s, k.freed)
	return out, it != nil
}

func TestReplicaRefusesWhatIsNotReplicated(t *testing.T) {
	c, _ := replicaCache(t, Config{})
	// The replica serves no writes and no plain reads.
	if _, err := c.Store(0, Set, k("a"), Write{Value: k("1")}); !errors.Is(err, ErrNoVBucket) {
		t.Errorf("Store on a replica: %v, want ErrNoVBucket", err)
	}
	if _, ok := c.Get(0, k("a")); ok {
		t.Error("Get on a replica hit")
	}
	// An active vbucket takes no replicated changes.
	for name, err := range map[string]error{
		"Replicate":        c.Replicate(1, k("a"), nil, 1, Meta{CAS: 1}),
		"ReplicaSnapshot":  c.ReplicaSnapshot(1, 0, 1, 0),
		"AdvanceSeqno":     c.AdvanceSeqno(1, 1),
		"AdoptFailoverLog": c.AdoptFailoverLog(1, []FailoverEntry{{UUID: 1}}),
	} {
		if !errors.Is(err, ErrNotReplica) {
			t.Errorf("%s on an active vbucket: %v, want ErrNotReplica", name, err)
		}
	}
	if _, err := c.Rollback(1, 0); !errors.Is(err, ErrNotReplica) {
		t.Errorf("Rollback of an active vbucket: %v", err)
	}
	if err := c.Replicate(uint16(c.VBuckets()), k("a"), nil, 1, Meta{CAS: 1}); !errors.Is(err, ErrNoVBucket) {
		t.Errorf("Replicate past the vbuckets: %v", err)
	}
	for _, log := range [][]FailoverEntry{nil, {{UUID: 0, Seqno: 0}}, make([]FailoverEntry, maxFailoverEntries+1)} {
		if err := c.AdoptFailoverLog(0, log); !errors.Is(err, ErrBadFailoverLog) {
			t.Errorf("AdoptFailoverLog(%v): %v", log, err)
		}
	}
}

func TestReplicaReadsExpiryAndEviction(t *testing.T) {
	c, clk := replicaCache(t, Config{MaxBytes: 64 << 10, Shards: 1})
	if err := c.ReplicaSnapshot(0, 1, 1000, 0); err != nil {
		t.Fatal(err)
	}
	exp := clk.Now().Add(time.Second)
	if err := c.Replicate(0, k("x"), k("v"), 1, Meta{CAS: 5, Rev: 1, Expires: exp}); err != nil {
		t.Fatal(err)
	}
	if it, ok := c.GetReplica(0, k("x")); !ok || string(it.Value) != "v" || it.CAS != 5 {
		t.Fatalf("GetReplica = %+v, %v", it, ok)
	}
	if _, ok := c.GetReplica(1, k("x")); ok {
		t.Fatal("GetReplica of an active vbucket hit")
	}
	// Past its time the item is not read, and its removal is not a
	// change of the replica's: the high seqno stays the producer's.
	clk.Advance(2 * time.Second)
	if _, ok := c.GetReplica(0, k("x")); ok {
		t.Fatal("GetReplica read an expired item")
	}
	c.SweepNow()
	// The memory limit holds: the oldest go, unnumbered.
	val := make([]byte, 1000)
	for i := uint64(2); i <= 400; i++ {
		if err := c.Replicate(0, []byte{byte(i >> 8), byte(i)}, val, i, Meta{CAS: i, Rev: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if high, _ := c.HighSeqno(0); high != 400 {
		t.Fatalf("high seqno %d, want 400", high)
	}
	if st := c.Stats(); st.Bytes > c.MaxBytes() || st.Evictions == 0 {
		t.Fatalf("bytes %d (limit %d), evictions %d", st.Bytes, c.MaxBytes(), st.Evictions)
	}
	if _, ok := c.GetReplica(0, []byte{1, 144}); !ok {
		t.Fatal("the newest item was evicted")
	}
	// What the replica removed itself a backfill cannot show.
	if p := c.PurgeSeqno(0); p == 0 {
		t.Fatal("evictions left the purge seqno at 0")
	}
}

func TestReplicaRollback(t *testing.T) {
	c, _ := replicaCache(t, Config{TombstoneTTL: time.Minute, Collections: true})
	producer := []FailoverEntry{{UUID: 0xaaaa, Seqno: 5}, {UUID: 0xbbbb, Seqno: 0}}
	if err := c.AdoptFailoverLog(0, producer); err != nil {
		t.Fatal(err)
	}
	if err := c.ReplicaSnapshot(0, 0, 10, 0); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 6; i++ {
		if err := c.Replicate(0, CollectionKey(nil, 0, []byte{'k', byte('0' + i)}), k("v"), i, Meta{CAS: i, Rev: 1, Deleted: i == 6}); err != nil {
			t.Fatal(err)
		}
	}
	uuid, seqno, ss, se := c.ReplicaCheckpoint(0)
	if uuid != 0xaaaa || seqno != 6 || ss != 0 || se != 10 {
		t.Fatalf("checkpoint %x %d %d-%d", uuid, seqno, ss, se)
	}
	if got := c.CollectionHighSeqno(0, 0); got != 6 {
		t.Fatalf("default collection's high seqno %d", got)
	}
	to, err := c.Rollback(0, 4)
	if err != nil || to != 0 {
		t.Fatalf("Rollback = %d, %v; want 0", to, err)
	}
	if high, _ := c.HighSeqno(0); high != 0 || c.PurgeSeqno(0) != 0 {
		t.Errorf("high seqno %d, purge seqno %d after rollback", high, c.PurgeSeqno(0))
	}
	if got := c.CollectionHighSeqno(0, 0); got != 0 {
		t.Errorf("default collection's high seqno %d after rollback", got)
	}
	if n := c.Len(); n != 0 {
		t.Errorf("%d items after rollback", n)
	}
	if _, ok := lookupAny(c, string(CollectionKey(nil, 0, k("k6")))); ok {
		t.Error("a tombstone survived the rollback")
	}
	log := c.FailoverLog(0)
	if len(log) != 1 || log[0].Seqno != 0 || log[0].UUID == 0xaaaa || log[0].UUID == 0 {
		t.Errorf("failover log after rollback %v, want one new entry at 0", log)
	}
	if _, seqno, ss, se := c.ReplicaCheckpoint(0); seqno != 0 || ss != 0 || se != 0 {
		t.Errorf("checkpoint after rollback %d %d-%d", seqno, ss, se)
	}
	if c.State(0) != Replica {
		t.Errorf("state %v after rollback", c.State(0))
	}
	// It streams again from the beginning.
	if err := c.ReplicaSnapshot(0, 0, 2, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Replicate(0, CollectionKey(nil, 0, k("k1")), k("w"), 1, Meta{CAS: 100, Rev: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestReplicaPromotion(t *testing.T) {
	c, _ := replicaCache(t, Config{})
	producer := []FailoverEntry{{UUID: 0xaaaa, Seqno: 0}}
	if err := c.AdoptFailoverLog(0, producer); err != nil {
		t.Fatal(err)
	}
	if err := c.ReplicaSnapshot(0, 0, 3, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Replicate(0, k("a"), k("1"), 3, Meta{CAS: 1000, Rev: 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetState(0, Active); err != nil {
		t.Fatal(err)
	}
	log := c.FailoverLog(0)
	if len(log) != 2 || log[0].Seqno != 3 || log[1] != producer[0] || log[0].UUID == 0xaaaa {
		t.Fatalf("failover log after promotion %v, want a new entry at 3 over %v", log, producer)
	}
	// An active vbucket takes writes and numbers them itself.
	it := mustGet(t, c, "a", "1")
	if it.CAS != 1000 || it.Rev != 2 {
		t.Fatalf("promoted item %+v", it)
	}
	m, err := c.Store(0, Set, k("a"), Write{Value: k("2")})
	if err != nil || m.Seqno != 4 || m.VBUUID != log[0].UUID {
		t.Fatalf("Store after promotion = %+v, %v; want seqno 4 on %x", m, err, log[0].UUID)
	}
	if err := c.Replicate(0, k("b"), k("1"), 5, Meta{CAS: 1}); !errors.Is(err, ErrNotReplica) {
		t.Fatalf("Replicate after promotion: %v", err)
	}
	if it := mustGet(t, c, "a", "2"); it.Rev != 3 {
		t.Fatalf("revision after promotion %d, want 3", it.Rev)
	}
}

func TestReplicaPromotionWithinSnapshot(t *testing.T) {
	type step struct {
		snap  [3]uint64 // start, end, purge: a snapshot to start first, if [1] != 0
		seqno uint64    // a change of key "k<seqno>", if not 0
	}
	tests := []struct {
		name  string
		steps []step
		want  uint64 // the new failover entry's seqno
	}{
		{"a whole snapshot: its end", []step{{snap: [3]uint64{1, 3}, seqno: 1}, {seqno: 3}}, 3},
		// A backfill is deduplicated: a key whose newest version is 3
		// is missing at 2.
		{"within the first: 0", []step{{snap: [3]uint64{0, 3}, seqno: 2}}, 0},
		{"within a later one: the last whole one's end", []step{
			{snap: [3]uint64{1, 2}, seqno: 2}, {snap: [3]uint64{3, 6}, seqno: 4}, {seqno: 5}}, 2},
		{"a snapshot passed by: the high seqno", []step{
			{snap: [3]uint64{1, 4}, seqno: 2}, {snap: [3]uint64{5, 6}, seqno: 6}}, 6},
		{"a marker not yet followed: the high seqno", []step{
			{snap: [3]uint64{1, 2}, seqno: 2}, {snap: [3]uint64{3, 6}}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := replicaCache(t, Config{})
			if err := c.AdoptFailoverLog(0, []FailoverEntry{{UUID: 77}}); err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.steps {
				if s.snap[1] != 0 {
					if err := c.ReplicaSnapshot(0, s.snap[0], s.snap[1], s.snap[2]); err != nil {
						t.Fatal(err)
					}
				}
				if s.seqno != 0 {
					if err := c.Replicate(0, []byte(fmt.Sprint("k", s.seqno)), k("v"), s.seqno, Meta{CAS: s.seqno, Rev: 1}); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := c.SetState(0, Active); err != nil {
				t.Fatal(err)
			}
			log := c.FailoverLog(0)
			if len(log) != 2 || log[0].Seqno != tt.want || log[1].UUID != 77 {
				t.Fatalf("failover log after promotion %v, want a new entry at %d", log, tt.want)
			}
		})
	}
}

func TestReplicaCASAfterPromotion(t *testing.T) {
	c, _ := replicaCache(t, Config{})
	if err := c.ReplicaSnapshot(0, 1, 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Replicate(0, k("k"), k("v1"), 1, Meta{CAS: 1 << 40, Rev: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetState(0, Active); err != nil {
		t.Fatal(err)
	}
	m, err := c.Store(0, Set, k("k"), Write{Value: k("v2")})
	if err != nil || m.CAS <= 1<<40 {
		t.Fatalf("Store after promotion = %+v, %v; want a CAS above the replicated 1<<40", m, err)
	}
	// A store with metadata keeps its CAS, and raises the counter too.
	if _, err := c.StoreMeta(0, k("m"), k("v"), Meta{CAS: 1 << 50, Rev: 1}, MetaOptions{}); err != nil {
		t.Fatal(err)
	}
	if m, err = c.Store(0, Set, k("k"), Write{Value: k("v3")}); err != nil || m.CAS <= 1<<50 {
		t.Fatalf("Store after StoreMeta = %+v, %v; want a CAS above 1<<50", m, err)
	}
}

func TestReplicaPurgeSeqno(t *testing.T) {
	c, _ := replicaCache(t, Config{MaxItemSize: 200})
	if err := c.ReplicaSnapshot(0, 0, 5, 6); !errors.Is(err, ErrSeqnoOrder) {
		t.Fatalf("a purge seqno past the snapshot's end: %v", err)
	}
	// A disk snapshot's purge seqno is the replica's.
	if err := c.ReplicaSnapshot(0, 0, 10, 3); err != nil {
		t.Fatal(err)
	}
	if p := c.PurgeSeqno(0); p != 3 {
		t.Fatalf("purge seqno %d after the marker, want 3", p)
	}
	if err := c.Replicate(0, k("a"), k("v"), 4, Meta{CAS: 4, Rev: 1}); err != nil {
		t.Fatal(err)
	}
	if p := c.PurgeSeqno(0); p != 3 {
		t.Fatalf("purge seqno %d after a stored change, want 3", p)
	}
	// Changes that leave nothing raise it to their own seqno.
	for _, s := range []struct {
		seqno uint64
		value []byte
		meta  Meta
	}{
		{6, nil, Meta{CAS: 6, Rev: 2, Deleted: true}},                           // no tombstones kept
		{8, make([]byte, 300), Meta{CAS: 8, Rev: 1}},                            // too large
		{9, k("v"), Meta{CAS: 9, Rev: 1, Expires: time.Unix(1_000_000_000, 0)}}, // already expired
	} {
		err := c.Replicate(0, k("a"), s.value, s.seqno, s.meta)
		if err != nil && !errors.Is(err, ErrTooLarge) {
			t.Fatal(err)
		}
		if p := c.PurgeSeqno(0); p != s.seqno {
			t.Fatalf("purge seqno %d after the change at %d that left nothing, want %d", p, s.seqno, s.seqno)
		}
	}
	// A rollback resets it.
	if _, err := c.Rollback(0, 0); err != nil || c.PurgeSeqno(0) != 0 {
		t.Fatalf("purge seqno %d after a rollback (%v)", c.PurgeSeqno(0), err)
	}
}

func TestReplicaWriteAfterDemotion(t *testing.T) {
	c, _ := newTest(t, Config{VBuckets: 1})
	deadline := time.Now().Add(2 * time.Second)
	for round := 0; round < 500 && time.Now().Before(deadline); round++ {
		if err := c.SetState(0, Active); err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				key := []byte{byte(w), 'k'}
				for n := 0; n < 100_000 && !stop.Load(); n++ {
					c.Store(0, Set, key, Write{Value: k("v")})
				}
			})
		}
		for range 20 {
			runtime.Gosched()
		}
		if err := c.SetState(0, Replica); err != nil {
			t.Fatal(err)
		}
		h1, _ := c.HighSeqno(0)
		for range 200 {
			runtime.Gosched()
		}
		h2, _ := c.HighSeqno(0)
		stop.Store(true)
		wg.Wait()
		if h3, _ := c.HighSeqno(0); h2 != h1 || h3 != h1 {
			t.Fatalf("round %d: the replica's high seqno moved from %d to %d, then %d, after SetState(Replica) returned", round, h1, h2, h3)
		}
	}
}

func TestReplicateEvent(t *testing.T) {
	c, _ := newTest(t, Config{VBuckets: 2, Collections: true, TombstoneTTL: time.Hour})
	for vb := range uint16(2) {
		if err := c.SetState(vb, Replica); err != nil {
			t.Fatal(err)
		}
		if err := c.ReplicaSnapshot(vb, 1, 10, 0); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ck := func(cid uint32, key string) []byte { return CollectionKey(nil, cid, k(key)) }
	create := SystemEvent{ID: k("c9"), Value: k("create"), Collection: 9, InCollection: true}
	must(c.ReplicateEvent(0, create, 1, Meta{CAS: 1, Rev: 1}, nil))
	if h := c.CollectionHighSeqno(0, 9); h != 1 {
		t.Fatalf("collection 9's high seqno %d after its creation at 1, want 1", h)
	}
	must(c.ReplicateEvent(0, SystemEvent{ID: k("m9"), Value: k("modify"), Collection: 9, InCollection: true}, 2, Meta{CAS: 2, Rev: 1}, nil))
	must(c.Replicate(0, ck(9, "a"), k("v"), 3, Meta{CAS: 3, Rev: 1}))
	must(c.Replicate(0, ck(8, "b"), k("v"), 4, Meta{CAS: 4, Rev: 1}))
	must(c.Replicate(1, ck(9, "a"), k("v"), 1, Meta{CAS: 5, Rev: 1}))
	// A scope's event is no collection's.
	must(c.ReplicateEvent(0, SystemEvent{ID: k("s8"), Value: k("scope")}, 5, Meta{CAS: 6, Rev: 1}, nil))
	drop := SystemEvent{ID: k("c9"), Value: k("drop"), Deleted: true, Collection: 9, InCollection: true}
	if err := c.ReplicateEvent(0, drop, 5, Meta{CAS: 7, Rev: 2}, k("m9")); !errors.Is(err, ErrSeqnoOrder) {
		t.Fatalf("an event out of order: %v", err)
	}
	must(c.ReplicateEvent(0, drop, 6, Meta{CAS: 7, Rev: 2}, k("m9")))
	if h := c.CollectionHighSeqno(0, 9); h != 0 {
		t.Fatalf("collection 9's high seqno %d after its drop, want 0 (as DropCollection leaves it)", h)
	}
	if h := c.CollectionHighSeqno(1, 9); h != 1 {
		t.Fatalf("collection 9's high seqno %d in vbucket 1 before its drop there, want 1", h)
	}
	if _, ok := c.GetReplica(0, ck(9, "a")); ok {
		t.Error("a document of the dropped collection is kept")
	}
	if _, ok := c.GetReplica(0, ck(8, "b")); !ok {
		t.Error("another collection's document is gone")
	}
	if _, ok := c.GetReplica(1, ck(9, "a")); !ok {
		t.Error("another vbucket's document is gone before its drop")
	}
	if _, ok := c.GetReplica(0, SystemKey(nil, k("m9"))); ok {
		t.Error("the dropped collection's modification is live")
	}
	if h, _ := c.HighSeqno(0); h != 6 {
		t.Fatalf("high seqno %d, want 6", h)
	}
	vs, err := c.Backfill(0, 1, 6, 0, nil)
	must(err)
	var got []string
	for _, v := range vs {
		got = append(got, fmt.Sprintf("%d:%q:%v", v.Seqno, v.Key, v.Deleted))
	}
	if want := []string{`4:"\bb":false`, `5:"\x01s8":false`, `6:"\x01c9":true`}; !slices.Equal(got, want) {
		t.Errorf("backfill after the drop %v, want %v", got, want)
	}
	if err := New(Config{}).ReplicateEvent(0, create, 1, Meta{CAS: 1}, nil); !errors.Is(err, ErrNoCollections) {
		t.Errorf("without collections: %v", err)
	}
}

func TestReplicaFlush(t *testing.T) {
	c, _ := newTest(t, Config{VBuckets: 2})
	if _, err := c.Store(0, Set, k("a"), Write{Value: k("1")}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetState(1, Replica); err != nil {
		t.Fatal(err)
	}
	if err := c.ReplicaSnapshot(1, 1, 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Replicate(1, k("b"), k("2"), 1, Meta{CAS: 9, Rev: 1}); err != nil {
		t.Fatal(err)
	}
	c.Flush(0)
	if _, ok := c.Get(0, k("a")); ok {
		t.Error("the active vbucket's item survives the flush")
	}
	if it, ok := c.GetReplica(1, k("b")); !ok || string(it.Value) != "2" {
		t.Error("the replica's item is flushed: only its producer changes it")
	}
	if h, _ := c.HighSeqno(1); h != 1 || c.PurgeSeqno(1) != 0 {
		t.Errorf("replica after a flush: high seqno %d, purge seqno %d; want 1, 0", h, c.PurgeSeqno(1))
	}
	if c.PurgeSeqno(0) != 2 {
		t.Errorf("active vbucket's purge seqno %d after a flush, want 2", c.PurgeSeqno(0))
	}
}

// Seqnos are 48 bits, as Couchbase's: a snapshot reaching past them is
// refused, one up to them taken.
func TestReplicaSnapshotSeqnoBits(t *testing.T) {
	c, _ := replicaCache(t, Config{})
	if err := c.ReplicaSnapshot(0, 1, 1<<48, 0); !errors.Is(err, ErrSeqnoOrder) {
		t.Fatalf("snapshot to 1<<48: %v, want ErrSeqnoOrder", err)
	}
	if err := c.ReplicaSnapshot(0, 1, 1<<48-1, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Replicate(0, k("a"), k("1"), 1<<48-1, Meta{CAS: 1, Rev: 1}); err != nil {
		t.Fatal(err)
	}
	if it, ok := lookupAny(c, "a"); !ok || it.Seqno != 1<<48-1 {
		t.Fatalf("seqno %d, %v; want 1<<48-1", it.Seqno, ok)
	}
}
