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

#[test]
fn false_positives_under_loss_stay_below_a_generous_ceiling() {
    for loss in [0.05, 0.20] {
        let ours = false_positives(Kind::Lifeguard, 8, loss, SEED, 600_000);
        let plain = false_positives(Kind::PlainSwim, 8, loss, SEED, 600_000);
        println!("seed {SEED:#x} loss {loss}: lifeguard {ours:?}, plain SWIM {plain:?}");
        assert!(
            ours.declarations * 10 <= plain.declarations || ours.declarations == 0,
            "seed {SEED:#x}: Lifeguard {ours:?} is not 10× better than plain SWIM {plain:?}"
        );
        assert!(
            ours.per_node_hour() <= 2.0,
            "seed {SEED:#x}: {} false positives per node-hour at {loss} loss",
            ours.per_node_hour()
        );
    }
}

#[test]
fn a_partition_heals_to_one_view() {
    let mut sim = cluster(Kind::Lifeguard, 8, 0.0, SEED);
    sim.partition(vec![0, 0, 0, 0, 1, 1, 1, 1]);
    sim.run_for(90_000);
    let split_seen = sim.view_of(0, 5) == Some(sim::View::Down);
    assert!(
        split_seen,
        "seed {SEED:#x}: the partition was never detected"
    );
    sim.heal();
    sim.run_for(120_000);
    assert!(
        sim.converged(),
        "seed {SEED:#x}: views differ 120 s after the partition healed"
    );
}

#[test]
fn a_restarted_node_rejoins_with_a_higher_incarnation() {
    let mut sim = cluster(Kind::Lifeguard, 6, 0.0, SEED);
    sim.crash(3);
    sim.run_for(60_000);
    assert_eq!(sim.view_of(0, 3), Some(sim::View::Down), "seed {SEED:#x}");
    sim.restart(
        3,
        sim::experiments::AnyNode::make(Kind::Lifeguard, 3, 6, 1, SEED),
        &[0],
    );
    sim.run_for(30_000);
    assert!(
        sim.converged(),
        "seed {SEED:#x}: restarted node not back in every view"
    );
}
