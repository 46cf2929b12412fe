//! Tidy checks that keep the architecture honest (see ARCHITECTURE.md):
//! the pure core (ledger, consensus, contracts) does no IO and depends on no IO framework, and
//! dependency arrows point down only.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const PURE_CRATES: [&str; 3] = [
    "pharmalink-ledger",
    "pharmalink-consensus",
    "pharmalink-contracts",
];
const IO_FRAMEWORKS: [&str; 8] = [
    "tokio",
    "libp2p",
    "rocksdb",
    "librocksdb-sys",
    "axum",
    "tonic",
    "hyper",
    "mio",
];

fn workspace_root() -> PathBuf {
    // At run time (cargo sets it): a binary reused from a relocated checkout keeps the
    // compile-time path otherwise.
    Path::new(
        &std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .parent()
    .unwrap()
    .to_owned()
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Package name → names of its normal (non-dev, non-build) dependencies, from the resolve graph.
fn normal_dependency_graph(
    meta: &Value,
) -> (BTreeMap<String, String>, BTreeMap<String, Vec<String>>) {
    let mut names = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        names.insert(
            p["id"].as_str().unwrap().to_owned(),
            p["name"].as_str().unwrap().to_owned(),
        );
    }
    let mut graph = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| d["pkg"].as_str().unwrap().to_owned())
            .collect();
        graph.insert(node["id"].as_str().unwrap().to_owned(), deps);
    }
    (names, graph)
}

fn closure(graph: &BTreeMap<String, Vec<String>>, start: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![start.to_owned()];
    while let Some(id) = stack.pop() {
        if seen.insert(id.clone()) {
            stack.extend(graph.get(&id).cloned().unwrap_or_default());
        }
    }
    seen
}

#[test]
fn pure_core_depends_on_no_io_framework() {
    let meta = metadata();
    let (names, graph) = normal_dependency_graph(&meta);
    for krate in PURE_CRATES {
        let id = names
            .iter()
            .find(|(_, n)| n.as_str() == krate)
            .map(|(id, _)| id.clone())
            .unwrap();
        let reached: BTreeSet<&str> = closure(&graph, &id)
            .iter()
            .map(|id| names[id].as_str())
            .collect();
        for forbidden in IO_FRAMEWORKS {
            assert!(
                !reached.contains(forbidden),
                "{krate} depends (transitively) on {forbidden}"
            );
        }
    }
}

#[test]
fn dependency_arrows_point_down() {
    // Each crate may depend only on crates below it.
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("pharmalink-ledger", &[][..]),
        ("pharmalink-consensus", &["pharmalink-ledger"][..]),
        ("pharmalink-contracts", &["pharmalink-ledger"][..]),
        (
            "pharmalink-api",
            &[
                "pharmalink-ledger",
                "pharmalink-consensus",
                "pharmalink-contracts",
            ][..],
        ),
        (
            "pharmalink-node",
            &[
                "pharmalink-ledger",
                "pharmalink-consensus",
                "pharmalink-contracts",
                "pharmalink-api",
            ][..],
        ),
    ]);
    let meta = metadata();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let Some(allowed) = allowed.get(name) else {
            continue;
        };
        for dep in p["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            if dep_name.starts_with("pharmalink-") && dep["kind"].is_null() {
                assert!(
                    allowed.contains(&dep_name),
                    "{name} must not depend on {dep_name}"
                );
            }
        }
    }
}

/// Source-level rule: outside `#[cfg(test)]` code, the pure crates never touch the clock, the
/// file system, the network, threads, the environment or unseeded randomness, and never use
/// HashMap/HashSet (whose iteration order could leak into state).
#[test]
fn pure_core_source_does_no_io() {
    const FORBIDDEN: [&str; 14] = [
        "std::fs",
        "std::net",
        "std::time",
        "SystemTime",
        "Instant::now",
        "std::thread",
        "std::env",
        "std::process",
        "OsRng",
        "thread_rng",
        "getrandom",
        "HashMap",
        "HashSet",
        "println!",
    ];
    let mut problems = Vec::new();
    for krate in ["ledger", "consensus", "contracts"] {
        let mut files = Vec::new();
        collect_rs(&workspace_root().join(krate).join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // Only code before the first test module counts.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (number, line) in code.lines().enumerate() {
                let trimmed = line.trim_start();
                if trimmed.starts_with("//") {
                    continue;
                }
                for pattern in FORBIDDEN {
                    if line.contains(pattern) {
                        problems.push(format!("{}:{}: {pattern}", file.display(), number + 1));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "IO or nondeterminism in the pure core:\n{}",
        problems.join("\n")
    );
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_rules_above_can_fail() {
    // The closure walk finds a transitive dependency: node → rocksdb → librocksdb-sys.
    let meta = metadata();
    let (names, graph) = normal_dependency_graph(&meta);
    let node = names
        .iter()
        .find(|(_, n)| n.as_str() == "pharmalink-node")
        .map(|(id, _)| id.clone())
        .unwrap();
    let reached: BTreeSet<&str> = closure(&graph, &node)
        .iter()
        .map(|id| names[id].as_str())
        .collect();
    assert!(reached.contains("librocksdb-sys"));
}
