#!/usr/bin/env python3
"""Independent checker for cissan's test vectors (testdata/vectors.json).

Written from SPEC.md alone, with no code shared with the Go implementation:
it parses each event payload strictly, re-encodes the entry, recomputes
digests, leaf hashes, RFC 6962 roots and audit paths, header bytes, block
hashes and signed messages, checks Ed25519 signatures, and verifies the
proof bundle step by step. Exit status 0 means every check passed.

Uses only the standard library, plus the `cryptography` package (Debian:
python3-cryptography) for Ed25519 when it is importable; without it,
signatures are reported as skipped.

usage: check_vectors.py [vectors.json]
"""

import base64
import hashlib
import json
import math
import os
import struct
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    HAVE_ED25519 = True
except ImportError:  # pragma: no cover - depends on the machine
    HAVE_ED25519 = False


class Mismatch(Exception):
    pass


CHECKS = 0


def check(cond, what):
    global CHECKS
    CHECKS += 1
    if not cond:
        raise Mismatch(what)


def sha256(b):
    return hashlib.sha256(b).digest()


def unhex(s, n=None):
    b = bytes.fromhex(s)
    if n is not None and len(b) != n:
        raise Mismatch("want %d bytes, got %d: %s" % (n, len(b), s))
    return b


# ---------------------------------------------------------------- events --

LIMITS = {}  # filled from the vectors' "limits", which SPEC.md also lists

IDENT = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:")
KEYCHARS = IDENT | set(b"/ ")


class Num:
    """A JSON number kept as its literal text."""

    def __init__(self, text):
        self.text = text


class Refused(Exception):
    pass


def strict_object(pairs):
    seen = set()
    for k, _ in pairs:
        if k in seen:
            raise Refused("repeated field %r" % k)
        seen.add(k)
    return dict(pairs)


def refuse_constant(name):
    raise Refused("not JSON: %s" % name)


def parse_json(text):
    return json.loads(
        text,
        object_pairs_hook=strict_object,
        parse_int=Num,
        parse_float=Num,
        parse_constant=refuse_constant,
    )


def ident(field, s, maxlen, chars=IDENT):
    if not isinstance(s, str):
        raise Refused("%s: must be a string" % field)
    b = s.encode("utf-8")
    if not 1 <= len(b) <= maxlen:
        raise Refused("%s: length %d" % (field, len(b)))
    if any(c not in chars for c in b):
        raise Refused("%s: bad character" % field)
    return s


def number(field, v):
    if not isinstance(v, Num):
        raise Refused("%s: not a number" % field)
    f = float(v.text)  # correctly rounded, as SPEC.md requires; "-0" gives -0.0
    if math.isinf(f) or math.isnan(f):
        raise Refused("%s: out of range" % field)
    return f


def value(field, v, top):
    """Returns (kind, payload) per SPEC.md "Values"."""
    if isinstance(v, bool):
        return (3, v)
    if isinstance(v, Num):
        return (1, number(field, v))
    if isinstance(v, str):
        if len(v.encode("utf-8")) > LIMITS["max_string_len"]:
            raise Refused("%s: string too long" % field)
        return (2, v)
    if isinstance(v, list) and top:
        if len(v) > LIMITS["max_array_len"]:
            raise Refused("%s: array too long" % field)
        return (4, [value("%s[%d]" % (field, i), el, False) for i, el in enumerate(v)])
    raise Refused("%s: bad value" % field)


