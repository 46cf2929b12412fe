//! Last-mile dispatch on a real dev node (issue 9): an approved prescription becomes an order;
//! the saga reserves, collects the copay (sandbox provider), assigns the cheapest fitting
//! vehicle, waits for the courier (who fails twice: the saga retries the vehicle once, then
//! re-assigns), and the handoff with the recipient's one-time code dispenses the package — its
//! consumer verification says dispensed and delivered. A declined payment compensates
//! (reservation released, delivery closed); a compensation that fails lands in the manual
//! queue; a node killed mid-saga resumes after restart.

mod support;

use pharmalink_contracts::contract::Date;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{
    call, dev_key, free_port, sgtin_urn, stock_pharmacy, token_for, verify_settled, DevNode, Signer,
};

fn approved_rx(api: &str, token: &str, family: &str) -> String {
    let body = json!({
        "patient": {"family": family, "given": ["Ann"], "birth_date": "1980-02-03"},
        "prescriber": {"npi": "1234567893", "family": "Brown"},
        "ndc": "0001-0123-45", "quantity": 30, "directions": "1 tab po qd x 30 days",
        "written_on": "2026-11-25"
    });
    let (code, intake) = call(api, "POST", "/v1/rx/intakes", Some(token), Some(body), &[]);
    assert_eq!(code, 201, "{intake}");
    let rx = intake["rx_token"].as_str().unwrap().to_string();
    let (code, decided) = call(
        api,
        "POST",
        &format!("/v1/rx/intakes/{rx}/decision"),
        Some(token),
        Some(json!({"approve": true, "pharmacist": "RPh Ellis"})),
        &[],
    );
    assert_eq!(code, 200, "{decided}");
    rx
}

fn order_for(api: &str, token: &str, rx: &str, copay_cents: u64) -> (String, String, String) {
    order_with(
        api,
        token,
        json!({"rx_token": rx, "destination": [40.7410, -73.9896], "copay_cents": copay_cents}),
    )
}

/// Places an order; (order, recipient code, first package).
fn order_with(api: &str, token: &str, order: Value) -> (String, String, String) {
    let (code, created) = call(
        api,
        "POST",
        "/v1/dispatch/orders",
        Some(token),
        Some(order),
        &[],
    );
    assert_eq!(code, 202, "{created}");
    (
        created["order"].as_str().unwrap().to_string(),
        created["recipient_code"].as_str().unwrap().to_string(),
        created["items"][0].as_str().unwrap().to_string(),
    )
}

/// A courier's action on an order (`pickup`, `fail`, `deliver`).
fn order_action(
    api: &str,
    token: Option<&str>,
    order: &str,
    action: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call(
        api,
        "POST",
        &format!("/v1/dispatch/orders/{order}/{action}"),
        token,
        body,
        &[],
    )
}

/// The courier posts a position for `order` (now, 8 m/s); the status and the broadcast update.
fn post_position(
    api: &str,
    courier: Option<&str>,
    order: &str,
    [lat, lon]: [f64; 2],
) -> (u16, Value) {
    call(
        api,
        "POST",
        &format!("/v1/tracking/{order}/positions"),
        courier,
        Some(
            json!({"lat": lat, "lon": lon, "at_ms": pharmalink_api::auth::now_s() * 1000, "speed_mps": 8.0}),
        ),
        &[],
    )
}

