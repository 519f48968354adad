package gocache_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/internal/mcbench"
)

func TestZZProfileLoad(t *testing.T) {
	if os.Getenv("PROFLOAD") == "" {
		t.Skip()
	}
	_, addr := gocachetest.Start(t, gocache.Config{})
	cfg := mcbench.DefaultConfig()
	cfg.Addr = addr
	cfg.Conns = 8
	cfg.Depth = 16
	cfg.Duration = 5 * time.Second
	cfg.Warmup = true
	rep, err := mcbench.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", rep.OpsPerSec)
}