def parse_event(payload):
    raw = payload.encode("utf-8")
    if len(raw) > LIMITS["max_payload"]:
        raise Refused("payload too large")
    ev = parse_json(payload)
    if not isinstance(ev, dict):
        raise Refused("not an object")
    want = {"uid", "timestamp", "items", "namespace", "device_uid"}
    if set(ev) != want:
        raise Refused("fields %s" % sorted(ev))
    ident("uid", ev["uid"], LIMITS["max_uid_len"])
    ident("device_uid", ev["device_uid"], LIMITS["max_device_uid_len"])
    ns = ev["namespace"]
    if not isinstance(ns, str) or ns.count("/") != 1:
        raise Refused("namespace")
    org, group = ns.split("/")
    ident("namespace", org, LIMITS["max_namespace_part_len"])
    ident("namespace", group, LIMITS["max_namespace_part_len"])
    ts = ev["timestamp"]
    if not isinstance(ts, Num) or not ts.text.lstrip("-").isdigit():
        raise Refused("timestamp must be an integer literal")
    ts = int(ts.text)
    if not 1 <= ts <= LIMITS["max_timestamp_ms"]:
        raise Refused("timestamp range")
    items = ev["items"]
    if not isinstance(items, list) or not 1 <= len(items) <= LIMITS["max_items"]:
        raise Refused("items")
    out = []
    for i, it in enumerate(items):
        if not isinstance(it, dict) or set(it) != {"key", "value"}:
            raise Refused("items[%d]" % i)
        key = ident("items[%d].key" % i, it["key"], LIMITS["max_key_len"], KEYCHARS)
        out.append((key, value("items[%d].value" % i, it["value"], True)))
    return {
        "uid": ev["uid"],
        "timestamp": ts,
        "namespace": ns,
        "device_uid": ev["device_uid"],
        "items": out,
    }


# ----------------------------------------------------------------- entry --


def enc_str(s):
    b = s.encode("utf-8")
    return struct.pack(">I", len(b)) + b


def enc_value(kv):
    kind, v = kv
    out = bytes([kind])
    if kind == 1:
        out += struct.pack(">d", v)
    elif kind == 2:
        out += enc_str(v)
    elif kind == 3:
        out += b"\x01" if v else b"\x00"
    else:
        out += struct.pack(">I", len(v)) + b"".join(enc_value(e) for e in v)
    return out


def encode_entry(ev, hub_id, received_ms, tags):
    out = b"\x01"
    out += enc_str(hub_id)
    out += struct.pack(">q", received_ms)
    out += enc_str(ev["uid"])
    out += struct.pack(">q", ev["timestamp"])
    out += enc_str(ev["namespace"])
    out += enc_str(ev["device_uid"])
    out += struct.pack(">I", len(ev["items"]))
    for key, v in ev["items"]:
        out += enc_str(key) + enc_value(v)
    out += struct.pack(">I", len(tags))
    for t in tags:
        out += enc_str(t["analyzer"]) + enc_str(t["key"]) + enc_str(t["label"]) + enc_str(t["model"])
        out += struct.pack(">q", t["score"])
    return out


class Reader:
    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        if self.i + n > len(self.b):
            raise Refused("entry truncated")
        out = self.b[self.i : self.i + n]
        self.i += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def str(self):
        return self.take(self.u32()).decode("utf-8")  # strict: invalid UTF-8 refused

    def value(self, top):
        kind = self.u8()
        if kind == 1:
            f = struct.unpack(">d", self.take(8))[0]
            if math.isnan(f) or math.isinf(f):
                raise Refused("non-finite number")
            return (1, f)
        if kind == 2:
            return (2, self.str())
        if kind == 3:
            b = self.u8()
            if b > 1:
                raise Refused("bool byte %d" % b)
            return (3, b == 1)
        if kind == 4 and top:
            return (4, [self.value(False) for _ in range(self.u32())])
        raise Refused("bad kind %d" % kind)


