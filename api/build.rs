//! Compiles proto/pharmalink.proto with protox (pure Rust: no protoc binary needed) and
//! generates the tonic server and client; writes the descriptor set for server reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/pharmalink.proto");
    let descriptors = protox::compile(["pharmalink.proto"], ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("pharmalink_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
