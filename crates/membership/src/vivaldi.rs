//! Vivaldi network coordinates (reference AD-35): every node keeps a point in a small
//! Euclidean space plus a height, so that the distance between two nodes' coordinates predicts
//! their round-trip time. Updated from measured RTTs (3-sample median filter, adaptive step,
//! height, adjustment term, gentle gravity toward the origin). Units are milliseconds.
//!
//! This module does not measure anything: the caller hands it RTT samples and the peer's
//! coordinate. It never stores a non-finite value: an update that would produce one is rejected.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::types::NodeId;

/// Distances below this are treated as zero (two coordinates on top of each other).
const ZERO_THRESHOLD_MS: f64 = 1e-3;

/// Gravity is defined in seconds (as in serf); this converts its pull to milliseconds.
const GRAVITY_UNIT_MS: f64 = 1000.0;

/// Largest dimension count accepted from config or from the wire.
pub const DIMENSIONS_MAX: usize = 16;

/// Vivaldi tunables (reference AD-35 section 12.1.12, serf's defaults where the reference has
/// none).
#[derive(Debug, Clone, PartialEq)]
pub struct VivaldiConfig {
    /// Dimensions of the Euclidean part. Default: 8 (see ADR 0005). Minimum: 1. Maximum: 16.
    pub dimensions: usize,
    /// Error weight adjustment (c_e). Default: 0.25.
    pub error_adjustment: f64,
    /// Coordinate step (c_c). Default: 0.25.
    pub coordinate_adjustment: f64,
    /// Error of a fresh coordinate. Default: 1.0.
    pub initial_error: f64,
    /// Lower error bound. Default: 0.001.
    pub error_min: f64,
    /// Upper error bound. Default: 1.5.
    pub error_max: f64,
    /// Samples in the per-peer median filter. Default: 3. Minimum: 1.
    pub latency_filter_samples: usize,
    /// Samples averaged into the adjustment term (0 disables it). Default: 20.
    pub adjustment_window: usize,
    /// Gravity: each update pulls the coordinate toward the origin by
    /// `1 s × (distance / rho)^2` (serf's rule, stated in seconds). Default: 150 000 ms.
    pub gravity_rho_ms: f64,
    /// Smallest height. Default: 0.01 ms.
    pub height_min_ms: f64,
    /// RTT samples above this are rejected (so are samples ≤ 0). Default: 10 000 ms.
    pub rtt_sample_max_ms: f64,
    /// Estimate used for a peer without a coordinate. Default: 100 ms.
    pub rtt_default_ms: f64,
    /// Clamp of `rtt_ucb`, lower end. Default: 1 ms.
    pub rtt_min_ms: f64,
    /// Clamp of `rtt_ucb`, upper end. Default: 10 000 ms.
    pub rtt_max_ms: f64,
    /// Sigma used for a peer without a coordinate. Default: 50 ms.
    pub sigma_default_ms: f64,
    /// Sigma clamp, lower end. Default: 1 ms: the resolution of the millisecond clock RTT
    /// samples are measured with (and `rtt_min_ms`), so a converged LAN peer gets a latency
    /// multiplier of 1 instead of a fixed +10 ms (ADR 0005).
    pub sigma_min_ms: f64,
    /// Sigma clamp, upper end. Default: 500 ms.
    pub sigma_max_ms: f64,
    /// `rtt_ucb = estimate + k_sigma × sigma`. Default: 2.
    pub k_sigma: f64,
    /// Samples before a coordinate is fully trusted. Default: 5.
    pub min_samples_for_routing: u32,
    /// Estimated error below which quality is not reduced. Default: 20 ms.
    pub error_good_ms: f64,
    /// A peer's coordinate is worthless after this age. Default: 300 000 ms.
    pub coordinate_ttl_ms: u64,
    /// Converged when the local error is below this. Default: 0.15.
    pub convergence_threshold: f64,
}

