//! Route optimisation benchmark: seeded random runs of 20 … 1,000 stops, geographic (uniform in
//! a 30 km box around New York City, haversine metres) and Euclidean (uniform in a 30,000 ×
//! 30,000 square); both matrices are rounded to integer metres, as the reference solver sees
//! them. Prints per instance and per size: tour length, runtime, and the gap to the reference
//! (`examples/route_reference.json`, LKH-3 tour lengths computed by `route_reference.py`).
//!
//! `cargo run --release -p pharmalink-contracts --example route_bench [-- OPTIONS]`
//!
//! - `--sizes 20,50,100` (default 20,50,100,200,500,1000)
//! - `--kicks N` fixed kick budget instead of the default `default_kicks(n)`
//! - `--seed S` solver seed (default 1)
//! - `--write-instances DIR` write every instance as TSPLIB (EXPLICIT, FULL_MATRIX) and exit
//! - `--quiet` only the per-size summary
//! - `--penalty-evals N` penalty-phase budget instead of the default
//! - `--no-constraints` skip the open-tour / time-window / cold-chain table

use pharmalink_contracts::route::{
    self, Budget, DistanceMatrix, GeoPoint, RouteOptions, StopConstraints, TourEnd,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

const SIZES: [usize; 6] = [20, 50, 100, 200, 500, 1000];

/// Instances per size (fewer for the large ones: the reference solver is slow on them).
fn seeds_for(n: usize) -> u64 {
    match n {
        0..=200 => 5,
        500 => 3,
        _ => 2,
    }
}

/// SplitMix64, so the instances do not depend on any crate's generator.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn instance(kind: &str, n: usize, seed: u64) -> DistanceMatrix {
    let salt: u64 = if kind == "geo" {
        0x6765_6F00
    } else {
        0x6575_6300
    };
    let mut g = Gen(seed.wrapping_mul(1_000_003) ^ ((n as u64) << 32) ^ salt);
    if kind == "geo" {
        let (lat0, lon0): (f64, f64) = (40.7128, -74.0060);
        let dlat = 15_000.0 / 111_195.0;
        let dlon = dlat / lat0.to_radians().cos();
        let mut p = || {
            GeoPoint::new(
                lat0 + (2.0 * g.unit() - 1.0) * dlat,
                lon0 + (2.0 * g.unit() - 1.0) * dlon,
            )
        };
        let depot = p();
        let stops: Vec<GeoPoint> = (0..n).map(|_| p()).collect();
        DistanceMatrix::haversine(depot, &stops).map(|m| m.rounded())
    } else {
        let mut p = || (g.unit() * 30_000.0, g.unit() * 30_000.0);
        let depot = p();
        let stops: Vec<(f64, f64)> = (0..n).map(|_| p()).collect();
        DistanceMatrix::euclidean(depot, &stops).map(|m| m.rounded())
    }
    .unwrap_or_else(|e| panic!("instance {kind}-{n}-{seed}: {e}"))
}

fn write_tsplib(path: &std::path::Path, name: &str, m: &DistanceMatrix) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let n = m.nodes();
    writeln!(f, "NAME : {name}\nTYPE : TSP\nDIMENSION : {n}")?;
    writeln!(
        f,
        "EDGE_WEIGHT_TYPE : EXPLICIT\nEDGE_WEIGHT_FORMAT : FULL_MATRIX"
    )?;
    writeln!(f, "EDGE_WEIGHT_SECTION")?;
    for i in 0..n {
        let row: Vec<String> = (0..n).map(|j| format!("{}", m.get(i, j) as i64)).collect();
        writeln!(f, "{}", row.join(" "))?;
    }
    writeln!(f, "EOF")?;
    f.flush()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let sizes: Vec<usize> = arg("--sizes")
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| SIZES.to_vec());
    let kicks: Option<u64> = arg("--kicks").and_then(|s| s.parse().ok());
    let seed: u64 = arg("--seed").and_then(|s| s.parse().ok()).unwrap_or(1);
    let quiet = args.iter().any(|a| a == "--quiet");
    let penalty_evals: Option<u64> = arg("--penalty-evals").and_then(|s| s.parse().ok());

    if let Some(dir) = arg("--write-instances") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create instance dir");
        for &n in &sizes {
            for kind in ["geo", "euc"] {
                for s in 1..=seeds_for(n) {
                    let name = format!("{kind}-{n}-{s}");
                    let m = instance(kind, n, s);
                    write_tsplib(&dir.join(format!("{name}.tsp")), &name, &m)
                        .expect("write instance");
                    println!("{name}");
                }
            }
        }
        return;
    }

    let reference: BTreeMap<String, f64> = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/route_reference.json"
    ))
    .ok()
    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    .and_then(|v| {
        v.get("lengths").and_then(|l| l.as_object()).map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x)))
                .collect()
        })
    })
    .unwrap_or_default();

    println!(
        "{:<5} {:>5} {:>4} {:>12} {:>12} {:>8} {:>9} {:>8}",
        "kind", "stops", "inst", "length_m", "reference_m", "gap_%", "ms", "kicks"
    );
    let mut summary = Vec::new();
    for &n in &sizes {
        for kind in ["geo", "euc"] {
            let (mut gaps, mut times) = (Vec::new(), Vec::new());
            for s in 1..=seeds_for(n) {
                let name = format!("{kind}-{n}-{s}");
                let m = instance(kind, n, s);
                let opts = RouteOptions {
                    seed,
                    budget: Budget {
                        kicks,
                        ..Budget::default()
                    },
                    ..RouteOptions::default()
                };
                let t = Instant::now();
                let r = route::solve(&m, &opts).expect("solve");
                let ms = t.elapsed().as_secs_f64() * 1e3;
                times.push(ms);
                let reference = reference.get(&name).copied();
                let gap = reference.map(|b| (r.distance_m - b) / b * 100.0);
                if let Some(g) = gap {
                    gaps.push(g);
                }
                if !quiet {
                    println!(
                        "{kind:<5} {n:>5} {s:>4} {:>12.0} {:>12} {:>8} {ms:>9.1} {:>8}",
                        r.distance_m,
                        reference.map_or("-".into(), |b| format!("{b:.0}")),
                        gap.map_or("-".into(), |g| format!("{g:.2}")),
                        r.kicks
                    );
                }
            }
            summary.push((kind, n, gaps, times));
        }
    }
    println!("\nsummary (gap to the LKH-3 reference; ms = wall time of solve, this machine)");
    println!(
        "{:<5} {:>5} {:>5} {:>10} {:>10} {:>9} {:>9}",
        "kind", "stops", "inst", "mean_gap%", "max_gap%", "mean_ms", "max_ms"
    );
    for (kind, n, gaps, times) in summary {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (mg, xg) = if gaps.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            (format!("{:.2}", mean(&gaps)), format!("{:.2}", max(&gaps)))
        };
        println!(
            "{kind:<5} {n:>5} {:>5} {mg:>10} {xg:>10} {:>9.1} {:>9.1}",
            times.len(),
            mean(&times),
            max(&times)
        );
    }

    if !args.iter().any(|a| a == "--no-constraints") {
        constrained(&sizes, seed, penalty_evals);
    }
}

