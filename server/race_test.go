//go:build race

package memcached

// raceEnabled: the race detector limits a program to 8128 live goroutines.
const raceEnabled = true
