package gomemcached_test

import (
	"testing"

	gm "github.com/f8e615c8/gomemcached"
)

func TestFeatureString(t *testing.T) {
	for f, want := range map[gm.Feature]string{
		gm.FeatureXError: "XError", gm.FeatureJSON: "JSON", gm.FeatureSubdocMultipleXattrKeys: "SubdocMultipleXattrKeys",
		0x01: "0x01", 0x09: "0x09", 0x1234: "0x1234",
	} {
		if got := f.String(); got != want {
			t.Errorf("Feature(%#x).String() = %q, want %q", uint16(f), got, want)
		}
	}
}

func TestFeatureSet(t *testing.T) {
	var s gm.FeatureSet
	s.Add(gm.FeatureXError)
	s.Add(gm.FeatureSubdocMultipleXattrKeys)
	s.Add(0xff)
	s.Add(0x100) // beyond any server's features: ignored
	for _, f := range []gm.Feature{gm.FeatureXError, gm.FeatureSubdocMultipleXattrKeys, 0xff} {
		if !s.Has(f) {
			t.Errorf("set lacks %v", f)
		}
	}
	for _, f := range []gm.Feature{gm.FeatureJSON, 0x100, 0x147} {
		if s.Has(f) {
			t.Errorf("set has %v", f)
		}
	}
	s.Clear()
	if s.Has(gm.FeatureXError) {
		t.Error("Clear left XError")
	}
}

// String reads its own copy of the names: a program that changes
// CommandNames or StatusNames does not race with String.
func TestNamesSafeFromChanges(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			_ = gm.GET.String()
			_ = gm.KEY_ENOENT.String()
		}
	}()
	for i := range 1000 {
		gm.CommandNames[gm.CommandCode(0xf0)] = "X"
		gm.StatusNames[gm.Status(0x7f00+i)] = "Y"
	}
	<-done
	delete(gm.CommandNames, 0xf0)
	for i := range 1000 {
		delete(gm.StatusNames, gm.Status(0x7f00+i))
	}
	if gm.GET.String() != "GET" || gm.KEY_ENOENT.String() != "KEY_ENOENT" {
		t.Fatal(gm.GET.String(), gm.KEY_ENOENT.String())
	}
}
