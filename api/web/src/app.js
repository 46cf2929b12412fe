// The scan page: read a package's code (camera, photo or typing), fetch `/verify`, check the
// proof here against the genesis pinned in the page, and show the verdict from the verified
// facts only. The server's own `status` is never shown: a proof that fails to verify is
// reported as such, whatever the server says.

import { checkAnswerProof, pinGenesis, warmUp } from './proof.js';
import { parseCode } from './gs1.js';

const $ = (id) => document.getElementById(id);

const genesis = (() => {
  try {
    return pinGenesis(JSON.parse($('pinned-genesis').textContent));
  } catch (error) {
    return null;
  }
})();

const VERDICTS = {
  genuine_dispensed: ['good', '✓', 'Genuine', 'Made by its manufacturer and dispensed by a pharmacy.'],
  genuine_in_supply_chain: [
    'warn', '!', 'Genuine, not yet dispensed',
    'Made by its manufacturer, but no pharmacy has recorded dispensing it. If a pharmacy gave it to you, ask them.',
  ],
  recalled: ['bad', '✕', 'Recalled: do not use', 'Its lot has been recalled. Ask your pharmacist.'],
  suspect: ['bad', '✕', 'Suspect: do not use', 'This package is under investigation. Ask your pharmacist.'],
  unknown: ['warn', '?', 'Not traced on this network', 'This product is not recorded here; that alone does not make it fake.'],
  counterfeit_suspected: ['bad', '✕', 'Possibly counterfeit: do not use', 'Show the package to your pharmacist.'],
  unverified: ['bad', '✕', 'Could not verify', 'The answer failed its proof check. Do not rely on it; try again or ask your pharmacist.'],
};

const EVENTS = {
  commissioned: 'Made and serialised by the manufacturer',
  packed: 'Packed into a case',
  unpacked: 'Taken out of its case',
  shipped: 'Shipped',
  received: 'Received by the next holder',
  dispensed: 'Dispensed by a pharmacy',
  return_verified: 'Returned',
  decommissioned: 'Decommissioned',
  destroyed: 'Destroyed',
  quarantined: 'Quarantined as suspect',
  suspect_cleared: 'Cleared after investigation',
  illegitimate: 'Declared illegitimate',
  recalled: 'Lot recalled',
  temperature_monitored: 'Temperature readings recorded',
  cold_chain_excursion: 'Temperature excursion',
  delivered: 'Delivered to the patient by courier',
};

const COLD_CHAIN = {
  in_range: 'kept within its temperature range',
  excursion: 'a temperature excursion was recorded',
  not_required: 'no cold chain required',
  not_monitored: 'required, but no temperature readings were recorded',
};

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

const when = (iso) => {
  const date = new Date(iso);
  return element('time', { datetime: iso }, date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }));
};

/** Empties the result (a live region that stays in the page, so changes are announced). */
function clearResult() {
  const verdict = $('verdict');
  verdict.className = '';
  verdict.replaceChildren();
  $('details').replaceChildren();
}

function setStatus(text) {
  $('scan-status').textContent = text;
}

function showVerdict(kind, reasons, extra) {
  const [tone, symbol, title, explanation] = VERDICTS[kind];
  const verdict = $('verdict');
  verdict.className = `verdict ${tone}`;
  verdict.dataset.status = kind;
  const list = element('ul');
  for (const reason of reasons) list.append(element('li', {}, reason));
  verdict.replaceChildren(
    element('h3', {}, element('span', { class: 'symbol', 'aria-hidden': 'true' }, symbol), title),
    element('p', {}, explanation),
    ...(reasons.length ? [list] : []),
  );
  $('details').replaceChildren(...extra);
  const result = $('result');
  result.focus({ preventScroll: true });
  result.scrollIntoView({ block: 'start', behavior: 'smooth' });
}

const plural = (n, noun) => `${n} ${noun}${n === 1 ? '' : 's'}`;

