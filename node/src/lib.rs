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

/// Turns transparent huge pages off for this process; binaries call it first thing in `main`
/// (mimalloc's `allow_thp=0` option does the same, but only when set in the environment).
/// mimalloc madvises its arenas for huge pages, and memory it freed and reused between blocks
/// then came back as fresh 2 MiB pages for the kernel to zero — 12 % of a validator's CPU at
/// saturation (node CPU per transaction, 4 validators: 214–219 µs with them, 180–184 µs without).
pub fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("warning: cannot turn transparent huge pages off: {error}");
    }
}