def decode_entry(b):
    """Decodes entry bytes per SPEC.md; returns (event, hub_id, received_ms, tags)."""
    r = Reader(b)
    if r.u8() != 1:
        raise Refused("entry version")
    hub_id = r.str()
    received = r.i64()
    ev = {"uid": r.str(), "timestamp": r.i64(), "namespace": r.str(), "device_uid": r.str()}
    ev["items"] = [(r.str(), r.value(True)) for _ in range(r.u32())]
    tags = [
        {"analyzer": r.str(), "key": r.str(), "label": r.str(), "model": r.str(), "score": r.i64()}
        for _ in range(r.u32())
    ]
    if r.i != len(b):
        raise Refused("trailing bytes")
    if not hub_id:
        raise Refused("empty hub_id")
    # The event rules apply to decoded entries too: re-encoding through the
    # JSON rules must accept it.
    ident("uid", ev["uid"], LIMITS["max_uid_len"])
    ident("device_uid", ev["device_uid"], LIMITS["max_device_uid_len"])
    if not 1 <= ev["timestamp"] <= LIMITS["max_timestamp_ms"]:
        raise Refused("timestamp range")
    if not 1 <= len(ev["items"]) <= LIMITS["max_items"]:
        raise Refused("items count")
    return ev, hub_id, received, tags


def leaf_of_entry(entry):
    return sha256(b"\x00" + sha256(entry))


# -------------------------------------------------------------- RFC 6962 --


def node(l, r):
    return sha256(b"\x01" + l + r)


def split(n):
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def mth(leaves):
    """RFC 6962 section 2.1 Merkle Tree Hash over already-hashed leaves."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = split(len(leaves))
    return node(mth(leaves[:k]), mth(leaves[k:]))


def audit_path(m, leaves):
    """RFC 6962 section 2.1.1 PATH(m, D[n]), leaf's sibling first."""
    n = len(leaves)
    if n <= 1:
        return []
    k = split(n)
    if m < k:
        return audit_path(m, leaves[:k]) + [mth(leaves[k:])]
    return audit_path(m - k, leaves[k:]) + [mth(leaves[:k])]