/// Polls the order until `done(saga, delivery)` holds.
fn wait_order(
    api: &str,
    token: &str,
    order: &str,
    what: &str,
    done: impl Fn(&Value, &Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let (code, body) = call(
            api,
            "GET",
            &format!("/v1/dispatch/orders/{order}"),
            Some(token),
            None,
            &[],
        );
        if code == 200 && done(&body["saga"], &body["delivery"]) {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "waiting for {what}: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(150));
    }
}

fn vehicle(
    id: &str,
    kind: &str,
    cold: bool,
    human: bool,
    base: [f64; 2],
    cost: u32,
    available: bool,
) -> Value {
    json!({"id": id, "kind": kind, "payload_grams": 20000, "range_m": 50000, "cold_chain": cold,
           "human": human, "base": base, "available": available, "cost_per_km_cents": cost})
}

#[test]
fn order_to_doorstep_with_failures_compensation_manual_queue_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut node = DevNode::start(&data, port);
    let api = node.api.clone();
    let pharmacy = token_for(&api, &dev_key(&data, "pharmacy"));
    let courier = token_for(&api, &dev_key(&data, "courier"));
    let (ph, co) = (Some(pharmacy.as_str()), Some(courier.as_str()));
    let mut signer = Signer::new(&api);
    stock_pharmacy(
        &mut signer,
        &data,
        &[("LOT1", Date::new(2028, 6, 30), &["D1", "D2", "D3", "D4"])],
    );

    // The courier's fleet: a cheap bike near the patient, a van further away.
    for v in [
        vehicle(
            "bike-1",
            "bicycle",
            false,
            true,
            [40.7400, -73.9900],
            50,
            true,
        ),
        vehicle("van-7", "van", true, true, [40.6500, -73.9500], 120, true),
    ] {
        let (code, body) = call(&api, "POST", "/v1/dispatch/vehicles", co, Some(v), &[]);
        assert_eq!(code, 200, "{body}");
    }
    let (code, body) = call(
        &api,
        "POST",
        "/v1/dispatch/vehicles",
        ph,
        Some(vehicle("x", "van", true, true, [0.0, 0.0], 1, true)),
        &[],
    );
    assert_eq!(code, 403, "a pharmacy registers no vehicle: {body}");
    let (code, body) = call(
        &api,
        "POST",
        "/v1/dispatch/vehicles",
        co,
        Some(vehicle("x", "hovercraft", true, true, [0.0, 0.0], 1, true)),
        &[],
    );
    assert_eq!(
        (
            code,
            body["field"].as_str().or(body["detail"].as_str()).is_some()
        ),
        (400, true),
        "{body}"
    );

    // 1. The happy path with two courier failures.
    let rx = approved_rx(&api, &pharmacy, "Alpha");
    let (order, code_for_patient, item) = order_for(&api, &pharmacy, &rx, 1_500);
    assert_eq!(item, sgtin_urn("D1"), "first-expiry-first-out pick");
    // The delivery shows "assigned" once the assignment's transaction commits; the saga records
    // which vehicle right after: wait for both (reading the saga at the first moment raced it).
    let body = wait_order(&api, &pharmacy, &order, "assignment", |s, d| {
        d["state"] == "assigned" && !s["assigned"].is_null()
    });
    assert_eq!(
        body["saga"]["assigned"][1], "bike-1",
        "cheapest fitting vehicle: {body}"
    );
    // The order is tracked live: the courier posts a position, the link is for the patient.
    let watch_url = body["saga"]["watch_url"]
        .as_str()
        .expect("a tracking link")
        .to_string();
    assert!(
        watch_url.starts_with(&format!("/v1/tracking/{order}/ws?token=")),
        "{watch_url}"
    );
    let (code, update) = post_position(&api, co, &order, [40.7405, -73.9898]);
    assert_eq!(code, 200, "{update}");
    assert!(update["eta_s"].as_f64().is_some(), "{update}");
    // The courier sees the delivery but not the pharmacy's saga (payment, copay).
    let (code, seen) = call(
        &api,
        "GET",
        &format!("/v1/dispatch/orders/{order}"),
        co,
        None,
        &[],
    );
    assert_eq!(code, 200, "{seen}");
    assert!(
        seen["saga"].is_null() && seen["delivery"]["state"] == "assigned",
        "{seen}"
    );
    // Failure 1 (after pickup): packages return to the pharmacy; the saga retries bike-1.
    let (code, body) = order_action(&api, co, &order, "pickup", None);
    assert_eq!(code, 200, "{body}");
    let (code, body) = order_action(
        &api,
        co,
        &order,
        "fail",
        Some(json!({"reason": "nobody home"})),
    );
    assert_eq!(code, 200, "{body}");
    let body = wait_order(
        &api,
        &pharmacy,
        &order,
        "retry with the same vehicle",
        |s, d| d["state"] == "assigned" && d["attempts"] == 1 && s["assigned"][1] == "bike-1",
    );
    assert!(
        body["saga"]["excluded"].as_array().unwrap().is_empty(),
        "{body}"
    );
    // Failure 2: the saga re-assigns to the van.
    let (code, body) = order_action(
        &api,
        co,
        &order,
        "fail",
        Some(json!({"reason": "flat tyre"})),
    );
    assert_eq!(code, 200, "{body}");
    let body = wait_order(&api, &pharmacy, &order, "re-assignment", |s, d| {
        d["state"] == "assigned" && d["attempts"] == 2 && s["assigned"][1] == "van-7"
    });
    // The patient's link survives the re-assignment: same URL, and it still opens.
    assert_eq!(body["saga"]["watch_url"], watch_url.as_str(), "{body}");
    let (code, update) = post_position(&api, co, &order, [40.7402, -73.9899]);
    assert_eq!(code, 200, "the van's position is tracked: {update}");
    assert_eq!(
        body["saga"]["excluded"],
        json!([format!(
            "{}/bike-1",
            body["delivery"]["courier_gln"].as_str().unwrap()
        )])
    );
    let (code, body) = order_action(&api, co, &order, "pickup", None);
    assert_eq!(code, 200, "{body}");
    // The handoff: a wrong code is refused by the contract, the right one ends custody.
    let (code, body) = order_action(
        &api,
        co,
        &order,
        "deliver",
        Some(json!({"code": "00000000"})),
    );
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("dispatch.code_mismatch")),
        "{body}"
    );
    let (code, body) = order_action(
        &api,
        co,
        &order,
        "deliver",
        Some(json!({"code": code_for_patient})),
    );
    assert_eq!(code, 200, "{body}");
    let body = wait_order(&api, &pharmacy, &order, "completion", |s, _| {
        s["status"] == "completed"
    });
    let steps: Vec<String> = body["saga"]["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{}:{}",
                l["step"].as_str().unwrap(),
                l["outcome"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "open:succeeded",
        "reserve:succeeded",
        "payment:succeeded",
        "assign:succeeded",
        "deliver:failed",
        "deliver:succeeded",
        "dispense:succeeded",
    ] {
        assert!(
            steps.contains(&expected.to_string()),
            "{expected} missing from {steps:?}"
        );
    }
    let answer = verify_settled(&api, "(01)00300010123455(21)D1(10)LOT1(17)280630");
    assert_eq!(answer["status"], "genuine_dispensed", "{answer}");
    let events: Vec<&str> = answer["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.last(), Some(&"delivered"), "{answer}");
    assert!(
        !answer.to_string().contains(&order),
        "the order id reaches no consumer"
    );

    // 2. A declined copay (sandbox 402.00): compensated in reverse, the package is free again.
    let rx2 = approved_rx(&api, &pharmacy, "Beta");
    let (order2, _, item2) = order_for(&api, &pharmacy, &rx2, 40_200);
    assert_eq!(item2, sgtin_urn("D2"));
    let body = wait_order(&api, &pharmacy, &order2, "compensation", |s, _| {
        s["status"] == "compensated"
    });
    assert_eq!(body["delivery"]["state"], "closed", "{body}");
    let steps: Vec<String> = body["saga"]["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{}:{}",
                l["step"].as_str().unwrap(),
                l["outcome"].as_str().unwrap()
            )
        })
        .collect();
    let position = |s: &str| {
        steps
            .iter()
            .position(|x| x == s)
            .unwrap_or_else(|| panic!("{s} missing from {steps:?}"))
    };
    assert!(position("payment:failed") < position("reserve:compensated"));
    assert!(
        position("reserve:compensated") < position("open:compensated"),
        "{steps:?}"
    );
    let (code, stock) = call(&api, "GET", "/v1/inventory?ndc=0001-0123-45", ph, None, &[]);
    assert_eq!(code, 200);
    let d2 = stock["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["epc"] == sgtin_urn("D2"))
        .unwrap()
        .clone();
    assert_eq!(d2["dispensable"], true, "reservation released: {d2}");

    // 3. A saga whose compensation fails (refund of sandbox 504.00 fails) goes to the manual
    //    queue: no vehicle is available, so assignment fails, then the refund keeps failing.
    for v in [
        vehicle(
            "bike-1",
            "bicycle",
            false,
            true,
            [40.7400, -73.9900],
            50,
            false,
        ),
        vehicle("van-7", "van", true, true, [40.6500, -73.9500], 120, false),
    ] {
        let (code, body) = call(&api, "POST", "/v1/dispatch/vehicles", co, Some(v), &[]);
        assert_eq!(code, 200, "{body}");
    }
    let rx3 = approved_rx(&api, &pharmacy, "Gamma");
    let (order3, _, _) = order_for(&api, &pharmacy, &rx3, 50_400);
    let body = wait_order(&api, &pharmacy, &order3, "the manual queue", |s, _| {
        s["status"] == "manual"
    });
    assert!(
        body["saga"]["manual_reason"]
            .as_str()
            .unwrap()
            .contains("refund"),
        "{body}"
    );
    let (code, queue) = call(&api, "GET", "/v1/dispatch/manual", ph, None, &[]);
    assert_eq!(code, 200);
    assert!(
        queue
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["order"] == order3.as_str()),
        "{queue}"
    );
    let (code, body) = call(
        &api,
        "POST",
        &format!("/v1/dispatch/manual/{order3}"),
        ph,
        Some(json!({"action": "resolved", "note": "refunded at the counter"})),
        &[],
    );
    assert_eq!(code, 200, "{body}");

    // 4. Killed mid-saga: a copay that fails transiently twice (sandbox 503.00) is being
    //    retried with backoff when the node dies; after the restart the saga goes on.
    for v in [vehicle(
        "van-7",
        "van",
        true,
        true,
        [40.6500, -73.9500],
        120,
        true,
    )] {
        let (code, body) = call(&api, "POST", "/v1/dispatch/vehicles", co, Some(v), &[]);
        assert_eq!(code, 200, "{body}");
    }
    let rx4 = approved_rx(&api, &pharmacy, "Delta");
    let (order4, code4, _) = order_for(&api, &pharmacy, &rx4, 50_300);
    wait_order(
        &api,
        &pharmacy,
        &order4,
        "a failed payment attempt",
        |s, _| {
            s["log"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|e| e["step"] == "payment" && e["outcome"] == "failed")
            })
        },
    );
    node.kill9();
    let node = DevNode::start(&data, port);
    let api = node.api.clone();
    let body = wait_order(
        &api,
        &pharmacy,
        &order4,
        "assignment after the restart",
        |s, d| d["state"] == "assigned" && !s["assigned"].is_null(),
    );
    assert_eq!(body["saga"]["assigned"][1], "van-7", "{body}");
    // Killed again after the assignment: the tracking link handed out keeps working (the saga
    // registers it again with the same token).
    let watch_url = body["saga"]["watch_url"].as_str().unwrap().to_string();
    drop(node);
    let node = DevNode::start(&data, port);
    let api = node.api.clone();
    let started = Instant::now();
    loop {
        let (code, update) = post_position(&api, co, &order4, [40.7405, -73.9898]);
        if code == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "tracking not re-armed: {code} {update}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, view) = call(
        &api,
        "GET",
        &format!("/v1/dispatch/orders/{order4}"),
        ph,
        None,
        &[],
    );
    assert_eq!(
        view["saga"]["watch_url"],
        watch_url.as_str(),
        "the same link: {view}"
    );
    for (path, payload) in [("pickup", None), ("deliver", Some(json!({"code": code4})))] {
        let (code, body) = order_action(&api, co, &order4, path, payload);
        assert_eq!(code, 200, "{path}: {body}");
    }
    wait_order(
        &api,
        &pharmacy,
        &order4,
        "completion after the restart",
        |s, _| s["status"] == "completed",
    );
}

