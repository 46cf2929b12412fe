//! `pharmalink barcode` renders a package's GS1 DataMatrix (or GS1 QR Code) to PNG, for labels
//! and tests; `pharmalink scan IMAGE` reads one back from a PNG or JPEG (rxing, a Rust port of
//! ZXing), parses the GS1 content and, with `--node`, fetches the package's proof from the
//! node's `/verify` and checks it offline against the genesis.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use pharmalink_contracts::gs1::element::parse_bracketed;
use pharmalink_contracts::gs1::scan::process_scan_data;
use rxing::common::BitMatrix;
use rxing::{
    BarcodeFormat, EncodeHints, MultiFormatWriter, RXingResultMetadataType,
    RXingResultMetadataValue, Writer,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Quiet zone around the symbol, in modules.
const QUIET_MODULES: u32 = 2;
/// Largest image `scan` decodes (pixels).
const SCAN_PIXELS_MAX: u64 = 40_000_000;

#[derive(Args, Debug)]
pub struct BarcodeArgs {
    /// The element string, e.g. '(01)00300010123455(17)280630(10)LOT1(21)SER1'.
    #[arg(long)]
    code: String,
    /// datamatrix (GS1 DataMatrix, the DSCSA package label) or qr (GS1 QR Code).
    #[arg(long, default_value = "datamatrix")]
    format: String,
    /// Pixels per module.
    #[arg(long, default_value_t = 8)]
    scale: u32,
    /// The PNG to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// A PNG or JPEG holding a GS1 DataMatrix or GS1 QR Code.
    image: PathBuf,
    /// A node (host:port) to fetch the package's proof from (`GET /verify`).
    #[arg(long)]
    node: Option<String>,
    /// The network's genesis file the proof is checked against (default: the node's own
    /// `/v1/genesis`, which only checks that the node is consistent with itself).
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The symbol for an element string: DataMatrix or QR, GS1 mode (FNC1 first), as a BitMatrix
/// of modules (one bit each).
pub fn encode(code: &str, format: &str) -> Result<BitMatrix> {
    let elements = parse_bracketed(code).map_err(|e| anyhow!("--code: {e}"))?;
    elements
        .validate_pairings()
        .map_err(|e| anyhow!("--code: {e}"))?;
    let data = elements.to_gs_separated();
    match format {
        "datamatrix" | "dm" => gs1_datamatrix(&data),
        "qr" => {
            let hints = EncodeHints {
                Gs1Format: Some(true),
                Margin: Some("0".into()),
                ..Default::default()
            };
            MultiFormatWriter
                .encode_with_hints(&data, &BarcodeFormat::QR_CODE, 0, 0, &hints)
                .map_err(|e| anyhow!("encoding: {e}"))
        }
        other => bail!("--format: {other:?} is not datamatrix or qr"),
    }
}

/// ECC 200 data codewords in ASCII encodation (ISO/IEC 16022 5.2.3) for GS1: FNC1 (232)
/// first and for each group separator, digit pairs as 130 + value, other ASCII as value + 1.
/// (rxing's own GS1 path, its minimal encoder, overflows on FNC1 in 0.8.6.)
fn gs1_ascii_codewords(data: &str) -> Result<Vec<u8>> {
    const FNC1: u8 = 232;
    let bytes = data.as_bytes();
    let mut out = vec![FNC1];
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == 0x1d {
            out.push(FNC1);
            i += 1;
        } else if b.is_ascii_digit() && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            out.push(130 + (b - b'0') * 10 + (bytes[i + 1] - b'0'));
            i += 2;
        } else if b < 128 {
            out.push(b + 1);
            i += 1;
        } else {
            bail!("GS1 data is ASCII; byte {b:#x} is not");
        }
    }
    Ok(out)
}

