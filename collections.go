package gomemcached

// With the Collections feature negotiated (HELLO), every document key on the
// wire starts with its collection id in unsigned LEB128: seven bits per byte,
// least significant group first, the high bit set on every byte but the last.
// Only the canonical (shortest) form is valid, so an id takes 1 to 5 bytes.
// The default collection is id 0, encoded as the single byte 0x00.

// MaxCollectionIDLen is the longest encoding of a collection id.
const MaxCollectionIDLen = 5

// AppendCollectionID appends cid in unsigned LEB128 to dst.
func AppendCollectionID(dst []byte, cid uint32) []byte {
	for cid >= 0x80 {
		dst = append(dst, byte(cid)|0x80)
		cid >>= 7
	}
	return append(dst, byte(cid))
}

// SplitCollectionID decodes the collection id at the start of key and
// returns it with the rest of the key. It fails with ErrBadLength if the
// prefix is missing, longer than 5 bytes, over 32 bits or not canonical (a
// final zero group, as in 0x80 0x00).
func SplitCollectionID(key []byte) (cid uint32, rest []byte, err error) {
	var v uint64
	for i := 0; i < len(key) && i < MaxCollectionIDLen; i++ {
		b := key[i]
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 != 0 {
			continue
		}
		switch {
		case i > 0 && b == 0:
			return 0, key, protoErr(ErrBadLength, "collection id not in canonical LEB128")
		case v > 0xffffffff:
			return 0, key, protoErr(ErrBadLength, "collection id over 32 bits")
		}
		return uint32(v), key[i+1:], nil
	}
	return 0, key, protoErr(ErrBadLength, "unterminated collection id")
}
