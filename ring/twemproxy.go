package ring

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseTwemproxyServer parses one entry of a twemproxy pool's "servers:"
// list, "host:port:weight [name]" or "/path/to/socket:weight [name]", as
// twemproxy reads it, into the Server that places keys as that pool does
// in a Twemproxy ring. twemproxy refuses a weight of 0; so does this.
func ParseTwemproxyServer(entry string) (Server, error) {
	bad := func(why string) (Server, error) {
		return Server{}, fmt.Errorf("ring: twemproxy server %q: %s", entry, why)
	}
	var s Server
	rest := entry
	if i := strings.LastIndexByte(rest, ' '); i >= 0 {
		s.Name, rest = rest[i+1:], rest[:i]
		if s.Name == "" {
			return bad("empty name")
		}
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return bad("no weight")
	}
	w, err := strconv.ParseUint(rest[i+1:], 10, 31)
	if err != nil || w == 0 {
		return bad("bad weight")
	}
	s.Weight, s.Addr = int(w), rest[:i]
	if strings.HasPrefix(s.Addr, "/") {
		return s, nil
	}
	j := strings.LastIndexByte(s.Addr, ':')
	if j <= 0 {
		return bad("no port")
	}
	if p, err := strconv.ParseUint(s.Addr[j+1:], 10, 16); err != nil || p == 0 {
		return bad("bad port")
	}
	return s, nil
}
