//! EPCIS capture jobs: the API maps a captured document to commands; the node signs them with
//! the caller's organization key (which it holds), persists the job with the signed
//! transactions, then admits them. The job is durable before the client gets its 202: after a
//! kill, [`recover`] re-admits every transaction of every job that is not yet committed, so an
//! acknowledged capture is never lost. A job's item states are read live from the chain.

use crate::runtime::{lock, NodeHandle};
use anyhow::{anyhow, bail, Result};
use borsh::{BorshDeserialize, BorshSerialize};
use pharmalink_api::epcis_api::{CaptureItemView, CaptureJobView, CaptureSpec};
use pharmalink_api::SubmitOutcome;
use pharmalink_ledger::{Canonical, Hash, LedgerRead, PublicKey, Transaction};
use rand_core::{OsRng, RngCore};

const JOB_PREFIX: &str = "capture/";
/// Most events (transactions) per capture job.
pub const CAPTURE_ITEMS_MAX: usize = 10_000;

#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
enum Item {
    /// Refused before submission: a mapping error, or rollback because another event failed.
    NotSubmitted { reason: String },
    /// Signed and handed to the mempool (or about to be).
    Submitted { tx: Vec<u8>, hash: Hash },
    /// Refused at admission.
    Refused {
        hash: Hash,
        code: String,
        reason: String,
    },
}

#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
struct Job {
    id: String,
    created_ms: u64,
    proceed: bool,
    signer: PublicKey,
    /// Event index in the document (`None`: a product registration from master data).
    items: Vec<(Option<u32>, Item)>,
}

fn save(handle: &NodeHandle, job: &Job) -> Result<()> {
    handle
        .shared
        .store
        .put_meta(&format!("{JOB_PREFIX}{}", job.id), &borsh::to_vec(job)?)?;
    Ok(())
}

fn load(handle: &NodeHandle, id: &str) -> Result<Option<Job>> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    match handle.shared.store.get_meta(&format!("{JOB_PREFIX}{id}"))? {
        Some(bytes) => Ok(Some(borsh::from_slice(&bytes)?)),
        None => Ok(None),
    }
}

/// Signs, persists and admits a capture; returns the job id.
pub async fn start(handle: &NodeHandle, spec: CaptureSpec) -> Result<String> {
    if spec.items.len() > CAPTURE_ITEMS_MAX {
        bail!(
            "{} events exceed the {CAPTURE_ITEMS_MAX} of one capture",
            spec.items.len()
        );
    }
    let key = handle
        .shared
        .org_keys
        .get(&spec.signer)
        .cloned()
        .ok_or_else(|| anyhow!("this node holds no key {}", spec.signer))?;
    let mut id_bytes = [0u8; 16];
    OsRng.fill_bytes(&mut id_bytes);
    let mut job = Job {
        id: hex::encode(id_bytes),
        created_ms: crate::runtime::now_ms(),
        proceed: spec.proceed,
        signer: spec.signer,
        items: Vec::with_capacity(spec.items.len()),
    };
    let failed = spec
        .items
        .iter()
        .find_map(|i| i.error.as_ref().map(|_| i.event_index));
    // One signer's nonces are assigned under one lock, from where chain and mempool leave off.
    let _guard = handle.shared.sign_lock.lock().await;
    let committed_next = handle
        .shared
        .app
        .next_nonce(&*handle.shared.store, &spec.signer)?;
    let mut nonce = lock(&handle.shared.mempool).next_free_nonce(&spec.signer, committed_next);
    let mut txs = Vec::new();
    for item in spec.items {
        let state = match (item.error, item.payload) {
            (Some(reason), _) => Item::NotSubmitted { reason },
            (None, _) if failed.is_some() && !job.proceed => Item::NotSubmitted {
                reason: format!(
                    "rolled back: event {} failed (GS1-Capture-Error-Behaviour: rollback)",
                    failed
                        .flatten()
                        .map_or("(master data)".into(), |i| i.to_string())
                ),
            },
            (None, Some(payload)) => {
                let tx = Transaction::sign(&handle.shared.genesis.chain_id, &key, nonce, payload)?;
                nonce += 1;
                let bytes = tx.to_canonical_bytes()?;
                let hash = tx.hash();
                txs.push(tx);
                Item::Submitted { tx: bytes, hash }
            }
            (None, None) => Item::NotSubmitted {
                reason: "no command".into(),
            },
        };
        job.items.push((item.event_index.map(|i| i as u32), state));
    }
    // Durable before anything is admitted or acknowledged.
    let persisted = job.clone();
    let saving = handle.clone();
    tokio::task::spawn_blocking(move || save(&saving, &persisted)).await??;
    let admitted = {
        let handle = handle.clone();
        tokio::task::spawn_blocking(move || handle.admit_for_capture(txs)).await?
    };
    let mut changed = false;
    for (hash, refusal) in admitted {
        if let Some((code, reason)) = refusal {
            for (_, item) in &mut job.items {
                if matches!(item, Item::Submitted { hash: h, .. } if *h == hash) {
                    *item = Item::Refused {
                        hash,
                        code: code.clone(),
                        reason: reason.clone(),
                    };
                    changed = true;
                }
            }
        }
    }
    if changed {
        let handle = handle.clone();
        let job = job.clone();
        tokio::task::spawn_blocking(move || save(&handle, &job)).await??;
    }
    Ok(job.id)
}

