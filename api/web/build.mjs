// Builds the scan page's assets into dist/ (served by the node, embedded by api/build.rs):
// scan.js (the page and the proof verifier), decoder.js (the ZXing fallback, loaded on demand)
// and scan.css. Deterministic: the same sources and lock file give the same bytes.
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';

mkdirSync('dist', { recursive: true });
const common = {
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  legalComments: 'eof',
  logLevel: 'warning',
};
await build({ ...common, entryPoints: ['src/app.js'], outfile: 'dist/scan.js', external: ['./decoder.js'] });
await build({ ...common, entryPoints: ['src/decoder.js'], outfile: 'dist/decoder.js' });
await build({ ...common, entryPoints: ['src/scan.css'], outfile: 'dist/scan.css' });
