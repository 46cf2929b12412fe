// Drives the scan page in headless Chromium (Debian's /usr/bin/chromium through playwright-core)
// against a running node: types codes, uploads a photo of a DataMatrix, answers with a tampered
// and a substituted proof, and checks each verdict. Run by tools/tests/scan_page.rs, which
// starts a dev node and creates the packages:
//
//   node e2e/browser.mjs --base http://127.0.0.1:PORT --cases cases.json --out DIR
//
// cases.json: [{name, code, expect, tamper?: "flip" | "substitute", substitute_code?, photo?,
// camera?, inject? (fields merged into the answer), expect_text? (in the details)}]. The camera
// case shows the code to Chromium's fake camera (a Y4M file made here).
// Prints one `RESULT {json}` line per case and `FIGURES {json}`; exits 1 if any case fails.

import { chromium } from 'playwright-core';
import { readFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bwipjs from 'bwip-js/node';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
);
const base = args.base;
const cases = JSON.parse(readFileSync(args.cases, 'utf8'));
const out = args.out;
mkdirSync(out, { recursive: true });

/** A one-frame Y4M video (what Chromium's fake camera plays) of the DataMatrix for `code`. */
function datamatrixVideo(code, path) {
  const [symbol] = bwipjs.raw({ bcid: 'gs1datamatrix', text: code });
  const size = 480;
  const module = Math.floor(size / (symbol.pixx + 8));
  const offset = Math.floor((size - module * symbol.pixx) / 2);
  const luma = Buffer.alloc(size * size, 235);
  for (let y = 0; y < symbol.pixy; y++) {
    for (let x = 0; x < symbol.pixx; x++) {
      if (!symbol.pixs[y * symbol.pixx + x]) continue;
      for (let dy = 0; dy < module; dy++) {
        luma.fill(16, (offset + y * module + dy) * size + offset + x * module, (offset + y * module + dy) * size + offset + (x + 1) * module);
      }
    }
  }
  const chroma = Buffer.alloc((size / 2) * (size / 2) * 2, 128);
  writeFileSync(path, Buffer.concat([Buffer.from(`YUV4MPEG2 W${size} H${size} F10:1 Ip A1:1 C420jpeg\nFRAME\n`), luma, chroma]));
}
const cameraCase = cases.find((c) => c.camera);
const video = join(mkdtempSync(join(tmpdir(), 'pharmalink-scan-')), 'camera.y4m');
if (cameraCase) datamatrixVideo(cameraCase.code, video);

