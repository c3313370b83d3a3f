//! A deterministic, seeded in-process network for membership implementations: per-link
//! latency from a topology, loss, duplication, reordering (jitter), partitions, crash and
//! restart, and a simulated millisecond clock. One seed fixes the whole run.
//!
//! Shared by the integration tests and the `compare` example (included there by path), so
//! each user touches only part of it.
#![allow(
    dead_code,
    reason = "shared by several test binaries and an example; each uses a subset"
)]

pub mod experiments;
pub mod foca_node;
pub mod ours;
pub mod topology;
pub mod vivaldi_eval;

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// What a node reports about a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obs {
    /// Declared dead / down.
    Down,
    /// Considered alive again or for the first time.
    Up,
    /// Suspected.
    Suspect,
    /// Dropped from the member table.
    Removed,
}

/// A node's opinion of one peer, for convergence checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Alive (or suspect: still a member).
    Member,
    /// Dead or gone.
    Down,
    /// Learned but not confirmed.
    Unconfirmed,
}

/// Effects a node produced in one step.
#[derive(Debug, Default)]
pub struct Out {
    /// Datagrams: destination index and bytes.
    pub sends: Vec<(usize, Vec<u8>)>,
    /// Timers: absolute deadline (ms) and the node's own token.
    pub timers: Vec<(u64, u64)>,
    /// Observations about peers (peer index).
    pub events: Vec<(usize, Obs)>,
}

/// A membership implementation driven by the simulator.
pub trait SimNode {
    /// Start and contact `seeds`.
    fn start(&mut self, seeds: &[usize], now: u64, out: &mut Out);
    /// A datagram arrived from `from`.
    fn packet(&mut self, from: usize, bytes: &[u8], now: u64, out: &mut Out);
    /// A timer set earlier expired.
    fn timer(&mut self, token: u64, now: u64, out: &mut Out);
    /// This node's opinion of every peer it knows.
    fn view(&self) -> Vec<(usize, View)>;
}

/// Network impairments.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Extra uniform delay `0..=jitter_ms` per datagram (reorders packets).
    pub jitter_ms: u64,
}

impl NetConfig {
    /// Loss only.
    pub fn lossy(loss: f64) -> Self {
        Self {
            loss,
            duplicate: 0.0,
            jitter_ms: 0,
        }
    }
}

/// One observation, time-stamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// Simulated time, ms.
    pub at: u64,
    /// Who observed.
    pub observer: usize,
    /// About whom.
    pub subject: usize,
    /// What.
    pub obs: Obs,
}

enum Event {
    Deliver {
        to: usize,
        from: usize,
        bytes: Vec<u8>,
    },
    Timer {
        node: usize,
        epoch: u64,
        token: u64,
    },
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// SplitMix64, so the simulator depends on nothing but its seed.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// Next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }
}

/// Counters of the network.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Datagrams delivered.
    pub delivered: u64,
    /// Lost, partitioned or addressed to a crashed node.
    pub dropped: u64,
}

/// Hook called on every datagram handed to the network: (now, from, to, bytes).
pub type SendHook = Box<dyn FnMut(u64, usize, usize, &[u8])>;

/// The simulated cluster.
pub struct Sim<N: SimNode> {
    /// Simulated time, ms.
    pub now: u64,
    nodes: Vec<Option<N>>,
    epochs: Vec<u64>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    rng: SimRng,
    /// Impairments (may be changed between runs).
    pub net: NetConfig,
    latency_ms: Vec<Vec<u64>>,
    groups: Vec<u32>,
    blocked: std::collections::BTreeSet<(usize, usize)>,
    /// Everything nodes reported, in order.
    pub observations: Vec<Observation>,
    /// Optional tap on every datagram.
    pub send_hook: Option<SendHook>,
    /// Network counters.
    pub stats: NetStats,
    /// The seed, printed by checks on failure.
    pub seed: u64,
}

impl<N: SimNode> Sim<N> {
    /// A network of `nodes` (not started) with one-way latencies `latency_ms[i][j]`.
    pub fn new(nodes: Vec<N>, latency_ms: Vec<Vec<u64>>, net: NetConfig, seed: u64) -> Self {
        let n = nodes.len();
        Self {
            now: 0,
            nodes: nodes.into_iter().map(Some).collect(),
            epochs: vec![0; n],
            queue: BinaryHeap::new(),
            seq: 0,
            rng: SimRng::new(seed ^ 0x51D0_0000),
            net,
            latency_ms,
            groups: vec![0; n],
            blocked: std::collections::BTreeSet::new(),
            observations: Vec::new(),
            send_hook: None,
            stats: NetStats::default(),
            seed,
        }
    }

