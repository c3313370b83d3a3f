//! The measured experiments, shared by the default tests (small N) and the `compare` example
//! (full table): failure-detection time after a crash, and false positives in steady state.

use steward_membership::{Config, Role};

use super::foca_node::{self, FocaNode};
use super::ours::OurNode;
use super::topology;
use super::{NetConfig, Obs, Out, Sim, SimNode, View};

/// Which implementation a cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// This crate with Lifeguard and adaptive timeouts (the default config).
    Lifeguard,
    /// This crate as plain SWIM (Lifeguard and adaptive timeouts off).
    PlainSwim,
    /// The `foca` crate with our budgets (`foca_node::matched_config` of the default config):
    /// the fair comparison for the detection-time target.
    Foca,
    /// This crate with Lifeguard and `suspicion_mult` 4 instead of 5: the budget of foca's
    /// (and memberlist's) LAN defaults.
    LifeguardMult4,
    /// The `foca` crate with its own LAN defaults (`suspicion_mult` 4 in our terms, fewer
    /// retransmissions).
    FocaLanDefaults,
}

impl Kind {
    /// Short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Lifeguard => "ours (Lifeguard)",
            Kind::PlainSwim => "ours (plain SWIM)",
            Kind::Foca => "foca 2, our budgets",
            Kind::LifeguardMult4 => "ours (Lifeguard, suspicion_mult 4)",
            Kind::FocaLanDefaults => "foca 2, its LAN defaults",
        }
    }

    /// Our config for this kind (the matched foca takes its budgets from it).
    pub fn our_config(self) -> Config {
        match self {
            Kind::PlainSwim => Config::plain_swim(),
            Kind::LifeguardMult4 => Config {
                suspicion_mult: 4,
                ..Config::default()
            },
            Kind::Lifeguard | Kind::Foca | Kind::FocaLanDefaults => Config::default(),
        }
    }
}

/// Either implementation behind one type, so one simulator can run both.
pub enum AnyNode {
    /// Ours.
    Ours(Box<OurNode>),
    /// foca.
    Foca(Box<FocaNode>),
}

impl AnyNode {
    /// Node `i` of `n` of `kind`; `generation` distinguishes restarts.
    pub fn make(kind: Kind, i: usize, n: usize, generation: u32, seed: u64) -> Self {
        let seed = seed ^ (u64::from(generation) << 40);
        match kind {
            Kind::Lifeguard | Kind::PlainSwim | Kind::LifeguardMult4 => AnyNode::Ours(Box::new(
                OurNode::new(i, kind.our_config(), Role::Manager, seed),
            )),
            Kind::Foca => {
                let config = foca_node::matched_config(&kind.our_config(), n);
                AnyNode::Foca(Box::new(FocaNode::new(i, config, generation, seed)))
            }
            Kind::FocaLanDefaults => {
                let config = foca_node::lan_defaults(n);
                AnyNode::Foca(Box::new(FocaNode::new(i, config, generation, seed)))
            }
        }
    }
}

impl SimNode for AnyNode {
    fn start(&mut self, seeds: &[usize], now: u64, out: &mut Out) {
        match self {
            AnyNode::Ours(n) => n.start(seeds, now, out),
            AnyNode::Foca(n) => n.start(seeds, now, out),
        }
    }
    fn packet(&mut self, from: usize, bytes: &[u8], now: u64, out: &mut Out) {
        match self {
            AnyNode::Ours(n) => n.packet(from, bytes, now, out),
            AnyNode::Foca(n) => n.packet(from, bytes, now, out),
        }
    }
    fn timer(&mut self, token: u64, now: u64, out: &mut Out) {
        match self {
            AnyNode::Ours(n) => n.timer(token, now, out),
            AnyNode::Foca(n) => n.timer(token, now, out),
        }
    }
    fn view(&self) -> Vec<(usize, View)> {
        match self {
            AnyNode::Ours(n) => n.view(),
            AnyNode::Foca(n) => n.view(),
        }
    }
}

/// Largest one-way delay of the experiment topology, ms.
pub const LAN_DELAY_MAX_MS: u64 = 2;
/// Warm-up at 0% loss before measuring, ms.
pub const WARM_UP_MS: u64 = 60_000;

