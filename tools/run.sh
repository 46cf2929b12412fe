#!/usr/bin/env bash
# Builds PharmaLink and runs the main job on its embedded single-node default.
# Until the networked node lands (issue 4), that is the ledger demo: it writes certified blocks
# to a RocksDB store under ./data, reopens and verifies the chain, and writes an inclusion proof.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
pharmalink_install_system_packages
cargo build --release --locked -p pharmalink-tools
bin="$CARGO_TARGET_DIR/release/pharmalink"
data="${PHARMALINK_DATA_DIR:-./data/demo}"
"$bin" ledger demo --data-dir "$data" --blocks "${PHARMALINK_DEMO_BLOCKS:-20}" --proof-out "$data/last-tx.proof" "$@"
"$bin" ledger verify-proof "$data/last-tx.proof"