    /// Number of node slots.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if node `i` is running.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    /// Node `i`, if running.
    pub fn node(&self, i: usize) -> Option<&N> {
        self.nodes[i].as_ref()
    }

    /// Start node `i`, joining through `seeds`.
    pub fn start(&mut self, i: usize, seeds: &[usize]) {
        let mut out = Out::default();
        if let Some(node) = self.nodes[i].as_mut() {
            node.start(seeds, self.now, &mut out);
        }
        self.absorb(i, out);
    }

    /// Crash node `i`: it stops at once and its pending timers are void.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
        self.epochs[i] += 1;
    }

    /// Put a fresh node in slot `i` and start it.
    pub fn restart(&mut self, i: usize, node: N, seeds: &[usize]) {
        self.nodes[i] = Some(node);
        self.epochs[i] += 1;
        self.start(i, seeds);
    }

    /// Split the network: packets only flow between nodes of the same group.
    pub fn partition(&mut self, groups: Vec<u32>) {
        self.groups = groups;
    }

    /// Cut the link between `a` and `b` in both directions.
    pub fn block(&mut self, a: usize, b: usize) {
        self.blocked.insert((a, b));
        self.blocked.insert((b, a));
    }

    fn linked(&self, from: usize, to: usize) -> bool {
        self.groups[from] == self.groups[to] && !self.blocked.contains(&(from, to))
    }

    /// Remove any partition.
    pub fn heal(&mut self) {
        self.groups = vec![0; self.nodes.len()];
    }

    fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
    }

    fn absorb(&mut self, from: usize, out: Out) {
        for (at, token) in out.timers {
            let epoch = self.epochs[from];
            self.push(
                at.max(self.now),
                Event::Timer {
                    node: from,
                    epoch,
                    token,
                },
            );
        }
        for (subject, obs) in out.events {
            self.observations.push(Observation {
                at: self.now,
                observer: from,
                subject,
                obs,
            });
        }
        for (to, bytes) in out.sends {
            self.stats.sent += 1;
            if let Some(hook) = self.send_hook.as_mut() {
                hook(self.now, from, to, &bytes);
            }
            if to >= self.nodes.len() || !self.linked(from, to) {
                self.stats.dropped += 1;
                continue;
            }
            if self.rng.unit() < self.net.loss {
                self.stats.dropped += 1;
                continue;
            }
            let copies = if self.rng.unit() < self.net.duplicate {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = self.latency_ms[from][to] + self.rng.below(self.net.jitter_ms + 1);
                self.push(
                    self.now + delay,
                    Event::Deliver {
                        to,
                        from,
                        bytes: bytes.clone(),
                    },
                );
            }
        }
    }

    /// Process every event up to and including `until` ms.
    pub fn run_until(&mut self, until: u64) {
        while let Some(Reverse(next)) = self.queue.peek() {
            if next.at > until {
                break;
            }
            let Some(Reverse(next)) = self.queue.pop() else {
                break;
            };
            self.now = next.at;
            let mut out = Out::default();
            let node_index = match next.event {
                Event::Deliver { to, from, bytes } => {
                    // A partition that started while the packet was in flight also drops it.
                    let linked = self.linked(from, to);
                    match self.nodes[to].as_mut() {
                        Some(node) if linked => {
                            self.stats.delivered += 1;
                            node.packet(from, &bytes, self.now, &mut out);
                        }
                        _ => self.stats.dropped += 1,
                    }
                    to
                }
                Event::Timer { node, epoch, token } => {
                    if epoch == self.epochs[node] {
                        if let Some(n) = self.nodes[node].as_mut() {
                            n.timer(token, self.now, &mut out);
                        }
                    }
                    node
                }
            };
            self.absorb(node_index, out);
        }
        self.now = until;
    }

    /// Run for `duration_ms` more.
    pub fn run_for(&mut self, duration_ms: u64) {
        self.run_until(self.now + duration_ms);
    }

    /// Node `observer`'s opinion of `subject`.
    pub fn view_of(&self, observer: usize, subject: usize) -> Option<View> {
        let node = self.nodes[observer].as_ref()?;
        node.view()
            .into_iter()
            .find(|(s, _)| *s == subject)
            .map(|(_, v)| v)
    }

    /// True if every running node sees every other running node as a member and every
    /// crashed node as down or unknown.
    pub fn converged(&self) -> bool {
        (0..self.len()).filter(|o| self.is_up(*o)).all(|o| {
            (0..self.len()).filter(|s| *s != o).all(|s| {
                let view = self.view_of(o, s);
                if self.is_up(s) {
                    view == Some(View::Member)
                } else {
                    view != Some(View::Member) && view != Some(View::Unconfirmed)
                }
            })
        })
    }
}
