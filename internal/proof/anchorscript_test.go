package proof

import (
	"bytes"
	"testing"

	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"

	"cissan/internal/chain"
)

// An anchor is one script: OP_RETURN and the shortest push of the 38
// bytes, as the anchor wallet writes it; the same bytes pushed with
// OP_PUSHDATA1, or with anything after them, anchor nothing.
func TestAnchorScriptIsOneScript(t *testing.T) {
	var h chain.Hash
	h[0], h[31] = 1, 2
	nd, err := txscript.NullDataScript(AnchorData(h))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(nd, AnchorScript(h)) || !bytes.Equal(nd[:2], []byte{0x6a, 0x26}) {
		t.Fatalf("the wallet's script %x, the verifier's %x", nd, AnchorScript(h))
	}
	out := func(script []byte) []*wire.TxOut { return []*wire.TxOut{{PkScript: script}} }
	if !carries(out(nd), h) {
		t.Fatal("the anchor script is not recognised")
	}
	var other chain.Hash
	for name, script := range map[string][]byte{
		"OP_PUSHDATA1":        append([]byte{0x6a, 0x4c, 0x26}, AnchorData(h)...),
		"a byte after":        append(bytes.Clone(nd), 0x00),
		"another block hash":  AnchorScript(other),
		"no OP_RETURN":        append([]byte{0x26}, AnchorData(h)...),
		"the data alone":      AnchorData(h),
		"OP_RETURN, OP_FALSE": append([]byte{0x6a, 0x00, 0x26}, AnchorData(h)...),
	} {
		if carries(out(script), h) {
			t.Errorf("%s: taken as an anchor", name)
		}
	}
}
