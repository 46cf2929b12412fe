//! Helpers shared by the integration tests that start real node processes.

use std::path::PathBuf;

/// A workspace binary: integration tests live in target/<profile>/deps, the binaries one level
/// up.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join(name)
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
