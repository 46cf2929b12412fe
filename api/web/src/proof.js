// The package proof, verified in the browser: a line-by-line port of
// `contracts::proof::{verify, verdict}` and of `api::consumer::answer_json`.
//
// Wire form: `PLPKPRF1` ‖ Borsh(PackageProof) (contracts/src/proof.rs). Borsh is canonical and
// the decoder below is strict (bools 0/1, option and enum tags in range, UTF-8 strings, no
// trailing bytes), so a decoded object's encoding is exactly the bytes it was read from: the
// hashes below are taken over those byte ranges, never over a re-encoding.
//
// Hashes (ledger/src/hash.rs, merkle.rs, contracts/src/contract/facts.rs):
//   header hash      = blake3 derive_key("pharmalink 2026-11 block header v1", Borsh(header))
//   vote digest      = blake3 derive_key("pharmalink 2026-11 consensus vote v1",
//                        Borsh(chain_id, Precommit, height, round, Some(block_hash)))
//   validator set    = blake3 derive_key("pharmalink 2026-11 validator set v1", Borsh(set))
//   state root       = blake3 derive_key("pharmalink 2026-11 application state v1",
//                        previous ‖ height LE ‖ W ‖ I ‖ F ‖ facts count LE)
//   fact leaf data   = blake3 keyed(derive_key("pharmalink 2026-11 package fact leaf v1", ""),
//                        Borsh(fact))
//   Merkle           = RFC 6962 over plain blake3: leaf H(0x00 ‖ data), node H(0x01 ‖ l ‖ r)
// Signatures: ed25519, strict encodings, no small-order key or R (ed25519-dalek verify_strict).

import { blake3 } from '@noble/hashes/blake3.js';
import { sha512 } from '@noble/hashes/sha2.js';
import * as ed from '@noble/ed25519';

ed.hashes.sha512 = sha512;

export const PACKAGE_PROOF_FORMAT = 'pharmalink.package-proof.v1';
const MAGIC = 'PLPKPRF1';
// Named maxima, as in contracts/src/proof.rs and ledger/src/limits.rs.
export const PACKAGE_PROOF_BYTES_MAX = 4 * 1024 * 1024;
const PROOF_BLOCKS_MAX = 1024;
const PROOF_FACTS_MAX = 4096;
const VALIDATORS_MAX = 128;
const MERKLE_PROOF_HASHES_MAX = 128;

const encoder = new TextEncoder();
const utf8 = new TextDecoder('utf-8', { fatal: true });

const CONTEXT = {
  header: 'pharmalink 2026-11 block header v1',
  vote: 'pharmalink 2026-11 consensus vote v1',
  validatorSet: 'pharmalink 2026-11 validator set v1',
  state: 'pharmalink 2026-11 application state v1',
  factLeaf: 'pharmalink 2026-11 package fact leaf v1',
};

/** Why a proof is refused: the field (a path into the proof) and the reason. */
export class ProofError extends Error {
  constructor(field, reason) {
    super(`${field}: ${reason}`);
    this.field = field;
    this.reason = reason;
  }
}

const fail = (field, reason) => {
  throw new ProofError(field, reason);
};

function deriveKey(context, bytes) {
  return blake3(bytes, { context: encoder.encode(context) });
}

const FACT_LEAF_KEY = deriveKey(CONTEXT.factLeaf, new Uint8Array(0));

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function u32le(n) {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n, true);
  return out;
}

function u64le(n) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  return out;
}

function borshString(text) {
  const bytes = encoder.encode(text);
  return concat(u32le(bytes.length), bytes);
}

