#!/usr/bin/env bash
# Builds the consumer scan page's assets (api/web/dist: scan.js, decoder.js, scan.css) from
# api/web/src with the npm packages pinned in api/web/package-lock.json. The api crate embeds
# them at compile time, so this runs before cargo (tools/run.sh and tools/test.sh call it).
set -euo pipefail
cd "$(dirname "$0")/../api/web"
# npm ci only when the installed tree is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
