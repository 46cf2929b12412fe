// The JavaScript verifier against the Rust one: for every vector (proofs from a dev node, with
// the verdict `pharmalink verify --json` gave and tampered variants Rust refused), the JS must
// reach the same answer or refuse too; and every altered byte of a genuine proof is refused.
// Vectors: $PHARMALINK_VECTORS (written by tools/tests/scan_page.rs) or test/vectors/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bytesToHex, checkAnswerProof, decodeProofJson, hexToBytes, isoDate, pinGenesis } from '../src/proof.js';
import { parseCode } from '../src/gs1.js';

const here = dirname(fileURLToPath(import.meta.url));
const dir = process.env.PHARMALINK_VECTORS || join(here, 'vectors');
const read = (name) => JSON.parse(readFileSync(join(dir, name), 'utf8'));
const pinned = pinGenesis(read('genesis.json'));
const vectors = readdirSync(dir).filter((f) => f.endsWith('.vector.json')).sort().map(read);

test('vectors exist', () => {
  assert.ok(existsSync(dir), dir);
  assert.ok(vectors.length >= 3, `only ${vectors.length} vectors in ${dir}`);
});

for (const v of vectors) {
  // A vector may pin its own genesis (the 4-validator chain of contracts/tests/package_proof.rs).
  const genesis = v.genesis ? pinGenesis(v.genesis) : pinned;
  if (v.expected_summary) {
    test(`${v.name}: same verdict, reasons and facts as Rust`, () => {
      const { history, verdict } = checkAnswerProof(genesis, v.proof, null);
      assert.deepEqual(
        {
          status: verdict.status,
          reasons: verdict.reasons,
          lot: verdict.lot,
          expiry: verdict.expiry === null ? null : isoDate(verdict.expiry),
          events: history.facts.map((f) => f.fact.name),
        },
        v.expected_summary,
      );
    });
  }
  if (v.expected || v.expected_summary) {
    if (v.expected) {
      test(`${v.name}: same verdict, reasons, product and timeline as Rust`, () => {
        const { answer } = checkAnswerProof(genesis, v.proof, null);
        assert.deepEqual(answer, v.expected);
      });
    }
    test(`${v.name}: bound to the scanned code`, () => {
      const scanned = parseCode(v.code);
      const status = checkAnswerProof(genesis, v.proof, scanned).answer.status;
      assert.equal(status, v.status_with_label || v.expected_summary.status);
      assert.throws(() => checkAnswerProof(genesis, v.proof, { ...scanned, serial: `${scanned.serial}X` }), /not the scanned/);
    });
    test(`${v.name}: every altered byte is refused`, () => {
      // Bound to the scanned code, as the page checks it: a proof without facts about the
      // package (never commissioned) proves only the product, so its EPC is bound by the scan.
      const scanned = parseCode(v.code);
      const bytes = hexToBytes(v.proof.data);
      // About 700 positions spread over the whole proof, one bit flipped at each (every byte
      // with PHARMALINK_FULL_SWEEP=1; the Rust suite flips every byte of its own proofs).
      const step = process.env.PHARMALINK_FULL_SWEEP ? 1 : Math.max(1, Math.ceil(bytes.length / 700));
      let checked = 0;
      for (let at = 0; at < bytes.length; at += step) {
        const altered = bytes.slice();
        altered[at] ^= 0x01;
        const proof = { format: v.proof.format, data: bytesToHex(altered) };
        assert.throws(() => checkAnswerProof(genesis, proof, scanned), undefined, `byte ${at} of ${bytes.length}`);
        checked += 1;
      }
      assert.ok(checked > 100);
      // A byte appended or removed.
      assert.throws(() => decodeProofJson({ format: v.proof.format, data: `${v.proof.data}00` }), /trailing/);
      assert.throws(() => decodeProofJson({ format: v.proof.format, data: v.proof.data.slice(0, -2) }));
    });
  } else {
    test(`${v.name}: refused, as Rust refused it (${v.rust_error})`, () => {
      assert.throws(() => checkAnswerProof(genesis, v.proof, null));
    });
  }
}

test('another genesis refuses every proof', () => {
  const other = read('genesis.json');
  const key = other.validators[0].public_key;
  other.validators[0].public_key = (key[0] === '0' ? '1' : '0') + key.slice(1);
  const wrong = pinGenesis(other);
  for (const v of vectors.filter((v) => v.expected && !v.genesis)) {
    assert.throws(() => checkAnswerProof(wrong, v.proof, null), /validator set/);
  }
});

test('GS1 codes as the node reads them', () => {
  const expect = { gtin: '00300010123455', serial: 'DEV1', lot: 'LOT1', expiry: 20280630 };
  assert.deepEqual(parseCode('(01)00300010123455(21)DEV1(10)LOT1(17)280630', 2026), expect);
  assert.deepEqual(parseCode(']d2010030001012345521DEV1\u001d10LOT1\u001d17280630', 2026), expect);
  assert.deepEqual(parseCode('\u001d010030001012345517280630' + '10LOT1\u001d21DEV1', 2026), expect);
  assert.deepEqual(parseCode('https://id.gs1.org/01/00300010123455/10/LOT1/21/DEV1?17=280630', 2026), expect);
  assert.equal(parseCode('(01)00300010123455(21)A(17)280200', 2026).expiry, 20280229);
  assert.throws(() => parseCode('(01)00300010123455'), /AI 21/);
  assert.throws(() => parseCode('(01)00300010123456(21)X'), /check digit/);
});

test('a certificate below the quorum is refused (4 validators: 2 of 4 signatures)', () => {
  const v = vectors.find((x) => x.name === 'four-validators');
  assert.ok(v, 'the 4-validator vector is missing');
  const genesis = pinGenesis(v.genesis);
  const bytes = hexToBytes(v.proof.data);
  const proof = decodeProofJson(v.proof);
  // The anchor certificate follows the anchor header: height, round, block hash, then the
  // signature count (u32) and 3 × (index u16, signature 64 bytes). Drop the last signature.
  const header = proof.anchor.header.bytes;
  const count = header.byteOffset - bytes.byteOffset + header.length + 8 + 4 + 32;
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  assert.equal(view.getUint32(count, true), 3);
  const fewer = new Uint8Array(bytes.length - 66);
  fewer.set(bytes.subarray(0, count + 4 + 2 * 66));
  fewer.set(bytes.subarray(count + 4 + 3 * 66), count + 4 + 2 * 66);
  new DataView(fewer.buffer).setUint32(count, 2, true);
  const altered = { format: v.proof.format, data: bytesToHex(fewer) };
  assert.throws(() => checkAnswerProof(genesis, altered, null), /below the quorum of 3/);
});
