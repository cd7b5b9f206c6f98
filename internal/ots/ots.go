// Package ots writes OpenTimestamps proofs (.ots files): a file's SHA-256
// digest, a path of commitment operations from it, and a Bitcoin block
// header attestation at the end of the path. Any OpenTimestamps verifier
// checks such a file against its own view of Bitcoin, with no code of
// ours.
//
// Only what a cissan proof needs is written: a single path (no forks) of
// sha256, append and prepend operations.
package ots

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// magic starts every detached timestamp file.
const magic = "\x00OpenTimestamps\x00\x00Proof\x00\xbf\x89\xe2\xe8\x84\xe8\x92\x94"

// Operation tags and the Bitcoin attestation tag of the format.
const (
	tagSHA256     = 0x08
	tagAppend     = 0xf0
	tagPrepend    = 0xf1
	tagAttest     = 0x00
	majorVersion  = 1
	maxMsgLength  = 4096 // what verifiers accept for an argument or a result
	maxPathLength = 255  // verifiers recurse once per operation
)

var bitcoinAttestation = []byte{0x05, 0x88, 0x96, 0x0d, 0x73, 0xd7, 0x19, 0x01}

// Op is one commitment operation.
type Op struct {
	tag byte
	arg []byte
}

// SHA256 hashes the message.
func SHA256() Op { return Op{tag: tagSHA256} }

// Append appends b to the message.
func Append(b []byte) Op { return Op{tag: tagAppend, arg: b} }

// Prepend puts b before the message.
func Prepend(b []byte) Op { return Op{tag: tagPrepend, arg: b} }

// Apply returns the result of o on msg.
func (o Op) Apply(msg []byte) []byte {
	switch o.tag {
	case tagSHA256:
		h := sha256.Sum256(msg)
		return h[:]
	case tagAppend:
		return append(append([]byte{}, msg...), o.arg...)
	default:
		return append(append([]byte{}, o.arg...), msg...)
	}
}

// Run applies ops to msg in order and returns the result.
func Run(msg []byte, ops []Op) []byte {
	for _, o := range ops {
		msg = o.Apply(msg)
	}
	return msg
}

// File returns a detached timestamp file for a file whose SHA-256 is
// digest: ops lead from digest to the Merkle root of the Bitcoin block at
// height (in the byte order of the block header). It refuses a path that
// verifiers would refuse: longer than 255 operations, or with an argument
// or intermediate message over 4096 bytes.
func File(digest [sha256.Size]byte, ops []Op, height uint64) ([]byte, error) {
	if len(ops) > maxPathLength {
		return nil, fmt.Errorf("ots: %d operations, verifiers accept at most %d", len(ops), maxPathLength)
	}
	var b bytes.Buffer
	b.WriteString(magic)
	b.Write(binary.AppendUvarint(nil, majorVersion))
	b.WriteByte(tagSHA256)
	b.Write(digest[:])
	msg := digest[:]
	for i, o := range ops {
		if len(o.arg) > maxMsgLength {
			return nil, fmt.Errorf("ots: operation %d (%s) has a %d-byte argument, verifiers accept at most %d", i, o.name(), len(o.arg), maxMsgLength)
		}
		if msg = o.Apply(msg); len(msg) > maxMsgLength {
			return nil, fmt.Errorf("ots: operation %d (%s) makes a %d-byte message, verifiers accept at most %d", i, o.name(), len(msg), maxMsgLength)
		}
		b.WriteByte(o.tag)
		if o.tag != tagSHA256 {
			writeBytes(&b, o.arg)
		}
	}
	b.WriteByte(tagAttest)
	b.Write(bitcoinAttestation)
	writeBytes(&b, binary.AppendUvarint(nil, height))
	return b.Bytes(), nil
}

func (o Op) name() string {
	switch o.tag {
	case tagSHA256:
		return "sha256"
	case tagAppend:
		return "append"
	}
	return "prepend"
}

// writeBytes writes a length-prefixed byte string (the length as the
// format's unsigned LEB128 varint, which encoding/binary's Uvarint is).
func writeBytes(b *bytes.Buffer, p []byte) {
	b.Write(binary.AppendUvarint(nil, uint64(len(p))))
	b.Write(p)
}