/// At start-up: re-admits the transactions of every capture not yet committed.
pub fn recover(handle: &NodeHandle) -> Result<usize> {
    let mut readmitted = 0;
    for (_, bytes) in handle.shared.store.scan_meta(JOB_PREFIX)? {
        let job: Job = borsh::from_slice(&bytes)?;
        let mut txs = Vec::new();
        for (_, item) in &job.items {
            if let Item::Submitted { tx, hash } = item {
                if handle.shared.store.tx_location(hash)?.is_none() {
                    txs.push(Transaction::from_canonical_bytes(tx)?);
                }
            }
        }
        readmitted += txs.len();
        if !txs.is_empty() {
            let _ = handle.admit_for_capture(txs);
        }
    }
    Ok(readmitted)
}

/// The job as a client sees it, item states read from the chain now.
pub fn view(handle: &NodeHandle, id: &str) -> Result<Option<CaptureJobView>> {
    let Some(job) = load(handle, id)? else {
        return Ok(None);
    };
    let mut items = Vec::with_capacity(job.items.len());
    let (mut pending, mut failed, mut committed) = (0, 0, 0);
    for (event_index, item) in &job.items {
        let view = match item {
            Item::NotSubmitted { reason } => {
                failed += 1;
                CaptureItemView {
                    event_index: event_index.map(|i| i as usize),
                    status: "not_submitted".into(),
                    tx_hash: None,
                    code: None,
                    reason: Some(reason.clone()),
                }
            }
            Item::Refused { hash, code, reason } => {
                failed += 1;
                CaptureItemView {
                    event_index: event_index.map(|i| i as usize),
                    status: "rejected".into(),
                    tx_hash: Some(hash.to_hex()),
                    code: Some(code.clone()),
                    reason: Some(reason.clone()),
                }
            }
            Item::Submitted { hash, .. } => {
                let outcome = handle.committed(hash)?;
                let (status, code, reason) = match outcome {
                    Some(SubmitOutcome::Committed { .. }) => {
                        committed += 1;
                        ("committed", None, None)
                    }
                    Some(SubmitOutcome::Rejected { code, reason, .. }) => {
                        failed += 1;
                        ("rejected", Some(code), Some(reason))
                    }
                    _ => {
                        pending += 1;
                        ("pending", None, None)
                    }
                };
                CaptureItemView {
                    event_index: event_index.map(|i| i as usize),
                    status: status.into(),
                    tx_hash: Some(hash.to_hex()),
                    code,
                    reason,
                }
            }
        };
        items.push(view);
    }
    let state = if pending > 0 {
        "running"
    } else if failed == 0 {
        "succeeded"
    } else if committed == 0 {
        "failed"
    } else {
        "partial"
    };
    Ok(Some(CaptureJobView {
        id: job.id,
        state: state.into(),
        error_behaviour: if job.proceed { "proceed" } else { "rollback" }.into(),
        created_ms: job.created_ms,
        signer: job.signer.to_hex(),
        items,
    }))
}
