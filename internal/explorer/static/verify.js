// The browser's own check of a cissan proof bundle (SPEC.md, section 10,
// "Verifying a bundle"), with WebCrypto SHA-256 and Ed25519. It follows the
// checks of the spec in order and stops at the first that fails.
'use strict';
(() => {
  const $ = (s) => document.querySelector(s);
  const utf8 = new TextEncoder();
  const strictUTF8 = new TextDecoder('utf-8', { fatal: true });

  class CheckFailed extends Error {
    constructor(check, msg) { super(msg); this.check = check; }
  }
  const fail = (check, msg) => { throw new CheckFailed(check, msg); };

  const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  function fromHex(check, what, s, n) {
    if (typeof s !== 'string' || s.length % 2 !== 0 || !/^[0-9a-f]*$/.test(s)) fail(check, `${what}: not lower-case hex`);
    const b = new Uint8Array(s.length / 2);
    for (let i = 0; i < b.length; i++) b[i] = parseInt(s.substr(2 * i, 2), 16);
    if (n !== undefined && b.length !== n) fail(check, `${what}: ${b.length} bytes, want ${n}`);
    return b;
  }
  function fromBase64(check, s) {
    if (typeof s !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) {
      fail(check, 'not padded standard base64');
    }
    const bin = atob(s);
    const b = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) b[i] = bin.charCodeAt(i);
    // Canonical: re-encoding gives the same text (no stray bits).
    if (btoa(bin) !== s) fail(check, 'base64 is not canonical');
    return b;
  }
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  };
  const u8 = (v) => Uint8Array.of(v);
  const u32 = (v) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v); return b; };
  const u64 = (v) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(v)); return b; };
  const str = (s) => { const b = utf8.encode(s); return concat(u32(b.length), b); };
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const sha256 = async (b) => new Uint8Array(await crypto.subtle.digest('SHA-256', b));
  async function ed25519(pub, sig, msg) {
    const key = await crypto.subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
    return crypto.subtle.verify({ name: 'Ed25519' }, key, sig, msg);
  }

  // --- entry decoding (SPEC section 3) ---
  const IDENT = /^[A-Za-z0-9._:-]+$/;
  const KEY = /^[A-Za-z0-9._:/ -]+$/;
  const LIMITS = { uid: 128, device: 128, nsPart: 64, items: 256, key: 128, string: 4096, array: 1024, ts: 9007199254740991 };

  class Reader {
    constructor(b) { this.b = b; this.v = new DataView(b.buffer, b.byteOffset, b.byteLength); this.o = 0; }
    need(n, what) { if (this.o + n > this.b.length) fail('entry', `truncated in ${what}`); }
    u8(what) { this.need(1, what); return this.b[this.o++]; }
    u32(what) { this.need(4, what); const x = this.v.getUint32(this.o); this.o += 4; return x; }
    i64(what) { this.need(8, what); const x = this.v.getBigInt64(this.o); this.o += 8; return x; }
    u64bits(what) { this.need(8, what); const x = this.v.getFloat64(this.o); this.o += 8; return x; }
    bytes(what) { const n = this.u32(what); this.need(n, what); const s = this.b.subarray(this.o, this.o + n); this.o += n; return s; }
    str(what) {
      const b = this.bytes(what);
      try { return { s: strictUTF8.decode(b), n: b.length }; } catch { fail('entry', `${what}: not valid UTF-8`); }
    }
  }
  function ident(what, v, max) {
    if (v.n < 1 || v.n > max || !IDENT.test(v.s)) fail('entry', `${what}: not an identifier of 1..${max} bytes`);
    return v.s;
  }
  function readValue(r, path, inArray) {
    const kind = r.u8(path);
    switch (kind) {
      case 1: {
        const x = r.u64bits(path);
        if (!Number.isFinite(x)) fail('entry', `${path}: number is not finite`);
        return x;
      }
      case 2: {
        const s = r.str(path);
        if (s.n > LIMITS.string) fail('entry', `${path}: string over ${LIMITS.string} bytes`);
        return s.s;
      }
      case 3: {
        const b = r.u8(path);
        if (b > 1) fail('entry', `${path}: bool byte ${b}`);
        return b === 1;
      }
      case 4: {
        if (inArray) fail('entry', `${path}: array inside an array`);
        const n = r.u32(path);
        if (n > LIMITS.array) fail('entry', `${path}: array of ${n} elements`);
        const out = [];
        for (let i = 0; i < n; i++) out.push(readValue(r, `${path}[${i}]`, true));
        return out;
      }
    }
    return fail('entry', `${path}: value kind ${kind}`);
  }
  function decodeEntry(b) {
    const r = new Reader(b);
    const version = r.u8('version');
    if (version !== 1) fail('entry', `version ${version}, want 1`);
    const e = {};
    e.hub_id = ident('hub_id', r.str('hub_id'), 128);
    e.received_ms = r.i64('received_ms');
    const ev = {};
    ev.uid = ident('uid', r.str('uid'), LIMITS.uid);
    const ts = r.i64('timestamp');
    if (ts < 1n || ts > BigInt(LIMITS.ts)) fail('entry', `timestamp ${ts} out of range`);
    ev.timestamp = Number(ts);
    const ns = r.str('namespace');
    const parts = ns.s.split('/');
    if (parts.length !== 2 || parts.some((p) => p.length < 1 || utf8.encode(p).length > LIMITS.nsPart || !IDENT.test(p))) {
      fail('entry', `namespace: not org/group`);
    }
    ev.namespace = ns.s;
    ev.device_uid = ident('device_uid', r.str('device_uid'), LIMITS.device);
    const n = r.u32('item count');
    if (n < 1 || n > LIMITS.items) fail('entry', `${n} items, want 1..${LIMITS.items}`);
    ev.items = [];
    for (let i = 0; i < n; i++) {
      const k = r.str(`items[${i}].key`);
      if (k.n < 1 || k.n > LIMITS.key || !KEY.test(k.s)) fail('entry', `items[${i}].key: bad key`);
      ev.items.push({ key: k.s, value: readValue(r, `items[${i}].value`, false) });
    }
    const t = r.u32('tag count');
    e.tags = [];
    for (let i = 0; i < t; i++) {
      e.tags.push({
        analyzer: r.str(`tags[${i}]`).s, key: r.str(`tags[${i}]`).s, label: r.str(`tags[${i}]`).s,
        model: r.str(`tags[${i}]`).s, score: r.i64(`tags[${i}]`),
      });
    }
    if (r.o !== b.length) fail('entry', `${b.length - r.o} bytes after the last tag`);
    // The canonical member order (SPEC section 2).
    e.event = { uid: ev.uid, timestamp: ev.timestamp, items: ev.items, namespace: ev.namespace, device_uid: ev.device_uid };
    return e;
  }

  // --- Merkle audit path (SPEC section 5, RFC 9162 2.1.3.2) ---
  async function rootFromPath(leaf, index, size, path) {
    if (index >= size) return null;
    let fn = index, sn = size - 1n, r = leaf;
    for (const p of path) {
      if (sn === 0n) return null;
      if ((fn & 1n) === 1n || fn === sn) {
        r = await sha256(concat(u8(1), p, r));
        while (fn !== 0n && (fn & 1n) === 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        r = await sha256(concat(u8(1), r, p));
      }
      fn >>= 1n; sn >>= 1n;
    }
    return sn === 0n ? r : null;
  }

  function parseNetwork(n) {
    if (!n || typeof n !== 'object') fail('network', 'network.json is not an object');
    if (n.version !== undefined && n.version !== 1) fail('network', `version ${n.version}, want 1`);
    const id = fromHex('network', 'network_id', n.network_id, 16);
    const master = fromHex('network', 'master_public_key', n.master_public_key, 32);
    if (!Number.isInteger(n.quorum) || n.quorum < 1) fail('network', `quorum ${n.quorum}, want at least 1`);
    const hubs = new Map();
    for (const h of n.hubs || []) {
      hubs.set(h.id, { key: fromHex('network', `hub ${h.id} public_key`, h.public_key, 32), from: BigInt(h.from_height || 0) });
    }
    return { id, master, quorum: n.quorum, hubs };
  }

  const KNOWN = ['version', 'network_id', 'entry', 'leaf_index', 'entries_path', 'header', 'block_hash', 'master_signature', 'validations', 'anchor'];

  // verify returns {checked: [...], unchecked: [...], entry, final}; it
  // throws CheckFailed at the first failing check.
  async function verify(bundle, netJSON, eventJSON, checked, unchecked) {
    const ok = (name, detail) => checked.push({ name, detail });
    const net = parseNetwork(netJSON);
    ok('network', `network.json is well formed: master key ${toHex(net.master)}, ${net.hubs.size} hubs, quorum ${net.quorum}`);

    if (!bundle || typeof bundle !== 'object' || Array.isArray(bundle)) fail('version', 'the proof is not a JSON object');
    // Version 1 carries no anchor; version 2 may carry one (its other
    // members are those of version 1).
    if (bundle.version !== 1 && bundle.version !== 2) fail('version', `bundle version ${bundle.version}, this verifier knows 1 and 2`);
    const anchor = bundle.anchor;
    const anchored = anchor !== undefined && anchor !== null;
    if (anchored && bundle.version === 1) fail('anchor', 'a version 1 bundle must not carry an anchor');
    ok('version', `bundle format version ${bundle.version}, ${anchored ? 'with' : 'without'} a Bitcoin anchor`);
    const extra = Object.keys(bundle).filter((k) => !KNOWN.includes(k));
    for (const k of extra) unchecked.push(`the bundle's "${k}" member: unknown to this verifier, so nothing it claims was checked`);
    if (!anchored) unchecked.push('a Bitcoin timestamp: the bundle carries no anchor');

    const id = fromHex('network id', 'network_id', bundle.network_id, 16);
    if (!equal(id, net.id)) fail('network id', `bundle is for network ${toHex(id)}, network.json is for ${toHex(net.id)}`);
    ok('network id', `network id ${toHex(id)} matches network.json`);

    const hb = fromHex('header', 'header', bundle.header, 182);
    const hv = new DataView(hb.buffer);
    if (String.fromCharCode(...hb.subarray(0, 4)) !== 'CSNB') fail('header', 'magic is not CSNB');
    if (hv.getUint16(4) !== 1) fail('header', `header version ${hv.getUint16(4)}, want 1`);
    if (!equal(hb.subarray(6, 22), net.id)) fail('header', 'header is for another network');
    if (hb.subarray(174, 182).some((x) => x !== 0)) fail('header', 'reserved bytes are not zero');
    const height = hv.getBigUint64(22);
    const mint = Number(hv.getBigInt64(62));
    const count = hv.getBigUint64(70);
    const entriesRoot = hb.subarray(78, 110);
    ok('header', `header is 182 well-formed bytes: height ${height}, ${count} entries, minted ${new Date(mint).toISOString()}`);

    const hash = await sha256(hb);
    const claimed = fromHex('block hash', 'block_hash', bundle.block_hash, 32);
    if (!equal(claimed, hash)) fail('block hash', `bundle says ${toHex(claimed)}, SHA-256 of the header is ${toHex(hash)}`);
    ok('block hash', `block hash ${toHex(hash)} is SHA-256 of the header`);

    const sig = fromHex('master signature', 'master_signature', bundle.master_signature, 64);
    const blockMsg = concat(utf8.encode('cissan/block/v1\0'), hash);
    if (!(await ed25519(net.master, sig, blockMsg))) fail('master signature', 'does not verify under the master key');
    ok('master signature', `master signature over the block hash verifies under master key ${toHex(net.master)}`);

    const raw = fromBase64('entry', bundle.entry);
    const entry = decodeEntry(raw);
    const digest = await sha256(raw);
    const hub = net.hubs.get(entry.hub_id);
    if (!hub || hub.from > height) fail('entry', `hub_id "${entry.hub_id}" is not a hub of network.json at height ${height}`);
    ok('entry', `entry (${raw.length} bytes, digest ${toHex(digest)}) decodes, received by ${entry.hub_id}, a hub of the network`);

    if (!Number.isSafeInteger(bundle.leaf_index) || bundle.leaf_index < 0) fail('inclusion', 'leaf_index is not a non-negative integer');
    if (!Array.isArray(bundle.entries_path)) fail('inclusion', 'entries_path is not a list');
    const path = bundle.entries_path.map((p, i) => fromHex('inclusion', `entries_path[${i}]`, p, 32));
    const leaf = await sha256(concat(u8(0), digest));
    const root = await rootFromPath(leaf, BigInt(bundle.leaf_index), count, path);
    if (!root || !equal(root, entriesRoot)) fail('inclusion', `entry is not leaf ${bundle.leaf_index} of ${count} under the header's entries root`);
    ok('inclusion', `entry is leaf ${bundle.leaf_index} of ${count} under entries_root ${toHex(entriesRoot)} (audit path of ${path.length} hashes)`);

    if (!Array.isArray(bundle.validations)) fail('validations', 'validations is not a list');
    const seen = new Set();
    let accepted = 0;
    for (const [i, v] of bundle.validations.entries()) {
      const check = `validations[${i}]`;
      if (!v || typeof v.hub_id !== 'string' || v.hub_id === '') fail(check, 'hub_id empty');
      const vh = fromHex(check, 'block_hash', v.block_hash, 32);
      if (v.verdict !== 'accept' && v.verdict !== 'reject') fail(check, `verdict "${v.verdict}"`);
      const vs = fromHex(check, 'signature', v.signature, 64);
      const h = net.hubs.get(v.hub_id);
      if (!h) fail(check, `hub "${v.hub_id}" is not in network.json`);
      if (h.from > height) fail(check, `hub "${v.hub_id}" validates only from height ${h.from}`);
      if (!Number.isSafeInteger(v.height) || BigInt(v.height) !== height || !equal(vh, hash)) fail(check, `hub "${v.hub_id}" validated another block`);
      if (seen.has(v.hub_id)) fail(check, `hub "${v.hub_id}" has more than one validation`);
      seen.add(v.hub_id);
      const msg = concat(utf8.encode('cissan/validation/v1\0'), net.id, str(v.hub_id), u64(height), hash,
        u8(v.verdict === 'accept' ? 1 : 2), str(v.reason || ''));
      if (!(await ed25519(h.key, vs, msg))) fail(check, `hub "${v.hub_id}": signature does not verify under its key`);
      if (v.verdict === 'accept') accepted++;
      ok(check, `validation by ${v.hub_id} (${v.verdict}) verifies under its key`);
    }
    let bitcoin = null;
    if (anchored) {
      bitcoin = await verifyAnchor(anchor, hb, height, hash, net, ok);
      unchecked.push(`that Bitcoin's chain holds block ${bitcoin.blockHash} at height ${bitcoin.height}: this page checked the header's proof of work, not the chain; compare with your own node or a block explorer, or run cissan verify proof --bitcoin-rpc`);
    }
    if (accepted < net.quorum) fail('quorum', `not final: ${accepted} of ${bundle.validations.length} accepting validations, quorum ${net.quorum}`);
    ok('quorum', `${accepted} accepting validations reach the quorum of ${net.quorum}: the block is final`);

    if (eventJSON !== undefined) {
      compareEvent(eventJSON, entry.event);
      ok('event', 'the event JSON you gave equals the logged event, field by field');
    } else {
      unchecked.push('an event JSON of your own: none given, so the event shown is the one in the proof');
    }
    unchecked.push('that the analyzer tags are what the analyzers compute: each hub recomputed them before countersigning, and cissan verify data replays them');
    unchecked.push('that no other event in the chain uses this uid (the master deduplicates; cissan verify data checks a whole data dir)');
    return { entry, digest, height, hash, mint, bitcoin };
  }

  // --- Bitcoin anchor (SPEC section 11) ---
  const ANCHOR_MEMBERS = ['history_path', 'anchored_header', 'tx', 'txid', 'tx_index', 'tx_path', 'bitcoin_header', 'bitcoin_block_hash', 'bitcoin_height'];
  const dsha = async (b) => sha256(await sha256(b));
  const reversedHex = (b) => toHex(Uint8Array.from(b).reverse());

  // txOutputs returns the output scripts of a transaction serialized
  // without witness data, refusing anything else.
  function txOutputs(tx) {
    let i = 4;
    const need = (n) => { if (i + n > tx.length) fail('anchor transaction', 'truncated'); };
    const varint = () => {
      need(1);
      const n = tx[i++];
      if (n < 0xfd) return n;
      const size = n === 0xfd ? 2 : n === 0xfe ? 4 : 8;
      need(size);
      let v = 0;
      for (let k = size - 1; k >= 0; k--) v = v * 256 + tx[i + k];
      i += size;
      return v;
    };
    need(1);
    if (tx[i] === 0) fail('anchor transaction', 'serialized with witness data');
    const inputs = varint();
    for (let k = 0; k < inputs; k++) { need(36); i += 36; const n = varint(); need(n + 4); i += n + 4; }
    const outputs = varint();
    const scripts = [];
    for (let k = 0; k < outputs; k++) { need(8); i += 8; const n = varint(); need(n); scripts.push(tx.subarray(i, i + n)); i += n; }
    if (i + 4 !== tx.length) fail('anchor transaction', 'not exactly one transaction');
    return scripts;
  }

  async function verifyAnchor(a, hb, height, blockHash, net, ok) {
    if (!a || typeof a !== 'object' || Array.isArray(a)) fail('anchor', 'the anchor is not an object');
    const members = Object.keys(a);
    const odd = members.filter((k) => !ANCHOR_MEMBERS.includes(k)).concat(ANCHOR_MEMBERS.filter((k) => !members.includes(k)));
    if (odd.length) fail('anchor', `members ${odd.join(', ')} unknown or missing`);

    const ah = fromHex('anchor history', 'anchored_header', a.anchored_header, 182);
    const av = new DataView(ah.buffer);
    if (String.fromCharCode(...ah.subarray(0, 4)) !== 'CSNB' || av.getUint16(4) !== 1 || ah.subarray(174).some((x) => x !== 0)) {
      fail('anchor history', 'anchored_header is not a header');
    }
    if (!equal(ah.subarray(6, 22), net.id)) fail('anchor history', 'anchored header is for another network');
    const aHeight = av.getBigUint64(22);
    const aHash = await sha256(ah);
    if (!Array.isArray(a.history_path)) fail('anchor history', 'history_path is not a list');
    const hpath = a.history_path.map((p, i) => fromHex('anchor history', `history_path[${i}]`, p, 32));
    if (aHeight < height) fail('anchor history', `anchored block ${aHeight} is older than the block ${height}`);
    if (aHeight === height) {
      if (!equal(aHash, blockHash) || hpath.length) fail('anchor history', 'an anchored block at the same height must be the block itself');
      ok('anchor history', 'the block itself is the anchored block');
    } else {
      const root = await rootFromPath(await sha256(concat(u8(0), blockHash)), height, aHeight, hpath);
      if (!root || !equal(root, ah.subarray(110, 142))) fail('anchor history', `block ${height} is not in the history of block ${aHeight}`);
      ok('anchor history', `block ${height} is leaf ${height} of the history tree of anchored block ${aHeight} (hash ${toHex(aHash)}, audit path of ${hpath.length} hashes)`);
    }

    const tx = fromHex('anchor transaction', 'tx', a.tx);
    if (tx.length === 64) fail('anchor transaction', 'a 64-byte transaction is ambiguous in Bitcoin\'s Merkle tree');
    const want = concat(Uint8Array.of(0x6a, 0x26), utf8.encode('cissan'), aHash);
    if (!txOutputs(tx).some((sc) => equal(sc, want))) fail('anchor transaction', 'no OP_RETURN output carries the anchored block hash');
    const txid = await dsha(tx);
    if (a.txid !== reversedHex(txid)) fail('anchor transaction', `txid ${a.txid}, but the transaction hashes to ${reversedHex(txid)}`);
    ok('anchor transaction', `Bitcoin transaction ${a.txid} (${tx.length} bytes without witness) carries the anchored block hash in an OP_RETURN output`);

    const bh = fromHex('bitcoin header', 'bitcoin_header', a.bitcoin_header, 80);
    const bv = new DataView(bh.buffer);
    const bits = bv.getUint32(72, true);
    const target = BigInt(bits & 0x7fffff) << BigInt(8 * ((bits >>> 24) - 3));
    const bhash = await dsha(bh);
    if (BigInt('0x' + reversedHex(bhash)) > target) fail('bitcoin header', 'the header does not meet its proof-of-work target');
    if (a.bitcoin_block_hash !== reversedHex(bhash)) fail('bitcoin header', `bitcoin_block_hash ${a.bitcoin_block_hash}, but the header hashes to ${reversedHex(bhash)}`);
    if (!Number.isSafeInteger(a.bitcoin_height) || a.bitcoin_height < 0) fail('bitcoin header', 'bitcoin_height is not a non-negative integer');

    if (!Array.isArray(a.tx_path) || !Number.isSafeInteger(a.tx_index) || a.tx_index < 0) fail('bitcoin inclusion', 'tx_path or tx_index malformed');
    if (a.tx_path.length < 32 && a.tx_index >= 2 ** a.tx_path.length) fail('bitcoin inclusion', `tx_index ${a.tx_index} does not fit a branch of ${a.tx_path.length} hashes`);
    let r = txid;
    let index = a.tx_index;
    for (const [i, p] of a.tx_path.entries()) {
      const sib = fromHex('bitcoin inclusion', `tx_path[${i}]`, p, 32);
      r = index % 2 === 1 ? await dsha(concat(sib, r)) : await dsha(concat(r, sib));
      index = Math.floor(index / 2);
    }
    if (!equal(r, bh.subarray(36, 68))) fail('bitcoin inclusion', 'the transaction\'s branch does not lead to the header\'s Merkle root');
    const time = new Date(bv.getUint32(68, true) * 1000);
    ok('bitcoin inclusion', `the transaction is number ${a.tx_index} in Bitcoin block ${a.bitcoin_block_hash} at height ${a.bitcoin_height}, mined ${time.toISOString()} (its header meets its proof-of-work target)`);
    return { blockHash: a.bitcoin_block_hash, height: a.bitcoin_height, time };
  }

  function compareEvent(ev, logged) {
    const check = 'event';
    if (!ev || typeof ev !== 'object') fail(check, 'the event file is not a JSON object');
    for (const k of ['uid', 'timestamp', 'namespace', 'device_uid']) {
      if (ev[k] !== logged[k]) fail(check, `${k} differs: ${JSON.stringify(ev[k])} given, ${JSON.stringify(logged[k])} logged`);
    }
    if (!Array.isArray(ev.items) || ev.items.length !== logged.items.length) fail(check, 'items differ in number');
    const same = (a, b) => Array.isArray(b)
      ? Array.isArray(a) && a.length === b.length && a.every((x, i) => Object.is(x, b[i]))
      : Object.is(a, b);
    ev.items.forEach((it, i) => {
      if (it.key !== logged.items[i].key || !same(it.value, logged.items[i].value)) fail(check, `items[${i}] differs`);
    });
  }

  // --- the page ---
  // A file's text, which must be valid UTF-8: decoding with replacement
  // would verify other bytes than the file holds.
  const readFile = (input) => new Promise((resolve, reject) => {
    const f = input.files && input.files[0];
    if (!f) { resolve(undefined); return; }
    const r = new FileReader();
    r.onload = () => {
      try { resolve(new TextDecoder('utf-8', { fatal: true }).decode(r.result)); } catch { reject(new CheckFailed('version', `${f.name} is not valid UTF-8`)); }
    };
    r.onerror = () => reject(r.error);
    r.readAsArrayBuffer(f);
  });
  function parseJSON(check, text, what) {
    let v;
    try { v = JSON.parse(text); } catch (e) { return fail(check, `${what} is not JSON: ${e.message}`); }
    const dup = duplicateMember(text);
    if (dup !== undefined) fail(check, `${what} gives member "${dup}" twice in one object`);
    return v;
  }
  // duplicateMember returns a member name given twice in one object of the
  // JSON text (valid JSON), at any depth: JSON.parse keeps the last, other
  // parsers the first, and two verifiers must never read one file two ways.
  function duplicateMember(text) {
    const open = []; // per open object a Set of its names, per array null
    let name = false; // the next string is a member name
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c === '"') {
        let j = i + 1;
        for (; text[j] !== '"'; j++) if (text[j] === '\\') j++;
        const names = open[open.length - 1];
        if (name && names) {
          const k = JSON.parse(text.slice(i, j + 1));
          if (names.has(k)) return k;
          names.add(k);
          name = false;
        }
        i = j;
      } else if (c === '{') { open.push(new Set()); name = true; }
      else if (c === '[') { open.push(null); name = false; }
      else if (c === '}' || c === ']') { open.pop(); }
      else if (c === ',') { name = open[open.length - 1] instanceof Set; }
    }
    return undefined;
  }
  function li(list, text, cls) {
    const el = document.createElement('li');
    el.textContent = text;
    if (cls) el.className = cls;
    list.appendChild(el);
  }
  function show(result, checked, unchecked, failure) {
    const verdict = $('#verdict');
    const checks = $('#checks');
    const un = $('#unchecked');
    checks.replaceChildren();
    un.replaceChildren();
    for (const c of checked) li(checks, `✓ ${c.name}: ${c.detail}`, 'pass');
    if (failure) li(checks, `✗ ${failure.check}: ${failure.message}`, 'fail');
    for (const u of unchecked) li(un, u);
    const summary = $('#summary');
    summary.replaceChildren();
    if (failure) {
      verdict.className = 'verdict bad';
      verdict.dataset.result = 'invalid';
      verdict.textContent = `Refused: ${failure.check} failed. ${failure.message}`;
      return;
    }
    verdict.className = 'verdict ok';
    verdict.dataset.result = 'valid';
    verdict.textContent = `Valid: event ${result.entry.event.uid} is logged unaltered in block ${result.height}, which is final` +
      (result.bitcoin ? `, and existed by Bitcoin block ${result.bitcoin.height}, mined ${result.bitcoin.time.toISOString()}.` : '.');
    const pre = document.createElement('pre');
    pre.className = 'json';
    pre.textContent = JSON.stringify(result.entry.event, null, 1);
    const p = document.createElement('p');
    p.textContent = `Received by ${result.entry.hub_id} at ${new Date(Number(result.entry.received_ms)).toISOString()}; ` +
      `tags: ${result.entry.tags.map((t) => t.label).join(', ') || 'none'}.`;
    summary.append(p, pre);
  }

  async function run(ev) {
    ev.preventDefault();
    const checked = [];
    const unchecked = [];
    let result = null;
    let failure = null;
    $('#verdict').textContent = 'Checking…';
    $('#verdict').dataset.result = 'busy';
    try {
      const proofText = await readFile($('#proof-file'));
      if (proofText === undefined) fail('proof', 'choose a proof file first');
      const bundle = parseJSON('version', proofText, 'the proof file');
      const eventText = await readFile($('#event-file'));
      const eventJSON = eventText === undefined ? undefined : parseJSON('event', eventText, 'the event file');
      let netText = await readFile($('#network-file'));
      if (netText === undefined) {
        const resp = await fetch('/v1/network', { cache: 'no-store' });
        if (!resp.ok) fail('network', `GET /v1/network: ${resp.status}`);
        netText = await resp.text();
        unchecked.push('network.json itself: it came from this server (GET /v1/network); load the copy you trust to rely on nothing the server says');
      } else {
        unchecked.push('network.json itself: it is the file you loaded; make sure it is the network\'s genuine one');
      }
      result = await verify(bundle, parseJSON('network', netText, 'network.json'), eventJSON, checked, unchecked);
    } catch (e) {
      failure = e instanceof CheckFailed ? e : { check: 'error', message: String(e && e.message || e) };
    }
    show(result, checked, unchecked, failure);
  }

  const form = $('#verify-form');
  if (form) {
    form.addEventListener('submit', run);
    $('#proof-file').addEventListener('change', run);
    const drop = $('#drop');
    drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      if (e.dataTransfer.files.length) {
        $('#proof-file').files = e.dataTransfer.files;
        run(e);
      }
    });
  }
})();
