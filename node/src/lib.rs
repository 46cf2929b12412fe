//! The PharmaLink node: the only crate that performs IO (storage, network, clock).
#![forbid(unsafe_code)]

pub mod app;
pub mod capture;
pub mod config;
pub mod genesis;
pub mod keys;
pub mod loadgen;
pub mod mempool;
pub mod metrics;
pub mod net;
pub mod peering;
pub mod runtime;
pub mod server;
pub mod store;
pub mod vault;

/// Sets up this process's memory behaviour; binaries call it first thing in `main`.
///
/// 1. mimalloc (the global allocator, which also serves RocksDB's C++ allocations) returns
///    pages freed for a while to the kernel, and the next block's allocations then fault them
///    in again, zeroed. With this and the `override` feature, page faults per committed
///    transaction over four validators at saturation went from 9.5 to 6.3, and their CPU per
///    transaction from 167–209 to 162–171 µs. mimalloc reads its options only from the
///    environment when the process starts, so when `MIMALLOC_PURGE_DELAY` is unset the binary
///    re-executes itself (same PID, name and arguments) with it set to `-1`, never purge:
///    memory freed between blocks stays with the process for the next block (RSS stays at its
///    peak, bounded by the memtables and the block sizes). An operator's own setting is kept.
/// 2. Transparent huge pages off (mimalloc's `allow_thp=0` option does the same, but only when
///    set in the environment). mimalloc madvises its arenas for huge pages, and memory it freed
///    and reused between blocks then came back as fresh 2 MiB pages for the kernel to zero —
///    12 % of a validator's CPU at saturation. The setting survives the re-execution.
pub fn tune_memory() {
    #[cfg(target_os = "linux")]
    {
        if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
            eprintln!("warning: cannot turn transparent huge pages off: {error}");
        }
        if std::env::var_os(PURGE_DELAY_ENV).is_none() {
            use std::os::unix::process::CommandExt;
            let mut args = std::env::args_os();
            let program = args.next().unwrap_or_default();
            // The binary's own path (not `/proc/self/exe`, which would make the process's name
            // `exe` in ps and top).
            let binary = match std::env::current_exe() {
                Ok(binary) => binary,
                Err(error) => {
                    eprintln!("warning: cannot find this binary to re-execute it: {error}");
                    return;
                }
            };
            // Returns only if the execution failed; the process then goes on as it is.
            let error = std::process::Command::new(binary)
                .arg0(program)
                .args(args)
                .env(PURGE_DELAY_ENV, "-1")
                .exec();
            eprintln!("warning: cannot re-execute with {PURGE_DELAY_ENV}=-1: {error}");
        }
    }
}

/// mimalloc's option for how long freed memory is kept before it goes back to the kernel.
pub const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";
