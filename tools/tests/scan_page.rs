//! The consumer scan page (`/scan`) end to end: a real dev node, packages made through the
//! custody flow (genuine with a 6-event history, recalled, never commissioned), then
//!
//! 1. JS ⇔ Rust agreement: each package's `/verify` proof, the verdict `pharmalink verify
//!    --json` gives for it and tampered variants Rust refuses are written as vectors, and
//!    `node --test api/web/test/proof.test.mjs` checks that the in-browser verifier agrees on every one (and
//!    refuses every altered byte);
//! 2. the page in headless Chromium (`api/web/e2e/browser.mjs`, Debian's chromium through
//!    playwright-core) on a 390×844 viewport: typed codes, a photo of a DataMatrix, the same
//!    code shown to Chromium's fake camera, a flipped proof byte, a substituted proof and a
//!    reported cold-chain excursion, each verdict checked and screenshotted.
//!
//! Needs Node.js, `api/web/node_modules` (`bash tools/web.sh`) and /usr/bin/chromium (`bash
//! tools/test.sh` installs both). `PHARMALINK_WRITE_VECTORS=DIR` also copies the vectors to DIR
//! (to refresh `api/web/test/vectors/`).

mod support;

use pharmalink_contracts::contract::command::{Command, RecallClass};
use pharmalink_contracts::contract::fixtures::{
    commission, gtin, product_master, receive_all, sale, sgtin, DISPENSER, WHOLESALER,
};
use pharmalink_contracts::contract::Date;
use pharmalink_ledger::{SigningKey, Transaction};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use support::*;

const GENUINE: &str = "(01)00300010123455(21)SCAN1(10)LOT1(17)280630";
const RECALLED: &str = "(01)00300010123455(21)SCAN2(10)LOT2(17)290131";
const NEVER: &str = "(01)00300010123455(21)NEVER1(10)LOT1(17)280630";

fn web_dir() -> PathBuf {
    // The checkout the test runs in (the binary may come from another clone's build).
    Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../api/web")
}

/// Figures go to the terminal even when cargo captures the test's output.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn node_command(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("node");
    command.current_dir(web_dir()).args(args);
    command
}

fn prerequisites() -> String {
    let chromium = std::env::var("PHARMALINK_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    let node = node_command(&["--version"]).output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "Node.js is not installed: `bash tools/test.sh` installs it (apt nodejs npm)"
    );
    assert!(
        web_dir().join("node_modules/playwright-core").is_dir(),
        "api/web/node_modules is missing: run `bash tools/web.sh` (npm ci + build)"
    );
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: `bash tools/test.sh` installs Debian's chromium \
         (apt-get install chromium), or set PHARMALINK_CHROMIUM"
    );
    chromium
}

/// Makes the three packages: SCAN1 commissioned → shipped → received → shipped → received →
/// dispensed; SCAN2 commissioned in LOT2, then LOT2 recalled; NEVER1 never commissioned.
fn make_packages(api: &str, data_dir: &Path) {
    let chain = chain_id(api);
    let key = |name: &str| {
        pharmalink_node::keys::read_key_file(&data_dir.join(format!("{name}.key")), None).unwrap()
    };
    let (maker, wholesaler, pharmacy) = (key("manufacturer"), key("wholesaler"), key("pharmacy"));
    let mut nonces = std::collections::BTreeMap::<String, u64>::new();
    let mut run = |signer: &SigningKey, command: Command| {
        let nonce = nonces.entry(signer.public_key().to_hex()).or_default();
        let tx = Transaction::sign(&chain, signer, *nonce, command.encode()).unwrap();
        *nonce += 1;
        let result = submit(api, &[tx]).remove(0);
        assert_eq!(result["status"], "committed", "{result}");
    };
    let one = sgtin("SCAN1");
    run(
        &maker,
        Command::RegisterProduct {
            product: product_master(),
        },
    );
    run(&maker, commission(&["SCAN1"]));
    run(
        &maker,
        Command::Commission {
            gtin: gtin(),
            serials: vec!["SCAN2".into()],
            lot: "LOT2".into(),
            expiry: Date::new(2029, 1, 31),
        },
    );
    run(&maker, sale(WHOLESALER.gln(), vec![one.clone()], "PO-S1"));
    run(&wholesaler, receive_all(0, std::slice::from_ref(&one)));
    run(
        &wholesaler,
        sale(DISPENSER.gln(), vec![one.clone()], "PO-S2"),
    );
    run(&pharmacy, receive_all(1, std::slice::from_ref(&one)));
    run(&pharmacy, Command::Dispense { items: vec![one] });
    run(
        &maker,
        Command::RecallLot {
            gtin: gtin(),
            lot: "LOT2".into(),
            class: RecallClass::II,
            reason: "label misprint".into(),
        },
    );
}

