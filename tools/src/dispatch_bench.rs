//! `pharmalink dispatch-bench [--orders N] [--dir DIR]`: fulfilment sagas completed per second
//! on a dev node, end to end over HTTP: N approved prescriptions (set up first, not timed),
//! then N orders created from 8 threads while a courier loop picks up and delivers each order
//! as soon as it is assigned. Prints sagas/s and the order → completed latency.

use crate::api_bench::{percentile, start_node};
use anyhow::{anyhow, bail, Result};
use clap::Args;
use pharmalink_contracts::contract::command::Command;
use pharmalink_contracts::contract::fixtures::{product_master, receive_all, sale, DISPENSER};
use pharmalink_contracts::contract::{Date, Epc, Gtin};
use pharmalink_ledger::{SigningKey, Transaction};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct DispatchBenchArgs {
    /// Orders (sagas) to run.
    #[arg(long, default_value_t = 200)]
    orders: usize,
    /// Data directory of the dev node (default: a fresh temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Address of the dev node's API.
    #[arg(long, default_value = "127.0.0.1:18480")]
    api: String,
}

struct Client {
    http: reqwest::blocking::Client,
    api: String,
}

impl Client {
    fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let url = format!("http://{}{path}", self.api);
        let mut request = match method {
            "POST" => self.http.post(url),
            _ => self.http.get(url),
        }
        .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send()?;
        let status = response.status().as_u16();
        Ok((status, response.json().unwrap_or(Value::Null)))
    }

    fn submit(&self, chain: &str, key: &SigningKey, command: Command) -> Result<()> {
        let (_, nonce) = self.call(
            "GET",
            &format!("/v1/signers/{}/nonce", key.public_key().to_hex()),
            "",
            None,
        )?;
        let nonce = nonce["next_nonce"]
            .as_u64()
            .ok_or_else(|| anyhow!("no nonce: {nonce}"))?;
        let tx = Transaction::sign(chain, key, nonce, command.encode())?;
        let body = pharmalink_api::http::encode_batch(&[tx]);
        let answer: Value = self
            .http
            .post(format!("http://{}/v1/txs", self.api))
            .header("content-type", pharmalink_api::http::TxsBodyFormat::BATCH)
            .body(body)
            .send()?
            .json()?;
        if answer["results"][0]["status"] != "committed" {
            bail!("setup command refused: {answer}");
        }
        Ok(())
    }
}

fn key(dir: &Path, name: &str) -> Result<SigningKey> {
    pharmalink_node::keys::read_key_file(&dir.join(format!("{name}.key")), None)
}

