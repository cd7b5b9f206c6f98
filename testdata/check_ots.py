#!/usr/bin/python3
"""Checks a cissan OpenTimestamps export with the reference library alone.

usage: check_ots.py FILE FILE.ots BITCOIN_HEADER_HEX HEIGHT

FILE holds the entry bytes the proof timestamps. The proof must commit to
SHA-256(FILE), and its path must end in a Bitcoin block header attestation
at HEIGHT whose commitment is the Merkle root of BITCOIN_HEADER_HEX (the
80-byte header the Bitcoin node has at HEIGHT). Prints the attested block
time and exits 0 when all holds; exits 1 with the reason otherwise.
"""
import hashlib
import sys

from bitcoin.core import CBlockHeader
from opentimestamps.core.notary import BitcoinBlockHeaderAttestation
from opentimestamps.core.serialize import BytesDeserializationContext
from opentimestamps.core.timestamp import DetachedTimestampFile


def main():
    path, ots_path, header_hex, height = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with open(ots_path, "rb") as f:
        detached = DetachedTimestampFile.deserialize(BytesDeserializationContext(f.read()))
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).digest()
    if detached.file_digest != digest:
        sys.exit("the proof is for digest %s, the file's is %s" % (detached.file_digest.hex(), digest.hex()))
    header = CBlockHeader.deserialize(bytes.fromhex(header_hex))
    found = False
    for msg, att in detached.timestamp.all_attestations():
        if not isinstance(att, BitcoinBlockHeaderAttestation):
            sys.exit("unexpected attestation %r" % att)
        if att.height != height:
            sys.exit("attestation at height %d, want %d" % (att.height, height))
        when = att.verify_against_blockheader(msg, header)  # raises on a mismatch
        print("Bitcoin block %d attests the file existed by %d" % (att.height, when))
        found = True
    if not found:
        sys.exit("no Bitcoin attestation")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a corrupt file raises from deep in the library
        sys.exit("invalid: %s: %s" % (type(e).__name__, e))
