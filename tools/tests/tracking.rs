//! Live tracking on a real dev node (issue 9): the pharmacy registers an order, watchers follow
//! it over WebSockets with the watch token, the courier posts positions and they arrive with an
//! ETA and nothing else (no destination, no PHI); a wrong token is refused before the upgrade;
//! only the courier posts positions; bad positions name the field; a late watcher gets the last
//! position first; `delivered` ends the stream.

use futures::StreamExt;
use pharmalink_ledger::SigningKey;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{self, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The patient's address: the ETA uses it, no watcher may see it.
const DESTINATION: (f64, f64) = (40.735_713, -74.172_366);
const ORDER: &str = "7a11ce0000000000000000000000000000000000000000000000000000000001";
const PACKAGE: &str = "urn:epc:id:sgtin:0300010.012345.T1001";

mod support;
use support::{bin, free_port};

struct DevNode {
    child: Child,
    api: String,
}

impl DevNode {
    async fn start(data_dir: &Path) -> DevNode {
        let api = format!("127.0.0.1:{}", free_port());
        let child = Process::new(bin("pharmalink-node"))
            .args(["dev", "--data-dir"])
            .arg(data_dir)
            .args(["--api", &api])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let node = DevNode { child, api };
        let started = Instant::now();
        while node.call("GET", "/v1/status", None, None).await.0 != 200 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "node did not come up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        node
    }

    /// `POST /v1/tracking/orders`.
    async fn register(&self, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call("POST", "/v1/tracking/orders", token, Some(body))
            .await
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let client = reqwest::Client::new();
        let url = format!("http://{}{path}", self.api);
        let mut request = match method {
            "POST" => client.post(url),
            _ => client.get(url),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// Opens a watcher, or the HTTP status the upgrade was refused with.
    async fn watch(&self, url: &str) -> Result<Socket, u16> {
        match tokio_tungstenite::connect_async(format!("ws://{}{url}", self.api)).await {
            Ok((socket, _)) => Ok(socket),
            Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(e) => panic!("connecting a watcher: {e}"),
        }
    }

    /// A watcher connecting from another loopback address: the flood guard limits it (only
    /// 127.0.0.1 is exempt) and counts the upgrade as one request; the open connection costs
    /// nothing more.
    async fn watch_from(&self, source: [u8; 4], url: &str) -> Socket {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind((std::net::Ipv4Addr::from(source), 0).into())
            .unwrap();
        let stream = socket.connect(self.api.parse().unwrap()).await.unwrap();
        let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
        tokio_tungstenite::client_async(format!("ws://{}{url}", self.api), stream)
            .await
            .unwrap()
            .0
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next text message as JSON, checking that it carries exactly the public fields.
async fn next_update(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("no tracking update within 10 s")
            .expect("the stream ended")
            .expect("a WebSocket error");
        let Message::Text(text) = message else {
            continue;
        };
        let value: Value = serde_json::from_str(&text).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            ["at_ms", "eta_s", "lat", "lon", "order", "package", "seq", "status"],
            "{text}"
        );
        // The destination's latitude (the test's positions share its longitude: due north).
        for secret in ["40.735713", "destination", "Main St", "patient"] {
            assert!(!text.contains(secret), "{secret} reached a watcher: {text}");
        }
        return value;
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn token(data: &Path, organization: &str, chain: &str) -> String {
    let key: SigningKey =
        pharmalink_node::keys::read_key_file(&data.join(format!("{organization}.key")), None)
            .unwrap();
    pharmalink_api::auth::issue(&key, chain, pharmalink_api::auth::now_s(), 900).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn couriers_post_positions_and_watchers_follow_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let node = DevNode::start(&data).await;
    let chain = node.call("GET", "/v1/status", None, None).await.1["chain_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pharmacy = token(&data, "pharmacy", &chain);
    let courier = token(&data, "courier", &chain);
    let wholesaler = token(&data, "wholesaler", &chain);
    let registration = json!({
        "order": ORDER, "courier_gln": "0300040000009", "package": PACKAGE,
        "destination": {"lat": DESTINATION.0, "lon": DESTINATION.1},
    });

    // Registration: authenticated, validated, once.
    let (status, _) = node.register(None, registration.clone()).await;
    assert_eq!(status, 401);
    let mut wrong_courier = registration.clone();
    wrong_courier["courier_gln"] = json!("0300030000002");
    let (status, body) = node.register(Some(&pharmacy), wrong_courier).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("courier_gln")),
        "{body}"
    );
    let mut far_away = registration.clone();
    far_away["destination"]["lat"] = json!(123.0);
    let (status, body) = node.register(Some(&pharmacy), far_away).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("destination.lat")),
        "{body}"
    );
    let (status, registered) = node.register(Some(&pharmacy), registration.clone()).await;
    assert_eq!(status, 201, "{registered}");
    let watch_token = registered["watch_token"].as_str().unwrap();
    assert_eq!(watch_token.len(), 64);
    let watch_url = registered["watch_url"].as_str().unwrap();
    assert_eq!(
        watch_url,
        format!("/v1/tracking/{ORDER}/ws?token={watch_token}")
    );
    let (status, _) = node.register(Some(&pharmacy), registration).await;
    assert_eq!(status, 409);

    // Watchers: the token is the authorization, checked before the upgrade.
    let base = format!("/v1/tracking/{ORDER}/ws");
    assert_eq!(node.watch(&base).await.err(), Some(403));
    let wrong = format!("{base}?token={}", "ab".repeat(32));
    assert_eq!(node.watch(&wrong).await.err(), Some(403));
    let other_order = format!("/v1/tracking/{}/ws?token={watch_token}", "cd".repeat(32));
    assert_eq!(node.watch(&other_order).await.err(), Some(403));
    let mut watchers = Vec::new();
    for _ in 0..3 {
        let mut socket = node.watch(watch_url).await.unwrap();
        let first = next_update(&mut socket).await;
        assert_eq!(first["status"], "registered");
        assert_eq!(first["package"], PACKAGE);
        assert!(first["lat"].is_null() && first["eta_s"].is_null());
        watchers.push(socket);
    }
    let mut remote = node.watch_from([127, 0, 0, 2], watch_url).await;
    assert_eq!(next_update(&mut remote).await["status"], "registered");
    watchers.push(remote);

    // Only the courier posts positions; bad ones name the field.
    let positions = format!("/v1/tracking/{ORDER}/positions");
    let at_ms = now_ms();
    let fix = json!({"lat": 40.745_713, "lon": -74.172_366, "at_ms": at_ms, "speed_mps": 10.0});
    for other in [&pharmacy, &wholesaler] {
        let (status, body) = node
            .call("POST", &positions, Some(other), Some(fix.clone()))
            .await;
        assert_eq!(status, 403, "{body}");
    }
    for (bad, field) in [
        (json!({"lat": 95.0, "lon": 0.0, "at_ms": at_ms}), "lat"),
        (json!({"lat": 40.0, "at_ms": at_ms}), "lon"),
        (json!({"lat": 40.0, "lon": -181.0, "at_ms": at_ms}), "lon"),
        (json!({"lat": 40.0, "lon": -74.0}), "at_ms"),
        (
            json!({"lat": 40.0, "lon": -74.0, "at_ms": at_ms + 3_600_000}),
            "at_ms",
        ),
        (
            json!({"lat": 40.0, "lon": -74.0, "at_ms": at_ms, "speed_mps": -1.0}),
            "speed_mps",
        ),
        (json!({"lat": "north", "lon": -74.0, "at_ms": at_ms}), "lat"),
    ] {
        let (status, body) = node
            .call("POST", &positions, Some(&courier), Some(bad.clone()))
            .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(field)),
            "{bad} → {body}"
        );
    }
    let (status, posted) = node
        .call("POST", &positions, Some(&courier), Some(fix))
        .await;
    assert_eq!(status, 200, "{posted}");
    // 0.01° of latitude ≈ 1,112 m at 10 m/s.
    assert_eq!(posted["eta_s"], 112);
    for socket in &mut watchers {
        let update = next_update(socket).await;
        assert_eq!(update["lat"], 40.745_713);
        assert_eq!(update["eta_s"], 112);
        assert_eq!(update["at_ms"], at_ms);
        assert_eq!(update["order"], ORDER);
    }
    let older = json!({"lat": 40.74, "lon": -74.17, "at_ms": at_ms - 1});
    let (status, body) = node
        .call("POST", &positions, Some(&courier), Some(older))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (409, Some("at_ms")),
        "{body}"
    );

    // A second position without speed: the default 8 m/s.
    let fix = json!({"lat": 40.740_713, "lon": -74.172_366, "at_ms": at_ms + 1_000});
    let (status, posted) = node
        .call("POST", &positions, Some(&courier), Some(fix))
        .await;
    assert_eq!((status, &posted["eta_s"]), (200, &json!(70)), "{posted}");

    // A late watcher gets the last position first.
    let mut late = node.watch(watch_url).await.unwrap();
    let first = next_update(&mut late).await;
    assert_eq!(
        (first["at_ms"].as_u64(), &first["eta_s"]),
        (Some(at_ms + 1_000), &json!(70))
    );
    watchers.push(late);

    // Status: the courier or the dispatcher; delivered ends every stream.
    let status_path = format!("/v1/tracking/{ORDER}/status");
    for (who, next, expected) in [
        (&wholesaler, "delivered", 403),
        (&courier, "lost", 400),
        (&courier, "out_for_delivery", 200),
        (&pharmacy, "delivered", 200),
    ] {
        let (status, body) = node
            .call(
                "POST",
                &status_path,
                Some(who),
                Some(json!({"status": next})),
            )
            .await;
        assert_eq!(status, expected, "{next}: {body}");
        if expected == 400 {
            assert_eq!(body["field"], "status", "{body}");
        }
    }
    for (i, socket) in watchers.iter_mut().enumerate() {
        if i < 4 {
            // The first four also saw the default-speed position.
            assert_eq!(next_update(socket).await["eta_s"], 70);
        }
        assert_eq!(next_update(socket).await["status"], "out_for_delivery");
        let last = next_update(socket).await;
        assert_eq!(
            (&last["status"], &last["eta_s"]),
            (&json!("delivered"), &json!(0))
        );
        let closed = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .unwrap();
        assert!(
            matches!(closed, None | Some(Ok(Message::Close(_))) | Some(Err(_))),
            "{closed:?}"
        );
    }
    let late_fix = json!({"lat": 40.74, "lon": -74.17, "at_ms": at_ms + 2_000});
    let (status, _) = node
        .call("POST", &positions, Some(&courier), Some(late_fix))
        .await;
    assert_eq!(status, 409, "no positions after delivery");
    let (status, _) = node.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);

    // A registration is acknowledged durably: after kill -9 its link works again (positions
    // were in memory, so it starts over at `registered`); an ended one stays ended.
    let second = "7a11ce0000000000000000000000000000000000000000000000000000000002";
    let mut registration = json!({
        "order": second, "courier_gln": "0300040000009", "package": PACKAGE,
        "destination": {"lat": DESTINATION.0, "lon": DESTINATION.1},
    });
    let (status, registered) = node.register(Some(&pharmacy), registration.clone()).await;
    assert_eq!(status, 201, "{registered}");
    let second_url = registered["watch_url"].as_str().unwrap().to_string();
    let mut node = node;
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    let node = DevNode::start(&data).await;
    let mut socket = node.watch(&second_url).await.unwrap();
    assert_eq!(next_update(&mut socket).await["status"], "registered");
    let fix = json!({"lat": 40.745_713, "lon": -74.172_366, "at_ms": now_ms(), "speed_mps": 10.0});
    let (status, posted) = node
        .call(
            "POST",
            &format!("/v1/tracking/{second}/positions"),
            Some(&courier),
            Some(fix),
        )
        .await;
    assert_eq!(status, 200, "{posted}");
    assert_eq!(next_update(&mut socket).await["eta_s"], 112);
    assert_eq!(
        node.watch(watch_url).await.err(),
        Some(403),
        "delivered: not restored"
    );
    registration["order"] = json!(ORDER);
    let (status, body) = node.register(Some(&pharmacy), registration).await;
    assert_eq!(
        status, 201,
        "an ended order may be registered again: {body}"
    );
}