/// A square GS1 DataMatrix: ASCII codewords, the ECC 200 pad rule, then rxing's Reed-Solomon
/// and module placement, with the finder and clock patterns of each data region.
fn gs1_datamatrix(data: &str) -> Result<BitMatrix> {
    use rxing::datamatrix::encoder::{
        error_correction, DefaultPlacement, SymbolInfoLookup, SymbolShapeHint,
    };
    let mut codewords = gs1_ascii_codewords(data)?;
    let lookup = SymbolInfoLookup::new();
    let symbol = lookup
        .lookup_with_codewords_shape_size_fail(
            codewords.len() as u32,
            SymbolShapeHint::FORCE_SQUARE,
            &None,
            &None,
            true,
        )
        .map_err(|e| {
            anyhow!(
                "no DataMatrix size holds {} codewords: {e}",
                codewords.len()
            )
        })?
        .ok_or_else(|| anyhow!("no DataMatrix size holds {} codewords", codewords.len()))?;
    let capacity = symbol.getDataCapacity() as usize;
    // Pad: 129 first, then the 253-state randomized pad (1-based codeword position).
    if codewords.len() < capacity {
        codewords.push(129);
    }
    while codewords.len() < capacity {
        let position = codewords.len() as u32 + 1;
        let pad = 129 + ((149 * position) % 253) + 1;
        codewords.push(if pad <= 254 { pad } else { pad - 254 } as u8);
    }
    let text: String = codewords.iter().map(|&c| c as char).collect();
    let all = error_correction::encodeECC200(&text, symbol).map_err(|e| anyhow!("ECC: {e}"))?;
    let (data_width, data_height) = (
        symbol.getSymbolDataWidth().map_err(|e| anyhow!("{e}"))?,
        symbol.getSymbolDataHeight().map_err(|e| anyhow!("{e}"))?,
    );
    let (width, height) = (
        symbol.getSymbolWidth().map_err(|e| anyhow!("{e}"))?,
        symbol.getSymbolHeight().map_err(|e| anyhow!("{e}"))?,
    );
    // Each data region is framed by one module on each side.
    let (regions_x, regions_y) = ((width - data_width) / 2, (height - data_height) / 2);
    let (region_w, region_h) = (
        data_width / regions_x.max(1),
        data_height / regions_y.max(1),
    );
    let mut placement = DefaultPlacement::new(all, data_width as usize, data_height as usize);
    placement.place().map_err(|e| anyhow!("placement: {e}"))?;
    let mut matrix = BitMatrix::new(width, height).map_err(|e| anyhow!("{e}"))?;
    for ry in 0..regions_y {
        for rx in 0..regions_x {
            let (x0, y0) = (rx * (region_w + 2), ry * (region_h + 2));
            for i in 0..region_w + 2 {
                // Bottom edge solid, top edge alternating.
                matrix.set(x0 + i, y0 + region_h + 1);
                if i % 2 == 0 {
                    matrix.set(x0 + i, y0);
                }
            }
            for j in 0..region_h + 2 {
                // Left edge solid, right edge alternating.
                matrix.set(x0, y0 + j);
                if (region_h + 1 - j) % 2 == 0 {
                    matrix.set(x0 + region_w + 1, y0 + j);
                }
            }
            for y in 0..region_h {
                for x in 0..region_w {
                    let (dx, dy) = (rx * region_w + x, ry * region_h + y);
                    if placement.getBit(dx as usize, dy as usize) {
                        matrix.set(x0 + 1 + x, y0 + 1 + y);
                    }
                }
            }
        }
    }
    Ok(matrix)
}

/// An 8-bit grayscale image of the symbol: `scale` pixels per module, quiet zone around.
pub fn render(matrix: &BitMatrix, scale: u32) -> (Vec<u8>, u32, u32) {
    let scale = scale.clamp(1, 64);
    let (w, h) = (matrix.getWidth(), matrix.getHeight());
    let (width, height) = (
        (w + 2 * QUIET_MODULES) * scale,
        (h + 2 * QUIET_MODULES) * scale,
    );
    let mut pixels = vec![255u8; (width * height) as usize];
    for y in 0..h {
        for x in 0..w {
            if matrix.get(x, y) {
                for dy in 0..scale {
                    let row = ((y + QUIET_MODULES) * scale + dy) * width;
                    let start = (row + (x + QUIET_MODULES) * scale) as usize;
                    pixels[start..start + scale as usize].fill(0);
                }
            }
        }
    }
    (pixels, width, height)
}

fn write_png(path: &Path, pixels: &[u8], width: u32, height: u32) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels)?;
    Ok(())
}

pub fn barcode(args: BarcodeArgs) -> Result<()> {
    let matrix = encode(&args.code, &args.format)?;
    let (pixels, width, height) = render(&matrix, args.scale);
    write_png(&args.out, &pixels, width, height)?;
    println!(
        "{}: {}x{} modules, {width}x{height} pixels",
        args.out.display(),
        matrix.getWidth(),
        matrix.getHeight()
    );
    Ok(())
}

