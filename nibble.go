package gomemcached

// The three functions below shift and merge byte slices by half a byte. The
// reference used them for a half-byte-aligned frame layout that the protocol
// does not have (frames are byte-aligned, see AppendFrame); they are kept,
// with the reference's results, for code that calls them.

// ShiftByteSliceLeft4Bits returns slice shifted left by four bits, the last
// byte's low nibble becoming zero: out[i] = slice[i]<<4 | slice[i+1]>>4. The
// result has slice's length and capacity. Slices shorter than two bytes give
// nil.
func ShiftByteSliceLeft4Bits(slice []byte) (replacement []byte) {
	n := len(slice)
	if n < 2 {
		return nil
	}
	out := make([]byte, n, cap(slice))
	for i := 0; i < n-1; i++ {
		out[i] = slice[i]<<4 | slice[i+1]>>4
	}
	out[n-1] = slice[n-1] << 4
	return out
}

// ShiftByteSliceRight4Bits returns slice shifted right by four bits: a zero
// nibble enters at the front, and the last byte's low nibble moves to a new
// final byte, which is present only when that nibble is not zero. The result's
// capacity is slice's, plus one when it grew. Slices shorter than two bytes
// give nil.
func ShiftByteSliceRight4Bits(slice []byte) (replacement []byte) {
	n := len(slice)
	if n < 2 {
		return nil
	}
	tail := slice[n-1] << 4
	var out []byte
	if tail == 0 {
		out = make([]byte, n, cap(slice))
	} else {
		out = make([]byte, n+1, cap(slice)+1)
		out[n] = tail
	}
	out[0] = slice[0] >> 4
	for i := 1; i < n; i++ {
		out[i] = slice[i-1]<<4 | slice[i]>>4
	}
	return out
}

// Merge2HalfByteSlices joins two slices that share a byte: the result is
// src1, whose last byte is ORed with src2's first, followed by the rest of
// src2. If either slice is empty the other is returned as a copy (the
// reference panics).
func Merge2HalfByteSlices(src1, src2 []byte) (output []byte) {
	if len(src1) == 0 || len(src2) == 0 {
		return append(append([]byte{}, src1...), src2...)
	}
	output = make([]byte, len(src1)+len(src2)-1)
	copy(output, src1)
	output[len(src1)-1] |= src2[0]
	copy(output[len(src1):], src2[1:])
	return output
}
