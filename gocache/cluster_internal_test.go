package gocache

import "testing"

// A replica's source is the map's active for its vbucket, none when the
// map names this node or no node; "$HOST" is this node's host.
func TestClusterSource(t *testing.T) {
	for _, tc := range []struct {
		nodes []string
		self  int
		row   []int
		want  string
	}{
		{[]string{"10.0.0.1:1", "10.0.0.2:2"}, 1, []int{0, 1}, "10.0.0.1:1"},
		{[]string{"10.0.0.1:1", "10.0.0.2:2"}, 0, []int{0, 1}, ""},
		{[]string{"10.0.0.1:1", "10.0.0.2:2"}, 1, []int{-1, 1}, ""},
		{[]string{"$HOST:1", "10.0.0.2:2"}, 1, []int{0, 1}, "10.0.0.2:1"},
		{[]string{"$HOST:1", "$HOST:2"}, 1, []int{0, 1}, "localhost:1"},
	} {
		cfg := &ClusterConfig{Nodes: tc.nodes, Self: tc.self, Replicas: 1}
		m := &clusterMap{cfg: cfg, vbmap: [][]int{tc.row}}
		if got := m.source(0); got != tc.want {
			t.Errorf("%v self %d row %v: source %q, want %q", tc.nodes, tc.self, tc.row, got, tc.want)
		}
		if got := m.source(1); got != "" {
			t.Errorf("vbucket past the map: source %q", got)
		}
	}
}
