//! Vivaldi accuracy on serf-like RTT matrices: every cycle each node measures one random peer
//! (the true RTT) and updates; afterwards the average and maximum relative error over all
//! pairs is computed, as serf's coordinate performance tests do.

use steward_membership::{Coordinate, NodeId, Vivaldi, VivaldiConfig};

use super::SimRng;

/// Average and maximum relative error of the estimates.
#[derive(Debug, Clone, Copy)]
pub struct Accuracy {
    /// Mean over all pairs of |estimate − truth| / truth.
    pub error_avg: f64,
    /// Largest such error.
    pub error_max: f64,
}

/// The outcome of one simulation.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Errors.
    pub accuracy: Accuracy,
    /// Every node's final coordinate.
    pub coordinates: Vec<Coordinate>,
}

/// Run `cycles` rounds on `truth` (ms) with `dimensions`, seeded.
pub fn simulate(truth: &[Vec<f64>], dimensions: usize, cycles: usize, seed: u64) -> Outcome {
    let n = truth.len();
    let config = VivaldiConfig {
        dimensions,
        ..VivaldiConfig::default()
    };
    let mut nodes: Vec<Vivaldi> = (0..n)
        .map(|i| Vivaldi::new(config.clone(), seed ^ (i as u64 + 1)))
        .collect();
    let mut rng = SimRng::new(seed);
    for cycle in 0..cycles {
        for i in 0..n {
            let j = rng.below(n as u64) as usize;
            if j == i {
                continue;
            }
            let other = nodes[j].coordinate().clone();
            // Rejections are impossible with these finite, in-range truths; the evaluation
            // below would expose a stuck coordinate anyway.
            let _outcome = nodes[i].observe(NodeId(j as u64), &other, truth[i][j], cycle as u64);
        }
    }
    let mut sum = 0.0;
    let mut max: f64 = 0.0;
    let mut count = 0usize;
    for i in 0..n {
        for j in i + 1..n {
            let estimate = nodes[i].coordinate().distance_ms(nodes[j].coordinate());
            let error = (estimate - truth[i][j]).abs() / truth[i][j];
            sum += error;
            max = max.max(error);
            count += 1;
        }
    }
    Outcome {
        accuracy: Accuracy {
            error_avg: sum / count as f64,
            error_max: max,
        },
        coordinates: nodes.iter().map(|v| v.coordinate().clone()).collect(),
    }
}

/// Median and worst average error over `seeds`.
pub fn over_seeds(
    truth: &[Vec<f64>],
    dimensions: usize,
    cycles: usize,
    seeds: &[u64],
) -> (f64, f64) {
    let mut averages: Vec<f64> = seeds
        .iter()
        .map(|s| simulate(truth, dimensions, cycles, *s).accuracy.error_avg)
        .collect();
    averages.sort_by(f64::total_cmp);
    let median = averages[averages.len() / 2];
    let worst = averages.last().copied().unwrap_or(f64::NAN);
    (median, worst)
}