export function hexToBytes(hex) {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    fail('data', 'not hex');
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

// ---------------------------------------------------------------------------------------------
// Strict Borsh reader

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.at = 0;
  }
  need(n) {
    if (this.at + n > this.bytes.length) fail('proof', 'cannot decode: unexpected end of input');
  }
  u8() {
    this.need(1);
    return this.bytes[this.at++];
  }
  u32() {
    this.need(4);
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }
  i32() {
    this.need(4);
    const v = this.view.getInt32(this.at, true);
    this.at += 4;
    return v;
  }
  u64() {
    this.need(8);
    const v = this.view.getBigUint64(this.at, true);
    this.at += 8;
    return v;
  }
  fixed(n) {
    this.need(n);
    const v = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }
  bool() {
    const v = this.u8();
    if (v > 1) fail('proof', 'cannot decode: invalid bool');
    return v === 1;
  }
  tag(count, what) {
    const v = this.u8();
    if (v >= count) fail('proof', `cannot decode: unknown ${what} variant ${v}`);
    return v;
  }
  string() {
    const length = this.u32();
    try {
      return utf8.decode(this.fixed(length));
    } catch (e) {
      if (e instanceof ProofError) throw e;
      return fail('proof', 'cannot decode: invalid UTF-8');
    }
  }
  vec(item) {
    const length = this.u32();
    // Every item takes at least one byte: a longer count cannot be satisfied.
    if (length > this.bytes.length - this.at) fail('proof', 'cannot decode: unexpected end of input');
    const out = [];
    for (let i = 0; i < length; i++) out.push(item(this));
    return out;
  }
  /** Reads with `read` and records the exact bytes it consumed. */
  spanned(read) {
    const start = this.at;
    const value = read(this);
    value.bytes = this.bytes.subarray(start, this.at);
    return value;
  }
}

const ascii = (bytes) => String.fromCharCode(...bytes);
const hash = (r) => r.fixed(32);
const gln = (r) => ascii(r.fixed(13));
const gtin = (r) => ascii(r.fixed(14));
const date = (r) => r.u32();

const readHeader = (r) =>
  r.spanned((r) => ({
    chain_id: r.string(),
    height: r.u64(),
    round: r.u32(),
    timestamp_ms: r.u64(),
    previous_block_hash: hash(r),
    tx_root: hash(r),
    tx_count: r.u32(),
    state_root: hash(r),
    history_root: hash(r),
    proposer: r.fixed(32),
    validator_set_hash: hash(r),
  }));

const readCertificate = (r) => ({
  height: r.u64(),
  round: r.u32(),
  block_hash: hash(r),
  signatures: r.vec((r) => ({ validator_index: r.u8() | (r.u8() << 8), signature: r.fixed(64) })),
});

const readCertified = (r) => ({ header: readHeader(r), certificate: readCertificate(r) });

const RECALL_CLASSES = ['I', 'II', 'III'];

function readSubject(r) {
  switch (r.tag(3, 'subject')) {
    case 0:
      return { kind: 'epc', epc: r.string() };
    case 1:
      return { kind: 'lot', gtin: gtin(r), lot: r.string() };
    default:
      return { kind: 'product', gtin: gtin(r) };
  }
}

const FACT_NAMES = [
  'product_registered', 'commissioned', 'packed', 'unpacked', 'shipped', 'received',
  'dispensed', 'return_verified', 'decommissioned', 'destroyed', 'quarantined',
  'suspect_cleared', 'illegitimate', 'recalled', 'storage_requirement', 'temperature_monitored',
  'cold_chain_excursion', 'delivered',
];