function details(answer, served, history, verifyMs) {
  const out = [];
  const facts = element('dl');
  const row = (term, value) => value && facts.append(element('dt', {}, term), element('dd', {}, value));
  if (answer.product) {
    const p = answer.product;
    row('Product', [p.name, p.strength, p.dosage_form].filter(Boolean).join(' '));
    row('Pack', p.container_size);
    row('NDC', p.ndc);
  }
  row('Lot', answer.lot);
  if (answer.expiry) row('Expires', answer.expiry + (answer.expired ? ' (expired)' : ''));
  if (answer.product) row('Manufacturer GLN', answer.product.manufacturer_gln);
  // The cold chain as the proof shows it (storage requirement, anchored readings, excursions).
  const cold = answer.cold_chain;
  const coldStatus = cold && typeof cold.status === 'string' ? cold.status : null;
  row(
    'Cold chain',
    coldStatus
      ? `${COLD_CHAIN[coldStatus] || coldStatus}${cold.readings ? ` (${cold.readings} readings, ${cold.minutes_out_of_range} min out of range)` : ''}`
      : 'not monitored',
  );
  out.push(facts);
  if (coldStatus === 'excursion') {
    out.push(element('p', { class: 'note' }, '⚠ A temperature excursion was recorded for this package: ask your pharmacist before using it.'));
  }
  if (answer.timeline.length) {
    out.push(element('h3', {}, 'Custody history'));
    const list = element('ol', { class: 'timeline' });
    for (const entry of answer.timeline) {
      let text = EVENTS[entry.event] || entry.event;
      if (entry.event === 'recalled') text += ` (class ${entry.recall_class}): ${entry.reason}`;
      if (entry.dispenser_gln) text += ` (GLN ${entry.dispenser_gln})`;
      if (entry.readings) text += ` (${entry.readings} readings, ${entry.minutes_out_of_range} min out of range)`;
      if (entry.event === 'cold_chain_excursion') text += `: ${entry.rule}, ${entry.minutes_out_of_range} min out of range`;
      list.append(element('li', {}, when(entry.time), text));
    }
    out.push(list);
  }
  const blocks = new Set(history.facts.map((f) => f.position.height)).size;
  out.push(
    element(
      'p',
      { class: 'proof', id: 'proof-summary', 'data-verify-ms': verifyMs.toFixed(2) },
      `Proof checked on this device in ${verifyMs.toFixed(1)} ms: ${plural(history.facts.length, 'signed fact')} in ${plural(blocks, 'block')}, ` +
        `certified by the network's validators, as of block ${answer.as_of.height} (`,
      when(answer.as_of.time),
      ').',
    ),
  );
  if (served.pending_events > 0) {
    out.push(element('p', { class: 'proof' }, `${plural(served.pending_events, 'very recent event')} not provable yet; check again in a few seconds.`));
  }
  const ageMinutes = (Date.now() - Date.parse(answer.as_of.time)) / 60000;
  if (ageMinutes > 10) {
    out.push(element('p', { class: 'proof' }, `This node's newest block is ${Math.round(ageMinutes)} minutes old: a later recall might not show yet.`));
  }
  return out;
}

let busy = false;

