package memcached

import (
	"github.com/f8e615c8/gomemcached"
)

// StatValue is one statistic returned by Stats.
type StatValue struct {
	// Key is the statistic's name.
	Key string
	// Val is its value.
	Val string
}

// Stats returns the server's statistics of group key ("" for the general
// ones), in the order the server sent them. A failed status is returned
// as the error (the *MCResponse), with the statistics read before it, as
// in the reference.
func (c *Client) Stats(key string) ([]StatValue, error) {
	s, err := c.stats(key)
	rv := make([]StatValue, 0, len(s.offs)/2)
	s.each(func(k, v []byte) { rv = append(rv, StatValue{Key: string(k), Val: string(v)}) })
	return rv, err
}

// StatsFunc calls fn with the name and value of each statistic of group
// key, in the order the server sent them; the slices are valid only during
// the call. fn runs on the caller's goroutine once the last statistic has
// arrived. A failed status is returned as the error, after fn was called
// for the statistics read before it, as in the reference.
func (c *Client) StatsFunc(key string, fn func(key, val []byte)) error {
	s, err := c.stats(key)
	s.each(fn)
	return err
}

// StatsMap returns the statistics of group key as a map. The context's
// BytesUsedCallback, if any, is told the bytes sent and received. A failed
// status is returned as the error, with the statistics read before it, as
// in the reference.
func (c *Client) StatsMap(key string, context ...*ClientContext) (map[string]string, error) {
	s, err := c.stats(key)
	rv := make(map[string]string, len(s.offs)/2)
	s.each(func(k, v []byte) { rv[string(k)] = string(v) })
	if err != nil {
		return rv, err
	}
	bytesUsed(context, gomemcached.HDR_LEN+len(key)+s.bytes)
	return rv, nil
}

// StatsMapForSpecifiedStats fills statsMap with the statistics of group
// key whose names are already keys of statsMap, after setting every value
// to "". The context's BytesUsedCallback, if any, is told the bytes sent
// and received. A failed status is returned as the error, statsMap holding
// the statistics read before it, as in the reference.
func (c *Client) StatsMapForSpecifiedStats(key string, statsMap map[string]string, context ...*ClientContext) error {
	for k := range statsMap {
		statsMap[k] = ""
	}
	s, err := c.stats(key)
	s.each(func(k, v []byte) {
		if _, ok := statsMap[string(k)]; ok {
			statsMap[string(k)] = string(v)
		}
	})
	if err != nil {
		return err
	}
	bytesUsed(context, gomemcached.HDR_LEN+len(key)+s.bytes)
	return nil
}

// bytesUsed reports n to the first context's BytesUsedCallback.
func bytesUsed(context []*ClientContext, n int) {
	if len(context) > 0 && context[0] != nil && context[0].BytesUsedCallback != nil {
		context[0].BytesUsedCallback(n)
	}
}

// stats sends a STAT and collects its answer: one packet per statistic,
// ended by one with an empty key or a failed status. The deadline applies
// to each packet. On a failed status it returns what was collected before
// it; on other errors, nothing (the handler may still be running).
func (c *Client) stats(key string) (*statsCall, error) {
	s := &statsCall{}
	w := getWaiter(gomemcached.STAT)
	w.h = s
	r := request{opcode: gomemcached.STAT, key: key}
	if _, err := c.c.roundTrip(nil, w, &r, c.c.readDeadline()); err != nil {
		return &statsCall{}, err
	}
	if s.failed != nil {
		c.c.noteStatus(s.failed)
		return s, s.failed
	}
	return s, nil
}

// statsCall collects the statistics on the reader goroutine, names and
// values back to back in one buffer.
type statsCall struct {
	buf    []byte
	offs   []int // end of each name and of each value
	bytes  int   // bytes received
	failed *gomemcached.MCResponse
}

func (s *statsCall) handle(res *gomemcached.MCResponse, _, _ uint32) bool {
	s.bytes += res.Size()
	if res.Status != gomemcached.SUCCESS {
		s.failed = ownResponse(res)
		return true
	}
	if len(res.Key) == 0 {
		return true
	}
	s.buf = append(s.buf, res.Key...)
	s.offs = append(s.offs, len(s.buf))
	s.buf = append(s.buf, res.Body...)
	s.offs = append(s.offs, len(s.buf))
	return false
}

// each calls fn for each statistic collected.
func (s *statsCall) each(fn func(k, v []byte)) {
	start := 0
	for i := 0; i+1 < len(s.offs); i += 2 {
		kEnd, vEnd := s.offs[i], s.offs[i+1]
		fn(s.buf[start:kEnd:kEnd], s.buf[kEnd:vEnd:vEnd])
		start = vEnd
	}
}