/// 8-bit luminance of a PNG or JPEG.
pub fn read_luma(path: &Path) -> Result<(Vec<u8>, u32, u32)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.starts_with(b"\x89PNG") {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().context("PNG header")?;
        let info = reader.info();
        if u64::from(info.width) * u64::from(info.height) > SCAN_PIXELS_MAX {
            bail!(
                "{}: image larger than {SCAN_PIXELS_MAX} pixels",
                path.display()
            );
        }
        let mut buffer = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut buffer).context("PNG data")?;
        let channels = frame.color_type.samples();
        let (width, height) = (frame.width, frame.height);
        let luma = buffer[..frame.buffer_size()]
            .chunks(channels)
            .map(|px| match channels {
                1 | 2 => px[0],
                _ => {
                    ((u32::from(px[0]) * 299 + u32::from(px[1]) * 587 + u32::from(px[2]) * 114)
                        / 1000) as u8
                }
            })
            .collect();
        return Ok((luma, width, height));
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        use zune_jpeg::zune_core::colorspace::ColorSpace;
        use zune_jpeg::zune_core::options::DecoderOptions;
        let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::Luma);
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(&bytes, options);
        decoder
            .decode_headers()
            .map_err(|e| anyhow!("JPEG header: {e:?}"))?;
        let (width, height) = decoder
            .dimensions()
            .ok_or_else(|| anyhow!("JPEG without dimensions"))?;
        if width as u64 * height as u64 > SCAN_PIXELS_MAX {
            bail!(
                "{}: image larger than {SCAN_PIXELS_MAX} pixels",
                path.display()
            );
        }
        let luma = decoder.decode().map_err(|e| anyhow!("JPEG data: {e:?}"))?;
        return Ok((luma, width as u32, height as u32));
    }
    bail!("{}: not a PNG or JPEG", path.display())
}

/// The scan data (`]d2…` / `]Q3…`) of the first GS1 DataMatrix or QR Code in the image.
pub fn decode(path: &Path) -> Result<String> {
    let (luma, width, height) = read_luma(path)?;
    let mut hints = rxing::DecodeHints {
        PossibleFormats: Some(HashSet::from([
            BarcodeFormat::DATA_MATRIX,
            BarcodeFormat::QR_CODE,
        ])),
        TryHarder: Some(true),
        ..Default::default()
    };
    let result =
        rxing::helpers::detect_in_luma_with_hints(luma, width, height, None, &mut hints)
            .map_err(|e| anyhow!("{}: no DataMatrix or QR Code found ({e})", path.display()))?;
    let identifier = match result
        .getRXingResultMetadata()
        .get(&RXingResultMetadataType::SYMBOLOGY_IDENTIFIER)
    {
        Some(RXingResultMetadataValue::SymbologyIdentifier(id)) => id.clone(),
        _ => String::new(),
    };
    Ok(format!("{identifier}{}", result.getText()))
}

pub fn scan(args: ScanArgs) -> Result<()> {
    let scanned = decode(&args.image)?;
    let data = process_scan_data(&scanned)
        .map_err(|e| anyhow!("the symbol holds {scanned:?}, which is not GS1 data: {e}"))?;
    let bracketed = data
        .elements
        .as_ref()
        .map(|e| e.to_bracketed())
        .ok_or_else(|| anyhow!("the symbol holds no GS1 element string: {scanned:?}"))?;
    let mut out = serde_json::json!({
        "symbology": data.symbology.name(),
        "scan_data": scanned,
        "element_string": bracketed,
    });
    if let Some(node) = &args.node {
        out["verification"] = verify_online(node, &scanned, args.genesis.as_deref())?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("symbology: {}", data.symbology.name());
        println!("element string: {bracketed}");
        if let Some(v) = out.get("verification") {
            println!(
                "verified offline against {}: {}",
                v["genesis"].as_str().unwrap_or(""),
                v["status"].as_str().unwrap_or("")
            );
            for reason in v["reasons"].as_array().into_iter().flatten() {
                println!("  note: {}", reason.as_str().unwrap_or(""));
            }
        }
    }
    Ok(())
}

fn verify_online(node: &str, scanned: &str, genesis: Option<&Path>) -> Result<serde_json::Value> {
    let client = reqwest::blocking::Client::new();
    let url =
        reqwest::Url::parse_with_params(&format!("http://{node}/verify"), [("code", scanned)])?;
    let answer: serde_json::Value = client.get(url).send()?.error_for_status()?.json()?;
    let (genesis_file, source) = match genesis {
        Some(path) => (
            pharmalink_node::genesis::GenesisFile::read(path)?,
            path.display().to_string(),
        ),
        None => {
            let text = client
                .get(format!("http://{node}/v1/genesis"))
                .send()?
                .error_for_status()?
                .text()?;
            (
                serde_json::from_str(&text).context("the node's genesis")?,
                format!("the node's own genesis ({node}; pass --genesis to pin one)"),
            )
        }
    };
    let genesis = genesis_file.to_ledger()?;
    let proof = answer
        .get("proof")
        .cloned()
        .ok_or_else(|| anyhow!("the node sent no proof: {answer}"))?;
    let (history, verdict, checked) = crate::verify_cmd::check(&genesis, &proof)?;
    if history.epc.as_str() != answer["epc"].as_str().unwrap_or_default() {
        bail!(
            "the proof is about {}, not the package asked for",
            history.epc
        );
    }
    let mut out = checked;
    out["genesis"] = serde_json::json!(source);
    out["status"] = serde_json::json!(verdict.status.name());
    Ok(out)
}