pub fn run(args: DispatchBenchArgs) -> Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().join("data"));
    let _node = start_node(&dir, &args.api)?;
    let client = Arc::new(Client {
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        api: args.api.clone(),
    });
    let (_, status) = client.call("GET", "/v1/status", "", None)?;
    let chain = status["chain_id"]
        .as_str()
        .ok_or_else(|| anyhow!("no chain id"))?
        .to_string();
    let now = pharmalink_api::auth::now_s();
    let (maker, pharmacy, courier) = (
        key(&dir, "manufacturer")?,
        key(&dir, "pharmacy")?,
        key(&dir, "courier")?,
    );
    let pharmacy_token =
        pharmalink_api::auth::issue(&pharmacy, &chain, now, 3_600).map_err(|e| anyhow!(e))?;
    let courier_token =
        pharmalink_api::auth::issue(&courier, &chain, now, 3_600).map_err(|e| anyhow!(e))?;
    let n = args.orders.max(1);

    // Set-up (not timed): stock, a vehicle, approved prescriptions.
    let gtin = Gtin::parse("00300010123455").map_err(|r| anyhow!("{r}"))?;
    client.submit(
        &chain,
        &maker,
        Command::RegisterProduct {
            product: product_master(),
        },
    )?;
    let serials: Vec<String> = (0..n).map(|i| format!("DB{i}")).collect();
    let epcs: Vec<Epc> = serials
        .iter()
        .map(|s| Epc::new(format!("urn:epc:id:sgtin:0300010.012345.{s}")))
        .collect();
    for (chunk, epc_chunk) in serials.chunks(500).zip(epcs.chunks(500)) {
        client.submit(
            &chain,
            &maker,
            Command::Commission {
                gtin,
                serials: chunk.to_vec(),
                lot: "LOT1".into(),
                expiry: Date::new(2028, 6, 30),
            },
        )?;
        client.submit(
            &chain,
            &maker,
            sale(DISPENSER.gln(), epc_chunk.to_vec(), "PO-BENCH"),
        )?;
    }
    for (i, epc_chunk) in epcs.chunks(500).enumerate() {
        client.submit(&chain, &pharmacy, receive_all(i as u64, epc_chunk))?;
    }
    let vehicle = json!({"id": "van-1", "kind": "van", "payload_grams": 50000, "range_m": 80000, "cold_chain": true,
        "human": true, "base": [40.74, -73.99], "available": true, "cost_per_km_cents": 90});
    let (code, body) = client.call(
        "POST",
        "/v1/dispatch/vehicles",
        &courier_token,
        Some(vehicle),
    )?;
    if code != 200 {
        bail!("vehicle: {code} {body}");
    }
    let mut prescriptions = Vec::with_capacity(n);
    for i in 0..n {
        let intake = json!({"patient": {"family": format!("Bench{i}"), "given": ["Pat"], "birth_date": "1975-05-05"},
            "prescriber": {"npi": "1234567893", "family": "Brown"}, "ndc": "0001-0123-45", "quantity": 30,
            "directions": "1 tab po qd x 30 days", "written_on": "2026-11-25"});
        let (code, body) = client.call("POST", "/v1/rx/intakes", &pharmacy_token, Some(intake))?;
        if code != 201 {
            bail!("intake {i}: {code} {body}");
        }
        let rx = body["rx_token"].as_str().unwrap_or_default().to_string();
        let (code, body) = client.call(
            "POST",
            &format!("/v1/rx/intakes/{rx}/decision"),
            &pharmacy_token,
            Some(json!({"approve": true, "pharmacist": "bench"})),
        )?;
        if code != 200 {
            bail!("decision {i}: {code} {body}");
        }
        prescriptions.push(rx);
    }

    // Timed: orders from 8 threads; a courier loop delivers as soon as an order is assigned.
    let started = Instant::now();
    let orders: Arc<Mutex<Vec<(String, String, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let work = Arc::new(Mutex::new(
        prescriptions
            .into_iter()
            .zip(epcs.iter().map(|e| e.to_string()))
            .collect::<Vec<_>>(),
    ));
    let mut threads = Vec::new();
    for _ in 0..8 {
        let (client, work, orders, token) = (
            client.clone(),
            work.clone(),
            orders.clone(),
            pharmacy_token.clone(),
        );
        threads.push(std::thread::spawn(move || -> Result<()> {
            loop {
                let Some((rx, epc)) = work.lock().map_err(|_| anyhow!("poisoned"))?.pop() else {
                    return Ok(());
                };
                let t0 = Instant::now();
                let (code, body) = client.call("POST", "/v1/dispatch/orders", &token,
                    Some(json!({"rx_token": rx, "destination": [40.7410, -73.9896], "copay_cents": 1000, "items": [epc]})))?;
                if code != 202 {
                    bail!("order: {code} {body}");
                }
                let order = body["order"].as_str().unwrap_or_default().to_string();
                let code = body["recipient_code"].as_str().unwrap_or_default().to_string();
                orders.lock().map_err(|_| anyhow!("poisoned"))?.push((order, code, t0));
            }
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    let mut delivered: std::collections::BTreeSet<String> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(600);
    while latencies.len() < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} sagas completed in 10 minutes",
                latencies.len()
            );
        }
        let pending: Vec<(String, String, Instant)> =
            orders.lock().map_err(|_| anyhow!("poisoned"))?.clone();
        let mut progressed = false;
        for (order, code, t0) in pending {
            if latencies.len() >= n {
                break;
            }
            let (_, view) = client.call(
                "GET",
                &format!("/v1/dispatch/orders/{order}"),
                &pharmacy_token,
                None,
            )?;
            let state = view["delivery"]["state"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if state == "assigned" && !delivered.contains(&order) {
                client.call(
                    "POST",
                    &format!("/v1/dispatch/orders/{order}/pickup"),
                    &courier_token,
                    None,
                )?;
                let (status, body) = client.call(
                    "POST",
                    &format!("/v1/dispatch/orders/{order}/deliver"),
                    &courier_token,
                    Some(json!({"code": code})),
                )?;
                if status != 200 {
                    bail!("deliver {order}: {status} {body}");
                }
                delivered.insert(order.clone());
                progressed = true;
            }
            if view["saga"]["status"] == "completed" {
                latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
                orders
                    .lock()
                    .map_err(|_| anyhow!("poisoned"))?
                    .retain(|(o, _, _)| o != &order);
                progressed = true;
            } else if matches!(
                view["saga"]["status"].as_str(),
                Some("compensated" | "manual")
            ) {
                bail!("saga {order} ended {}: {view}", view["saga"]["status"]);
            }
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow!("an order thread panicked"))??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.total_cmp(b));
    println!(
        "dispatch: sagas={n} completed in {elapsed:.2} s: {:.1} sagas/s; order -> completed p50 {:.0} ms, p99 {:.0} ms (each: open, reserve, payment, assign, pickup, deliver, dispense = 7+ ledger commits)",
        n as f64 / elapsed,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    Ok(())
}
