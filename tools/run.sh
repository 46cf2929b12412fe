#!/usr/bin/env bash
# Builds PharmaLink and runs the main job: a node on its embedded single-node default
# (`pharmalink-node dev`): one validator, a generated key and genesis under ./data/dev, the
# HTTP API on 127.0.0.1:8080 (override with PHARMALINK_API=ADDR). Ctrl-C stops it; running the
# command again resumes the same chain.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
pharmalink_install_system_packages
pharmalink_build_web
cargo build --release --locked -p pharmalink-node -p pharmalink-tools -p pharmalink-testnet
exec "$CARGO_TARGET_DIR/release/pharmalink-node" dev \
    --data-dir "${PHARMALINK_DATA_DIR:-./data/dev}" \
    --api "${PHARMALINK_API:-127.0.0.1:8080}" "$@"
