# Shared set-up for tools/run.sh and tools/test.sh: system packages and the build directory.
# Sourced, not run.

# One fixed build directory outside the checkout, so CI and every clone on this machine reuse the
# compiled RocksDB (a cold C++ build takes 15–30 minutes on 2 cores).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pharmalink-target}"

pharmalink_apt_install() {
    if [ $# -gt 0 ]; then
        echo "installing system packages: $*" >&2
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
    fi
}

pharmalink_install_system_packages() {
    # RocksDB's bindings are generated with libclang at build time, and its C++ needs a compiler.
    local missing=()
    command -v clang >/dev/null 2>&1 || missing+=(clang)
    if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && ! ls /usr/lib/*/libclang*.so* >/dev/null 2>&1; then
        missing+=(libclang-dev)
    fi
    command -v c++ >/dev/null 2>&1 || missing+=(g++)
    # The scan page's assets are built with npm (esbuild) before cargo embeds them.
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    pharmalink_apt_install "${missing[@]}"
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo is not on PATH: install the Rust toolchain (rustup) first" >&2
        return 1
    fi
}

# The test suite only: Debian's Chromium, which the scan page's browser test drives headless.
pharmalink_install_test_packages() {
    local missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    pharmalink_apt_install "${missing[@]}"
}

# The scan page's assets (api/web/dist), which the api crate embeds: build before cargo.
pharmalink_build_web() {
    bash "$(dirname "${BASH_SOURCE[0]}")/web.sh"
}
