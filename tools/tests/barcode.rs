//! `pharmalink barcode` and `pharmalink scan` (issue 10's CLI): a package's GS1 DataMatrix and
//! GS1 QR Code rendered to PNG and read back to the same element string; with `--node`, the
//! package's proof fetched from a real dev node and verified offline against the pinned
//! genesis; a picture with no code, and a file that is no image, fail with a clear message.

mod support;

use pharmalink_contracts::contract::Date;
use serde_json::Value;
use std::process::Command;
use support::{bin, free_port, stdout_of_success, stock_pharmacy, DevNode, Signer};

const CODE: &str = "(01)00300010123455(17)280630(10)LOT1(21)BC1";

fn pharmalink(args: &[&str]) -> Command {
    let mut command = Command::new(bin("pharmalink"));
    command.args(args);
    command
}

#[test]
fn barcodes_round_trip_and_scans_verify_against_a_node() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["datamatrix", "qr"] {
        let png = dir.path().join(format!("{format}.png"));
        let png_text = png.to_str().unwrap();
        stdout_of_success(
            &mut pharmalink(&[
                "barcode", "--code", CODE, "--format", format, "--out", png_text,
            ]),
            "pharmalink barcode",
        );
        let out = stdout_of_success(
            &mut pharmalink(&["scan", png_text, "--json"]),
            "pharmalink scan",
        );
        let scanned: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(scanned["element_string"], CODE, "{format}: {scanned}");
        let expected_symbology = if format == "qr" { "QR" } else { "DM" };
        assert_eq!(scanned["symbology"], expected_symbology, "{scanned}");
    }

    // A photo-like JPEG (rotated 7°, quality 80; made with ImageMagick from a rendered label).
    let jpeg = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("tests/data/datamatrix-photo.jpg");
    let out = stdout_of_success(
        &mut pharmalink(&["scan", jpeg.to_str().unwrap(), "--json"]),
        "pharmalink scan (JPEG)",
    );
    let scanned: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(scanned["element_string"], CODE, "{scanned}");

    // Bad input: an image without a code, a file that is no image, a code that is not GS1.
    let blank = dir.path().join("blank.png");
    let file = std::fs::File::create(&blank).unwrap();
    let mut encoder = png::Encoder::new(file, 64, 64);
    encoder.set_color(png::ColorType::Grayscale);
    encoder
        .write_header()
        .unwrap()
        .write_image_data(&[255u8; 64 * 64])
        .unwrap();
    let out = pharmalink(&["scan", blank.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no DataMatrix or QR Code found"));
    let text = dir.path().join("note.txt");
    std::fs::write(&text, "hello").unwrap();
    let out = pharmalink(&["scan", text.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a PNG or JPEG"));
    let out = pharmalink(&[
        "barcode",
        "--code",
        "(01)00300010123456",
        "--out",
        "/dev/null",
    ])
    .output()
    .unwrap();
    assert!(!out.status.success(), "a wrong GTIN check digit is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--code"));

    // Against a node: the package is commissioned and in the supply chain.
    let data = dir.path().join("data");
    let node = DevNode::start(&data, free_port());
    let mut signer = Signer::new(&node.api);
    stock_pharmacy(
        &mut signer,
        &data,
        &[("LOT1", Date::new(2028, 6, 30), &["BC1"])],
    );
    let png = dir.path().join("datamatrix.png");
    let genesis = data.join("genesis.json");
    let started = std::time::Instant::now();
    loop {
        let out = stdout_of_success(
            &mut pharmalink(&[
                "scan",
                png.to_str().unwrap(),
                "--node",
                &node.api,
                "--genesis",
                genesis.to_str().unwrap(),
                "--json",
            ]),
            "pharmalink scan --node",
        );
        let scanned: Value = serde_json::from_str(&out).unwrap();
        let verification = &scanned["verification"];
        if verification["timeline"]
            .as_array()
            .is_some_and(|t| t.len() >= 3)
        {
            assert_eq!(
                verification["status"], "genuine_in_supply_chain",
                "{scanned}"
            );
            assert_eq!(verification["lot"], "LOT1");
            break;
        }
        assert!(
            started.elapsed().as_secs() < 20,
            "history not yet provable: {scanned}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // A proof checked against another network's genesis is refused.
    let other = dir.path().join("other");
    let other_node = DevNode::start(&other, free_port());
    drop(other_node);
    let out = pharmalink(&[
        "scan",
        png.to_str().unwrap(),
        "--node",
        &node.api,
        "--genesis",
        other.join("genesis.json").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("proof"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
