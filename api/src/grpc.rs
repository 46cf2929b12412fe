//! The gRPC API (tonic, `proto/pharmalink.proto`, package `pharmalink.v1`), with server
//! reflection. Same rules as the REST API: submissions are signed transactions; the
//! committed-event feed needs a bearer JWT and shows an organization only the events it is a
//! party to (regulators everything).

use crate::auth::{authenticate, now_s, Caller};
use crate::consumer::{parse_code, scanned_epc, verdict_of};
use crate::epcis_api::event_parties;
use crate::http::{NodeApi, SubmitOutcome};
use crate::log::{events_from, successor};
use pharmalink_contracts::contract::{decode_logged_event, Position};
use pharmalink_contracts::custody::epcis::export_document;
use pharmalink_contracts::proof;
use pharmalink_ledger::{Canonical, Hash, Transaction};
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub mod pb {
    tonic::include_proto!("pharmalink.v1");
}

/// The descriptor set for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/pharmalink_descriptor.bin"));

/// Most transactions per SubmitTransaction call.
pub const SUBMIT_TXS_MAX: usize = crate::http::SUBMIT_TXS_MAX;
/// Events buffered per feed subscriber.
pub const FEED_BUFFER: usize = 1024;

pub struct LedgerService<N> {
    node: N,
}

/// The gRPC services (Ledger and reflection) as axum routes: the node serves them on its API
/// port next to REST (HTTP/2 cleartext, as gRPC clients connect).
pub fn axum_routes<N: NodeApi>(node: N) -> axum::Router {
    let routes =
        tonic::service::Routes::new(pb::ledger_server::LedgerServer::new(LedgerService { node }));
    let routes = match tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()
    {
        Ok(reflection) => routes.add_service(reflection),
        // The descriptor set is compiled in; this cannot fail for a built binary.
        Err(_) => routes,
    };
    routes.into_axum_router()
}

