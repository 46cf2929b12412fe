//! The `pharmalink-testnet` command line: what it refuses before starting anything.

use std::process::Command;

/// The bench measures a fresh network: a directory that already holds one (an earlier run's
/// chain, or a store of an older format) is refused, naming the directory, and left as it was.
#[test]
fn bench_refuses_a_directory_that_is_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let earlier = dir.path().join("genesis.json");
    std::fs::write(&earlier, b"{}").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pharmalink-testnet"))
        .args(["bench", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not empty") && stderr.contains(&dir.path().display().to_string()),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&earlier).unwrap(), b"{}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
