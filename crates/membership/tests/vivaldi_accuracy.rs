//! Vivaldi accuracy against the bounds serf's own coordinate tests accept (1,000 cycles, one
//! fixed seed): line of 10 (0.31%), 5×5 grid (0.16%), two-site LAN/WAN split (0.006%), random
//! 100 ± 10 ms (7.5%), and the circle whose centre must float up on its height. On the circle
//! serf accepts 0.28% for its one seed; the same algorithm here gives 0.27–0.38% over seeds
//! 1..=10 (median 0.31%; 0.31% with this seed; `compare` prints them), so we assert 0.4%,
//! which each of those seeds meets, rather than pick a seed that happens to pass 0.28%
//! (ADR 0005).
//!
//! Like serf's, these bounds hold for a fixed seed; the spread over seeds is larger (the
//! height/adjustment trade-off wanders), and the `compare` example prints the median and worst
//! over ten seeds (ADR 0005).

mod sim;

use sim::topology;
use sim::vivaldi_eval::{simulate, Outcome};

/// The fixed seed of these checks (serf's tests fix theirs the same way).
const SEED: u64 = 2;
const CYCLES: usize = 1000;

fn check(name: &str, truth: &[Vec<f64>], dimensions: usize, bound: f64) -> Outcome {
    let outcome = simulate(truth, dimensions, CYCLES, SEED);
    println!("{name} d={dimensions}: {:?}", outcome.accuracy);
    assert!(
        outcome.accuracy.error_avg <= bound,
        "seed {SEED}: {name} with {dimensions} dimensions: average error {} > {bound}",
        outcome.accuracy.error_avg
    );
    outcome
}

#[test]
fn line_of_ten() {
    check("line", &topology::line(10, 10.0), 8, 0.0031);
}

#[test]
fn five_by_five_grid() {
    check("grid", &topology::grid(25, 10.0), 8, 0.0016);
}

#[test]
fn lan_wan_split() {
    check("split", &topology::split(25, 1.0, 10.0), 8, 0.000_06);
}

#[test]
fn random_hundred_plus_minus_ten() {
    check("random", &topology::random(25, 100.0, 10.0, 1), 8, 0.075);
}

#[test]
fn circle_centre_rises_on_its_height() {
    let radius_ms = 100.0;
    let outcome = check("circle", &topology::circle(25, radius_ms), 2, 0.004);
    assert!(
        outcome.coordinates[0].height_ms >= 0.97 * radius_ms,
        "seed {SEED}: centre too low"
    );
    for (i, c) in outcome.coordinates.iter().enumerate().skip(1) {
        assert!(
            c.height_ms <= 0.03 * radius_ms,
            "seed {SEED}: node {i} height {}",
            c.height_ms
        );
    }
}

#[test]
fn four_dimensions_embed_the_line_and_grid() {
    check("line", &topology::line(10, 10.0), 4, 0.0031);
    check("grid", &topology::grid(25, 10.0), 4, 0.0016);
}
