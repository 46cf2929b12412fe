//! Wires a node together from its configuration: keys, genesis, store, application, mempool,
//! consensus loop, and the HTTP API; stops gracefully on SIGTERM or Ctrl-C.

use crate::app::{Application, ContractApp, NonceApp};
use crate::config::{ApplicationKind, NodeConfig};
use crate::genesis::{GenesisAppState, GenesisFile};
use crate::keys;
use crate::mempool::Mempool;
use crate::net::NetConfig;
use crate::peering::{pump_events, NetTransport};
use crate::runtime::{ConsensusLoop, NodeHandle, RuntimeOptions, LOOP_INPUTS_MAX};
use crate::store::RocksStore;
use anyhow::{bail, Context, Result};
use pharmalink_ledger::{LedgerRead, PublicKey};
use std::collections::BTreeSet;
use std::sync::Arc;

pub async fn serve(config: NodeConfig) -> Result<()> {
    let passphrase = std::env::var(keys::PASSPHRASE_ENV).ok();
    let key = keys::read_key_file(&config.key_file, passphrase.as_deref())?;
    let genesis_file = GenesisFile::read(&config.genesis_file)?;
    let genesis = genesis_file.to_ledger()?;
    let is_validator = genesis.validators.index_of(&key.public_key()).is_some();
    if !is_validator && config.listen.is_none() {
        bail!("key {} is not a validator of this genesis: an observer needs `listen` and `peers` to follow the chain", key.public_key());
    }
    if genesis.validators.len() > 1 && config.listen.is_none() {
        bail!(
            "a network of {} validators needs `listen` and `peers` in the config",
            genesis.validators.len()
        );
    }
    let mut observers = BTreeSet::new();
    for (i, key) in config.observers.iter().enumerate() {
        observers
            .insert(PublicKey::from_hex(key).map_err(|e| anyhow::anyhow!("observers[{i}]: {e}"))?);
    }
    let mut peers = Vec::new();
    for (i, peer) in config.peers.iter().enumerate() {
        peers.push((
            PublicKey::from_hex(&peer.public_key)
                .map_err(|e| anyhow::anyhow!("peers[{i}].public_key: {e}"))?,
            peer.address,
        ));
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let organizations =
        GenesisAppState::from_genesis(&genesis)?.contract_organizations(&genesis)?;
    let app: Arc<dyn Application + Sync> = match config.application {
        ApplicationKind::Contracts => Arc::new(ContractApp::new(&genesis, organizations)),
        ApplicationKind::Nonce => Arc::new(NonceApp::new(&genesis, &organizations)),
    };
    tracing::info!(application = config.application.as_str(), "application");
    let ledger_path = config.data_dir.join("ledger");
    let wal_bytes = crate::store::wal_bytes_at(&ledger_path).unwrap_or(0);
    let opening = std::time::Instant::now();
    let store = Arc::new(
        tokio::task::block_in_place(|| {
            RocksStore::open_with_genesis_state(&ledger_path, &genesis, || app.genesis_effects())
        })
        .context("opening the ledger store")?,
    );
    // After a crash RocksDB replays its write-ahead log here: the slow part of a restart.
    tracing::info!(
        ms = opening.elapsed().as_millis() as u64,
        write_ahead_log_mb = wal_bytes as f64 / 1e6,
        "ledger store opened"
    );
    let mempool = Mempool::new(genesis.chain_id.clone());
    let validators: BTreeSet<PublicKey> = genesis
        .validators
        .validators
        .iter()
        .map(|v| v.public_key)
        .collect();
    let network = match config.listen {
        Some(listen) => {
            let allowed: BTreeSet<PublicKey> = validators.union(&observers).copied().collect();
            let net_config = NetConfig {
                listen,
                identity: key.clone(),
                peers,
                allowed,
                validators: validators.clone(),
            };
            let (net, events) = crate::net::start(net_config)
                .await
                .context("starting the peer-to-peer transport")?;
            tracing::info!(p2p = %net.listen_addr(), "peer-to-peer transport listening");
            Some((Arc::new(NetTransport::new(net)), events))
        }
        None => None,
    };
    let transport: Option<Arc<NetTransport>> = network.as_ref().map(|(t, _)| t.clone());
    let handle = NodeHandle::new(
        genesis.clone(),
        serde_json::to_value(&genesis_file)?,
        store.clone(),
        app,
        mempool,
        key.public_key(),
        transport
            .clone()
            .map(|t| t as Arc<dyn crate::runtime::Transport>),
        config.fault_injection,
    )?;
    let passphrase = std::env::var("PHARMALINK_KEY_PASSPHRASE").ok();
    let mut org_keys = Vec::new();
    for (i, path) in config.org_key_files.iter().enumerate() {
        org_keys.push(
            crate::keys::read_key_file(path, passphrase.as_deref())
                .with_context(|| format!("org_keys[{i}]"))?,
        );
    }
    let vault = tokio::task::block_in_place(|| {
        crate::vault::open_node_vault(&config.data_dir, config.vault_kek_file.as_deref())
    })
    .context("opening the PHI vault")?;
    let handle = handle
        .with_org_keys(org_keys)?
        .with_token_key(key.clone())?
        .with_vault(Arc::new(vault))?;
    let mut issuers = Vec::new();
    for (i, oidc) in config.oidc.iter().enumerate() {
        let text = std::fs::read_to_string(&oidc.jwks_file)
            .with_context(|| format!("oidc[{i}].jwks_file {}", oidc.jwks_file.display()))?;
        let keys: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(&text).with_context(|| format!("oidc[{i}].jwks_file"))?;
        let mut organizations = Vec::new();
        for (g, gln) in oidc.organizations.iter().enumerate() {
            organizations.push(
                pharmalink_contracts::contract::Gln::parse(gln)
                    .map_err(|r| anyhow::anyhow!("oidc[{i}].organizations[{g}]: {}", r.message))?,
            );
        }
        issuers.push(pharmalink_api::auth::OidcIssuer {
            issuer: oidc.issuer.clone(),
            audience: oidc.audience.clone(),
            keys,
            gln_claim: oidc.gln_claim.clone(),
            organizations,
        });
    }
    pharmalink_api::auth::set_oidc_issuers(issuers);
    let readmitted = tokio::task::block_in_place(|| crate::capture::recover(&handle))
        .context("recovering EPCIS capture jobs")?;
    if readmitted > 0 {
        tracing::info!(
            readmitted,
            "re-admitted transactions of unfinished capture jobs"
        );
    }

    // The fulfilment sagas resume where they were (sandbox payments until a real provider is
    // configured).
    let restored = pharmalink_api::tracking::restore(&handle);
    if restored > 0 {
        tracing::info!(restored, "tracking registrations restored");
    }
    pharmalink_api::dispatch::spawn_runner(
        handle.clone(),
        Arc::new(pharmalink_api::dispatch::SandboxPayments::new(
            handle.clone(),
        )),
    );

    let mut options = RuntimeOptions::default();
    if let Some(n) = config.block_txs_max {
        options.block_txs_max = n;
    }
    if let Some(ms) = config.timeout_propose_ms {
        options.timeouts.propose_base_ms = ms;
    }
    if let Some(ms) = config.block_gather_ms {
        options.block_gather_ms = ms;
    }
    if let Some(ms) = config.empty_block_interval_ms {
        options.empty_block_interval_ms = ms;
    }
    options.block_gather_ms = options
        .block_gather_ms
        .min(options.timeouts.propose_base_ms / 4);
    let (inputs, inputs_rx) = tokio::sync::mpsc::channel(LOOP_INPUTS_MAX);
    if let (Some((_, events)), Some(transport)) = (network, &transport) {
        tokio::spawn(pump_events(
            events,
            handle.clone(),
            inputs.clone(),
            transport.peer_set(),
        ));
    }
    let consensus = ConsensusLoop::new(handle.clone(), key, options, inputs_rx, inputs)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut consensus_task = crate::runtime::spawn_consensus_thread(consensus, stopped.clone())?;

    let listener = tokio::net::TcpListener::bind(config.api)
        .await
        .with_context(|| format!("binding the API to {}", config.api))?;
    let head = handle.shared.store.head()?;
    tracing::info!(
        chain_id = %genesis.chain_id,
        api = %listener.local_addr()?,
        height = head.as_ref().map_or(0, |h| h.height),
        "pharmalink node started"
    );
    println!(
        "pharmalink-node: chain {} at height {}, API on http://{}",
        genesis.chain_id,
        head.map_or(0, |h| h.height),
        listener.local_addr()?
    );
    let mut api_stopped = stopped.clone();
    let api = axum::serve(
        listener,
        pharmalink_api::router(handle.clone())
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = api_stopped.changed().await;
    });
    let api_task = tokio::spawn(async move { api.await });

    let signal = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        Ok::<_, anyhow::Error>(())
    };
    let consensus_result = tokio::select! {
        result = signal => {
            result?;
            tracing::info!("shutting down");
            None
        }
        result = &mut consensus_task => Some(result),
    };
    let _ = stop.send(true);
    // The loop finishes its write in flight on its thread before the store is flushed.
    let consensus_result = match consensus_result {
        Some(result) => result,
        None => consensus_task.await,
    };
    consensus_result
        .context("the consensus thread ended without a result")?
        .context("consensus loop failed")?;
    let _ = api_task.await;
    store.flush()?;
    Ok(())
}
