//! Compiles proto/pharmalink.proto with protox (pure Rust: no protoc binary needed) and
//! generates the tonic server and client; writes the descriptor set for server reflection.
//! Checks that the scan page's assets (`web/dist/`, built by npm from `web/src/`) exist: the
//! crate embeds them, and building them needs Node.js, which cargo does not run.

use prost::Message;

/// The assets `src/scan_page.rs` embeds.
const WEB_ASSETS: [&str; 3] = [
    "web/dist/scan.js",
    "web/dist/decoder.js",
    "web/dist/scan.css",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/pharmalink.proto");
    println!("cargo:rerun-if-changed=web/dist");
    let missing: Vec<&str> = WEB_ASSETS
        .iter()
        .copied()
        .filter(|path| !std::path::Path::new(path).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the scan page's assets are not built ({} missing). Build them with \
             `bash tools/web.sh` (npm ci + esbuild in api/web; Node.js 18+), or run \
             `bash tools/run.sh` / `bash tools/test.sh`, which do it first",
            missing.join(", ")
        )
        .into());
    }
    let descriptors = protox::compile(["pharmalink.proto"], ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("pharmalink_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
