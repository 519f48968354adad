package mcbench

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	stat := "1234 (mem cached) S 1 1234 1234 0 -1 4194560 580 0 0 0 250 130 0 0 20 0 6 0 12345 0 0\n"
	d, err := parseStat([]byte(stat))
	if err != nil || d != 3800*time.Millisecond {
		t.Fatalf("parseStat = %v, %v; want 3.8s", d, err)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 u s"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestProcCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := procCPU(1 << 30); err == nil {
		t.Fatal("no error for a missing process")
	}
}