impl Default for VivaldiConfig {
    fn default() -> Self {
        Self {
            dimensions: 8,
            error_adjustment: 0.25,
            coordinate_adjustment: 0.25,
            initial_error: 1.0,
            error_min: 0.001,
            error_max: 1.5,
            latency_filter_samples: 3,
            adjustment_window: 20,
            gravity_rho_ms: 150_000.0,
            height_min_ms: 0.01,
            rtt_sample_max_ms: 10_000.0,
            rtt_default_ms: 100.0,
            rtt_min_ms: 1.0,
            rtt_max_ms: 10_000.0,
            sigma_default_ms: 50.0,
            sigma_min_ms: 1.0,
            sigma_max_ms: 500.0,
            k_sigma: 2.0,
            min_samples_for_routing: 5,
            error_good_ms: 20.0,
            coordinate_ttl_ms: 300_000,
            convergence_threshold: 0.15,
        }
    }
}

impl VivaldiConfig {
    /// Check ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: &str| {
            Err(Error::InvalidConfig {
                field,
                reason: reason.to_string(),
            })
        };
        if self.dimensions == 0 || self.dimensions > DIMENSIONS_MAX {
            return bad("vivaldi.dimensions", "must be in 1..=16");
        }
        if self.latency_filter_samples == 0 {
            return bad("vivaldi.latency_filter_samples", "must be at least 1");
        }
        let positive = [
            ("vivaldi.error_adjustment", self.error_adjustment),
            ("vivaldi.coordinate_adjustment", self.coordinate_adjustment),
            ("vivaldi.error_min", self.error_min),
            ("vivaldi.gravity_rho_ms", self.gravity_rho_ms),
            ("vivaldi.rtt_sample_max_ms", self.rtt_sample_max_ms),
        ];
        for (field, value) in positive {
            if !(value > 0.0 && value.is_finite()) {
                return bad(field, "must be a positive number");
            }
        }
        if !(self.error_max >= self.initial_error && self.initial_error >= self.error_min) {
            return bad(
                "vivaldi.error_max",
                "needs error_min <= initial_error <= error_max",
            );
        }
        Ok(())
    }
}

/// A point in the coordinate space: what rides on pings and acks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coordinate {
    /// Euclidean part, in milliseconds.
    pub vec: Vec<f64>,
    /// Height: the access-link part of every path from this node, ms.
    pub height_ms: f64,
    /// Adjustment term added to distances (average residual), ms.
    pub adjustment_ms: f64,
    /// Relative error estimate (0.001..1.5): lower is better.
    pub error: f64,
    /// RTT samples this coordinate has absorbed (saturating).
    pub samples: u32,
}

impl Coordinate {
    /// The origin, with the configured initial error.
    pub fn origin(config: &VivaldiConfig) -> Self {
        Self {
            vec: vec![0.0; config.dimensions],
            height_ms: config.height_min_ms,
            adjustment_ms: 0.0,
            error: config.initial_error,
            samples: 0,
        }
    }

    /// True if every field is finite and within the bounds this config accepts.
    pub fn is_valid(&self, config: &VivaldiConfig) -> bool {
        self.vec.len() == config.dimensions
            && self.vec.iter().all(|v| v.is_finite())
            && self.height_ms.is_finite()
            && self.height_ms >= 0.0
            && self.adjustment_ms.is_finite()
            && self.error.is_finite()
            && self.error >= 0.0
    }

    /// Distance without adjustment terms: Euclidean part plus both heights.
    pub fn raw_distance_ms(&self, other: &Coordinate) -> f64 {
        euclidean(&self.vec, &other.vec) + self.height_ms + other.height_ms
    }

    /// Estimated RTT to `other`, ms (adjusted when that keeps it positive).
    pub fn distance_ms(&self, other: &Coordinate) -> f64 {
        let raw = self.raw_distance_ms(other);
        let adjusted = raw + self.adjustment_ms + other.adjustment_ms;
        if adjusted > 0.0 {
            adjusted
        } else {
            raw
        }
    }
}

fn euclidean(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// Why an RTT sample was not used. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The RTT was not in `(0, rtt_sample_max_ms]` or not finite.
    RttOutOfRange,
    /// The peer's coordinate had the wrong dimension or a non-finite field.
    BadPeerCoordinate,
    /// The update would have produced a non-finite coordinate.
    NotFinite,
}

#[derive(Debug, Clone)]
struct PeerEntry {
    coordinate: Coordinate,
    updated_ms: u64,
}

