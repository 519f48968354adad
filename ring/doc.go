// Package ring places keys on one of many memcached servers exactly as the
// ecosystem's clients and proxies do, so that a Go service and a C, PHP or
// proxied one given the same server list agree on every key's server.
//
// A Ring, made by New from a list of Servers and a Config, maps a key to
// the index of its server in that list. Its Distribution is one of:
//
//   - KetamaWeighted and Ketama: libmemcached's consistent hashing
//     (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED and MEMCACHED_BEHAVIOR_KETAMA),
//     with its server strings ("host-i", "host:port-i"), points per server,
//     weights and key hashes, down to its float arithmetic;
//   - Twemproxy: twemproxy's "distribution: ketama", with its server names
//     and hash_tag (ParseTwemproxyServer reads its server entries);
//   - Modula: libmemcached's default, the key hash modulo the server count;
//   - ServerList: bradfitz/gomemcache's memcache.ServerList.
//
// The key hashes (Hash) are those libmemcached and twemproxy name.
// Placement is tested against libmemcached itself and against gomemcache.
package ring
