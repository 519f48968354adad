package gocache

import (
	"testing"

	"github.com/f8e615c8/gomemcached/cache"
)

// TestDCPNeedsRollback: the cases of kv_engine's rollback.md over a
// failover log of three histories (newest first: C from 200, B from 100,
// A from 0) at high seqno 250.
func TestDCPNeedsRollback(t *testing.T) {
	log := []cache.FailoverEntry{{UUID: 0xC, Seqno: 200}, {UUID: 0xB, Seqno: 100}, {UUID: 0xA, Seqno: 0}}
	for _, tc := range []struct {
		name                            string
		start, uuid, snapStart, snapEnd uint64
		strict                          bool
		rollback                        bool
		to                              uint64
	}{
		{"NoHistoryAtZero", 0, 0, 0, 0, false, false, 0},
		{"HistoryAtZeroLax", 0, 0x99, 0, 0, false, false, 0},
		{"HistoryAtZeroStrict", 0, 0x99, 0, 0, true, true, 0},
		{"DivergingHistory", 50, 0x99, 50, 50, false, true, 0},
		{"LaggingLatest", 240, 0xC, 240, 240, false, false, 0},
		{"LaggingOldHistory", 90, 0xA, 80, 100, false, false, 0},
		{"LeadingOldHistory", 150, 0xA, 150, 150, false, true, 100},
		{"SnapshotMismatch", 95, 0xA, 90, 120, false, true, 90},
		{"CompleteSnapshotPastUpper", 120, 0xA, 90, 120, false, true, 100},
		{"EmptySnapshotPastUpper", 90, 0xA, 90, 120, false, false, 0},
		{"AheadOfHigh", 260, 0xC, 260, 260, false, true, 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to, rb := needsRollback(log, tc.start, 250, tc.uuid, tc.snapStart, tc.snapEnd, tc.strict)
			if rb != tc.rollback || to != tc.to {
				t.Fatalf("rollback %v to %d, want %v to %d", rb, to, tc.rollback, tc.to)
			}
		})
	}
}

// TestDCPRollbackPurge: kv_engine's purge seqno rule before the failover
// log's: a consumer from below the purge seqno (but 0) rolls back to 0,
// unless it saw that purge seqno, or, filtered, has all of its
// collections' changes.
func TestDCPRollbackPurge(t *testing.T) {
	log := []cache.FailoverEntry{{UUID: 0xC, Seqno: 0}}
	for _, tc := range []struct {
		name                 string
		start, purge, remote uint64
		collHigh             uint64
		filtered, rollback   bool
	}{
		{"BelowPurge", 10, 20, 0, 0, false, true},
		{"AtPurge", 20, 20, 0, 0, false, false},
		{"FromZero", 0, 20, 0, 0, false, false},
		{"SawPurge", 10, 20, 20, 0, false, false},
		{"SawOlderPurge", 10, 20, 15, 0, false, true},
		{"CollectionsComplete", 10, 20, 0, 8, true, false},
		{"CollectionsBehind", 10, 20, 0, 12, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rollbackCheck{log: log, start: tc.start, high: 30, vbuuid: 0xC, snapStart: tc.start, snapEnd: tc.start,
				purge: tc.purge, remotePurge: tc.remote, collHigh: tc.collHigh, hasCollHigh: tc.filtered}
			to, rb := r.needed()
			if rb != tc.rollback || to != 0 {
				t.Fatalf("rollback %v to %d, want %v to 0", rb, to, tc.rollback)
			}
		})
	}
}
