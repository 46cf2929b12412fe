//! `pharmalink verify --genesis GENESIS --proof FILE`: checks a package proof offline.
//!
//! GENESIS is the network's genesis file (as `GET /v1/genesis` serves it); FILE is the `proof`
//! object of a `/verify` answer saved as JSON (or the whole answer, or the binary form). The
//! verdict is recomputed from the verified facts alone, with the proof's anchor date as today.
//! Exit 0 with the verdict; exit 1 with the reason if any byte does not check.

use anyhow::{anyhow, Context, Result};
use clap::Args;
use pharmalink_api::consumer::{answer_json, verdict_of};
use pharmalink_contracts::proof::{self, Label, PackageProof, ProofJson, PACKAGE_PROOF_MAGIC};
use pharmalink_node::genesis::GenesisFile;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The network's genesis file (JSON).
    #[arg(long)]
    genesis: PathBuf,
    /// The proof: JSON `{"format", "data"}`, a whole /verify answer, or the binary form.
    #[arg(long)]
    proof: PathBuf,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
}

fn read_proof(bytes: &[u8]) -> Result<PackageProof> {
    if bytes.starts_with(PACKAGE_PROOF_MAGIC) {
        return Ok(PackageProof::from_bytes(bytes)?);
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).context("the proof file is neither JSON nor PLPKPRF1")?;
    let object = if value.get("format").is_some() {
        value
    } else {
        value
            .get("proof")
            .cloned()
            .ok_or_else(|| anyhow!("no \"proof\" object and no \"format\" field"))?
    };
    let json: ProofJson = serde_json::from_value(object).context("proof")?;
    Ok(PackageProof::from_json(&json)?)
}

/// Verifies a proof (its JSON object) against the genesis: the history, the verdict and the
/// answer as `/verify` would give it.
pub fn check(
    genesis: &pharmalink_ledger::Genesis,
    proof_json: &serde_json::Value,
) -> Result<(proof::VerifiedHistory, proof::Verdict, serde_json::Value)> {
    let json: ProofJson = serde_json::from_value(proof_json.clone()).context("proof")?;
    let package_proof = PackageProof::from_json(&json)?;
    let history = proof::verify(genesis, &package_proof).map_err(|e| anyhow!("proof: {e}"))?;
    let verdict = verdict_of(&history, &Label::default());
    let answer = answer_json(&history, &verdict, None);
    Ok((history, verdict, answer))
}

pub fn run(args: VerifyArgs) -> Result<()> {
    let genesis = GenesisFile::read(&args.genesis)?.to_ledger()?;
    let bytes =
        std::fs::read(&args.proof).with_context(|| format!("reading {}", args.proof.display()))?;
    let package_proof = read_proof(&bytes)?;
    let history = proof::verify(&genesis, &package_proof).map_err(|e| anyhow!("proof: {e}"))?;
    let verdict = verdict_of(&history, &Label::default());
    let answer = answer_json(&history, &verdict, None);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    println!("verified: {} on chain {}", history.epc, history.chain_id);
    println!(
        "as of block {} ({})",
        history.as_of_height,
        answer["as_of"]["time"].as_str().unwrap_or("")
    );
    if let Some(product) = answer.get("product") {
        println!(
            "product: {} {} {} (NDC {})",
            product["name"].as_str().unwrap_or(""),
            product["strength"].as_str().unwrap_or(""),
            product["dosage_form"].as_str().unwrap_or(""),
            product["ndc"].as_str().unwrap_or("")
        );
    }
    if let (Some(lot), Some(expiry)) = (&verdict.lot, verdict.expiry) {
        println!("lot {lot}, expires {}", expiry.iso());
    }
    for entry in answer["timeline"].as_array().into_iter().flatten() {
        println!(
            "  {}  {}",
            entry["time"].as_str().unwrap_or(""),
            entry["event"].as_str().unwrap_or("")
        );
    }
    for reason in &verdict.reasons {
        println!("  note: {reason}");
    }
    println!("verdict: {}", verdict.status.name());
    Ok(())
}
