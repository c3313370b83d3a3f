//! Simulator checks of the failure detector (small N, default test run). Each check prints
//! its seed on failure; rerun with the same seed to reproduce.

mod sim;

use sim::experiments::{cluster, detection, false_positives, quantile, Kind};

const SEED: u64 = 0x5EED_0001;

#[test]
fn a_crashed_node_is_declared_dead_by_every_live_node_within_the_bound() {
    let result = detection(Kind::Lifeguard, 8, 0.0, SEED, 2);
    println!("seed {SEED:#x}: {result:?}");
    assert_eq!(
        result.missed, 0,
        "seed {SEED:#x}: some observer never detected the crash"
    );
    // Bound: first failed probe (n rounds at worst) + suspicion max (30 s, LHM 0, latency and
    // confidence factors < 2) + dissemination; at 0% loss confirmations shorten it.
    let p99 = quantile(&result.samples_ms, 0.99).unwrap_or(u64::MAX);
    assert!(p99 < 60_000, "seed {SEED:#x}: p99 detection {p99} ms");
}

#[test]
fn no_live_node_is_declared_dead_at_zero_loss() {
    let fp = false_positives(Kind::Lifeguard, 8, 0.0, SEED, 120_000);
    assert_eq!(fp.declarations, 0, "seed {SEED:#x}: {fp:?}");
}

#[test]
fn warm_cluster_converges_to_one_view() {
    let sim = cluster(Kind::Lifeguard, 8, 0.0, SEED);
    assert!(
        sim.converged(),
        "seed {SEED:#x}: cluster did not converge in warm-up"
    );
}