const browser = await chromium.launch({
  executablePath: process.env.PHARMALINK_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-video-capture=${video}`,
  ],
});
// A phone: 390×844 CSS pixels, touch, mobile user agent behaviour.
const context = await browser.newContext({
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 1,
  isMobile: true,
  hasTouch: true,
  serviceWorkers: 'block',
});
await context.grantPermissions(['camera'], { origin: base });
const page = await context.newPage();
const problems = [];
page.on('console', (m) => {
  if (m.type() === 'error') problems.push(`console: ${m.text()}`);
});
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
// Nothing may leave for another origin (no fonts, analytics, CDNs).
page.on('request', (r) => {
  if (!r.url().startsWith(base) && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) {
    problems.push(`third-party request: ${r.url()}`);
  }
});

const loadStarted = Date.now();
await page.goto(`${base}/scan`);
await page.waitForSelector('html[data-ready="true"]', { timeout: 10000 });
const loadMs = Date.now() - loadStarted;
// Which decoder a photo or the camera goes through here (Linux Chromium has no BarcodeDetector).
const nativeDetector = await page.evaluate(() => 'BarcodeDetector' in window);

let failed = 0;
const figures = { page_load_ms: loadMs, barcode_detector: nativeDetector, cases: {} };

async function answerFor(code) {
  const response = await page.request.get(`${base}/verify?code=${encodeURIComponent(code)}`);
  return response.json();
}

for (const c of cases) {
  await page.unroute('**/verify?**');
  if (c.tamper === 'flip') {
    // A node (or anyone between) alters one byte of the proof: one signature byte of the anchor.
    await page.route('**/verify?**', async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      const data = body.proof.data;
      const at = Math.floor(data.length / 2) & ~1;
      const byte = (parseInt(data.substr(at, 2), 16) ^ 0x01).toString(16).padStart(2, '0');
      body.proof.data = data.slice(0, at) + byte + data.slice(at + 2);
      await route.fulfill({ response, json: body });
    });
  } else if (c.inject) {
    // Fields another part of the node adds to the answer (e.g. the cold chain).
    await page.route('**/verify?**', async (route) => {
      const response = await route.fetch();
      await route.fulfill({ response, json: { ...(await response.json()), ...c.inject } });
    });
  } else if (c.tamper === 'substitute') {
    // A node answers with a genuine proof, but for another package.
    const other = await answerFor(c.substitute_code);
    await page.route('**/verify?**', async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      body.proof = other.proof;
      await route.fulfill({ response, json: body });
    });
  }
  await page.evaluate(() => {
    const verdict = document.getElementById('verdict');
    verdict.removeAttribute('data-status');
    verdict.removeAttribute('data-total-ms');
  });
  const started = Date.now();
  if (c.camera) {
    await page.click('#camera-start');
  } else if (c.photo) {
    const png = await bwipjs.toBuffer({ bcid: 'gs1datamatrix', text: c.code, scale: 4, paddingwidth: 4, paddingheight: 4, backgroundcolor: 'FFFFFF' });
    await page.setInputFiles('#photo', { name: 'package.png', mimeType: 'image/png', buffer: png });
  } else {
    await page.fill('#code', c.code);
    await page.press('#code', 'Enter');
  }
  let status = null;
  try {
    await page.waitForSelector('#verdict[data-total-ms]', { timeout: 10000 });
    status = await page.getAttribute('#verdict', 'data-status');
  } catch (error) {
    problems.push(`${c.name}: no verdict: ${(await page.textContent('#scan-status')) || error.message}`);
  }
  const wallMs = Date.now() - started;
  const totalMs = Number(await page.getAttribute('#verdict', 'data-total-ms'));
  const verifyMs = Number(await page.getAttribute('#verdict', 'data-verify-ms'));
  const heading = (await page.textContent('#verdict h3').catch(() => '')) || '';
  const timeline = await page.$$eval('ol.timeline li', (items) => items.length).catch(() => 0);
  // What the phone shows: the 390×844 viewport, scrolled to the result.
  const screenshot = join(out, `${c.name}.png`);
  await page.waitForTimeout(400); // the page's own smooth scroll to the result
  await page.evaluate(() => {
    const top = document.getElementById('verdict').getBoundingClientRect().top + window.scrollY;
    window.scrollTo({ top: Math.max(0, top - 12), behavior: 'instant' });
  });
  await page.screenshot({ path: screenshot });
  const detailsText = (await page.textContent('#details')) || '';
  const ok = status === c.expect && (!c.expect_text || detailsText.includes(c.expect_text));
  if (!ok) failed += 1;
  figures.cases[c.name] = { total_ms: totalMs, wall_ms: wallMs, verify_ms: verifyMs, timeline };
  console.log(`RESULT ${JSON.stringify({ name: c.name, ok, status, expect: c.expect, heading: heading.trim(), total_ms: totalMs, wall_ms: wallMs, verify_ms: verifyMs, timeline, screenshot })}`);
}
await page.unroute('**/verify?**');

// In-browser verification of the genuine package's proof, warm, 50 runs: the median.
const genuine = cases.find((c) => c.expect === 'genuine_dispensed' && !c.tamper);
if (genuine) {
  const answer = await answerFor(genuine.code);
  figures.verify_runs = await page.evaluate(async (proof) => {
    const { benchmarkVerify } = await import('/scan/scan.js');
    return benchmarkVerify(proof, 50);
  }, answer.proof);
}

// A 320 px wide screen: nothing wider than the viewport.
await page.setViewportSize({ width: 320, height: 640 });
const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
figures.overflow_at_320px = overflow;
if (overflow > 0) problems.push(`the page is ${overflow} px wider than a 320 px screen`);
await page.evaluate(() => window.scrollTo(0, 0));
await page.screenshot({ path: join(out, 'narrow-320.png') });
// Accessibility basics: the verdict is announced, every control is labelled.
const a11y = await page.evaluate(() => ({
  live: document.getElementById('result').getAttribute('aria-live'),
  unlabelled: [...document.querySelectorAll('input')].filter((i) => !document.querySelector(`label[for="${i.id}"]`)).length,
  lang: document.documentElement.lang,
}));
if (a11y.live !== 'polite' || a11y.unlabelled !== 0 || !a11y.lang) problems.push(`accessibility: ${JSON.stringify(a11y)}`);

for (const p of problems) console.log(`PROBLEM ${p}`);
console.log(`FIGURES ${JSON.stringify(figures)}`);
await browser.close();
process.exit(failed > 0 || problems.length > 0 ? 1 : 0);