def root_from_path(index, size, leaf, path):
    """RFC 9162 section 2.1.3.2: the root an audit path leads to, or None."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


# ---------------------------------------------------------------- header --

MAGIC = b"CSNB"


def encode_header(network, height, prev, mint, count, entries_root, history_root, control_root):
    h = MAGIC + struct.pack(">H", 1) + network + struct.pack(">Q", height) + prev
    h += struct.pack(">q", mint) + struct.pack(">Q", count)
    h += entries_root + history_root + control_root + bytes(8)
    assert len(h) == 182
    return h


def decode_header(h):
    if len(h) != 182 or h[:4] != MAGIC or struct.unpack(">H", h[4:6])[0] != 1 or h[174:] != bytes(8):
        raise Refused("malformed header")
    return {
        "network": h[6:22],
        "height": struct.unpack(">Q", h[22:30])[0],
        "prev": h[30:62],
        "mint": struct.unpack(">q", h[62:70])[0],
        "count": struct.unpack(">Q", h[70:78])[0],
        "entries_root": h[78:110],
        "history_root": h[110:142],
        "control_root": h[142:174],
    }


# ------------------------------------------------------------ signatures --

DOMAIN_BLOCK = b"cissan/block/v1\x00"
DOMAIN_BATCH = b"cissan/batch/v1\x00"
DOMAIN_VALIDATION = b"cissan/validation/v1\x00"

SKIPPED = 0


def public_from_seed(seed):
    k = Ed25519PrivateKey.from_private_bytes(seed)
    return k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def sig_ok(pub, msg, sig):
    global SKIPPED
    if not HAVE_ED25519:
        SKIPPED += 1
        return True
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
        return True
    except InvalidSignature:
        return False


def validation_message(network, hub_id, height, block_hash, verdict, reason):
    v = {"accept": 1, "reject": 2}[verdict]
    return (
        DOMAIN_VALIDATION + network + enc_str(hub_id) + struct.pack(">Q", height)
        + block_hash + bytes([v]) + enc_str(reason)
    )


# ---------------------------------------------------------------- bundle --


def verify_bundle(b, netj):
    """SPEC.md "Verifying a bundle", step by step. Raises Refused."""
    net_id = unhex(netj["network_id"], 16)
    master = unhex(netj["master_public_key"], 32)
    hubs = {h["id"]: h for h in netj["hubs"]}
    if b.get("version") not in (1, 2):
        raise Refused("version")
    if b.get("anchor") is not None and b["version"] != 2:
        raise Refused("anchor")
    if unhex(b["network_id"], 16) != net_id:
        raise Refused("network id")
    header = unhex(b["header"])
    h = decode_header(header)
    if h["network"] != net_id:
        raise Refused("header")
    block_hash = sha256(header)
    if unhex(b["block_hash"], 32) != block_hash:
        raise Refused("block hash")
    if not sig_ok(master, DOMAIN_BLOCK + block_hash, unhex(b["master_signature"], 64)):
        raise Refused("master signature")
    entry = base64.b64decode(b["entry"], validate=True)
    decode_entry(entry)
    path = [unhex(p, 32) for p in b["entries_path"]]
    if root_from_path(b["leaf_index"], h["count"], leaf_of_entry(entry), path) != h["entries_root"]:
        raise Refused("inclusion")
    seen, accepted = set(), 0
    for v in b["validations"]:
        hub = hubs.get(v["hub_id"])
        if hub is None or hub["from_height"] > h["height"]:
            raise Refused("validation hub")
        if v["height"] != h["height"] or unhex(v["block_hash"], 32) != block_hash:
            raise Refused("validation block")
        if v["hub_id"] in seen:
            raise Refused("validation twice")
        seen.add(v["hub_id"])
        msg = validation_message(net_id, v["hub_id"], v["height"], block_hash, v["verdict"], v["reason"])
        if not sig_ok(unhex(hub["public_key"], 32), msg, unhex(v["signature"], 64)):
            raise Refused("validation signature")
        accepted += v["verdict"] == "accept"
    if b.get("anchor") is not None:
        verify_anchor(b["anchor"], h, block_hash)
    if accepted < netj["quorum"]:
        raise Refused("not final")
    return decode_entry(entry)


# ---------------------------------------------------------------- anchor --

ANCHOR_TAG = b"cissan"


def dsha(b):
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def varint(b, i):
    """Bitcoin's CompactSize at b[i:]; returns (value, next index)."""
    n = b[i]
    if n < 0xFD:
        return n, i + 1
    size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[n]
    return int.from_bytes(b[i + 1 : i + 1 + size], "little"), i + 1 + size


def tx_outputs(tx):
    """The output scripts of a transaction serialized without witness."""
    i = 4
    if tx[i] == 0:
        raise Refused("anchor transaction: witness serialization")
    n, i = varint(tx, i)
    for _ in range(n):
        i += 36
        size, i = varint(tx, i)
        i += size + 4
    n, i = varint(tx, i)
    scripts = []
    for _ in range(n):
        i += 8
        size, i = varint(tx, i)
        scripts.append(tx[i : i + size])
        i += size
    if i + 4 != len(tx):
        raise Refused("anchor transaction: trailing bytes")
    return scripts


