package gomemcached

// MCItem is an item as a store keeps it.
type MCItem struct {
	Cas               uint64
	Flags, Expiration uint32
	Data              []byte
}

// ErrorMapVersion is the version of the error map GET_ERROR_MAP asks for.
type ErrorMapVersion uint16

// Error map versions.
const (
	ErrorMapInvalidVersion = 0 // no version
	ErrorMapCB50           = 1 // Couchbase Server 5.0 and later
	ErrorMapCB75           = 2 // Couchbase Server 7.5 and later
)

// Tags around user data in logs, so that log redaction tools can find it.
const (
	UdTagBegin = "<ud>"
	UdTagEnd   = "</ud>"
)
