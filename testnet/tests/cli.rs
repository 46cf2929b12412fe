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

/// A manifest's `application` reaches every node's configuration, which the node reads back;
/// an unknown application is refused by name, and leaving it out keeps the contracts.
#[test]
fn the_manifest_application_reaches_each_node_config() {
    use pharmalink_node::config::{ApplicationKind, NodeConfig};
    let manifest = |application: &str| {
        format!(
            "chain_id = \"cli-test\"\napi_port = 18900\np2p_port = 18901\n{application}[[node]]\nname = \"a\"\nrole = \"manufacturer\"\nip = \"127.0.0.2\"\nvalidator = true\n"
        )
    };
    let node_binary = std::path::Path::new(env!("CARGO_BIN_EXE_pharmalink-testnet"));
    for (line, expected) in [
        ("application = \"nonce\"\n", ApplicationKind::Nonce),
        ("application = \"contracts\"\n", ApplicationKind::Contracts),
        ("", ApplicationKind::Contracts),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let parsed: pharmalink_testnet::Manifest = toml::from_str(&manifest(line)).unwrap();
        pharmalink_testnet::Testnet::create(parsed, dir.path(), node_binary).unwrap();
        let config = NodeConfig::read(&dir.path().join("a").join("config.toml")).unwrap();
        assert_eq!(config.application, expected, "{line:?}");
    }
    let error =
        toml::from_str::<pharmalink_testnet::Manifest>(&manifest("application = \"trivial\"\n"))
            .unwrap_err()
            .to_string();
    assert!(
        error.contains("trivial") && error.contains("contracts") && error.contains("nonce"),
        "{error}"
    );
}

/// `ab` names the build directory that holds no node binary, and refuses a used directory,
/// before it starts anything.
#[test]
fn ab_refuses_a_build_without_a_node_binary_and_a_used_directory() {
    let dir = tempfile::tempdir().unwrap();
    let empty_build = tempfile::tempdir().unwrap();
    let this_build = std::path::Path::new(env!("CARGO_BIN_EXE_pharmalink-testnet"))
        .parent()
        .unwrap()
        .to_owned();
    let run = |a: &std::path::Path, b: &std::path::Path, networks: &std::path::Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_pharmalink-testnet"))
            .args(["ab", "--pairs", "1", "--dir"])
            .arg(networks)
            .arg("--a")
            .arg(a)
            .arg("--b")
            .arg(b)
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let networks = dir.path().join("networks");
    let stderr = run(&this_build, empty_build.path(), &networks);
    assert!(
        stderr.contains("--b") && stderr.contains(&empty_build.path().display().to_string()),
        "{stderr}"
    );
    assert!(!networks.exists(), "nothing was started");
    std::fs::create_dir(&networks).unwrap();
    std::fs::write(networks.join("genesis.json"), b"{}").unwrap();
    let stderr = run(&this_build, &this_build, &networks);
    assert!(stderr.contains("not empty"), "{stderr}");
}