function readFact(r) {
  const tag = r.tag(FACT_NAMES.length, 'fact');
  const fact = { name: FACT_NAMES[tag] };
  switch (fact.name) {
    case 'product_registered':
      fact.manufacturer = gln(r);
      fact.ndc = r.string();
      fact.product_name = r.string();
      fact.strength = r.string();
      fact.dosage_form = r.string();
      fact.container_size = r.string();
      fact.company_prefix_length = r.u8();
      break;
    case 'commissioned':
      fact.manufacturer = gln(r);
      fact.gtin = gtin(r);
      fact.lot = r.string();
      fact.expiry = date(r);
      break;
    case 'packed':
    case 'unpacked':
      fact.parent = r.string();
      break;
    case 'dispensed':
    case 'delivered':
      fact.dispenser = gln(r);
      break;
    case 'storage_requirement':
      fact.min_centi_c = r.i32();
      fact.max_centi_c = r.i32();
      fact.max_excursion_minutes = r.u32();
      fact.max_cumulative_minutes = r.u32();
      break;
    case 'temperature_monitored':
      fact.batch_hash = hash(r);
      fact.readings = r.u32();
      fact.first_ms = r.u64();
      fact.last_ms = r.u64();
      fact.minutes_out = r.u32();
      break;
    case 'cold_chain_excursion':
      fact.case_id = r.u64();
      fact.rule = r.string();
      fact.minutes_out = r.u32();
      break;
    case 'return_verified':
      fact.verified = r.bool();
      break;
    case 'quarantined':
    case 'suspect_cleared':
    case 'illegitimate':
      fact.case_id = r.u64();
      break;
    case 'recalled':
      fact.by = gln(r);
      fact.class = RECALL_CLASSES[r.tag(3, 'recall class')];
      fact.reason = r.string();
      break;
    default:
      break;
  }
  return fact;
}

const readPackageFact = (r) =>
  r.spanned((r) => ({
    position: { height: r.u64(), tx: r.u32(), event: r.u32() },
    index: r.u32(),
    timestamp_ms: r.u64(),
    subject: readSubject(r),
    fact: readFact(r),
    event_hash: hash(r),
  }));

const readInclusionProof = (r) => ({
  leaf_index: r.u64(),
  tree_size: r.u64(),
  path: r.vec(hash),
});

const readBlockRoots = (r) => ({
  height: r.u64(),
  previous_root: hash(r),
  writes_digest: hash(r),
  index_digest: hash(r),
  facts_root: hash(r),
  facts_count: r.u64(),
});

const readBlockFacts = (r) => ({
  roots: readBlockRoots(r),
  next: readCertified(r),
  facts: r.vec((r) => ({ fact: readPackageFact(r), path: readInclusionProof(r) })),
});

/** Decodes the binary form (`PLPKPRF1` ‖ Borsh); throws `ProofError` naming the rule. */
export function decodeProof(bytes) {
  if (bytes.length > PACKAGE_PROOF_BYTES_MAX) {
    fail('proof', `${bytes.length} bytes exceeds the maximum of ${PACKAGE_PROOF_BYTES_MAX}`);
  }
  if (bytes.length < MAGIC.length || ascii(bytes.subarray(0, MAGIC.length)) !== MAGIC) {
    fail('proof', 'does not start with PLPKPRF1');
  }
  const r = new Reader(bytes.subarray(MAGIC.length));
  const proof = {
    chain_id: r.string(),
    epc: r.string(),
    anchor: readCertified(r),
    blocks: r.vec(readBlockFacts),
  };
  if (r.at !== r.bytes.length) fail('proof', 'cannot decode: trailing bytes');
  return proof;
}

/** Decodes the JSON form `{"format": "pharmalink.package-proof.v1", "data": hex}`. */
export function decodeProofJson(json) {
  if (!json || json.format !== PACKAGE_PROOF_FORMAT) {
    fail('format', `${JSON.stringify(json && json.format)} is not "${PACKAGE_PROOF_FORMAT}"`);
  }
  return decodeProof(hexToBytes(json.data));
}

// ---------------------------------------------------------------------------------------------
// The pinned genesis

/**
 * The genesis as the page pins it: `{chain_id, genesis_hash, validators: [{public_key (hex),
 * voting_power (decimal string or number)}]}`. Returns what verification needs, including the
 * validator set's hash computed here (not taken from the server).
 */
