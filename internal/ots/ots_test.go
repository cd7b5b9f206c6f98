package ots

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
)

func TestFile(t *testing.T) {
	digest := sha256.Sum256([]byte("entry"))
	ops := []Op{Prepend([]byte{0}), SHA256(), Append(bytes.Repeat([]byte{7}, 32)), SHA256()}
	f, err := File(digest, ops, 300)
	if err != nil {
		t.Fatal(err)
	}
	want := magic + "\x01" + "\x08" + string(digest[:]) +
		"\xf1\x01\x00" + "\x08" + "\xf0\x20" + strings.Repeat("\x07", 32) + "\x08" +
		"\x00" + string(bitcoinAttestation) + "\x02\xac\x02" // 300 as a varint is ac 02, in a 2-byte string
	if string(f) != want {
		t.Fatalf("file\n%x\nwant\n%x", f, want)
	}
	if got, want := Run(digest[:], ops), sha256.Sum256(append(bytes.Clone(sha256OfPrefixed(digest)), bytes.Repeat([]byte{7}, 32)...)); !bytes.Equal(got, want[:]) {
		t.Fatalf("Run = %x, want %x", got, want)
	}

	long := make([]Op, maxPathLength+1)
	for i := range long {
		long[i] = SHA256()
	}
	if _, err := File(digest, long, 1); err == nil {
		t.Error("a path of 256 operations: accepted")
	}
	if _, err := File(digest, []Op{Append(make([]byte, maxMsgLength))}, 1); err == nil {
		t.Error("a message over 4096 bytes: accepted")
	}
}

func sha256OfPrefixed(d [32]byte) []byte {
	h := sha256.Sum256(append([]byte{0}, d[:]...))
	return h[:]
}