/// A node's coordinate system: its own coordinate, its peers' latest coordinates, and the
/// per-peer latency filters.
#[derive(Debug, Clone)]
pub struct Vivaldi {
    config: VivaldiConfig,
    local: Coordinate,
    filters: BTreeMap<NodeId, VecDeque<f64>>,
    adjustment_samples: Vec<f64>,
    adjustment_next: usize,
    peers: BTreeMap<NodeId, PeerEntry>,
    rng: Rng,
    updates: u64,
}

impl Vivaldi {
    /// A coordinate system at the origin; `seed` drives the random direction used when two
    /// coordinates coincide.
    pub fn new(config: VivaldiConfig, seed: u64) -> Self {
        Self {
            local: Coordinate::origin(&config),
            adjustment_samples: vec![0.0; config.adjustment_window],
            adjustment_next: 0,
            filters: BTreeMap::new(),
            peers: BTreeMap::new(),
            rng: Rng::new(seed),
            updates: 0,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &VivaldiConfig {
        &self.config
    }

    /// The local coordinate.
    pub fn coordinate(&self) -> &Coordinate {
        &self.local
    }

    /// Accepted updates so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// The latest coordinate heard from `peer`.
    pub fn peer_coordinate(&self, peer: NodeId) -> Option<&Coordinate> {
        self.peers.get(&peer).map(|entry| &entry.coordinate)
    }

    /// Remember a peer's coordinate without an RTT sample (it rode on a ping). Returns false
    /// (and stores nothing) if the coordinate is invalid.
    pub fn record_peer(&mut self, peer: NodeId, coordinate: &Coordinate, now_ms: u64) -> bool {
        if !coordinate.is_valid(&self.config) {
            return false;
        }
        self.peers.insert(
            peer,
            PeerEntry {
                coordinate: coordinate.clone(),
                updated_ms: now_ms,
            },
        );
        true
    }

    /// Forget a peer (it was removed from the membership).
    pub fn forget(&mut self, peer: NodeId) {
        self.peers.remove(&peer);
        self.filters.remove(&peer);
    }

    /// Feed one RTT sample to `peer`, whose coordinate is `other`.
    pub fn observe(
        &mut self,
        peer: NodeId,
        other: &Coordinate,
        rtt_ms: f64,
        now_ms: u64,
    ) -> std::result::Result<(), Rejected> {
        if !(rtt_ms > 0.0 && rtt_ms <= self.config.rtt_sample_max_ms) {
            return Err(Rejected::RttOutOfRange);
        }
        if !self.record_peer(peer, other, now_ms) {
            return Err(Rejected::BadPeerCoordinate);
        }
        let filtered = self.filter(peer, rtt_ms);
        let mut next = self.local.clone();
        self.step(&mut next, other, filtered);
        self.adjust(&mut next, other, filtered);
        self.gravity(&mut next);
        if !next.is_valid(&self.config) {
            return Err(Rejected::NotFinite);
        }
        next.samples = next.samples.saturating_add(1);
        self.local = next;
        self.updates += 1;
        Ok(())
    }

    /// Median of the last `latency_filter_samples` samples to this peer.
    fn filter(&mut self, peer: NodeId, rtt_ms: f64) -> f64 {
        let window = self.filters.entry(peer).or_default();
        window.push_back(rtt_ms);
        while window.len() > self.config.latency_filter_samples {
            window.pop_front();
        }
        let mut sorted: Vec<f64> = window.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    /// The Vivaldi step: move along the line to `other` by the weighted prediction error.
    fn step(&mut self, local: &mut Coordinate, other: &Coordinate, rtt_ms: f64) {
        let predicted = local.distance_ms(other);
        let total_error = (local.error + other.error).max(ZERO_THRESHOLD_MS);
        let weight = local.error / total_error;
        let relative = (predicted - rtt_ms).abs() / rtt_ms;
        let ce = self.config.error_adjustment * weight;
        local.error = (ce * relative + local.error * (1.0 - ce))
            .clamp(self.config.error_min, self.config.error_max);
        let force = self.config.coordinate_adjustment * weight * (rtt_ms - predicted);
        self.apply_force(local, force, other);
    }

    /// The adjustment term: half the mean residual over a sliding window (serf's approach).
    fn adjust(&mut self, local: &mut Coordinate, other: &Coordinate, rtt_ms: f64) {
        if self.adjustment_samples.is_empty() {
            return;
        }
        self.adjustment_samples[self.adjustment_next] = rtt_ms - local.raw_distance_ms(other);
        self.adjustment_next = (self.adjustment_next + 1) % self.adjustment_samples.len();
        let sum: f64 = self.adjustment_samples.iter().sum();
        local.adjustment_ms = sum / (2.0 * self.adjustment_samples.len() as f64);
    }

    /// Gentle gravity toward the origin so the whole system does not drift away.
    fn gravity(&mut self, local: &mut Coordinate) {
        let origin = Coordinate {
            error: 0.0,
            ..Coordinate::origin(&self.config)
        };
        let distance = local.distance_ms(&origin);
        let force = -GRAVITY_UNIT_MS * (distance / self.config.gravity_rho_ms).powi(2);
        self.apply_force(local, force, &origin);
    }

    /// Push `local` away from `other` by `force` ms (negative pulls), growing the height in
    /// proportion.
    fn apply_force(&mut self, local: &mut Coordinate, force: f64, other: &Coordinate) {
        let diff: Vec<f64> = local
            .vec
            .iter()
            .zip(&other.vec)
            .map(|(a, b)| a - b)
            .collect();
        let magnitude = diff.iter().map(|d| d * d).sum::<f64>().sqrt();
        let unit: Vec<f64> = if magnitude > ZERO_THRESHOLD_MS {
            diff.iter().map(|d| d / magnitude).collect()
        } else {
            self.random_unit()
        };
        for (value, direction) in local.vec.iter_mut().zip(&unit) {
            *value += direction * force;
        }
        if magnitude > ZERO_THRESHOLD_MS {
            local.height_ms = ((local.height_ms + other.height_ms) * force / magnitude
                + local.height_ms)
                .max(self.config.height_min_ms);
        }
    }

    fn random_unit(&mut self) -> Vec<f64> {
        loop {
            let v: Vec<f64> = (0..self.config.dimensions)
                .map(|_| self.rng.unit() * 2.0 - 1.0)
                .collect();
            let magnitude = v.iter().map(|d| d * d).sum::<f64>().sqrt();
            if magnitude > ZERO_THRESHOLD_MS {
                return v.into_iter().map(|d| d / magnitude).collect();
            }
        }
    }

    /// Estimated RTT between two known nodes (either may be `local_id`), ms.
    pub fn estimate_between(&self, local_id: NodeId, a: NodeId, b: NodeId) -> Option<f64> {
        let coordinate = |id: NodeId| {
            if id == local_id {
                Some(&self.local)
            } else {
                self.peer_coordinate(id)
            }
        };
        Some(coordinate(a)?.distance_ms(coordinate(b)?))
    }

    /// Estimated RTT to `peer` and its uncertainty (sigma), ms; defaults for an unknown peer.
    pub fn estimate(&self, peer: NodeId) -> (f64, f64) {
        match self.peers.get(&peer) {
            None => (self.config.rtt_default_ms, self.config.sigma_default_ms),
            Some(entry) => {
                let estimate = self.local.distance_ms(&entry.coordinate);
                let error = (self.local.error + entry.coordinate.error) / 2.0;
                let sigma =
                    (error * estimate).clamp(self.config.sigma_min_ms, self.config.sigma_max_ms);
                (estimate, sigma)
            }
        }
    }

    /// Upper confidence bound of the RTT to `peer`: `estimate + k_sigma × sigma`, clamped.
    pub fn rtt_ucb_ms(&self, peer: NodeId) -> f64 {
        let (estimate, sigma) = self.estimate(peer);
        (estimate + self.config.k_sigma * sigma)
            .clamp(self.config.rtt_min_ms, self.config.rtt_max_ms)
    }

    /// Trust in the estimate to `peer`, 0..=1: sample count × error × staleness.
    pub fn quality(&self, peer: NodeId, now_ms: u64) -> f64 {
        let Some(entry) = self.peers.get(&peer) else {
            return 0.0;
        };
        let samples = self.local.samples.min(entry.coordinate.samples);
        let sample_quality =
            (f64::from(samples) / f64::from(self.config.min_samples_for_routing.max(1))).min(1.0);
        let estimate = self.local.distance_ms(&entry.coordinate);
        let error_ms = (self.local.error + entry.coordinate.error) / 2.0 * estimate;
        let error_quality = if error_ms <= self.config.error_good_ms {
            1.0
        } else {
            self.config.error_good_ms / error_ms
        };
        let age_ms = now_ms.saturating_sub(entry.updated_ms) as f64;
        let ttl_ms = self.config.coordinate_ttl_ms.max(1) as f64;
        let staleness_quality = (1.0 - age_ms / ttl_ms).clamp(0.0, 1.0);
        (sample_quality * error_quality * staleness_quality).clamp(0.0, 1.0)
    }

    /// True once the local error is below the convergence threshold.
    pub fn is_converged(&self) -> bool {
        self.local.error < self.config.convergence_threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dimensions: usize) -> VivaldiConfig {
        VivaldiConfig {
            dimensions,
            ..VivaldiConfig::default()
        }
    }

    #[test]
    fn rejects_out_of_range_and_non_finite_rtts() {
        let mut v = Vivaldi::new(config(4), 1);
        let other = Coordinate::origin(&config(4));
        for rtt in [0.0, -1.0, 10_000.5, f64::NAN, f64::INFINITY] {
            assert_eq!(
                v.observe(NodeId(2), &other, rtt, 0),
                Err(Rejected::RttOutOfRange)
            );
        }
        assert_eq!(v.updates(), 0);
        assert!(v.observe(NodeId(2), &other, 10_000.0, 0).is_ok());
    }

    #[test]
    fn rejects_bad_peer_coordinates() {
        let mut v = Vivaldi::new(config(4), 1);
        let mut other = Coordinate::origin(&config(4));
        other.vec[1] = f64::NAN;
        assert_eq!(
            v.observe(NodeId(2), &other, 5.0, 0),
            Err(Rejected::BadPeerCoordinate)
        );
        let wrong_dims = Coordinate::origin(&config(3));
        assert_eq!(
            v.observe(NodeId(2), &wrong_dims, 5.0, 0),
            Err(Rejected::BadPeerCoordinate)
        );
        assert!(v.coordinate().is_valid(v.config()));
    }

    #[test]
    fn median_filter_ignores_one_outlier() {
        let mut v = Vivaldi::new(config(4), 1);
        assert_eq!(v.filter(NodeId(1), 10.0), 10.0);
        assert_eq!(v.filter(NodeId(1), 500.0), 500.0);
        assert_eq!(v.filter(NodeId(1), 11.0), 11.0);
        assert_eq!(v.filter(NodeId(1), 12.0), 12.0);
    }

    #[test]
    fn two_nodes_converge_to_their_rtt() {
        let mut a = Vivaldi::new(config(4), 1);
        let mut b = Vivaldi::new(config(4), 2);
        for round in 0..200 {
            let cb = b.coordinate().clone();
            a.observe(NodeId(2), &cb, 20.0, round).unwrap();
            let ca = a.coordinate().clone();
            b.observe(NodeId(1), &ca, 20.0, round).unwrap();
        }
        let estimate = a.coordinate().distance_ms(b.coordinate());
        assert!((estimate - 20.0).abs() < 1.0, "estimate {estimate}");
        assert!(a.is_converged());
    }

    #[test]
    fn ucb_and_quality_defaults_for_unknown_peer() {
        let v = Vivaldi::new(config(4), 1);
        assert_eq!(v.rtt_ucb_ms(NodeId(9)), 200.0);
        assert_eq!(v.quality(NodeId(9), 0), 0.0);
    }

    #[test]
    fn quality_decays_with_staleness() {
        let mut v = Vivaldi::new(config(4), 1);
        let other = Coordinate {
            samples: 10,
            ..Coordinate::origin(&config(4))
        };
        for _ in 0..10 {
            v.observe(NodeId(2), &other, 2.0, 0).unwrap();
        }
        let fresh = v.quality(NodeId(2), 0);
        let old = v.quality(NodeId(2), 150_000);
        let expired = v.quality(NodeId(2), 300_000);
        assert!(fresh > old && old > expired, "{fresh} {old} {expired}");
        assert_eq!(expired, 0.0);
    }
}
