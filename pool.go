package gomemcached

import "sync"

// MCResponsePool is a pool of MCResponse values, safe for concurrent use.
type MCResponsePool struct {
	pool sync.Pool
}

// NewMCResponsePool returns an empty pool.
func NewMCResponsePool() *MCResponsePool {
	return &MCResponsePool{pool: sync.Pool{New: func() any { return &MCResponse{} }}}
}

// Get returns a response from the pool, or a new one.
func (p *MCResponsePool) Get() *MCResponse {
	return p.pool.Get().(*MCResponse)
}

// Put clears r's sections and Fatal and returns it to the pool. Nil is
// ignored.
func (p *MCResponsePool) Put(r *MCResponse) {
	if r == nil {
		return
	}
	r.Extras, r.FlexibleExtras, r.Key, r.Body = nil, nil, nil, nil
	r.Fatal = false
	p.pool.Put(r)
}

// StringMCResponsePool is a pool of maps from key to response, such as bulk
// gets return, safe for concurrent use.
type StringMCResponsePool struct {
	pool sync.Pool
	size int
}

// NewStringMCResponsePool returns a pool whose new maps have room for size
// entries; Put drops maps that grew beyond twice that.
func NewStringMCResponsePool(size int) *StringMCResponsePool {
	return &StringMCResponsePool{
		pool: sync.Pool{New: func() any { return make(map[string]*MCResponse, size) }},
		size: size,
	}
}

// Get returns an empty map from the pool, or a new one.
func (p *StringMCResponsePool) Get() map[string]*MCResponse {
	return p.pool.Get().(map[string]*MCResponse)
}

// Put empties m and returns it to the pool, unless it is nil or holds more
// than twice the pool's size.
func (p *StringMCResponsePool) Put(m map[string]*MCResponse) {
	if m == nil || len(m) > 2*p.size {
		return
	}
	clear(m)
	p.pool.Put(m)
}
