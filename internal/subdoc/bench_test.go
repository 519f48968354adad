package subdoc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
)

// benchDoc makes a JSON object of about size bytes: scalars, a tags
// array, an array of records, and last a "meta" object with a counter,
// the key the benchmarks reach for (so every byte before it is read).
func benchDoc(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"id":"user::0001","type":"profile","active":true,"score":12.5,"tags":["a","b","c"],"items":[`)
	for i := 0; b.Len() < size-120; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"n":%d,"name":"item %d","price":%d.99,"flags":[true,false,null]}`, i, i, i%100)
	}
	b.WriteString(`],"meta":{"visits":41,"last":"2025-01-01T00:00:00Z","owner":"x"}}`)
	return b.Bytes()
}

var benchSizes = []struct {
	name string
	size int
}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

func BenchmarkLookup(b *testing.B) {
	for _, s := range benchSizes {
		doc := benchDoc(s.size)
		path := []byte("meta.visits")
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				v, err := Lookup(doc, Get, path)
				if err != nil || string(v) != "41" {
					b.Fatal(v, err)
				}
			}
		})
	}
}

func BenchmarkMutate(b *testing.B) {
	for _, s := range benchSizes {
		doc := benchDoc(s.size)
		for _, m := range []struct {
			name  string
			op    Op
			path  string
			value string
		}{
			{"upsert", DictUpsert, "meta.owner", `"someone else"`},
			{"counter", Counter, "meta.visits", "1"},
			{"push", ArrayPushFirst, "tags", `"z"`},
		} {
			b.Run(s.name+"/"+m.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(doc)))
				dst := make([]byte, 0, len(doc)+64)
				path, value := []byte(m.path), []byte(m.value)
				for b.Loop() {
					out, _, err := Mutate(dst[:0], doc, m.op, path, value, false)
					if err != nil || len(out) < len(doc) {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// decoderFind finds the value of a key path (object keys only) with
// encoding/json's Decoder, the standard library's streaming reader: its
// span in doc, as a splice needs.
func decoderFind(doc []byte, keys []string) (start, end int, err error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	for _, key := range keys {
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			return 0, 0, fmt.Errorf("not an object: %v %v", t, err)
		}
		for {
			t, err := dec.Token()
			if err != nil {
				return 0, 0, err
			}
			if t == json.Delim('}') {
				return 0, 0, io.EOF
			}
			if t == key {
				break
			}
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return 0, 0, err
			}
		}
	}
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return 0, 0, err
	}
	end = int(dec.InputOffset())
	return end - len(v), end, nil
}

// BenchmarkParsers compares ways to find a value's span and to check a
// document: this package's scanner, encoding/json's Decoder and
// encoding/json.Valid (see the package's choice in doc.go).
func BenchmarkParsers(b *testing.B) {
	for _, s := range benchSizes {
		doc := benchDoc(s.size)
		var p Path
		if err := ParsePath([]byte("meta.visits"), &p); err != nil {
			b.Fatal(err)
		}
		b.Run("find/scanner/"+s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if m, err := find(doc, &p, p.n); err != nil || string(doc[m.start:m.end]) != "41" {
					b.Fatal(err)
				}
			}
		})
		b.Run("find/decoder/"+s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if start, end, err := decoderFind(doc, []string{"meta", "visits"}); err != nil || string(doc[start:end]) != "41" {
					b.Fatal(err)
				}
			}
		})
		b.Run("valid/scanner/"+s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if !Valid(doc) {
					b.Fatal("invalid")
				}
			}
		})
		b.Run("valid/encoding-json/"+s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if !json.Valid(doc) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

func TestBenchDoc(t *testing.T) {
	for _, s := range benchSizes {
		doc := benchDoc(s.size)
		if !json.Valid(doc) || len(doc) < s.size*9/10 || len(doc) > s.size*11/10 {
			t.Errorf("benchDoc(%d): %d bytes, valid %v", s.size, len(doc), json.Valid(doc))
		}
		if start, end, err := decoderFind(doc, []string{"meta", "visits"}); err != nil || string(doc[start:end]) != "41" {
			t.Errorf("decoderFind: %v", err)
		}
		if !strings.Contains(string(doc), `"meta"`) {
			t.Error("no meta")
		}
	}
}
