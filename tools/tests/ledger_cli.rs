//! The `pharmalink ledger` commands as a user runs them: real processes, a real RocksDB store,
//! and `kill -9` in the middle of a stream of appends.

use pharmalink_ledger::store::verify_chain;
use pharmalink_ledger::{Hash, LedgerRead};
use pharmalink_node::store::RocksStore;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn pharmalink() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pharmalink"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn demo_writes_a_verifiable_chain_and_a_proof_that_detects_every_changed_byte() {
    let dir = tempfile::tempdir().unwrap();
    let proof = dir.path().join("tx.proof");
    let out = run_ok(
        pharmalink()
            .args([
                "ledger",
                "demo",
                "--blocks",
                "12",
                "--txs-per-block",
                "9",
                "--data-dir",
            ])
            .arg(dir.path())
            .arg("--proof-out")
            .arg(&proof),
    );
    assert!(out.contains("chain verified: head height=12"), "{out}");
    assert!(out.contains("head height=12 hash="), "{out}");

    let ok = run_ok(pharmalink().args(["ledger", "verify-proof"]).arg(&proof));
    assert!(ok.contains("proof ok") && ok.contains("block 12"), "{ok}");

    // Running the demo again extends the same chain.
    let out = run_ok(
        pharmalink()
            .args(["ledger", "demo", "--blocks", "3", "--data-dir"])
            .arg(dir.path()),
    );
    assert!(out.contains("head height=15"), "{out}");
    let out = run_ok(
        pharmalink()
            .args(["ledger", "verify", "--data-dir"])
            .arg(dir.path().join("ledger")),
    );
    assert!(out.contains("chain verified: head height=15"), "{out}");

    let bytes = std::fs::read(&proof).unwrap();
    let tampered = dir.path().join("tampered.proof");
    // Every byte, one process each, would take minutes: the library test covers every byte;
    // here a spread of positions goes through the real command and its exit code.
    for at in (0..bytes.len())
        .step_by(bytes.len() / 40 + 1)
        .chain([bytes.len() - 1])
    {
        let mut changed = bytes.clone();
        changed[at] = changed[at].wrapping_add(1);
        std::fs::write(&tampered, &changed).unwrap();
        let out = pharmalink()
            .args(["ledger", "verify-proof"])
            .arg(&tampered)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "byte {at} changed but the proof was accepted"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("proof rejected"), "byte {at}: {err}");
    }
    let out = pharmalink()
        .args(["ledger", "verify-proof", "--validator-set-hash"])
        .arg(Hash::ZERO.to_hex())
        .arg(&proof)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the pinned"));
}

#[test]
fn kill_9_mid_stream_loses_no_acknowledged_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: Option<(u64, String)> = None;
    // Kill the writer at several points; each restart continues the same chain.
    for (round, kill_after) in [3usize, 17, 1, 40, 8].into_iter().enumerate() {
        let mut child = pharmalink()
            .args([
                "ledger",
                "demo",
                "--blocks",
                "100000",
                "--txs-per-block",
                "50",
                "--report-each",
                "--data-dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        for _ in 0..kill_after {
            let line = lines.next().expect("writer ended early").unwrap();
            let rest = line
                .strip_prefix("committed height=")
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            let (height, hash) = rest.split_once(" hash=").unwrap();
            acknowledged = Some((height.parse().unwrap(), hash.to_owned()));
        }
        child.kill().unwrap(); // SIGKILL: no destructors, no flush
        child.wait().unwrap();

        let (height, hash) = acknowledged.clone().unwrap();
        let store = RocksStore::open_existing(&dir.path().join("ledger")).unwrap();
        let head = verify_chain(&store).unwrap().unwrap();
        assert!(
            head.height >= height,
            "round {round}: acknowledged height {height} but reopened at {}",
            head.height
        );
        assert_eq!(
            store.header(height).unwrap().unwrap().hash().to_hex(),
            hash,
            "round {round}: acknowledged block changed"
        );
        assert!(
            store.block(head.height + 1).unwrap().is_none(),
            "nothing beyond the head"
        );
    }
}
