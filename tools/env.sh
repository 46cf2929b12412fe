# Shared set-up for tools/run.sh and tools/test.sh: system packages and the build directory.
# Sourced, not run.

# One fixed build directory outside the checkout, so CI and every clone on this machine reuse the
# compiled RocksDB (a cold C++ build takes 15–30 minutes on 2 cores).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pharmalink-target}"

pharmalink_install_system_packages() {
    # RocksDB's bindings are generated with libclang at build time, and its C++ needs a compiler.
    local missing=()
    command -v clang >/dev/null 2>&1 || missing+=(clang)
    if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && ! ls /usr/lib/*/libclang*.so* >/dev/null 2>&1; then
        missing+=(libclang-dev)
    fi
    command -v c++ >/dev/null 2>&1 || missing+=(g++)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing system packages: ${missing[*]}" >&2
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo is not on PATH: install the Rust toolchain (rustup) first" >&2
        return 1
    fi
}