export function pinGenesis(pinned) {
  const validators = pinned.validators.map((v) => ({
    public_key: hexToBytes(v.public_key),
    voting_power: BigInt(v.voting_power),
  }));
  if (validators.length === 0 || validators.length > VALIDATORS_MAX) {
    fail('genesis.validators', `must hold 1 to ${VALIDATORS_MAX} validators`);
  }
  for (const v of validators) {
    if (v.public_key.length !== 32) fail('genesis.validators', 'a key is not 32 bytes');
  }
  const setBytes = concat(
    u32le(validators.length),
    ...validators.map((v) => concat(v.public_key, u64le(v.voting_power))),
  );
  const total = validators.reduce((sum, v) => sum + v.voting_power, 0n);
  return {
    chain_id: pinned.chain_id,
    genesis_hash: pinned.genesis_hash,
    validators,
    validator_set_hash: deriveKey(CONTEXT.validatorSet, setBytes),
    // ⌊2·total/3⌋ + 1 (ledger ValidatorSet::quorum_power)
    quorum_power: (total * 2n) / 3n + 1n,
  };
}

// ---------------------------------------------------------------------------------------------
// Verification

function verifySignature(signature, message, publicKey) {
  try {
    // Strict: canonical A and R, S < L, A not of small order (noble's non-ZIP-215 branch);
    // and, as ed25519-dalek's verify_strict, R not of small order either.
    if (ed.Point.fromBytes(signature.subarray(0, 32), false).isSmallOrder()) return false;
    return ed.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/**
 * Builds the curve tables and compiles the hot paths once (RFC 8032 test 1), so that the first
 * real check is as fast as the next ones. Returns whether that signature verified.
 */
export function warmUp() {
  const key = hexToBytes('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
  const signature = hexToBytes(
    'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  );
  deriveKey(CONTEXT.header, new Uint8Array(200));
  return verifySignature(signature, new Uint8Array(0), key);
}

function voteDigest(chainId, height, round, blockHash) {
  const PRECOMMIT = 1;
  return deriveKey(
    CONTEXT.vote,
    concat(borshString(chainId), [PRECOMMIT], u64le(height), u32le(round), [1], blockHash),
  );
}

function verifyCertificate(field, cert, genesis) {
  const where = `${field}.certificate`;
  if (cert.signatures.length === 0 || cert.signatures.length > VALIDATORS_MAX) {
    fail(where, `must hold 1 to ${VALIDATORS_MAX} signatures, got ${cert.signatures.length}`);
  }
  for (let i = 1; i < cert.signatures.length; i++) {
    if (cert.signatures[i - 1].validator_index >= cert.signatures[i].validator_index) {
      fail(where, 'validator indexes must be strictly increasing');
    }
  }
  const digest = voteDigest(genesis.chain_id, cert.height, cert.round, cert.block_hash);
  let power = 0n;
  for (const sig of cert.signatures) {
    const validator = genesis.validators[sig.validator_index];
    if (!validator) {
      fail(where, `validator index ${sig.validator_index} is outside the set of ${genesis.validators.length}`);
    }
    power += validator.voting_power;
  }
  if (power < genesis.quorum_power) {
    fail(where, `voting power ${power} is below the quorum of ${genesis.quorum_power}`);
  }
  for (const sig of cert.signatures) {
    const key = genesis.validators[sig.validator_index].public_key;
    if (!verifySignature(sig.signature, digest, key)) {
      fail(where, `signature does not verify under key ${bytesToHex(key)}`);
    }
  }
}

function verifyCertified(field, certified, genesis) {
  const { header, certificate } = certified;
  if (header.chain_id !== genesis.chain_id) {
    fail(`${field}.header.chain_id`, `${JSON.stringify(header.chain_id)} is not the genesis chain`);
  }
  if (!equalBytes(header.validator_set_hash, genesis.validator_set_hash)) {
    fail(`${field}.header.validator_set_hash`, 'is not the genesis validator set');
  }
  const headerHash = deriveKey(CONTEXT.header, header.bytes);
  if (
    certificate.height !== header.height ||
    certificate.round < header.round ||
    !equalBytes(certificate.block_hash, headerHash)
  ) {
    fail(`${field}.certificate`, 'does not certify this header');
  }
  verifyCertificate(field, certificate, genesis);
}

function stateRoot(roots) {
  return deriveKey(
    CONTEXT.state,
    concat(
      roots.previous_root,
      u64le(roots.height),
      roots.writes_digest,
      roots.index_digest,
      roots.facts_root,
      u64le(roots.facts_count),
    ),
  );
}

const leafHash = (data) => blake3(concat([0x00], data));
const nodeHash = (left, right) => blake3(concat([0x01], left, right));

/** RFC 9162 §2.1.3.2, as ledger `InclusionProof::verify`. */
function verifyPath(field, proof, leafData, root) {
  if (proof.leaf_index >= proof.tree_size) {
    fail(field, `leaf index ${proof.leaf_index} is outside a tree of ${proof.tree_size} leaves`);
  }
  if (proof.path.length > MERKLE_PROOF_HASHES_MAX) {
    fail(field, `audit path of ${proof.path.length} hashes exceeds ${MERKLE_PROOF_HASHES_MAX}`);
  }
  let f = proof.leaf_index;
  let s = proof.tree_size - 1n;
  let r = leafHash(leafData);
  for (const p of proof.path) {
    if (s === 0n) fail(field, 'audit path is longer than the tree is deep');
    if ((f & 1n) === 1n || f === s) {
      r = nodeHash(p, r);
      while ((f & 1n) === 0n && f !== 0n) {
        f >>= 1n;
        s >>= 1n;
      }
    } else {
      r = nodeHash(r, p);
    }
    f >>= 1n;
    s >>= 1n;
  }
  if (s !== 0n) fail(field, 'audit path is shorter than the tree is deep');
  if (!equalBytes(r, root)) fail(field, 'computed root differs from the expected root');
}

const factLeaf = (fact) => blake3(fact.bytes, { key: FACT_LEAF_KEY });

function comparePosition(a, b) {
  for (const [x, y] of [
    [a.position.height, b.position.height],
    [BigInt(a.position.tx), BigInt(b.position.tx)],
    [BigInt(a.position.event), BigInt(b.position.event)],
    [BigInt(a.index), BigInt(b.index)],
  ]) {
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

// GS1 CSET 82 (the characters AI 21 and AI 10 may hold).
const CSET82 = /^[!"%&'()*+,\-./0-9:;<=>?A-Z_a-z]*$/;

export function gs1CheckDigit(payload) {
  let sum = 0;
  for (let i = 0; i < payload.length; i++) {
    const d = payload.charCodeAt(payload.length - 1 - i) - 48;
    sum += i % 2 === 0 ? d * 3 : d;
  }
  return (10 - (sum % 10)) % 10;
}

/** GTIN and serial of an SGTIN URN (as `gs1::epc::EpcId::parse_urn`), or null. */
export function parseSgtinUrn(urn) {
  const body = urn.startsWith('urn:epc:id:sgtin:') ? urn.slice('urn:epc:id:sgtin:'.length) : null;
  if (body === null) return null;
  const first = body.indexOf('.');
  const second = first < 0 ? -1 : body.indexOf('.', first + 1);
  if (second < 0) return null;
  const prefix = body.slice(0, first);
  const reference = body.slice(first + 1, second);
  const tail = body.slice(second + 1);
  if (!/^[0-9]+$/.test(prefix) || prefix.length < 6 || prefix.length > 12) return null;
  if (!/^[0-9]+$/.test(reference) || prefix.length + reference.length !== 13) return null;
  let serial;
  try {
    if (/%(?![0-9A-Fa-f]{2})/.test(tail)) return null;
    serial = decodeURIComponent(tail);
  } catch {
    return null;
  }
  if (serial.length < 1 || serial.length > 20 || !CSET82.test(serial)) return null;
  const payload = reference[0] + prefix + reference.slice(1);
  return { gtin: payload + gs1CheckDigit(payload), serial };
}

/**
 * Checks every byte of `proof` against the pinned genesis, as `contracts::proof::verify`;
 * returns the verified history `{chain_id, epc, as_of_height, as_of_ms, facts}`.
 */
export function verifyProof(genesis, proof) {
  if (proof.chain_id !== genesis.chain_id) {
    fail('chain_id', `${JSON.stringify(proof.chain_id)} but the genesis is for ${JSON.stringify(genesis.chain_id)}`);
  }
  if (proof.blocks.length > PROOF_BLOCKS_MAX) fail('blocks', `more than ${PROOF_BLOCKS_MAX}`);
  verifyCertified('anchor', proof.anchor, genesis);
  const anchorHeight = proof.anchor.header.height;
  const facts = [];
  let lastHeight = 0n;
  proof.blocks.forEach((block, b) => {
    const field = `blocks[${b}]`;
    const height = block.roots.height;
    if (height === 0n || (b > 0 && height <= lastHeight)) {
      fail(`${field}.roots.height`, 'blocks must be in strictly ascending height, from 1');
    }
    lastHeight = height;
    if (block.next.header.height !== height + 1n || height + 1n > anchorHeight) {
      fail(
        `${field}.next.header.height`,
        `${block.next.header.height} is not the block after ${height}, at or below the anchor ${anchorHeight}`,
      );
    }
    verifyCertified(`${field}.next`, block.next, genesis);
    if (!equalBytes(block.next.header.state_root, stateRoot(block.roots))) {
      fail(`${field}.roots`, `hash to a state root that block ${height + 1n} does not carry`);
    }
    if (block.facts.length === 0) fail(`${field}.facts`, 'a block without facts');
    block.facts.forEach((proven, f) => {
      const where = `${field}.facts[${f}]`;
      if (proven.fact.position.height !== height) {
        fail(`${where}.position.height`, `${proven.fact.position.height} is not block ${height}`);
      }
      if (proven.path.tree_size !== block.roots.facts_count) {
        fail(`${where}.path.tree_size`, `${proven.path.tree_size} but the block has ${block.roots.facts_count} facts`);
      }
      verifyPath(`${where}.path`, proven.path, factLeaf(proven.fact), block.roots.facts_root);
      const previous = facts[facts.length - 1];
      if (previous && comparePosition(previous, proven.fact) >= 0) {
        fail(where, 'facts must be in strictly ascending log order');
      }
      if (facts.length >= PROOF_FACTS_MAX) fail('blocks', `more than ${PROOF_FACTS_MAX} facts`);
      facts.push(proven.fact);
    });
  });
  // Every fact must be about this package, or its product and lot as commissioned.
  const commissioning = facts.find(
    (f) => f.subject.kind === 'epc' && f.subject.epc === proof.epc && f.fact.name === 'commissioned',
  );
  const commissioned = commissioning && { gtin: commissioning.fact.gtin, lot: commissioning.fact.lot };
  const named = parseSgtinUrn(proof.epc);
  for (const fact of facts) {
    const s = fact.subject;
    let related;
    if (s.kind === 'epc') related = s.epc === proof.epc;
    else if (commissioned) {
      related = s.kind === 'product' ? s.gtin === commissioned.gtin : s.gtin === commissioned.gtin && s.lot === commissioned.lot;
    } else related = s.kind === 'product' && named !== null && named.gtin === s.gtin;
    if (!related) {
      fail(`facts at height ${fact.position.height} (event ${fact.position.event})`, `not about ${proof.epc}`);
    }
  }
  return {
    chain_id: proof.chain_id,
    epc: proof.epc,
    as_of_height: anchorHeight,
    as_of_ms: proof.anchor.header.timestamp_ms,
    facts,
  };
}

// ---------------------------------------------------------------------------------------------
// The verdict (contracts::proof::verdict) and the answer (api::consumer::answer_json)

/** `yyyymmdd` number ↔ `YYYY-MM-DD`. */
export const isoDate = (d) =>
  `${String(Math.floor(d / 10000)).padStart(4, '0')}-${String(Math.floor(d / 100) % 100).padStart(2, '0')}-${String(d % 100).padStart(2, '0')}`;

/** The UTC day of a Unix time in milliseconds, as `yyyymmdd`. */
export function dateOfMs(ms) {
  const d = new Date(Number(ms - (ms % 86400000n)));
  return d.getUTCFullYear() * 10000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate();
}

/** `YYYY-MM-DDTHH:MM:SS.mmmZ`. */
export const isoTime = (ms) => new Date(Number(ms)).toISOString();

/**
 * What a patient is told, from a verified history, the label as scanned (`{lot, expiry}` with
 * expiry as `yyyymmdd`, both optional) and today (`yyyymmdd`).
 */
export function verdict(history, label, today) {
  const out = {
    status: 'genuine_in_supply_chain',
    reasons: [],
    product: null,
    manufacturer: null,
    lot: null,
    expiry: null,
    expired: false,
    dispensed_by: null,
    cold_chain: 'not_required',
    cold_chain_readings: 0,
    cold_chain_minutes_out: 0,
  };
  let coldRequired = false;
  let excursion = null;
  let state = 'active';
  let gone = '';
  let commissioned = false;
  let recall = null;
  for (const { fact } of history.facts) {
    switch (fact.name) {
      case 'product_registered':
        out.product = {
          manufacturer: fact.manufacturer,
          ndc: fact.ndc,
          name: fact.product_name,
          strength: fact.strength,
          dosage_form: fact.dosage_form,
          container_size: fact.container_size,
        };
        break;
      case 'commissioned':
        commissioned = true;
        out.manufacturer = fact.manufacturer;
        out.lot = fact.lot;
        out.expiry = fact.expiry;
        break;
      case 'dispensed':
        state = 'dispensed';
        out.dispensed_by = fact.dispenser;
        break;
      case 'delivered':
        state = 'dispensed';
        out.dispensed_by = fact.dispenser;
        out.reasons.push('delivered to the patient by courier');
        break;
      case 'storage_requirement':
        coldRequired = true;
        break;
      case 'temperature_monitored':
        out.cold_chain_readings += fact.readings;
        out.cold_chain_minutes_out += fact.minutes_out;
        break;
      case 'cold_chain_excursion':
        excursion = `cold-chain excursion (${fact.rule}): ${fact.minutes_out} minutes out of the storage range`;
        break;
      case 'return_verified':
        if (fact.verified) state = 'active';
        break;
      case 'decommissioned':
      case 'destroyed':
        state = 'gone';
        gone = fact.name;
        break;
      case 'quarantined':
        state = 'quarantined';
        break;
      case 'suspect_cleared':
        state = 'active';
        break;
      case 'illegitimate':
        state = 'illegitimate';
        break;
      case 'recalled':
        recall = `lot recalled (${fact.class}): ${fact.reason}`;
        break;
      default:
        break;
    }
  }
  if (excursion !== null) out.cold_chain = 'excursion';
  else if (!coldRequired) out.cold_chain = 'not_required';
  else out.cold_chain = out.cold_chain_readings > 0 ? 'in_range' : 'not_monitored';
  if (excursion !== null) out.reasons.push(excursion);
  if (!commissioned) {
    if (out.product) {
      out.status = 'counterfeit_suspected';
      out.reasons.push('the manufacturer never commissioned this serial number');
    } else {
      out.status = 'unknown';
      out.reasons.push('this product is not traced on this network');
    }
    return out;
  }
  if (label.lot != null && out.lot !== null && label.lot !== out.lot) {
    out.status = 'counterfeit_suspected';
    out.reasons.push(`the label's lot ${label.lot} is not the lot ${out.lot} this serial was commissioned in`);
  }
  if (label.expiry != null && out.expiry !== null && label.expiry !== out.expiry) {
    out.status = 'counterfeit_suspected';
    out.reasons.push(`the label's expiry ${isoDate(label.expiry)} is not the commissioned expiry ${isoDate(out.expiry)}`);
  }
  out.expired = out.expiry !== null && out.expiry < today;
  if (out.expired) out.reasons.push(`expired on ${isoDate(out.expiry)}`);
  if (out.status === 'counterfeit_suspected') return out;
  if (state === 'gone') {
    out.reasons.push(`this serial number was ${gone}: no package bearing it should be in use`);
    out.status = 'counterfeit_suspected';
  } else if (state === 'illegitimate') {
    out.reasons.push('declared illegitimate (FDA Form 3911 filed)');
    out.status = 'suspect';
  } else if (recall !== null) {
    out.reasons.push(recall);
    out.status = 'recalled';
  } else if (state === 'quarantined') {
    out.reasons.push('quarantined as suspect product under investigation');
    out.status = 'suspect';
  } else {
    out.status = state === 'dispensed' ? 'genuine_dispensed' : 'genuine_in_supply_chain';
  }
  return out;
}

/** The verdict with the proof's anchor date as today (api::consumer::verdict_of). */
export const verdictOf = (history, label) => verdict(history, label, dateOfMs(history.as_of_ms));

/** The answer as `api::consumer::answer_json` gives it (without the proof). */
export function answerJson(history, v) {
  const timeline = history.facts
    .filter((f) => f.fact.name !== 'product_registered')
    .map((f) => {
      const entry = { time: isoTime(f.timestamp_ms), event: f.fact.name, height: Number(f.position.height) };
      if (f.fact.name === 'dispensed') entry.dispenser_gln = f.fact.dispenser;
      if (f.fact.name === 'commissioned') entry.manufacturer_gln = f.fact.manufacturer;
      if (f.fact.name === 'recalled') {
        entry.recall_class = f.fact.class;
        entry.reason = f.fact.reason;
      }
      if (f.fact.name === 'temperature_monitored') {
        entry.readings = f.fact.readings;
        entry.minutes_out_of_range = f.fact.minutes_out;
      }
      if (f.fact.name === 'cold_chain_excursion') {
        entry.rule = f.fact.rule;
        entry.minutes_out_of_range = f.fact.minutes_out;
      }
      return entry;
    });
  const out = {
    status: v.status,
    reasons: v.reasons,
    epc: history.epc,
    lot: v.lot,
    expiry: v.expiry === null ? null : isoDate(v.expiry),
    expired: v.expired,
    timeline,
    cold_chain: {
      status: v.cold_chain,
      readings: v.cold_chain_readings,
      minutes_out_of_range: v.cold_chain_minutes_out,
    },
    as_of: { height: Number(history.as_of_height), time: isoTime(history.as_of_ms) },
  };
  if (v.product) {
    out.product = {
      name: v.product.name,
      ndc: v.product.ndc,
      strength: v.product.strength,
      dosage_form: v.product.dosage_form,
      container_size: v.product.container_size,
      manufacturer_gln: v.product.manufacturer,
    };
  }
  if (v.dispensed_by !== null) out.dispensed_by_gln = v.dispensed_by;
  return out;
}

/**
 * The whole client-side check of a `/verify` answer's `proof` object: decode, verify against
 * the pinned genesis, bind to what was scanned (GTIN and serial), and judge.
 */
export function checkAnswerProof(genesis, proofJson, scanned) {
  const proof = decodeProofJson(proofJson);
  const history = verifyProof(genesis, proof);
  if (scanned) {
    const named = parseSgtinUrn(history.epc);
    if (!named || named.gtin !== scanned.gtin || named.serial !== scanned.serial) {
      fail('epc', `the proof is about ${history.epc}, not the scanned GTIN ${scanned.gtin} serial ${scanned.serial}`);
    }
  }
  const v = verdictOf(history, scanned ? { lot: scanned.lot, expiry: scanned.expiry } : {});
  return { history, verdict: v, answer: answerJson(history, v) };
}