def verify_anchor(a, h, block_hash):
    """SPEC.md section 11, step by step. Raises Refused."""
    if set(a) != {"history_path", "anchored_header", "tx", "txid", "tx_index", "tx_path",
                  "bitcoin_header", "bitcoin_block_hash", "bitcoin_height"}:
        raise Refused("anchor members")
    anchored = unhex(a["anchored_header"])
    ah = decode_header(anchored)
    if ah["network"] != h["network"] or ah["height"] < h["height"]:
        raise Refused("anchor history")
    anchored_hash = sha256(anchored)
    path = [unhex(p, 32) for p in a["history_path"]]
    if ah["height"] == h["height"]:
        if anchored_hash != block_hash or path:
            raise Refused("anchor history")
    elif root_from_path(h["height"], ah["height"], sha256(b"\x00" + block_hash), path) != ah["history_root"]:
        raise Refused("anchor history")
    tx = unhex(a["tx"])
    if len(tx) == 64:
        raise Refused("anchor transaction: 64 bytes")
    try:
        scripts = tx_outputs(tx)
    except (IndexError, KeyError):
        raise Refused("anchor transaction: malformed")
    if b"\x6a\x26" + ANCHOR_TAG + anchored_hash not in scripts:
        raise Refused("anchor transaction: no OP_RETURN with the anchored hash")
    txid = dsha(tx)
    if a["txid"] != txid[::-1].hex():
        raise Refused("anchor transaction: txid")
    hdr = unhex(a["bitcoin_header"], 80)
    bits = int.from_bytes(hdr[72:76], "little")
    target = (bits & 0x7FFFFF) << (8 * ((bits >> 24) - 3))
    bhash = dsha(hdr)
    if int.from_bytes(bhash, "little") > target:
        raise Refused("bitcoin header: proof of work")
    if a["bitcoin_block_hash"] != bhash[::-1].hex() or a["bitcoin_height"] < 0:
        raise Refused("bitcoin header")
    index, r = a["tx_index"], txid
    if index >= 1 << len(a["tx_path"]):
        raise Refused("bitcoin inclusion: index")
    for p in a["tx_path"]:
        p = unhex(p, 32)
        r = dsha(p + r) if index & 1 else dsha(r + p)
        index >>= 1
    if r != hdr[36:68]:
        raise Refused("bitcoin inclusion")


# ------------------------------------------------------------------ main --


