package proof_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"cissan/internal/proof"
)

// Two verifiers must never read one bundle two ways: what a lenient JSON
// or base64 reader would take one way and another reader another way is
// refused, whatever it would prove.
func TestParseIsStrict(t *testing.T) {
	f := newFixture(t, 4)
	good, err := json.Marshal(f.bundle(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proof.Parse(good); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func([]byte) []byte{
		// encoding/json keeps the last of two members: with a wrong
		// leaf_index first, a bundle verified.
		"leaf_index twice": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`{"version"`), []byte(`{"leaf_index":0,"version"`), 1)
		},
		"entry twice": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`{"version"`), []byte(`{"entry":"AA==","version"`), 1)
		},
		"a member twice in a validation": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"verdict":"accept"`), []byte(`"verdict":"reject","verdict":"accept"`), 1)
		},
		"a member name in another case": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"leaf_index"`), []byte(`"Leaf_Index"`), 1)
		},
		"invalid UTF-8 in a string": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"hub_id":"hub-1"`), []byte("\"hub_id\":\"hub-1\xff\""), 1)
		},
		"a second value after the bundle": func(b []byte) []byte { return append(b, []byte(` {}`)...) },
	} {
		bad := mutate(bytes.Clone(good))
		if bytes.Equal(bad, good) {
			t.Fatalf("%s: the mutation changed nothing", name)
		}
		if b, err := proof.Parse(bad); err == nil {
			t.Errorf("%s: parsed as %+v", name, b)
		}
	}
}

// The entry's base64 and the bundle's hex have one text each: RFC 4648's
// padded standard alphabet without line breaks, and lower-case hex.
func TestVerifyRefusesNonCanonicalEncodings(t *testing.T) {
	f := newFixture(t, 4)
	for name, mutate := range map[string]func(*proof.Bundle){
		"a line break in entry":            func(b *proof.Bundle) { b.Entry = b.Entry[:8] + "\n" + b.Entry[8:] },
		"a carriage return in entry":       func(b *proof.Bundle) { b.Entry = b.Entry[:8] + "\r\n" + b.Entry[8:] },
		"upper-case hex in the signature":  func(b *proof.Bundle) { b.MasterSignature = strings.ToUpper(b.MasterSignature) },
		"upper-case hex in an audit path":  func(b *proof.Bundle) { b.EntriesPath[0] = strings.ToUpper(b.EntriesPath[0]) },
		"upper-case hex in a validation":   func(b *proof.Bundle) { b.Validations[0].Signature = strings.ToUpper(b.Validations[0].Signature) },
		"upper-case hex in the block hash": func(b *proof.Bundle) { b.BlockHash = strings.ToUpper(b.BlockHash) },
		"upper-case hex in the header":     func(b *proof.Bundle) { b.Header = strings.ToUpper(b.Header) },
	} {
		b := clone(t, f.bundle(t, 2))
		mutate(b)
		mustFail(t, f, b, name)
	}
}