/// Great-circle length of a closed tour from `start` through `stops` in the given order.
fn tour_m(start: [f64; 2], stops: &[[f64; 2]]) -> f64 {
    use pharmalink_contracts::route::{haversine_m, GeoPoint};
    let p = |[lat, lon]: [f64; 2]| GeoPoint { lat, lon };
    let mut path = vec![start];
    path.extend_from_slice(stops);
    path.push(start);
    path.windows(2).map(|w| haversine_m(p(w[0]), p(w[1]))).sum()
}

/// Every permutation of `0..n` (Heap's algorithm).
fn permutations(n: usize) -> Vec<Vec<usize>> {
    fn heap(k: usize, a: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if k <= 1 {
            out.push(a.clone());
            return;
        }
        for i in 0..k {
            heap(k - 1, a, out);
            let j = if k % 2 == 0 { i } else { 0 };
            a.swap(j, k - 1);
        }
    }
    let mut out = Vec::new();
    heap(n, &mut (0..n).collect(), &mut out);
    out
}

#[test]
fn a_courier_run_visits_its_stops_in_the_shortest_order_and_keeps_windows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = DevNode::start(&data, free_port());
    let api = node.api.clone();
    let pharmacy = token_for(&api, &dev_key(&data, "pharmacy"));
    let courier = token_for(&api, &dev_key(&data, "courier"));
    let (ph, co) = (Some(pharmacy.as_str()), Some(courier.as_str()));
    let mut signer = Signer::new(&api);
    stock_pharmacy(
        &mut signer,
        &data,
        &[(
            "LOT1",
            Date::new(2028, 6, 30),
            &["R1", "R2", "R3", "R4", "R5", "R6"],
        )],
    );
    let base = [40.7400, -73.9900];
    let (code, body) = call(
        &api,
        "POST",
        "/v1/dispatch/vehicles",
        co,
        Some(vehicle("van-r", "van", true, true, base, 100, true)),
        &[],
    );
    assert_eq!(code, 200, "{body}");
    // Six recipients within about 3 km of the van; the one at index 4 must be served within
    // 5 minutes, which the shortest tour (it passes there late) would miss.
    let destinations = [
        [40.7480, -73.9850],
        [40.7530, -73.9770],
        [40.7450, -73.9700],
        [40.7350, -73.9760],
        [40.7300, -73.9950],
        [40.7420, -74.0020],
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut orders = Vec::new();
    for (i, destination) in destinations.iter().enumerate() {
        let rx = approved_rx(&api, &pharmacy, &format!("Route{i}"));
        let mut body = json!({"rx_token": rx, "destination": destination, "copay_cents": 500});
        if i == 4 {
            body["window"] = json!([now, now + 300]);
        }
        orders.push(order_with(&api, &pharmacy, body).0);
    }
    // A bad window is refused by name before anything is placed.
    let rx = approved_rx(&api, &pharmacy, "RouteBad");
    let (code, body) = call(
        &api,
        "POST",
        "/v1/dispatch/orders",
        ph,
        Some(
            json!({"rx_token": rx, "destination": base, "copay_cents": 500, "window": [now + 900, now + 600]}),
        ),
        &[],
    );
    assert_eq!(
        (code, body["field"].as_str()),
        (400, Some("window")),
        "{body}"
    );
    let mut courier_gln = String::new();
    for order in &orders {
        let view = wait_order(&api, &pharmacy, order, "assignment", |saga, delivery| {
            saga["step"] == "deliver" && delivery["state"] == "assigned"
        });
        courier_gln = view["delivery"]["courier_gln"]
            .as_str()
            .unwrap()
            .to_string();
    }
    let run_path = format!("/v1/dispatch/vehicles/{courier_gln}/van-r/run");

    // Refusals name the field.
    for (path, body, status, field) in [
        (
            "/v1/dispatch/vehicles/123/van-r/run",
            json!({}),
            400,
            "courier",
        ),
        (run_path.as_str(), json!({"end": "somewhere"}), 400, "end"),
        (run_path.as_str(), json!({"from": [91.0, 0.0]}), 400, "from"),
        (
            run_path.as_str(),
            json!({"speed_kmh": -3}),
            400,
            "speed_kmh",
        ),
        (
            &format!("/v1/dispatch/vehicles/{courier_gln}/no-such/run"),
            json!({}),
            404,
            "vehicle",
        ),
    ] {
        let (code, answer) = call(&api, "POST", path, co, Some(body), &[]);
        assert_eq!(
            (code, answer["field"].as_str()),
            (status, Some(field)),
            "{path}: {answer}"
        );
    }

    // The best closed tour that keeps the window, checked against all 720 orders.
    let (code, plan) = call(&api, "POST", &run_path, co, Some(json!({})), &[]);
    assert_eq!(code, 200, "{plan}");
    let stops = plan["stops"].as_array().unwrap();
    assert_eq!(stops.len(), 6, "{plan}");
    assert_eq!(plan["from_source"], "vehicle_base");
    let visited: Vec<usize> = stops
        .iter()
        .map(|s| {
            orders
                .iter()
                .position(|o| o == s["order"].as_str().unwrap())
                .unwrap()
        })
        .collect();
    let route_of = |p: &[usize]| p.iter().map(|&i| destinations[i]).collect::<Vec<_>>();
    let planned_m = tour_m(base, &route_of(&visited));
    assert!(
        (plan["distance_m"].as_f64().unwrap() - planned_m).abs() < 1.0,
        "{plan}"
    );
    // The best order by brute force, with the node's time model (30 km/h, 120 s per stop):
    // the shortest tour reaches the windowed stop after 19 minutes, so the window costs
    // distance.
    let arrival_at_4 = |p: &[usize]| {
        let mut t = 0.0;
        let mut at = base;
        for &i in p {
            t += tour_m(at, &[destinations[i]]) / 2.0 / (30.0 / 3.6);
            if i == 4 {
                return t;
            }
            t += 120.0;
            at = destinations[i];
        }
        unreachable!()
    };
    let waited = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - now;
    let all = permutations(6);
    let shortest = all
        .iter()
        .map(|p| tour_m(base, &route_of(p)))
        .fold(f64::INFINITY, f64::min);
    let best_in_window = all
        .iter()
        .filter(|p| arrival_at_4(p) <= (300 - waited) as f64)
        .map(|p| tour_m(base, &route_of(p)))
        .fold(f64::INFINITY, f64::min);
    println!(
        "run of 6: {planned_m:.0} m; best keeping the window {best_in_window:.0} m, shortest ignoring it {shortest:.0} m; solved in {:.2} ms",
        plan["solve_ms"].as_f64().unwrap()
    );
    assert!(best_in_window > shortest + 100.0, "the window must bind");
    assert!((planned_m - best_in_window).abs() < 1.0, "{plan}");
    assert_eq!(plan["windows_missed"], 0, "{plan}");
    let stop = &stops[visited.iter().position(|&i| i == 4).unwrap()];
    assert_eq!(stop["late_s"], 0, "{stop}");
    assert!(
        stop["arrival_unix_s"].as_u64().unwrap() <= now + 300,
        "{stop}"
    );
    // The pharmacy may plan its own orders; another role may not.
    let (code, own) = call(&api, "POST", &run_path, ph, Some(json!({})), &[]);
    assert_eq!(code, 200, "{own}");
    let order_of = |plan: &Value| -> Vec<Value> {
        plan["stops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["order"].clone())
            .collect()
    };
    assert_eq!(
        order_of(&own),
        order_of(&plan),
        "the pharmacy's own six orders, same order"
    );
    let maker = token_for(&api, &dev_key(&data, "manufacturer"));
    let (code, answer) = call(&api, "POST", &run_path, Some(&maker), Some(json!({})), &[]);
    assert_eq!(code, 403, "{answer}");

    // A position on the last stop's order: its ETA drives through the five stops before it.
    let last = stops.last().unwrap()["order"].as_str().unwrap();
    let (code, update) = post_position(&api, co, last, base);
    assert_eq!(code, 200, "{update}");
    assert!(update["eta_s"].as_u64().unwrap() >= 5 * 120, "{update}");
    // The next plan starts where the courier is.
    let (code, plan) = call(
        &api,
        "POST",
        &run_path,
        co,
        Some(json!({"end": "last_stop"})),
        &[],
    );
    assert_eq!(
        (code, plan["from_source"].as_str()),
        (200, Some("last_position")),
        "{plan}"
    );
    drop(node);
}
