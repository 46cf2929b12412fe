//! `pharmalink-testnet`: start and perturb a local network of real node processes.
//!
//!     pharmalink-testnet up --manifest testnet/manifests/four-partners.toml --dir /tmp/tn
//!     pharmalink-testnet kill --dir /tmp/tn courier        # kill -9
//!     pharmalink-testnet stop --dir /tmp/tn courier        # SIGTERM
//!     pharmalink-testnet start --dir /tmp/tn courier
//!     pharmalink-testnet disconnect --dir /tmp/tn pharmacy  # partition it from the others
//!     pharmalink-testnet heal --dir /tmp/tn
//!     pharmalink-testnet status --dir /tmp/tn
//!     pharmalink-testnet run --manifest M --dir D          # up, load, perturbations, checks

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use pharmalink_testnet::{Manifest, Testnet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "pharmalink-testnet",
    about = "Local PharmaLink test networks on 127.0.0.x"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Generate keys, genesis and configs, start every node, and keep them running until Ctrl-C.
    Up {
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Start the network, offer load, apply the manifest's perturbations, heal, and check that
    /// every node agrees on every block. Exit 1 if not.
    Run {
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long)]
        dir: PathBuf,
        /// Offered load in transactions per second during the run.
        #[arg(long, default_value_t = 500)]
        rate: u64,
        /// Seconds of load (perturbations happen within this time).
        #[arg(long, default_value_t = 30)]
        duration: u64,
    },
    /// kill -9 a node of a network started with `up`.
    Kill {
        #[arg(long)]
        dir: PathBuf,
        node: String,
    },
    /// SIGTERM a node of a network started with `up`.
    Stop {
        #[arg(long)]
        dir: PathBuf,
        node: String,
    },
    /// Start a stopped or killed node of a network started with `up` (runs in the background).
    Start {
        #[arg(long)]
        dir: PathBuf,
        node: String,
    },
    /// Cut a node off from all others.
    Disconnect {
        #[arg(long)]
        dir: PathBuf,
        node: String,
    },
    /// Undo all disconnects.
    Heal {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Height and head hash of every node.
    Status {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Compare two builds of pharmalink-node: pairs of closed-loop runs (or, with --rate, of
    /// runs at that offered rate) on fresh 4-validator networks, the first pair in random order
    /// and the next ones alternating it; prints each run and, per build, the mean rate, node CPU
    /// per transaction and commit latency, in how many pairs B used less CPU and had a lower
    /// p50 than A, and the order effect.
    Ab {
        /// Directory for the networks (must be empty or new; each run's is removed after it).
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        options: pharmalink_testnet::bench::AbOptions,
    },
    /// Measure throughput, latency, catch-up and proposer loss on a 4-validator network.
    Bench {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        options: pharmalink_testnet::bench::BenchOptions,
    },
}

fn node_binary() -> Result<PathBuf> {
    let here = std::env::current_exe()?;
    let candidate = here.with_file_name("pharmalink-node");
    if candidate.exists() {
        return Ok(candidate);
    }
    bail!(
        "pharmalink-node is not beside {}: build the workspace (cargo build --release)",
        here.display()
    )
}

fn open(dir: &Path) -> Result<Testnet> {
    let manifest = Manifest::read(&dir.join("manifest.toml"))
        .context("is this a directory made by `pharmalink-testnet up`?")?;
    Testnet::create(manifest, dir, &node_binary()?)
}

fn pid_of(dir: &Path, node: &str) -> Result<String> {
    Ok(std::fs::read_to_string(dir.join(node).join("node.pid"))
        .with_context(|| format!("no pid file for {node}"))?
        .trim()
        .to_owned())
}

fn print_status(testnet: &Testnet) {
    for node in &testnet.nodes {
        match testnet.status(&node.spec.name) {
            Ok(s) => println!(
                "{:<14} {:<9} api={:<18} height={:<8} head={}",
                node.spec.name,
                if node.spec.validator {
                    "validator"
                } else {
                    "observer"
                },
                node.api,
                s["height"],
                s["head_hash"].as_str().unwrap_or("?")
            ),
            Err(_) => println!(
                "{:<14} {:<9} api={:<18} down",
                node.spec.name,
                if node.spec.validator {
                    "validator"
                } else {
                    "observer"
                },
                node.api
            ),
        }
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Up { manifest, dir } => {
            let m = Manifest::read(&manifest)?;
            std::fs::create_dir_all(&dir)?;
            std::fs::copy(&manifest, dir.join("manifest.toml"))?;
            let mut testnet = Testnet::create(m, &dir, &node_binary()?)?;
            testnet.start_all()?;
            testnet.wait_ready(Duration::from_secs(60))?;
            print_status(&testnet);
            println!("testnet up in {}; Ctrl-C stops it (the nodes get the same SIGINT). Logs: {}/<node>/node.log", dir.display(), dir.display());
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Cmd::Run {
            manifest,
            dir,
            rate,
            duration,
        } => run(&manifest, &dir, rate, duration),
        Cmd::Kill { dir, node } => {
            Command::new("kill")
                .args(["-9", &pid_of(&dir, &node)?])
                .status()?;
            Ok(())
        }
        Cmd::Stop { dir, node } => {
            Command::new("kill")
                .args(["-TERM", &pid_of(&dir, &node)?])
                .status()?;
            Ok(())
        }
        Cmd::Start { dir, node } => {
            let mut testnet = open(&dir)?;
            testnet.start(&node)?;
            testnet.detach(&node);
            Ok(())
        }
        Cmd::Disconnect { dir, node } => open(&dir)?.disconnect(&node),
        Cmd::Heal { dir } => open(&dir)?.heal(),
        Cmd::Bench { dir, options } => {
            pharmalink_testnet::bench::run(options, &dir, &node_binary()?)
        }
        Cmd::Ab { dir, options } => pharmalink_testnet::bench::ab(options, &dir, &node_binary()?),
        Cmd::Status { dir } => {
            let testnet = open(&dir)?;
            print_status(&testnet);
            Ok(())
        }
    }
}

fn run(manifest: &Path, dir: &Path, rate: u64, duration: u64) -> Result<()> {
    let m = Manifest::read(manifest)?;
    std::fs::create_dir_all(dir)?;
    std::fs::copy(manifest, dir.join("manifest.toml"))?;
    let mut testnet = Testnet::create(m.clone(), dir, &node_binary()?)?;
    testnet.start_all()?;
    testnet.wait_ready(Duration::from_secs(60))?;
    let pharmalink = node_binary()?.with_file_name("pharmalink");
    let mut load = Command::new(&pharmalink)
        .args([
            "load",
            "--quiet",
            "--rate",
            &rate.to_string(),
            "--duration",
            &duration.to_string(),
            "--target",
        ])
        .args(testnet.api_addresses(true))
        .spawn()
        .with_context(|| format!("starting {}", pharmalink.display()))?;
    let started = Instant::now();
    for p in &m.perturbations {
        let at = Duration::from_secs(p.at_s);
        if let Some(wait) = at.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        println!(
            "t={:>3}s {:?} {}",
            started.elapsed().as_secs(),
            p.action,
            p.node
        );
        testnet.apply(p)?;
    }
    let status = load.wait()?;
    testnet.heal()?;
    let names: Vec<String> = testnet.nodes.iter().map(|n| n.spec.name.clone()).collect();
    for name in &names {
        testnet.start(name)?;
    }
    testnet.wait_ready(Duration::from_secs(60))?;
    let target = names
        .iter()
        .filter_map(|n| testnet.height(n))
        .max()
        .unwrap_or(0);
    for name in &names {
        testnet.wait_height(name, target, Duration::from_secs(60))?;
    }
    let mut diverged = 0;
    for height in 1..=target {
        let hashes = testnet.block_hashes_at(height)?;
        let distinct: std::collections::BTreeSet<&String> = hashes.values().collect();
        if distinct.len() != 1 || hashes.len() != names.len() {
            diverged += 1;
            println!("height {height}: {hashes:?}");
        }
    }
    print_status(&testnet);
    println!(
        "testnet: heights={target} nodes={} diverged_heights={diverged} load_ok={}",
        names.len(),
        status.success()
    );
    testnet.stop_all()?;
    if diverged > 0 || !status.success() {
        bail!("the run failed its checks");
    }
    Ok(())
}
