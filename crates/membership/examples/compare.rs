//! Side-by-side comparison, in the deterministic simulator, of this crate's SWIM with
//! Lifeguard, the same without Lifeguard (plain SWIM), and the `foca` crate given the same
//! budgets (probe period and timeout, indirect probes, suspicion, retransmissions); then the
//! same pair at foca's own LAN defaults (a shorter suspicion); then Vivaldi accuracy for 4 and
//! 8 dimensions. Run: `cargo run --release -p steward-membership --example compare` (a few
//! minutes on 2 cores). Optional arguments: a seed (decimal or `0x` hex, default 0x5eed0001)
//! and a number of consecutive seeds to pool (default 1; every row then pools the trials and
//! the steady-state hours of all of them, and the run takes that many times longer).
//!
//! Besides the detection time seen by every observer, each row splits it: the median time
//! from the crash to the first suspicion anywhere (the first failed probe; foca does not
//! report suspicions) and to the first DEAD declaration anywhere (the suspicion timeout on
//! top); the rest up to the observers' median is dissemination.

#[path = "../tests/sim/mod.rs"]
mod sim;

use sim::experiments::{detection, false_positives, quantile, Detection, FalsePositives, Kind};
use sim::topology;
use sim::vivaldi_eval::over_seeds;

const SIZES: [usize; 2] = [16, 64];
const LOSSES: [f64; 3] = [0.0, 0.05, 0.20];
const KINDS: [Kind; 5] = [
    Kind::Lifeguard,
    Kind::PlainSwim,
    Kind::Foca,
    Kind::LifeguardMult4,
    Kind::FocaLanDefaults,
];
const TRIALS: usize = 20;
const STEADY_MS: u64 = 60 * 60 * 1000;

fn seconds(ms: Option<u64>) -> String {
    ms.map_or("-".to_string(), |ms| format!("{:.1}", ms as f64 / 1000.0))
}

fn parse_seed(arg: &str) -> Option<u64> {
    match arg.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => arg.parse().ok(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let first = args
        .get(1)
        .and_then(|a| parse_seed(a))
        .unwrap_or(0x5EED_0001u64);
    let count = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1u64)
        .max(1);
    let seeds: Vec<u64> = (first..first + count).collect();
    println!(
        "seeds {first:#x}..={:#x}; LAN topology (one-way 1..=2 ms), {TRIALS} crash trials per row \
         and seed,",
        first + count - 1
    );
    println!(
        "false positives over {} simulated minutes per seed with every node up\n",
        STEADY_MS / 60_000
    );
    println!(
        "| N | loss | implementation | detection median s | detection p99 s | missed | FP / node-hour | first suspicion s | first DEAD s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for n in SIZES {
        for loss in LOSSES {
            for kind in KINDS {
                let mut d = Detection::default();
                let mut fp = FalsePositives::default();
                for &seed in &seeds {
                    let one = detection(kind, n, loss, seed, TRIALS);
                    d.samples_ms.extend(one.samples_ms);
                    d.first_suspect_ms.extend(one.first_suspect_ms);
                    d.first_down_ms.extend(one.first_down_ms);
                    d.missed += one.missed;
                    let steady = false_positives(kind, n, loss, seed, STEADY_MS);
                    fp.declarations += steady.declarations;
                    fp.node_hours += steady.node_hours;
                }
                println!(
                    "| {n} | {:.0}% | {} | {} | {} | {} | {:.2} | {} | {} |",
                    loss * 100.0,
                    kind.label(),
                    seconds(quantile(&d.samples_ms, 0.5)),
                    seconds(quantile(&d.samples_ms, 0.99)),
                    d.missed,
                    fp.per_node_hour(),
                    seconds(quantile(&d.first_suspect_ms, 0.5)),
                    seconds(quantile(&d.first_down_ms, 0.5)),
                );
            }
        }
    }
    vivaldi_table();
}

fn vivaldi_table() {
    let seeds: Vec<u64> = (1..=10).collect();
    println!("\nVivaldi average relative error after 1,000 cycles (median / worst of 10 seeds)\n");
    println!("| topology | serf bound | 2 dimensions | 4 dimensions | 8 dimensions |");
    println!("|---|---|---|---|---|");
    let rows: [(&str, Vec<Vec<f64>>, f64); 5] = [
        ("line of 10, 10 ms", topology::line(10, 10.0), 0.31),
        ("5×5 grid, 10 ms", topology::grid(25, 10.0), 0.16),
        (
            "LAN/WAN split 1/10 ms",
            topology::split(25, 1.0, 10.0),
            0.006,
        ),
        ("circle r=100 ms", topology::circle(25, 100.0), 0.28),
        (
            "random 100 ± 10 ms",
            topology::random(25, 100.0, 10.0, 1),
            7.5,
        ),
    ];
    for (name, truth, bound) in rows {
        let cell = |d| {
            let (median, worst) = over_seeds(&truth, d, 1000, &seeds);
            format!("{:.4}% / {:.4}%", median * 100.0, worst * 100.0)
        };
        println!(
            "| {name} | {bound}% | {} | {} | {} |",
            cell(2),
            cell(4),
            cell(8)
        );
    }
}
