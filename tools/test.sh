#!/usr/bin/env bash
# Runs the whole default test suite: unit, property, conformance, store, crash and CLI tests.
# Longer sweeps (simulation seeds, fuzzing, benchmarks) are separate commands: see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
pharmalink_install_system_packages
pharmalink_install_test_packages
pharmalink_build_web
# One profile for tests and benchmarks: RocksDB's C++ is built once, and simulations run fast.
cargo test --release --workspace --locked "$@"
