//! Latency matrices: one-way delays (whole ms) for the simulated network, and RTT truth
//! matrices (ms, f64) shaped like the ones serf's coordinate tests use.

use super::SimRng;

/// A datacenter-like network: one-way delay 1..=`max_ms` ms per link, symmetric, seeded.
pub fn lan(n: usize, max_ms: u64, seed: u64) -> Vec<Vec<u64>> {
    let mut rng = SimRng::new(seed ^ 0x7090);
    symmetric(n, 0, |_, _| 1 + rng.below(max_ms.max(1)))
}

/// RTT truth: nodes on a line, `spacing_ms` apart.
pub fn line(n: usize, spacing_ms: f64) -> Vec<Vec<f64>> {
    matrix(n, |i, j| (j as f64 - i as f64).abs() * spacing_ms)
}

/// RTT truth: a square grid (n must be a square), `spacing_ms` between neighbours.
pub fn grid(n: usize, spacing_ms: f64) -> Vec<Vec<f64>> {
    let side = (n as f64).sqrt() as usize;
    matrix(n, |i, j| {
        let (x1, y1) = ((i % side) as f64, (i / side) as f64);
        let (x2, y2) = ((j % side) as f64, (j / side) as f64);
        ((x2 - x1).powi(2) + (y2 - y1).powi(2)).sqrt() * spacing_ms
    })
}

/// RTT truth: two sites; `lan_ms` inside a site, `lan_ms + wan_ms` across.
pub fn split(n: usize, lan_ms: f64, wan_ms: f64) -> Vec<Vec<f64>> {
    let half = n / 2;
    matrix(n, |i, j| {
        if (i <= half) != (j <= half) {
            lan_ms + wan_ms
        } else {
            lan_ms
        }
    })
}

/// RTT truth: node 0 at the "centre" with twice the radius to everyone (it needs height),
/// the others evenly spread on a circle.
pub fn circle(n: usize, radius_ms: f64) -> Vec<Vec<f64>> {
    matrix(n, |i, j| {
        if i == 0 || j == 0 {
            return 2.0 * radius_ms;
        }
        let angle = |k: usize| 2.0 * std::f64::consts::PI * k as f64 / n as f64;
        let (a, b) = (angle(i), angle(j));
        ((a.cos() - b.cos()).powi(2) + (a.sin() - b.sin()).powi(2)).sqrt() * radius_ms
    })
}

/// RTT truth: independent normal RTTs `mean ± deviation`, seeded (not embeddable).
pub fn random(n: usize, mean_ms: f64, deviation_ms: f64, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = SimRng::new(seed);
    symmetric(n, 0.0, |_, _| {
        // Box–Muller.
        let u1 = rng.unit().max(1e-12);
        let u2 = rng.unit();
        let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (mean_ms + normal * deviation_ms).max(1.0)
    })
}

fn matrix(n: usize, f: impl Fn(usize, usize) -> f64) -> Vec<Vec<f64>> {
    symmetric(n, 0.0, f)
}

/// An `n × n` symmetric matrix with `zero` on the diagonal and `f(i, j)` above it (called in
/// row order, so a seeded `f` gives a reproducible matrix).
fn symmetric<T: Copy>(n: usize, zero: T, mut f: impl FnMut(usize, usize) -> T) -> Vec<Vec<T>> {
    let mut m = vec![vec![zero; n]; n];
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .collect();
    for (i, j) in pairs {
        let v = f(i, j);
        m[i][j] = v;
        m[j][i] = v;
    }
    m
}
