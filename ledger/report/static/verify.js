// distill-ledger evidence-pack verifier, for the auditor's own browser.
//
// Invariants:
// - No network: nothing here fetches, imports or posts. Pack files come from the page itself
//   (a report embeds them) or from files the auditor drops or picks; nothing leaves the page.
// - Trust starts at the verifier key in the "log key" field. A key taken from the pack itself
//   proves the pack is intact, not who made it; the key row says which of the two it is.
// - Every check ends PASS, FAIL or SKIP (nothing to check yet), never silently: a check that
//   throws is a FAIL with the reason, and the first failing item (file, leaf) is named.
// - Formats are those of DESIGN.md: C2SP signed-note checkpoints (Ed25519, key id =
//   SHA-256(name || 0x0A || 0x01 || key)[:4]), RFC 6962 hashing, the pack multiproof, signed
//   entries stored as RFC 8785 bytes, DSSE v1 PAE with the log key.
"use strict";

(function () {
  const enc = new TextEncoder();
  const dec = new TextDecoder("utf-8", { fatal: true });
  const PAYLOAD_TYPE = "application/vnd.in-toto+json";
  const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
  const CHUNK = 4 * 1024 * 1024;

  // ---------- bytes ----------

  function concat(...parts) {
    const arrays = parts.map((p) => (p instanceof Uint8Array ? p : new Uint8Array(p)));
    const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
    let at = 0;
    for (const a of arrays) {
      out.set(a, at);
      at += a.length;
    }
    return out;
  }

  function toHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function same(a, b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  function b64encode(bytes) {
    let bin = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(bin);
  }

  // Strict standard base64 (RFC 4648 section 4): one spelling per value, as the Python side.
  function b64strict(text, what) {
    if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4) {
      throw new Error(what + " is not standard base64");
    }
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    if (b64encode(out) !== text) throw new Error(what + " is not canonical base64");
    return out;
  }

  // DSSE protocol: verifiers accept standard and URL-safe base64, padded or not.
  function b64loose(text, what) {
    if (typeof text !== "string") throw new Error(what + " is not a base64 string");
    let s = text.replace(/-/g, "+").replace(/_/g, "/");
    s += "=".repeat((4 - (s.length % 4)) % 4);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new Error(what + " is not base64");
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // The eight small-order points of edwards25519 (orders 1, 2, 4, 8). A key that is one of
  // them "verifies" forged signatures (R = identity, S = 0 passes for any message in both
  // BoringSSL and OpenSSL), so neither the log key nor a recorder key may be one.
  const SMALL_ORDER = new Set([
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
  ]);

  function refuseSmallOrder(publicKey, what) {
    if (SMALL_ORDER.has(toHex(publicKey))) throw new Error(what + " is a small-order point");
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  async function ed25519(publicKey, signature, message) {
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, [
      "verify",
    ]);
    return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  }

  // ---------- streaming SHA-256 (SubtleCrypto.digest takes one buffer, not a stream) ----------

  // Int32Array, not Uint32Array: values stay int32 through the additions, which V8 keeps fast.
  const K = new Int32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);

  // FIPS 180-4 section 6.2, fed in pieces so a multi-gigabyte file never sits in memory whole.
  class Sha256 {
    constructor() {
      this.h = new Int32Array([
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
      ]);
      this.w = new Int32Array(64);
      this.block = new Uint8Array(64);
      this.filled = 0;
      this.length = 0; // bytes so far (a Number stays exact up to 2**53)
    }

    compress(data, at) {
      const w = this.w;
      const h = this.h;
      for (let i = 0; i < 16; i++) {
        const j = at + 4 * i;
        w[i] = (data[j] << 24) | (data[j + 1] << 16) | (data[j + 2] << 8) | data[j + 3];
      }
      for (let i = 16; i < 64; i++) {
        const a = w[i - 15];
        const b = w[i - 2];
        const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
        const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      // Plain locals, not destructuring: this loop runs once per 64 bytes of a dataset file.
      let a = h[0];
      let b = h[1];
      let c = h[2];
      let d = h[3];
      let e = h[4];
      let f = h[5];
      let g = h[6];
      let k = h[7];
      for (let i = 0; i < 64; i++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const ch = (e & f) ^ (~e & g);
        const t1 = (k + S1 + ch + K[i] + w[i]) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const maj = (a & b) ^ (a & c) ^ (b & c);
        const t2 = (S0 + maj) | 0;
        k = g;
        g = f;
        f = e;
        e = (d + t1) | 0;
        d = c;
        c = b;
        b = a;
        a = (t1 + t2) | 0;
      }
      h[0] = (h[0] + a) | 0;
      h[1] = (h[1] + b) | 0;
      h[2] = (h[2] + c) | 0;
      h[3] = (h[3] + d) | 0;
      h[4] = (h[4] + e) | 0;
      h[5] = (h[5] + f) | 0;
      h[6] = (h[6] + g) | 0;
      h[7] = (h[7] + k) | 0;
    }

    update(data) {
      let at = 0;
      this.length += data.length;
      if (this.filled) {
        const take = Math.min(64 - this.filled, data.length);
        this.block.set(data.subarray(0, take), this.filled);
        this.filled += take;
        at = take;
        if (this.filled < 64) return this;
        this.compress(this.block, 0);
        this.filled = 0;
      }
      for (; at + 64 <= data.length; at += 64) this.compress(data, at);
      this.block.set(data.subarray(at), 0);
      this.filled = data.length - at;
      return this;
    }

    digest() {
      const bits = this.length * 8;
      const tail = new Uint8Array(((this.filled + 8) >> 6) * 64 + 64 - this.filled);
      tail[0] = 0x80;
      const view = new DataView(tail.buffer);
      view.setUint32(tail.length - 8, Math.floor(bits / 2 ** 32));
      view.setUint32(tail.length - 4, bits >>> 0);
      this.update(tail);
      const out = new Uint8Array(32);
      const o = new DataView(out.buffer);
      for (let i = 0; i < 8; i++) o.setInt32(4 * i, this.h[i]);
      return out;
    }
  }

  async function hashFile(file, onProgress) {
    const hasher = new Sha256();
    for (let at = 0; at < file.size; at += CHUNK) {
      const piece = new Uint8Array(await file.slice(at, at + CHUNK).arrayBuffer());
      hasher.update(piece);
      if (onProgress) onProgress(Math.min(at + CHUNK, file.size), file.size);
    }
    return hasher.digest();
  }

  // ---------- archives ----------

  async function inflate(bytes, format) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream(format));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  // A zip pack (`manifest build --zip`): stored or deflated members, read from the central
  // directory (APPNOTE 4.3.12/4.3.16); nothing is written anywhere.
  async function readZip(bytes) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let end = -1;
    for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
      if (view.getUint32(i, true) === 0x06054b50) {
        end = i;
        break;
      }
    }
    if (end < 0) throw new Error("not a zip file (no end of central directory)");
    const count = view.getUint16(end + 10, true);
    let at = view.getUint32(end + 16, true);
    const files = new Map();
    for (let n = 0; n < count; n++) {
      if (view.getUint32(at, true) !== 0x02014b50) throw new Error("bad zip central directory");
      const method = view.getUint16(at + 10, true);
      const size = view.getUint32(at + 20, true);
      const nameLength = view.getUint16(at + 28, true);
      const extra = view.getUint16(at + 30, true);
      const comment = view.getUint16(at + 32, true);
      const local = view.getUint32(at + 42, true);
      const name = dec.decode(bytes.subarray(at + 46, at + 46 + nameLength));
      at += 46 + nameLength + extra + comment;
      if (name.endsWith("/")) continue;
      if (view.getUint32(local, true) !== 0x04034b50) throw new Error("bad zip member " + name);
      const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
      const raw = bytes.subarray(start, start + size);
      if (method === 0) files.set(name, raw.slice());
      else if (method === 8) files.set(name, await inflate(raw, "deflate-raw"));
      else throw new Error("zip member " + name + " uses compression method " + method);
    }
    return files;
  }

  // ---------- formats ----------

  async function parseVerifierKey(text) {
    const vkey = text.trim();
    // name+hexkeyid+base64(0x01 || key): the name and the id hold no "+", the base64 may.
    const first = vkey.indexOf("+");
    const second = vkey.indexOf("+", first + 1);
    if (first <= 0 || second < 0) throw new Error("malformed verifier key: want name+id+key");
    const name = vkey.slice(0, first);
    const hexId = vkey.slice(first + 1, second);
    if (!/^[0-9a-f]{8}$/.test(hexId)) throw new Error("verifier key id is not 8 hex digits");
    const blob = b64strict(vkey.slice(second + 1), "verifier key");
    if (blob.length !== 33 || blob[0] !== 0x01) throw new Error("not an Ed25519 verifier key");
    const publicKey = blob.slice(1);
    refuseSmallOrder(publicKey, "the verifier key");
    const keyId = (await sha256(concat(enc.encode(name), [0x0a, 0x01], publicKey))).slice(0, 4);
    if (toHex(keyId) !== hexId) throw new Error("verifier key id does not match its key");
    // The DSSE keyid is the ledger key id: hex SHA-256 of the raw public key.
    const ledgerKeyId = toHex(await sha256(publicKey));
    return { text: vkey, name, keyId, publicKey, ledgerKeyId };
  }

  async function verifyCheckpoint(note, key) {
    // C2SP signed-note: the last blank line separates the text from the signature lines.
    const split = note.lastIndexOf("\n\n");
    if (split < 0) throw new Error("malformed checkpoint note: no blank line before signatures");
    const text = note.slice(0, split + 1);
    const block = note.slice(split + 2);
    if (!block.endsWith("\n")) throw new Error("malformed note: signatures must end in newline");
    let verified = false;
    for (const line of block.slice(0, -1).split("\n")) {
      const parts = line.startsWith("\u2014 ") ? line.slice(2).split(" ") : [];
      if (parts.length !== 2) throw new Error("malformed signature line: " + line);
      const blob = b64strict(parts[1], "note signature");
      if (blob.length !== 68) continue; // not an Ed25519 signature: some other key's
      if (parts[0] !== key.name || !same(blob.slice(0, 4), key.keyId)) continue;
      if (!(await ed25519(key.publicKey, blob.slice(4), enc.encode(text)))) {
        throw new Error("the signature by " + key.name + " does not verify");
      }
      verified = true;
    }
    if (!verified) throw new Error("no signature by the log key " + key.name);
    const lines = text.slice(0, -1).split("\n");
    if (lines.length < 3) throw new Error("malformed checkpoint: need origin, size and root");
    if (lines[0] !== key.name) throw new Error("checkpoint origin is not the key name");
    if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error("checkpoint size is not decimal");
    const root = b64strict(lines[2], "checkpoint root");
    if (root.length !== 32) throw new Error("checkpoint root is not 32 bytes");
    return { origin: lines[0], size: Number(lines[1]), root };
  }

  function pae(type, payload) {
    const kind = enc.encode(type);
    // DSSE v1: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in bytes.
    return concat(
      enc.encode("DSSEv1 " + kind.length + " "),
      kind,
      enc.encode(" " + payload.length + " "),
      payload,
    );
  }

  // One line of entries.jsonl.gz: {"leaf_index":N,"entry":<the stored RFC 8785 bytes>}.
  function splitEntryLine(text) {
    const head = /^\{"leaf_index":(0|[1-9][0-9]*),"entry":/.exec(text);
    if (!head || !text.endsWith("}")) throw new Error("not an entries line");
    const entry = text.slice(head[0].length, -1);
    return { leaf: Number(head[1]), entry };
  }

  // RFC 8785 sorts the keys body < key_id < sig and serializes nested values alone, so the
  // body's canonical bytes are the text between '{"body":' and the last ',"key_id":'. The
  // rebuild below proves the entry had exactly that shape.
  function bodyOf(entryText) {
    const parsed = JSON.parse(entryText);
    const cut = entryText.lastIndexOf(',"key_id":');
    if (!entryText.startsWith('{"body":') || cut < 0) throw new Error("entry is not canonical");
    const body = entryText.slice(8, cut);
    const rebuilt =
      '{"body":' + body + ',"key_id":' + JSON.stringify(parsed.key_id) + ',"sig":' +
      JSON.stringify(parsed.sig) + "}";
    if (rebuilt !== entryText || Object.keys(parsed).length !== 3) {
      throw new Error("entry is not in canonical form");
    }
    return { body, keyId: parsed.key_id, sig: parsed.sig, parsed: JSON.parse(body) };
  }

  function largestPowerOfTwoBelow(n) {
    let k = 1;
    while (k * 2 < n) k *= 2;
    return k;
  }

  // RFC 6962 2.1: MTH of leaves [a, b), split at the largest power of two below b - a.
  // The RFC 6962 root of a stream of leaf hashes, from the complete subtrees so far (largest
  // first, at most log2(n) of them): the leaves are never all held at once.
  class Frontier {
    constructor() {
      this.stack = [];
      this.size = 0;
    }
    async push(hash) {
      let node = hash;
      for (let n = this.size; n & 1; n >>= 1) node = await sha256(concat([0x01], this.stack.pop(), node));
      this.stack.push(node);
      this.size += 1;
    }
    async root() {
      if (!this.stack.length) return sha256(new Uint8Array(0));
      let acc = this.stack[this.stack.length - 1];
      for (let i = this.stack.length - 2; i >= 0; i--) acc = await sha256(concat([0x01], this.stack[i], acc));
      return acc;
    }
  }

  // DESIGN.md multiproof: h(a, b) is the listed node, else the listed leaf when b - a == 1,
  // else node(h(a, a+k), h(a+k, b)) with k the largest power of two below b - a.
  async function multiproofRoot(proof, leafHashes) {
    const nodes = new Map();
    for (const node of proof.nodes || []) {
      if (!/^[0-9a-f]{64}$/.test(node.hash)) throw new Error("proof node hash is not hex");
      const bytes = new Uint8Array(node.hash.match(/../g).map((x) => parseInt(x, 16)));
      nodes.set(node.start + ":" + node.end, bytes);
    }
    const used = new Set();
    async function h(a, b) {
      const listed = nodes.get(a + ":" + b);
      if (listed) return listed;
      if (b - a === 1) {
        const leaf = leafHashes.get(a);
        if (!leaf) throw new Error("leaf " + a + " is neither listed nor covered by a node");
        used.add(a);
        return leaf;
      }
      const k = largestPowerOfTwoBelow(b - a);
      return sha256(concat([0x01], await h(a, a + k), await h(a + k, b)));
    }
    const root = proof.tree_size === 0 ? await sha256(new Uint8Array(0)) : await h(0, proof.tree_size);
    for (const leaf of leafHashes.keys()) {
      // A node spanning a listed leaf would let that leaf go unchecked: refuse it.
      if (!used.has(leaf)) throw new Error("leaf " + leaf + " is hidden under a proof node");
    }
    return root;
  }

  // ---------- the checks ----------

  const CHECKS = [
    ["key", "Log verifier key"],
    ["dsse", "Manifest signature (DSSE)"],
    ["checkpoint", "Checkpoint signature"],
    ["files", "Pack file digests"],
    ["proof", "Multiproof against the checkpoint"],
    ["entries", "Entry signatures"],
    ["records", "Example records"],
    ["dataset", "Dataset files"],
  ];

  const state = { files: new Map(), datasets: new Map(), pinnedKey: null, running: null };

  function row(id) {
    return document.querySelector('#ledger-checks tr[data-check="' + id + '"]');
  }

  function mark(id, status, detail) {
    const tr = row(id);
    if (!tr) return;
    tr.dataset.status = status;
    tr.querySelector(".status").textContent = status.toUpperCase();
    tr.querySelector(".detail").textContent = detail;
  }

  function drawTable() {
    const body = document.querySelector("#ledger-checks tbody");
    body.textContent = "";
    for (const [id, label] of CHECKS) {
      const tr = document.createElement("tr");
      tr.dataset.check = id;
      tr.dataset.status = "pending";
      for (const [cls, text] of [["name", label], ["status", "PENDING"], ["detail", ""]]) {
        const td = document.createElement("td");
        td.className = cls;
        td.textContent = text;
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  // Each non-empty line of a gzip member, with its line number, decompressed and split as it
  // streams: the member is never one string (a million-example pack's entries are more than a
  // gigabyte, past what a browser holds in one string).
  async function forEachGzipLine(bytes, visit) {
    const reader = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip")).getReader();
    let rest = new Uint8Array(0);
    let number = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const chunk = rest.length ? concat(rest, value) : value;
      let start = 0;
      for (let end = chunk.indexOf(10); end >= 0; end = chunk.indexOf(10, start)) {
        number += 1;
        if (end > start) await visit(dec.decode(chunk.subarray(start, end)), number);
        start = end + 1;
      }
      rest = chunk.slice(start);
    }
    if (rest.length) await visit(dec.decode(rest), number + 1);
  }

  async function runChecks() {
    drawTable();
    const files = state.files;
    const have = (name) => files.has(name);
    const fail = (id, error) => mark(id, "fail", error.message || String(error));
    let statement = null;
    let key = null;

    // 1. The trust anchor.
    const field = document.getElementById("ledger-vkey");
    let envelope = null;
    try {
      if (have("manifest.dsse.json")) envelope = JSON.parse(dec.decode(files.get("manifest.dsse.json")));
    } catch (error) {
      mark("dsse", "fail", "manifest.dsse.json is not JSON: " + error.message);
    }
    let keyText = field.value.trim();
    let fromPack = false;
    if (!keyText && envelope) {
      try {
        // Read (not trusted) only to offer the key the pack names; the signature comes next.
        const claimed = JSON.parse(dec.decode(b64loose(envelope.payload, "payload")));
        keyText = claimed.predicate.ledger.log_key;
        fromPack = true;
      } catch (error) {
        keyText = "";
      }
    }
    if (!keyText) {
      mark("key", "skip", "paste the log's verifier key (name+id+key) or load a pack");
    } else {
      try {
        key = await parseVerifierKey(keyText);
        mark(
          "key",
          "pass",
          key.name + "+" + toHex(key.keyId) +
            (fromPack
              ? " (taken from the pack itself: compare it with the key you pinned)"
              : " (the key you entered)"),
        );
      } catch (error) {
        fail("key", error);
      }
    }

    // 2. DSSE over the statement.
    if (!envelope) {
      if (row("dsse").dataset.status === "pending") mark("dsse", "skip", "load manifest.dsse.json");
    } else if (!key) {
      mark("dsse", "skip", "needs a valid verifier key");
    } else {
      try {
        if (envelope.payloadType !== PAYLOAD_TYPE) throw new Error("payloadType is not in-toto");
        const payload = b64loose(envelope.payload, "payload");
        const mine = (envelope.signatures || []).filter((s) => s.keyid === key.ledgerKeyId);
        if (!mine.length) throw new Error("no signature by key " + key.ledgerKeyId);
        let ok = false;
        for (const s of mine) {
          if (await ed25519(key.publicKey, b64loose(s.sig, "signature"), pae(envelope.payloadType, payload))) ok = true;
        }
        if (!ok) throw new Error("the signature by key " + key.ledgerKeyId.slice(0, 16) + "... does not verify");
        statement = JSON.parse(dec.decode(payload));
        if (statement._type !== STATEMENT_TYPE) throw new Error("not an in-toto Statement v1");
        mark("dsse", "pass", "in-toto statement signed by the log key, " + statement.subject.length + " subject(s)");
      } catch (error) {
        fail("dsse", error);
        statement = null;
      }
    }

    // 3. The checkpoint the statement carries.
    let checkpoint = null;
    if (!statement) {
      mark("checkpoint", "skip", "needs a verified manifest");
    } else {
      try {
        checkpoint = await verifyCheckpoint(statement.predicate.ledger.checkpoint, key);
        mark("checkpoint", "pass", checkpoint.origin + ", tree size " + checkpoint.size + ", root " + toHex(checkpoint.root).slice(0, 16) + "...");
      } catch (error) {
        fail("checkpoint", error);
      }
    }

    // 4. Every loaded pack member against the digests the statement lists.
    if (!statement) {
      mark("files", "skip", "needs a verified manifest");
    } else {
      const listed = statement.predicate.files || {};
      const bad = [];
      const missing = [];
      let checked = 0;
      for (const name of Object.keys(listed).sort()) {
        if (!have(name)) {
          missing.push(name);
          continue;
        }
        checked += 1;
        if (toHex(await sha256(files.get(name))) !== listed[name]) bad.push(name);
      }
      const extra = [...files.keys()].filter((n) => n !== "manifest.dsse.json" && !(n in listed));
      if (bad.length) mark("files", "fail", "digest differs: " + bad.join(", "));
      else if (extra.length) mark("files", "fail", "not listed in the statement: " + extra.join(", "));
      else {
        const shown = missing.slice(0, 5).join(", ") + (missing.length > 5 ? ", ..." : "");
        mark("files", "pass", checked + " file(s) match" + (missing.length ? "; " + missing.length + " not loaded: " + shown : ""));
      }
    }

    // 5 and 6. Entries: signatures under the listed recorder keys, leaves under the proof. One
    // streamed pass keeps only each leaf's hash, never the entries themselves.
    let entries = null; // leaf index -> leaf hash, once every line was read
    if (!have("entries.jsonl.gz")) {
      mark("entries", "skip", "load entries.jsonl.gz");
    } else if (!statement) {
      mark("entries", "skip", "needs a verified manifest (it lists the recorder keys)");
    } else {
      const keys = new Map();
      let problem = null;
      for (const [id, b64] of Object.entries(statement.predicate.ledger.recorder_keys || {})) {
        try {
          const raw = b64strict(b64, "recorder key");
          refuseSmallOrder(raw, "recorder key " + id.slice(0, 16) + "...");
          if (toHex(await sha256(raw)) !== id) throw new Error("recorder key " + id.slice(0, 16) + "... does not match its id");
          keys.set(id, raw);
        } catch (error) {
          problem = problem || error.message;
        }
      }
      try {
        const hashes = new Map();
        await forEachGzipLine(files.get("entries.jsonl.gz"), async (line, number) => {
          let item;
          try {
            item = splitEntryLine(line);
          } catch (error) {
            throw new Error("entries.jsonl.gz line " + number + ": " + error.message);
          }
          if (hashes.has(item.leaf)) throw new Error("leaf " + item.leaf + " appears twice");
          hashes.set(item.leaf, await sha256(concat([0x00], enc.encode(item.entry))));
          if (problem) return; // the first bad signature is reported; the leaves still go on
          try {
            const signed = bodyOf(item.entry);
            const raw = keys.get(signed.keyId);
            if (!raw) throw new Error("signed by a recorder key the statement does not list");
            if (!(await ed25519(raw, b64strict(signed.sig, "entry signature"), enc.encode(signed.body)))) {
              throw new Error("signature does not verify");
            }
          } catch (error) {
            problem = "leaf " + item.leaf + ": " + error.message;
          }
        });
        entries = hashes;
        if (problem) mark("entries", "fail", problem);
        else mark("entries", "pass", hashes.size + " entries signed by " + keys.size + " listed recorder key(s)");
      } catch (error) {
        fail("entries", error);
      }
    }

    if (!have("proof.json")) {
      mark("proof", "skip", "load proof.json");
    } else if (!checkpoint || !entries) {
      mark("proof", "skip", "needs a verified checkpoint and readable entries");
    } else {
      try {
        const proof = JSON.parse(dec.decode(files.get("proof.json")));
        if (proof.tree_size !== checkpoint.size) throw new Error("proof is for tree size " + proof.tree_size + ", the checkpoint's is " + checkpoint.size);
        const wanted = [...entries.keys()].sort((x, y) => x - y).join(",");
        if ((proof.leaf_indexes || []).join(",") !== wanted) throw new Error("proof leaves differ from the entries' leaves");
        const root = await multiproofRoot(proof, entries);
        if (!same(root, checkpoint.root)) throw new Error("the root computed from " + entries.size + " entries is not the checkpoint's");
        mark("proof", "pass", entries.size + " leaves, " + (proof.nodes || []).length + " nodes, root matches");
      } catch (error) {
        fail("proof", error);
      }
    }

    // 7. Example records: the signed Merkle root over their lines, links only to proved leaves.
    if (!have("records.jsonl.gz")) {
      mark("records", "skip", "load records.jsonl.gz (or the whole pack) to check the example links");
    } else if (!statement || !entries) {
      mark("records", "skip", "needs a verified manifest and readable entries");
    } else {
      try {
        const frontier = new Frontier();
        let links = 0;
        await forEachGzipLine(files.get("records.jsonl.gz"), async (line, number) => {
          for (const link of JSON.parse(line).links || []) {
            links += 1;
            if (!entries.has(link.leaf_index)) {
              throw new Error("records.jsonl.gz line " + number + " links to leaf " + link.leaf_index + ", which the pack does not prove");
            }
          }
          await frontier.push(await sha256(concat([0x00], enc.encode(line))));
        });
        const root = toHex(await frontier.root());
        if (root !== statement.predicate.records_root) throw new Error("the records' Merkle root is not the statement's");
        mark("records", "pass", frontier.size + " examples, " + links + " links, all to proved entries");
      } catch (error) {
        fail("records", error);
      }
    }

    // 8. Dataset files dropped by the auditor, streamed through SHA-256.
    if (!state.datasets.size) {
      mark("dataset", "skip", "drop the dataset file(s) to compare them with the statement");
    } else if (!statement) {
      mark("dataset", "skip", "needs a verified manifest");
    } else {
      const subjects = statement.subject || [];
      const lines = [];
      let failed = false;
      for (const [name, file] of state.datasets) {
        let subject = subjects.find((s) => s.name === name);
        if (!subject && subjects.length === 1 && state.datasets.size === 1) subject = subjects[0];
        if (!subject) {
          failed = true;
          lines.push(name + ": not a subject of the statement");
          continue;
        }
        const digest = toHex(await hashFile(file, (done, total) => mark("dataset", "pending", name + ": " + Math.round((100 * done) / total) + "%")));
        if (digest !== subject.digest.sha256) {
          failed = true;
          lines.push(name + ": SHA-256 " + digest.slice(0, 16) + "... differs from " + subject.name + "'s " + subject.digest.sha256.slice(0, 16) + "...");
        } else {
          lines.push(name + " = " + subject.name + " (" + file.size + " bytes)");
        }
      }
      mark("dataset", failed ? "fail" : "pass", lines.join("; "));
    }

    const statuses = CHECKS.map(([id]) => row(id).dataset.status);
    const verdict = document.getElementById("ledger-verdict");
    const overall = statuses.includes("fail") ? "fail" : statuses.includes("pass") ? "pass" : "skip";
    verdict.dataset.status = overall;
    verdict.textContent =
      overall === "fail"
        ? "FAIL: at least one check failed (see below)."
        : overall === "pass"
          ? "PASS: every check that had its input passed" +
            (statuses.includes("skip") ? " (some were skipped)." : ".") +
            (fromPack ? " The key came from the pack itself: this shows integrity, not origin." : "")
          : "Nothing checked yet.";
    document.body.dataset.runs = String(Number(document.body.dataset.runs || 0) + 1);
    document.body.dataset.verify = "done";
  }

  function rerun() {
    document.body.dataset.verify = "running";
    // Serialize runs: a drop during a run waits for it, so rows never mix two runs.
    state.running = (state.running || Promise.resolve()).then(runChecks).catch((error) => {
      const verdict = document.getElementById("ledger-verdict");
      verdict.dataset.status = "fail";
      verdict.textContent = "FAIL: the verifier stopped: " + error.message;
      document.body.dataset.verify = "done";
    });
    return state.running;
  }

  // Names a pack member can have (see ledger/manifest/pack.py); any other file is taken for a
  // dataset file, to be compared with the statement's subjects.
  const KNOWN = /^(manifest\.dsse\.json|proof\.json|entries\.jsonl\.gz|records\.jsonl\.gz|verdicts\.json|consistency\.json|README\.md|report\.html|verify\.html|(policies|keys)\/.+)$/;

  async function addFiles(list) {
    document.body.dataset.verify = "running"; // before the first await: tests wait on "done"
    for (const { path, file } of list) {
      // A file picked or dropped inside a folder keeps its path below that folder.
      const inner = path.includes("/") ? path.slice(path.indexOf("/") + 1) : path;
      if (/\.zip$/i.test(file.name)) {
        const members = await readZip(new Uint8Array(await file.arrayBuffer()));
        for (const [member, bytes] of members) state.files.set(member, bytes);
      } else if (KNOWN.test(inner)) {
        state.files.set(inner, new Uint8Array(await file.arrayBuffer()));
      } else {
        state.datasets.set(file.name, file);
      }
    }
    return rerun();
  }

  function walkEntry(entry, out) {
    return new Promise((resolve, reject) => {
      if (entry.isFile) {
        entry.file((file) => {
          out.push({ path: entry.fullPath.replace(/^\//, ""), file });
          resolve();
        }, reject);
      } else {
        const reader = entry.createReader();
        const batch = () =>
          reader.readEntries((items) => {
            if (!items.length) return resolve();
            Promise.all(items.map((item) => walkEntry(item, out))).then(batch, reject);
          }, reject);
        batch();
      }
    });
  }

  function setUp() {
    const embedded = document.getElementById("ledger-pack-data");
    if (embedded) {
      const data = JSON.parse(embedded.textContent);
      for (const [name, b64] of Object.entries(data.files || {})) state.files.set(name, b64strict(b64, name));
      if (data.verifier_key) document.getElementById("ledger-vkey").value = data.verifier_key;
    }
    const zone = document.getElementById("ledger-drop");
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", async (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const out = [];
      const items = [...(event.dataTransfer.items || [])];
      const entries = items.map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
      if (entries.length && entries.every((e) => e)) {
        await Promise.all(entries.map((e) => walkEntry(e, out)));
      } else {
        for (const file of event.dataTransfer.files) out.push({ path: file.name, file });
      }
      await addFiles(out);
    });
    for (const id of ["ledger-files", "ledger-folder"]) {
      const input = document.getElementById(id);
      input.addEventListener("change", () =>
        addFiles([...input.files].map((file) => ({ path: file.webkitRelativePath || file.name, file }))),
      );
    }
    document.getElementById("ledger-vkey").addEventListener("change", rerun);
    document.getElementById("ledger-rerun").addEventListener("click", rerun);
    rerun();
  }

  window.ledgerVerify = { addFiles, rerun, state, Sha256, sha256, hashFile, forEachGzipLine, Frontier };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUp);
  else setUp();
})();