/// Delivery slot length: customers choose one of the day's 2-hour slots.
const SLOT_S: f64 = 7_200.0;

/// Open tours, and runs where a third of the stops chose one of the day's 2-hour delivery slots
/// (the day = the closed tour's driving and service time) and a tenth are cold chain (120 s service each, 30 km/h): distance, windows missed,
/// time (no reference: LKH does not see these constraints).
fn constrained(sizes: &[usize], seed: u64, penalty_evals: Option<u64>) {
    if let Some(&n) = sizes.iter().max() {
        let mut g = Gen(7);
        let pts: Vec<GeoPoint> = (0..=n)
            .map(|_| GeoPoint::new(40.7 + g.unit() * 0.27, -74.0 + g.unit() * 0.36))
            .collect();
        let t = Instant::now();
        let m = DistanceMatrix::haversine(pts[0], &pts[1..]).expect("matrix");
        println!(
            "\nhaversine matrix for {n} stops ({} entries): {:.1} ms (not in the solve times)",
            m.nodes() * m.nodes(),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    println!("\nopen tours and constraints (geo instance 1 of each size; ms = wall time)");
    println!(
        "{:>5} {:>12} {:>8} {:>12} {:>8} {:>12} {:>13} {:>8} {:>9} {:>9}",
        "stops",
        "closed_m",
        "ms",
        "open_m",
        "ms",
        "windowed_m",
        "objective",
        "ms",
        "windows",
        "missed"
    );
    for &n in sizes {
        let m = instance("geo", n, 1);
        let run = |opts: &RouteOptions| {
            let t = Instant::now();
            let r = route::solve(&m, opts).expect("solve");
            (r, t.elapsed().as_secs_f64() * 1e3)
        };
        let base = RouteOptions {
            seed,
            budget: Budget {
                kicks: None,
                penalty_evals,
            },
            ..RouteOptions::default()
        };
        let (closed, closed_ms) = run(&base);
        let (open, open_ms) = run(&RouteOptions {
            end: TourEnd::EndAtLastStop,
            ..base.clone()
        });
        let mut g = Gen(seed ^ 0xC0FF_EE00 ^ n as u64);
        let day = closed.distance_m / base.speed_mps + 120.0 * n as f64;
        let slots = ((day / SLOT_S).ceil() as usize).max(1);
        let stops: Vec<StopConstraints> = (0..n)
            .map(|i| {
                let windowed = i % 3 == 0;
                let earliest = (g.next() % slots as u64) as f64 * SLOT_S;
                StopConstraints {
                    earliest_s: windowed.then_some(earliest),
                    latest_s: windowed.then_some(earliest + SLOT_S),
                    service_s: 120.0,
                    cold_chain: i % 10 == 5,
                }
            })
            .collect();
        let (windowed, windowed_ms) = run(&RouteOptions {
            stops,
            ..base.clone()
        });
        println!(
            "{n:>5} {:>12.0} {closed_ms:>8.1} {:>12.0} {open_ms:>8.1} {:>12.0} {:>13.0} {windowed_ms:>8.1} {:>9} {:>9}",
            closed.distance_m,
            open.distance_m,
            windowed.distance_m,
            windowed.objective,
            n.div_ceil(3),
            windowed.windows_violated.len()
        );
    }
}
