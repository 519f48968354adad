package ring

import "testing"

// FuzzPick builds rings from arbitrary server lists and configurations and
// looks arbitrary keys up: New either fails or returns a Ring whose Pick
// never panics and always names one of the servers, the same for the key
// as a string and as bytes.
func FuzzPick(f *testing.F) {
	f.Add("10.0.0.1:11211 10.0.0.2:11212", uint8(0), uint8(0), uint16(0), "", []byte("key:1"))
	f.Add("a b c", uint8(1), uint8(2), uint16(5), "", []byte(""))
	f.Add("[::1]:11211 /tmp/s fe80::1", uint8(2), uint8(6), uint16(65535), "{}", []byte("u{1}x"))
	f.Add("x:1 y:2", uint8(4), uint8(4), uint16(1), "", []byte("\xff\x80"))
	f.Fuzz(func(t *testing.T, list string, dist, hash uint8, weights uint16, tag string, key []byte) {
		var servers []Server
		start := 0
		for i := 0; i <= len(list); i++ {
			if i == len(list) || list[i] == ' ' {
				if i > start {
					// Each server's weight from two bits of weights: 0..3,
					// and a large one for the first.
					w := int(weights>>(2*(len(servers)%8))) & 3
					if len(servers) == 0 && weights&0x8000 != 0 {
						w = 1 << 20
					}
					servers = append(servers, Server{Addr: list[start:i], Weight: w})
				}
				start = i + 1
			}
		}
		r, err := New(servers, Config{Distribution: Distribution(dist) % (numDistributions + 1), Hash: Hash(hash) % (numHashes + 1), HashTag: tag})
		if err != nil {
			return
		}
		i := r.PickBytes(key)
		if i < 0 || i >= len(servers) {
			t.Fatalf("PickBytes(%q) = %d of %d servers", key, i, len(servers))
		}
		if j := r.Pick(string(key)); j != i {
			t.Fatalf("Pick(%q) = %d, PickBytes %d", key, j, i)
		}
	})
}