def main(path):
    with open(path, encoding="utf-8") as f:
        vec = json.load(f)
    LIMITS.update(vec["limits"])
    network = unhex(vec["network_id"], 16)
    master_pub = unhex(vec["master_public_key"], 32)
    hub_pub = unhex(vec["hub_public_key"], 32)
    if HAVE_ED25519:
        check(public_from_seed(unhex(vec["master_seed"], 32)) == master_pub, "master key from seed")
        check(public_from_seed(unhex(vec["hub_seed"], 32)) == hub_pub, "hub key from seed")
    check(vec["empty_root"] == sha256(b"").hex(), "empty root")
    netj = vec["network_json"]
    check(netj["version"] == 1 and netj["network_id"] == vec["network_id"], "network.json id")
    check(netj["master_public_key"] == vec["master_public_key"], "network.json master key")

    # Entries: parse the payload, re-encode, compare; decode the bytes back.
    by_block = {}
    for i, e in enumerate(vec["entries"]):
        what = "entries[%d]" % i
        ev = parse_event(e["payload"])
        raw = encode_entry(ev, e["hub_id"], e["received_ms"], e["tags"])
        check(raw.hex() == e["entry_hex"], what + ": entry bytes from the payload")
        dec_ev, hub_id, received, tags = decode_entry(raw)
        check(encode_entry(dec_ev, hub_id, received, tags) == raw, what + ": decode/encode round trip")
        check(sha256(raw).hex() == e["digest"], what + ": digest")
        check(leaf_of_entry(raw).hex() == e["leaf_hash"], what + ": leaf hash")
        by_block.setdefault(e["block"], []).append((e["index"], raw))
    # The "event" objects are the canonical JSON renditions; they must give
    # the same entry bytes as the payloads.
    with open(path, encoding="utf-8") as f:
        raw_events = [e["event"] for e in json.load(f, parse_float=Num, parse_int=Num, object_pairs_hook=strict_object)["entries"]]
    for i, e in enumerate(vec["entries"]):
        ev = parse_event(dump_nums(raw_events[i]))
        raw = encode_entry(ev, e["hub_id"], e["received_ms"], e["tags"])
        check(raw.hex() == e["entry_hex"], "entries[%d]: entry bytes from the canonical event" % i)

    # Blocks.
    history = []
    prev = bytes(32)
    for blk in vec["blocks"]:
        hgt = blk["height"]
        what = "block %d" % hgt
        entries = [raw for _, raw in sorted(by_block.get(hgt, []))]
        leaves = [leaf_of_entry(e) for e in entries]
        check(blk["entry_count"] == len(entries), what + ": entry_count")
        check(mth(leaves).hex() == blk["entries_root"], what + ": entries_root")
        check(mth(history).hex() == blk["history_root"], what + ": history_root over earlier blocks")
        check(blk["prev_hash"] == prev.hex(), what + ": prev_hash links to the previous block")
        # Control records: u8 version 1, u8 kind, str body; their root is
        # computed as for entries, and is all zero when there are none.
        controls = [unhex(c) for c in blk["controls_hex"]]
        for c in controls:
            check(c[0] == 1 and c[1] == 1 and struct.unpack(">I", c[2:6])[0] == len(c) - 6, what + ": control record framing")
            json.loads(c[6:].decode("utf-8"))
        control_root = mth([leaf_of_entry(c) for c in controls]) if controls else bytes(32)
        check(control_root.hex() == blk["control_root"], what + ": control_root")
        header = encode_header(
            network, hgt, prev, blk["mint_time_ms"], len(entries), mth(leaves), mth(history), control_root,
        )
        check(header.hex() == blk["header_hex"], what + ": header bytes")
        check(decode_header(header)["height"] == hgt, what + ": header decodes")
        bh = sha256(header)
        check(bh.hex() == blk["block_hash"], what + ": block hash")
        # The roots climb to the block hash by one prepend, one append, one hash.
        check(sha256(header[:78] + mth(leaves) + header[110:]) == bh, what + ": entries_root climb")
        check(sha256(header[:110] + mth(history) + header[142:]) == bh, what + ": history_root climb")
        check(sha256(b"\x00" + bh).hex() == blk["block_leaf"], what + ": block leaf")
        msg = DOMAIN_BLOCK + bh
        check(msg.hex() == blk["signed_message_hex"], what + ": signed message")
        check(sig_ok(master_pub, msg, unhex(blk["master_signature"], 64)), what + ": master signature")
        check(len(blk["inclusion_proofs"]) == len(entries), what + ": a proof per entry")
        for p in blk["inclusion_proofs"]:
            m = p["leaf_index"]
            path = [unhex(x, 32) for x in p["path"]]
            check(audit_path(m, leaves) == path, what + ": audit path of leaf %d" % m)
            check(root_from_path(m, len(leaves), leaves[m], path) == mth(leaves), what + ": path %d verifies" % m)
            if path:
                bad = [bytes([path[0][0] ^ 1]) + path[0][1:]] + path[1:]
                check(root_from_path(m, len(leaves), leaves[m], bad) != mth(leaves), what + ": altered path %d refused" % m)
        history.append(sha256(b"\x00" + bh))
        prev = bh

    # History proofs: an earlier block's leaf up to a later block's hash.
    for hp in vec["history_proofs"]:
        what = "history proof of block %d" % hp["height"]
        size = hp["tree_size"]
        leaf = history[hp["height"]]
        path = [unhex(x, 32) for x in hp["path"]]
        check(hp["leaf_hash"] == leaf.hex(), what + ": leaf")
        check(audit_path(hp["height"], history[:size]) == path, what + ": path")
        root = root_from_path(hp["height"], size, leaf, path)
        check(root is not None and root.hex() == hp["root"], what + ": root")
        pre, suf = (unhex(x) for x in hp["climb_prefix_suffix"])
        check(len(pre) == 110 and len(suf) == 40, what + ": climb lengths")
        check(sha256(pre + root + suf).hex() == hp["in_block_hash"], what + ": climb to block %d" % hp["in_block"])
        check(hp["in_block_hash"] == vec["blocks"][hp["in_block"]]["block_hash"], what + ": target block")

    # Batch signature.
    bt = vec["batch"]
    entries = [unhex(vec["entries"][i]["entry_hex"]) for i in bt["entries"]]
    root = mth([leaf_of_entry(e) for e in entries])
    check(root.hex() == bt["root"], "batch root")
    msg = DOMAIN_BATCH + network + enc_str(bt["hub_id"]) + struct.pack(">Q", bt["seq"]) + root
    check(msg.hex() == bt["message_hex"], "batch message")
    check(sig_ok(hub_pub, msg, unhex(bt["signature"], 64)), "batch signature")

    # Validation.
    v = vec["validation"]
    msg = validation_message(network, v["hub_id"], v["height"], unhex(v["block_hash"], 32), v["verdict"], v["reason"])
    check(msg.hex() == v["message_hex"], "validation message")
    check(sig_ok(hub_pub, msg, unhex(v["signature"], 64)), "validation signature")

    # The proof bundle, and that the checker itself notices tampering.
    b = vec["proof_bundle"]
    ev, _, _, _ = verify_bundle(b, netj)
    check(ev["uid"] == "evt-0001", "bundle: entry")
    raw = base64.b64decode(b["entry"])
    for i in range(len(raw)):
        bad = dict(b, entry=base64.b64encode(raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]).decode())
        try:
            verify_bundle(bad, netj)
            check(False, "bundle with entry byte %d altered was accepted" % i)
        except (Refused, UnicodeDecodeError):
            check(True, "")
    hdr = unhex(b["header"])
    for i in range(len(hdr)):
        bad = dict(b, header=(hdr[:i] + bytes([hdr[i] ^ 0x80]) + hdr[i + 1 :]).hex())
        try:
            verify_bundle(bad, netj)
            check(False, "bundle with header byte %d altered was accepted" % i)
        except Refused:
            check(True, "")
    if HAVE_ED25519:
        bad = dict(b, validations=[dict(b["validations"][0], reason="x")])
        try:
            verify_bundle(bad, netj)
            check(False, "bundle with altered validation was accepted")
        except Refused:
            check(True, "")

    # The anchored bundle: SPEC.md section 11, and every byte of its
    # Bitcoin part matters.
    b = vec["anchored_proof_bundle"]
    check(b["version"] == 2, "anchored bundle: version")
    ev, _, _, _ = verify_bundle(b, netj)
    check(ev["uid"] == "evt-0001", "anchored bundle: entry")
    for member, flip in (("tx", 0x01), ("bitcoin_header", 0x01), ("anchored_header", 0x80)):
        raw = unhex(b["anchor"][member])
        for i in range(len(raw)):
            bad = dict(b, anchor=dict(b["anchor"], **{member: (raw[:i] + bytes([raw[i] ^ flip]) + raw[i + 1 :]).hex()}))
            try:
                verify_bundle(bad, netj)
                check(False, "anchored bundle with %s byte %d altered was accepted" % (member, i))
            except Refused:
                check(True, "")
    for member in ("history_path", "tx_path"):
        bad = dict(b, anchor=dict(b["anchor"], **{member: b["anchor"][member] + [b["anchor"][member][0]]}))
        try:
            verify_bundle(bad, netj)
            check(False, "anchored bundle with %s extended was accepted" % member)
        except Refused:
            check(True, "")

    msg = "check_vectors.py: %d checks passed" % CHECKS
    if SKIPPED:
        msg += "; %d signatures skipped (python3 'cryptography' not importable)" % SKIPPED
    print(msg)


def dump_nums(obj):
    """Serializes obj, writing Num literals back verbatim."""
    if isinstance(obj, Num):
        return obj.text
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(k) + ":" + dump_nums(v) for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(dump_nums(v) for v in obj) + "]"
    return json.dumps(obj, ensure_ascii=False)


if __name__ == "__main__":
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json")
    try:
        main(sys.argv[1] if len(sys.argv) > 1 else default)
    except (Mismatch, Refused) as e:
        print("check_vectors.py: MISMATCH: %s" % e, file=sys.stderr)
        sys.exit(1)
