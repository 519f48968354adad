package gomemcached

// What the reference exports for its users and this package does not use
// itself: kept so that their code compiles unchanged.

// MCItem is an item as a store keeps it.
type MCItem struct {
	Cas               uint64
	Flags, Expiration uint32
	Data              []byte
}

// Tags around user data in logs, so that log redaction tools can find it.
const (
	UdTagBegin = "<ud>"
	UdTagEnd   = "</ud>"
)