fn outcome(o: SubmitOutcome) -> pb::TxOutcome {
    let hash = |hex: &str| {
        Hash::from_hex(hex)
            .map(|h| h.0.to_vec())
            .unwrap_or_default()
    };
    match o {
        SubmitOutcome::Committed {
            tx_hash,
            height,
            index,
        } => pb::TxOutcome {
            tx_hash: hash(&tx_hash),
            status: "committed".into(),
            height,
            index,
            ..Default::default()
        },
        SubmitOutcome::Rejected {
            tx_hash,
            code,
            reason,
        } => pb::TxOutcome {
            tx_hash: hash(&tx_hash),
            status: "rejected".into(),
            code,
            reason,
            ..Default::default()
        },
        SubmitOutcome::Pending { tx_hash } => pb::TxOutcome {
            tx_hash: hash(&tx_hash),
            status: "pending".into(),
            ..Default::default()
        },
        SubmitOutcome::Busy { tx_hash, reason } => pb::TxOutcome {
            tx_hash: hash(&tx_hash),
            status: "busy".into(),
            code: "mempool_full".into(),
            reason,
            ..Default::default()
        },
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::unavailable(e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
}

/// Cursor of a logged event: hex of its position key.
fn cursor_of(position: &Position) -> String {
    hex::encode(position.key())
}

type Feed = Pin<Box<dyn Stream<Item = Result<pb::CommittedEvent, Status>> + Send>>;

#[tonic::async_trait]
impl<N: NodeApi> pb::ledger_server::Ledger for LedgerService<N> {
    async fn submit_transaction(
        &self,
        request: Request<pb::SubmitTransactionRequest>,
    ) -> Result<Response<pb::SubmitTransactionResponse>, Status> {
        let request = request.into_inner();
        if request.transactions.is_empty() || request.transactions.len() > SUBMIT_TXS_MAX {
            return Err(Status::invalid_argument(format!(
                "transactions: 1 to {SUBMIT_TXS_MAX}, got {}",
                request.transactions.len()
            )));
        }
        let mut txs = Vec::with_capacity(request.transactions.len());
        for (i, bytes) in request.transactions.iter().enumerate() {
            txs.push(
                Transaction::from_canonical_bytes(bytes)
                    .map_err(|e| Status::invalid_argument(format!("transactions[{i}]: {e}")))?,
            );
        }
        let outcomes = self.node.submit(txs).await;
        Ok(Response::new(pb::SubmitTransactionResponse {
            outcomes: outcomes.into_iter().map(outcome).collect(),
        }))
    }

    async fn get_block(
        &self,
        request: Request<pb::GetBlockRequest>,
    ) -> Result<Response<pb::Block>, Status> {
        let height = request.into_inner().height;
        let store = self.node.ledger();
        blocking(move || {
            let block = store
                .block(height)
                .map_err(internal)?
                .ok_or_else(|| Status::not_found(format!("no block at height {height}")))?;
            let certificate = store
                .certificate(height)
                .map_err(internal)?
                .ok_or_else(|| Status::not_found(format!("no certificate at height {height}")))?;
            Ok(pb::Block {
                height,
                hash: block.hash().0.to_vec(),
                header: block.header.to_canonical_bytes().map_err(internal)?,
                certificate: certificate.to_canonical_bytes().map_err(internal)?,
                tx_hashes: block.txs.iter().map(|t| t.hash().0.to_vec()).collect(),
                timestamp_ms: block.header.timestamp_ms,
            })
        })
        .await
        .map(Response::new)
    }

    async fn get_transaction(
        &self,
        request: Request<pb::GetTransactionRequest>,
    ) -> Result<Response<pb::TransactionStatus>, Status> {
        let bytes: [u8; 32] = request
            .into_inner()
            .tx_hash
            .try_into()
            .map_err(|_| Status::invalid_argument("tx_hash: 32 bytes"))?;
        let hash = Hash(bytes);
        let status = self
            .node
            .tx_status(&hash)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no transaction {hash} here")))?;
        let store = self.node.ledger();
        let transaction = blocking(move || {
            Ok(match store.tx_location(&hash).map_err(internal)? {
                Some(location) => store
                    .transaction(location)
                    .map_err(internal)?
                    .map(|t| t.to_canonical_bytes())
                    .transpose()
                    .map_err(internal)?
                    .unwrap_or_default(),
                None => Vec::new(),
            })
        })
        .await?;
        Ok(Response::new(pb::TransactionStatus {
            outcome: Some(outcome(status)),
            transaction,
        }))
    }

    async fn get_proof(
        &self,
        request: Request<pb::GetProofRequest>,
    ) -> Result<Response<pb::PackageProof>, Status> {
        let code = request.into_inner().code;
        let scanned = parse_code(&code, crate::consumer::current_year())
            .map_err(|e| Status::invalid_argument(format!("code: {e}")))?;
        let store = self.node.ledger();
        let genesis = store.genesis().clone();
        let (built, label) = blocking(move || {
            let epc = scanned_epc(&*store, &scanned).map_err(internal)?;
            let built = proof::build(&*store, &epc)
                .map_err(internal)?
                .ok_or_else(|| Status::unavailable("the chain has no block yet"))?;
            Ok((built, scanned.label))
        })
        .await?;
        let history = proof::verify(&genesis, &built.proof).map_err(internal)?;
        let verdict = verdict_of(&history, &label);
        Ok(Response::new(pb::PackageProof {
            proof: built.proof.to_bytes(),
            status: verdict.status.name().into(),
            epc: history.epc.as_str().into(),
            as_of_height: history.as_of_height,
            pending_events: built.pending_facts as u64,
        }))
    }

    type StreamCommittedStream = Feed;

    async fn stream_committed(
        &self,
        request: Request<pb::StreamCommittedRequest>,
    ) -> Result<Response<Feed>, Status> {
        let store = self.node.ledger();
        // The bearer token travels as `authorization` metadata.
        let mut headers = axum::http::HeaderMap::new();
        if let Some(value) = request.metadata().get("authorization") {
            if let Ok(value) = axum::http::HeaderValue::from_bytes(value.as_bytes()) {
                headers.insert(axum::http::header::AUTHORIZATION, value);
            }
        }
        let reader = store.clone();
        let caller: Caller = blocking(move || {
            authenticate(&headers, &*reader, now_s())
                .map_err(|e| Status::unauthenticated(format!("{e:?}")))
        })
        .await?;
        let cursor = request.into_inner().cursor;
        let mut next: Vec<u8> = if cursor.is_empty() {
            vec![0; 16]
        } else {
            let bytes = hex::decode(&cursor)
                .ok()
                .filter(|b| b.len() == 16)
                .ok_or_else(|| Status::invalid_argument("cursor: not one this node issued"))?;
            successor(&bytes)
        };
        let mut heights = self.node.committed_heights();
        let (sender, receiver) = tokio::sync::mpsc::channel(FEED_BUFFER);
        tokio::spawn(async move {
            let me = caller.organization.gln();
            loop {
                let from = next.clone();
                let reader = store.clone();
                let batch =
                    tokio::task::spawn_blocking(move || events_from(&*reader, &from, 512)).await;
                let rows = match batch {
                    Ok(Ok(rows)) => rows,
                    Ok(Err(e)) => {
                        let _ = sender.send(Err(Status::unavailable(e))).await;
                        return;
                    }
                    Err(e) => {
                        let _ = sender.send(Err(Status::internal(e.to_string()))).await;
                        return;
                    }
                };
                let caught_up = rows.len() < 512;
                for (key, value) in rows {
                    next = successor(&key);
                    let Some(logged) = decode_logged_event(&value) else {
                        continue;
                    };
                    if !caller.is_regulator() && !event_parties(&logged.event).contains(&me) {
                        continue;
                    }
                    let epcis_json = {
                        let document = export_document(std::slice::from_ref(&logged), false);
                        if document.events.is_empty() {
                            String::new()
                        } else {
                            pharmalink_contracts::epcis::json::write_json_ld(&document)["epcisBody"]
                                ["eventList"][0]
                                .to_string()
                        }
                    };
                    let event = pb::CommittedEvent {
                        cursor: cursor_of(&logged.position),
                        height: logged.position.height,
                        tx_index: logged.position.tx,
                        event_index: logged.position.event,
                        timestamp_ms: logged.timestamp_ms,
                        kind: logged.event.name().into(),
                        event: value,
                        epcis_json,
                    };
                    if sender.send(Ok(event)).await.is_err() {
                        return; // the client went away
                    }
                }
                if caught_up && heights.changed().await.is_err() {
                    return; // the node is shutting down
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }
}
