// What a scanned or typed code says: GTIN (AI 01), serial (AI 21), lot (AI 10), expiry (AI 17).
// Reads the forms `/verify` reads (api::consumer::parse_code): a bracketed element string,
// `]d2` / `]Q3` scan data or plain text with GS separators, and GS1 Digital Link URIs. The page
// parses the code itself so that it can check that the proof is about the package in hand.

import { gs1CheckDigit } from './proof.js';

const GS = '\u001d';

// Length of the AI by its first two digits (GS1 General Specifications, figure 7.8.5-2).
function aiLength(text) {
  const two = text.slice(0, 2);
  const n = Number(two);
  if (!/^[0-9]{2}$/.test(two)) return 0;
  if ((n >= 23 && n <= 25) || (n >= 40 && n <= 42)) return 3;
  if ((n >= 31 && n <= 36) || n === 39 || n === 43 || (n >= 70 && n <= 72) || (n >= 80 && n <= 82)) return 4;
  return 2;
}

// Values of predefined length (figure 7.8.5-1); all others end at GS or at the end.
function fixedValueLength(ai) {
  const two = ai.slice(0, 2);
  const table = { '00': 18, '01': 14, '02': 14, '03': 14, '04': 16, '11': 6, '12': 6, '13': 6, '14': 6, '15': 6, '16': 6, '17': 6, '18': 6, '19': 6, '20': 2 };
  if (two in table) return table[two];
  if (/^3[1-6]/.test(ai)) return 6;
  if (/^41[0-7]$/.test(ai)) return 13;
  return 0;
}

function parseUnbracketed(text) {
  const out = {};
  let rest = text;
  while (rest.length > 0) {
    if (rest[0] === GS) {
      rest = rest.slice(1);
      continue;
    }
    const length = aiLength(rest);
    if (length === 0 || rest.length < length) throw new Error(`cannot read an AI at "${rest.slice(0, 8)}"`);
    const ai = rest.slice(0, length);
    rest = rest.slice(length);
    const fixed = fixedValueLength(ai);
    let value;
    if (fixed) {
      value = rest.slice(0, fixed);
      rest = rest.slice(fixed);
    } else {
      const end = rest.indexOf(GS);
      value = end < 0 ? rest : rest.slice(0, end);
      rest = end < 0 ? '' : rest.slice(end + 1);
    }
    out[ai] = value;
  }
  return out;
}

function parseBracketed(text) {
  const out = {};
  const pattern = /\(([0-9]{2,4})\)([^(]*)/gy;
  let match;
  let at = 0;
  while ((match = pattern.exec(text)) !== null) {
    out[match[1]] = match[2];
    at = pattern.lastIndex;
  }
  if (at !== text.length) throw new Error('is not a bracketed element string: (AI)value…');
  return out;
}

function parseDigitalLink(text) {
  const url = new URL(text);
  const parts = url.pathname.split('/').filter((p) => p.length > 0);
  const start = parts.indexOf('01');
  if (start < 0) throw new Error('is a URI without /01/ (a GTIN): not a GS1 Digital Link');
  const out = {};
  for (let i = start; i + 1 < parts.length; i += 2) out[parts[i]] = decodeURIComponent(parts[i + 1]);
  for (const [key, value] of url.searchParams) if (/^[0-9]{2,4}$/.test(key)) out[key] = value;
  return out;
}

/** YYMMDD → `yyyymmdd` with GS1's century window and DD = 00 as the month's last day. */
export function parseYymmdd(text, referenceYear) {
  if (!/^[0-9]{6}$/.test(text)) throw new Error('the expiry (AI 17) must be 6 digits YYMMDD');
  const yy = Number(text.slice(0, 2));
  const month = Number(text.slice(2, 4));
  let day = Number(text.slice(4, 6));
  const century = Math.floor(referenceYear / 100) * 100;
  const difference = yy - (referenceYear % 100);
  let year = century + yy;
  if (difference >= 51) year -= 100;
  else if (difference <= -50) year += 100;
  if (month < 1 || month > 12) throw new Error(`the expiry's month ${text.slice(2, 4)} is not 01-12`);
  const last = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day === 0) day = last;
  if (day > last) throw new Error(`the expiry's day ${text.slice(4, 6)} does not exist`);
  return year * 10000 + month * 100 + day;
}

/**
 * `{gtin, serial, lot?, expiry? (yyyymmdd)}` of a code; throws an Error whose message says what
 * is missing or wrong.
 */
export function parseCode(raw, referenceYear = new Date().getUTCFullYear()) {
  let text = String(raw).trim();
  if (text.length === 0) throw new Error('the code is empty');
  if (text.length > 512) throw new Error('the code is longer than 512 characters');
  let elements;
  if (/^https?:\/\//i.test(text)) elements = parseDigitalLink(text);
  else if (text.startsWith('(')) elements = parseBracketed(text);
  else {
    text = text.replace(/^\](d2|Q3|C1|e0|J1)/, '');
    elements = parseUnbracketed(text);
  }
  const gtin = elements['01'];
  if (!gtin) throw new Error('the code names no GTIN (AI 01): scan the 2D code on the package');
  if (!/^[0-9]{14}$/.test(gtin) || gs1CheckDigit(gtin.slice(0, 13)) !== Number(gtin[13])) {
    throw new Error(`the GTIN ${gtin} is not 14 digits with a valid check digit`);
  }
  const serial = elements['21'];
  if (!serial) throw new Error('the code names no serial number (AI 21): scan the 2D code on the package');
  const out = { gtin, serial };
  if (elements['10'] !== undefined) out.lot = elements['10'];
  if (elements['17'] !== undefined) out.expiry = parseYymmdd(elements['17'], referenceYear);
  return out;
}
