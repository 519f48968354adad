package cache

import (
	"errors"
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
					if err := c.ReplicaSnapshot(0, s.snap[0], s.snap[1]); err != nil {
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
		"ReplicaSnapshot":  c.ReplicaSnapshot(1, 0, 1),
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
	if err := c.ReplicaSnapshot(0, 1, 1000); err != nil {
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
	if err := c.ReplicaSnapshot(0, 0, 10); err != nil {
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
	if err := c.ReplicaSnapshot(0, 0, 2); err != nil {
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
	if err := c.ReplicaSnapshot(0, 0, 3); err != nil {
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
