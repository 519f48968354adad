package gocache_test

import (
	"testing"

	refmc "github.com/couchbase/gomemcached"
	ref "github.com/couchbase/gomemcached/client"
)

// The reference client (couchbase/gomemcached v0.3.4) authenticates against
// gocache with PLAIN and with its own SCRAM implementation, negotiates
// features with HELLO and selects a bucket.
func TestReferenceClient(t *testing.T) {
	_, addr := authServer(t, true, "default", "travel")
	for _, tc := range []struct {
		name string
		auth func(c *ref.Client) (*refmc.MCResponse, error)
	}{
		{"AuthPlain", func(c *ref.Client) (*refmc.MCResponse, error) { return c.AuthPlain("alice", "wonderland") }},
		{"AuthScramSha", func(c *ref.Client) (*refmc.MCResponse, error) { return c.AuthScramSha("alice", "wonderland") }},
		{"Auth", func(c *ref.Client) (*refmc.MCResponse, error) { return c.Auth("alice", "wonderland") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ref.Connect("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Get(0, "k"); err == nil {
				t.Fatal("Get before authenticating succeeded")
			}
			if res, err := tc.auth(c); err != nil {
				t.Fatalf("%s: %v %v", tc.name, res, err)
			}
			res, err := c.EnableFeatures(ref.Features{ref.FeatureTcpNoDelay, ref.FeatureMutationToken,
				ref.FeatureXerror, ref.FeatureDataType, ref.FeatureCollections})
			if err != nil || len(res.Body) != 10 {
				t.Fatalf("HELLO: %v %v", res, err)
			}
			if !c.CollectionEnabled() {
				t.Fatal("collections not enabled though gocache accepts them")
			}
			if _, err := c.SelectBucket("travel"); err != nil || c.LastBucket() != "travel" {
				t.Fatalf("SelectBucket: %v", err)
			}
			if _, err := c.Set(0, "k", 0, 0, []byte(tc.name)); err != nil {
				t.Fatal(err)
			}
			got, err := c.Get(0, "k")
			if err != nil || string(got.Body) != tc.name {
				t.Fatalf("Get: %v %v", got, err)
			}
			if _, err := c.SelectBucket("nope"); err == nil {
				t.Fatal("selecting a missing bucket succeeded")
			}
		})
	}
	c, err := ref.Connect("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.AuthScramSha("alice", "wrong"); err == nil {
		t.Fatal("wrong password accepted")
	}
}