/** Checks one code; `started` is when the scan or the typing finished (performance.now()). */
async function check(code, started = performance.now()) {
  if (busy) return;
  busy = true;
  const result = $('result');
  result.setAttribute('aria-busy', 'true');
  try {
    if (!genesis) {
      showVerdict('unverified', ['this page carries no valid genesis to check proofs against'], []);
      return;
    }
    let scanned;
    try {
      scanned = parseCode(code);
    } catch (error) {
      setStatus(`Cannot read this code: ${error.message}.`);
      clearResult();
      return;
    }
    setStatus('Checking…');
    let response;
    let served;
    try {
      response = await fetch(`/verify?code=${encodeURIComponent(code.trim())}`, {
        headers: { accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
      });
      served = await response.json();
    } catch (error) {
      setStatus('The node cannot be reached. Check your connection and try again.');
      return;
    }
    if (!response.ok) {
      setStatus(`The node could not answer: ${served.detail || served.title || response.status}.`);
      clearResult();
      return;
    }
    const verifyStarted = performance.now();
    let checked;
    try {
      checked = checkAnswerProof(genesis, served.proof, scanned);
    } catch (error) {
      const verifyMs = performance.now() - verifyStarted;
      showVerdict('unverified', [`${error.field ? `${error.field}: ${error.reason}` : error.message}`], []);
      finish(started, verifyMs);
      return;
    }
    const verifyMs = performance.now() - verifyStarted;
    showVerdict(checked.answer.status, checked.answer.reasons, details(checked.answer, served, checked.history, verifyMs));
    finish(started, verifyMs);
  } finally {
    busy = false;
    result.removeAttribute('aria-busy');
  }
}

function finish(started, verifyMs) {
  const totalMs = performance.now() - started;
  const verdict = $('verdict');
  verdict.dataset.totalMs = totalMs.toFixed(1);
  verdict.dataset.verifyMs = verifyMs.toFixed(2);
  setStatus('');
}

// ---------------------------------------------------------------------------------------------
// Reading codes from images

let detector;
async function detectorFor() {
  if (detector) return detector;
  if ('BarcodeDetector' in window) {
    try {
      const formats = await window.BarcodeDetector.getSupportedFormats();
      const wanted = ['data_matrix', 'qr_code'].filter((f) => formats.includes(f));
      if (wanted.length) {
        const native = new window.BarcodeDetector({ formats: wanted });
        detector = async (source) => {
          const found = await native.detect(source);
          return found.length ? found[0].rawValue : null;
        };
        return detector;
      }
    } catch {
      // fall through to the JavaScript decoder
    }
  }
  const { decodeImageData } = await import('./decoder.js');
  const canvas = document.createElement('canvas');
  const context = canvas.getContext('2d', { willReadFrequently: true });
  detector = async (source) => {
    const width = source.videoWidth || source.width;
    const height = source.videoHeight || source.height;
    if (!width || !height) return null;
    const scale = Math.min(1, 1024 / Math.max(width, height));
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    context.drawImage(source, 0, 0, canvas.width, canvas.height);
    return decodeImageData(context.getImageData(0, 0, canvas.width, canvas.height));
  };
  return detector;
}

async function fromPhoto(file) {
  setStatus('Reading the photo…');
  try {
    const bitmap = await createImageBitmap(file);
    const text = await (await detectorFor())(bitmap);
    if (!text) {
      setStatus('No DataMatrix or QR code found in the photo. Try a sharper, closer photo, or type the code.');
      return;
    }
    const started = performance.now();
    $('code').value = text;
    await check(text, started);
  } catch (error) {
    setStatus(`Cannot read the photo: ${error.message}`);
  }
}

let stream = null;
async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus('This browser cannot use the camera here. Use a photo or type the code.');
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
  } catch (error) {
    setStatus('The camera is not available. Use a photo or type the code.');
    return;
  }
  const video = $('video');
  video.srcObject = stream;
  $('camera').hidden = false;
  await video.play();
  setStatus('Point the camera at the square code on the package.');
  const read = await detectorFor();
  const loop = async () => {
    if (!stream) return;
    const text = await read(video).catch(() => null);
    if (text) {
      const started = performance.now();
      stopCamera();
      $('code').value = text;
      await check(text, started);
      return;
    }
    setTimeout(loop, 150);
  };
  loop();
}

function stopCamera() {
  if (stream) for (const track of stream.getTracks()) track.stop();
  stream = null;
  $('camera').hidden = true;
}

// ---------------------------------------------------------------------------------------------

function start() {
  if (genesis) {
    $('chain-id').textContent = genesis.chain_id;
    $('genesis-hash').textContent = genesis.genesis_hash;
  }
  $('code-form').addEventListener('submit', (event) => {
    event.preventDefault();
    check($('code').value, performance.now());
  });
  $('photo').addEventListener('change', (event) => {
    const [file] = event.target.files;
    if (file) fromPhoto(file);
    event.target.value = '';
  });
  $('camera-start').addEventListener('click', startCamera);
  $('camera-stop').addEventListener('click', stopCamera);
  // A Digital Link opened from the phone's own camera app: /scan#code=<the URI>.
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('code');
  if (fromHash) {
    $('code').value = fromHash;
    check(fromHash, performance.now());
  }
  // Ready the verifier while the user finds the code (the first check is otherwise slower).
  setTimeout(() => {
    warmUp();
    document.documentElement.dataset.ready = 'true';
  }, 0);
}

start();

/** Verifies `proofJson` `runs` times against the pinned genesis (the browser test's figure). */
export function benchmarkVerify(proofJson, runs) {
  const times = [];
  let facts = 0;
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    facts = checkAnswerProof(genesis, proofJson, null).history.facts.length;
    times.push(performance.now() - started);
  }
  const sorted = [...times].sort((a, b) => a - b);
  return { runs, facts, first_ms: times[0], median_ms: sorted[Math.floor(runs / 2)], max_ms: sorted[runs - 1] };
}