/// The genesis exactly as the page pins it (the JSON inside the served HTML).
fn pinned_genesis(api: &str) -> Value {
    let html = runtime().block_on(async {
        let response = reqwest::get(format!("http://{api}/scan")).await.unwrap();
        assert_eq!(response.status(), 200);
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        response.text().await.unwrap()
    });
    let start = html.find(r#"id="pinned-genesis">"#).unwrap() + r#"id="pinned-genesis">"#.len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

/// `pharmalink verify --genesis --proof [--json]` on a proof object: Ok(stdout) or Err(stderr).
fn rust_verify(dir: &Path, genesis_file: &Path, proof: &Value) -> Result<Value, String> {
    let file = dir.join("proof-under-test.json");
    std::fs::write(&file, proof.to_string()).unwrap();
    let out = std::process::Command::new(bin("pharmalink"))
        .args(["verify", "--json", "--genesis"])
        .arg(genesis_file)
        .arg("--proof")
        .arg(&file)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn flip_hex_byte(data: &str, byte: usize) -> String {
    let mut bytes = hex::decode(data).unwrap();
    bytes[byte] ^= 0x01;
    hex::encode(bytes)
}

/// Writes the vectors; returns the directory.
fn write_vectors(api: &str, data_dir: &Path, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(
        out.join("genesis.json"),
        serde_json::to_string_pretty(&pinned_genesis(api)).unwrap(),
    )
    .unwrap();
    let genesis_file = data_dir.join("genesis.json");
    for (name, code, status) in [
        ("genuine", GENUINE, "genuine_dispensed"),
        ("recalled", RECALLED, "recalled"),
        ("never-commissioned", NEVER, "counterfeit_suspected"),
    ] {
        let answer = verify_settled(api, code);
        assert_eq!(answer["status"], status, "{answer}");
        let proof = answer["proof"].clone();
        let expected = rust_verify(out, &genesis_file, &proof).unwrap();
        let vector = json!({"name": name, "code": code, "proof": proof, "expected": expected,
            "status_with_label": answer["status"]});
        std::fs::write(
            out.join(format!("{name}.vector.json")),
            serde_json::to_string_pretty(&vector).unwrap(),
        )
        .unwrap();
        // Tampered variants, each refused by Rust: first byte after the magic, a middle byte,
        // the last byte, and a byte appended.
        let data = proof["data"].as_str().unwrap();
        let length = data.len() / 2;
        let variants = [
            ("byte-8", flip_hex_byte(data, 8)),
            ("byte-middle", flip_hex_byte(data, length / 2)),
            ("byte-last", flip_hex_byte(data, length - 1)),
            ("appended", format!("{data}00")),
        ];
        for (variant, altered) in variants {
            let tampered = json!({"format": proof["format"], "data": altered});
            let error = rust_verify(out, &genesis_file, &tampered)
                .expect_err("Rust accepted a tampered proof");
            let vector = json!({"name": format!("{name}-{variant}"), "proof": tampered, "rust_error": error});
            std::fs::write(
                out.join(format!("{name}-{variant}.vector.json")),
                serde_json::to_string_pretty(&vector).unwrap(),
            )
            .unwrap();
        }
    }
    let _ = std::fs::remove_file(out.join("proof-under-test.json"));
}

fn screenshots_dir() -> PathBuf {
    // target/<profile>/deps/<test> → target/scan-screenshots
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().join("scan-screenshots")
}

#[test]
fn scan_page_verifies_proofs_in_the_browser() {
    let chromium = prerequisites();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");
    let node = DevNode::start(&data_dir, free_port());
    let api = node.api.clone();
    make_packages(&api, &data_dir);

    // 1. The JS verifier agrees with the Rust one.
    let vectors = dir.path().join("vectors");
    write_vectors(&api, &data_dir, &vectors);
    if let Ok(copy_to) = std::env::var("PHARMALINK_WRITE_VECTORS") {
        std::fs::create_dir_all(&copy_to).unwrap();
        for entry in std::fs::read_dir(&vectors).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), Path::new(&copy_to).join(entry.file_name())).unwrap();
        }
    }
    // Plus the golden 4-validator vector that contracts/tests/package_proof.rs pins.
    std::fs::copy(
        web_dir().join("test/vectors/four-validators.vector.json"),
        vectors.join("four-validators.vector.json"),
    )
    .unwrap();
    let text = stdout_of_success(
        node_command(&["--test", "test/proof.test.mjs"]).env("PHARMALINK_VECTORS", &vectors),
        "node --test (the JS verifier on the vectors)",
    );
    let summary: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("# pass") || l.starts_with("# fail"))
        .collect();
    report(&format!(
        "scan page: JS verifier vs Rust: {}",
        summary.join(", ")
    ));

    // 2. The page in headless Chromium.
    let cases = json!([
        {"name": "genuine", "code": GENUINE, "expect": "genuine_dispensed"},
        {"name": "genuine-again", "code": GENUINE, "expect": "genuine_dispensed"},
        {"name": "recalled", "code": RECALLED, "expect": "recalled"},
        {"name": "never-commissioned", "code": NEVER, "expect": "counterfeit_suspected"},
        {"name": "tampered-proof", "code": GENUINE, "expect": "unverified", "tamper": "flip"},
        {"name": "substituted-proof", "code": GENUINE, "expect": "unverified",
         "tamper": "substitute", "substitute_code": RECALLED},
        {"name": "photo-datamatrix", "code": GENUINE, "expect": "genuine_dispensed", "photo": true},
        {"name": "camera-datamatrix", "code": GENUINE, "expect": "genuine_dispensed", "camera": true},
        // A node's unproven claim is not shown: the cold chain comes from the proof.
        {"name": "cold-chain-claim-ignored", "code": GENUINE, "expect": "genuine_dispensed",
         "inject": {"cold_chain": {"status": "excursion"}}, "expect_text": "no cold chain required"},
    ]);
    let cases_file = dir.path().join("cases.json");
    std::fs::write(&cases_file, cases.to_string()).unwrap();
    let shots = screenshots_dir();
    let base = format!("http://{api}");
    let out = node_command(&["e2e/browser.mjs", "--base", &base, "--out"])
        .arg(&shots)
        .arg("--cases")
        .arg(&cases_file)
        .env("PHARMALINK_CHROMIUM", &chromium)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let results: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        results.len(),
        cases.as_array().unwrap().len(),
        "browser run:\n{text}{stderr}"
    );
    for result in &results {
        assert_eq!(result["ok"], true, "{result}\n{text}{stderr}");
    }
    assert!(out.status.success(), "browser run:\n{text}{stderr}");
    let figures: Value = text
        .lines()
        .find_map(|l| l.strip_prefix("FIGURES "))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap();
    let genuine = &figures["cases"]["genuine"];
    let warm = &figures["cases"]["genuine-again"];
    let verify = &figures["verify_runs"];
    report(&format!(
        "scan page (Chromium, 390x844): page load {} ms; code entered -> verdict shown {} ms \
         (first scan), {} ms (second); in-browser verification of the 6-event history ({} facts): {} ms in the first \
         scan, then {:.2} ms (first of {} runs), median {:.2} ms; photo decoded -> verdict {} ms; camera decoded -> verdict {} ms \
         (camera start -> verdict {} ms; BarcodeDetector present: {}); screenshots in {}",
        figures["page_load_ms"],
        genuine["total_ms"],
        warm["total_ms"],
        verify["facts"],
        genuine["verify_ms"],
        verify["first_ms"].as_f64().unwrap_or(f64::NAN),
        verify["runs"],
        verify["median_ms"].as_f64().unwrap_or(f64::NAN),
        figures["cases"]["photo-datamatrix"]["total_ms"],
        figures["cases"]["camera-datamatrix"]["total_ms"],
        figures["cases"]["camera-datamatrix"]["wall_ms"],
        figures["barcode_detector"],
        shots.display()
    ));
    let size =
        |name: &str| std::fs::metadata(web_dir().join("dist").join(name)).map_or(0, |m| m.len());
    report(&format!(
        "scan page assets: scan.js {} bytes, scan.css {} bytes, decoder.js {} bytes (loaded only \
         without BarcodeDetector)",
        size("scan.js"),
        size("scan.css"),
        size("decoder.js")
    ));
    // Targets: the verdict within 1 s of a scan; verification of a 6-event history ≤ 50 ms.
    for case in ["genuine", "genuine-again", "recalled", "never-commissioned"] {
        let total = figures["cases"][case]["total_ms"].as_f64().unwrap();
        assert!(total < 1000.0, "{case}: verdict after {total} ms");
    }
    assert!(verify["median_ms"].as_f64().unwrap() <= 50.0, "{figures}");
    assert_eq!(genuine["timeline"], 6, "{figures}");
}
