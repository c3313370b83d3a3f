//! Side-by-side comparison, in the deterministic simulator, of this crate's SWIM with
//! Lifeguard, the same without Lifeguard (plain SWIM), and the `foca` crate; then Vivaldi
//! accuracy for 4 and 8 dimensions. Run: `cargo run --release -p steward-membership --example
//! compare` (a few minutes on 2 cores). Optional argument: a seed.

#[path = "../tests/sim/mod.rs"]
mod sim;

use sim::experiments::{detection, false_positives, quantile, Kind};
use sim::topology;
use sim::vivaldi_eval::over_seeds;

const SIZES: [usize; 2] = [16, 64];
const LOSSES: [f64; 3] = [0.0, 0.05, 0.20];
const KINDS: [Kind; 4] = [
    Kind::Lifeguard,
    Kind::PlainSwim,
    Kind::Foca,
    Kind::LifeguardFast,
];
const TRIALS: usize = 20;
const STEADY_MS: u64 = 60 * 60 * 1000;

fn seconds(ms: Option<u64>) -> String {
    ms.map_or("-".to_string(), |ms| format!("{:.1}", ms as f64 / 1000.0))
}

fn main() {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_0001u64);
    println!("seed {seed:#x}; LAN topology (one-way 1..=2 ms), {TRIALS} crash trials per row,");
    println!(
        "false positives over {} simulated minutes with every node up\n",
        STEADY_MS / 60_000
    );
    println!(
        "| N | loss | implementation | detection median s | detection p99 s | missed | FP / node-hour |"
    );
    println!("|---|---|---|---|---|---|---|");
    for n in SIZES {
        for loss in LOSSES {
            for kind in KINDS {
                let d = detection(kind, n, loss, seed, TRIALS);
                let fp = false_positives(kind, n, loss, seed, STEADY_MS);
                println!(
                    "| {n} | {:.0}% | {} | {} | {} | {} | {:.2} |",
                    loss * 100.0,
                    kind.label(),
                    seconds(quantile(&d.samples_ms, 0.5)),
                    seconds(quantile(&d.samples_ms, 0.99)),
                    d.missed,
                    fp.per_node_hour(),
                );
            }
        }
    }
    vivaldi_table();
}

fn vivaldi_table() {
    let seeds: Vec<u64> = (1..=10).collect();
    println!("\nVivaldi average relative error after 1,000 cycles (median / worst of 10 seeds)\n");
    println!("| topology | serf bound | 4 dimensions | 8 dimensions |");
    println!("|---|---|---|---|");
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
        println!("| {name} | {bound}% | {} | {} |", cell(4), cell(8));
    }
}