/// A started, warmed-up cluster of `n` nodes of `kind`, with `loss` applied afterwards.
pub fn cluster(kind: Kind, n: usize, loss: f64, seed: u64) -> Sim<AnyNode> {
    let nodes = (0..n).map(|i| AnyNode::make(kind, i, n, 0, seed)).collect();
    let latency = topology::lan(n, LAN_DELAY_MAX_MS, seed);
    let mut sim = Sim::new(nodes, latency, NetConfig::lossy(0.0), seed);
    sim.start(0, &[]);
    for i in 1..n {
        sim.run_for(100);
        sim.start(i, &[0]);
    }
    sim.run_until(WARM_UP_MS);
    sim.net = NetConfig::lossy(loss);
    sim
}

/// Detection times of one configuration.
#[derive(Debug, Clone, Default)]
pub struct Detection {
    /// Per (trial, observer): ms from the crash to that observer declaring the victim down.
    pub samples_ms: Vec<u64>,
    /// Observers that had not declared the victim down when the trial window closed.
    pub missed: usize,
    /// Declarations about live nodes during the trials.
    pub false_positives: usize,
    /// Per trial: ms from the crash to the first suspicion of the victim by any node (the
    /// first failed probe; implementations that do not report suspicions leave it empty).
    pub first_suspect_ms: Vec<u64>,
    /// Per trial: ms from the crash to the first DEAD declaration by any node.
    pub first_down_ms: Vec<u64>,
}

/// Crash `trials` nodes one after the other; measure when each live observer declares each
/// victim down (window 120 s), then restart the victim and let the cluster settle.
pub fn detection(kind: Kind, n: usize, loss: f64, seed: u64, trials: usize) -> Detection {
    const WINDOW_MS: u64 = 120_000;
    const SETTLE_MS: u64 = 30_000;
    let mut sim = cluster(kind, n, loss, seed);
    let mut result = Detection::default();
    for trial in 0..trials {
        let victim = 1 + (trial * 7) % (n - 1);
        let observers: Vec<usize> = (0..n)
            .filter(|o| *o != victim && sim.is_up(*o))
            .filter(|o| sim.view_of(*o, victim) == Some(View::Member))
            .collect();
        let crash_at = sim.now;
        let first = sim.observations.len();
        sim.crash(victim);
        let mut detected: Vec<Option<u64>> = vec![None; observers.len()];
        while sim.now < crash_at + WINDOW_MS && detected.iter().any(Option::is_none) {
            sim.run_for(100);
            for o in &sim.observations[first..] {
                if o.obs != Obs::Down {
                    continue;
                }
                if o.subject == victim {
                    if let Some(k) = observers.iter().position(|x| *x == o.observer) {
                        detected[k].get_or_insert(o.at - crash_at);
                    }
                }
            }
        }
        result.false_positives += sim.observations[first..]
            .iter()
            .filter(|o| o.obs == Obs::Down && o.subject != victim && sim.is_up(o.subject))
            .count();
        let first_at = |obs: Obs| {
            sim.observations[first..]
                .iter()
                .find(|o| o.obs == obs && o.subject == victim)
                .map(|o| o.at - crash_at)
        };
        result.first_suspect_ms.extend(first_at(Obs::Suspect));
        result.first_down_ms.extend(first_at(Obs::Down));
        result.samples_ms.extend(detected.iter().flatten());
        result.missed += detected.iter().filter(|d| d.is_none()).count();
        let seed_node = if victim == 0 { 1 } else { 0 };
        let node = AnyNode::make(kind, victim, n, trial as u32 + 1, seed);
        sim.restart(victim, node, &[seed_node]);
        sim.run_for(SETTLE_MS);
    }
    result
}

/// False positives in steady state: every node stays up; any down declaration is false.
#[derive(Debug, Clone, Copy, Default)]
pub struct FalsePositives {
    /// Down declarations (observer, subject) about live nodes.
    pub declarations: usize,
    /// Node-hours observed.
    pub node_hours: f64,
}

impl FalsePositives {
    /// Declarations per node-hour.
    pub fn per_node_hour(&self) -> f64 {
        self.declarations as f64 / self.node_hours
    }
}

/// Run `duration_ms` with every node up at `loss` and count down declarations.
pub fn false_positives(
    kind: Kind,
    n: usize,
    loss: f64,
    seed: u64,
    duration_ms: u64,
) -> FalsePositives {
    let mut sim = cluster(kind, n, loss, seed);
    let first = sim.observations.len();
    sim.run_for(duration_ms);
    let declarations = sim.observations[first..]
        .iter()
        .filter(|o| o.obs == Obs::Down)
        .count();
    FalsePositives {
        declarations,
        node_hours: n as f64 * duration_ms as f64 / 3_600_000.0,
    }
}

/// The `q`-quantile (0..=1) of `samples` (nearest rank); `None` if empty.
pub fn quantile(samples: &[u64], q: f64) -> Option<u64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}
