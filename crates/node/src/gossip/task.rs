//! The one tokio task that owns a [`Membership`]: it feeds it datagrams from the UDP socket and
//! expired timers (a min-heap of deadlines on a monotonic millisecond clock), performs the
//! effects it returns (send, set timer, report event), and publishes a [`Snapshot`] after every
//! member event and at a fixed refresh interval.
//!
//! Timers are never cancelled: a stale token is ignored by the state machine. Sending never
//! blocks the loop on a slow reader: events go through a bounded channel and overflow is
//! counted. It does not interpret events (the node decides what a dead worker means).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use steward_membership::{Effect, MemberEvent, Membership, Role, TimerToken};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::snapshot::{role_name, state_name, GossipMetrics, Snapshot};
use crate::transport::link_filter::LinkFilter;

/// Receive buffer: the largest UDP payload, so an oversized datagram reaches the state machine
/// whole and is counted as malformed there instead of being silently truncated.
const RECV_BUFFER_BYTES: usize = 65_536;
/// The snapshot is refreshed at least this often (RTT estimates and metrics move without
/// member events). Default: 500 ms.
pub const SNAPSHOT_REFRESH_MS: u64 = 500;
/// Sleep used when no timer is pending (the state machine always has some once joined).
const IDLE_WAIT_MS: u64 = 60_000;

/// How the task should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopMode {
    /// Keep running.
    Run,
    /// Announce LEFT to the live members, then stop.
    Leave,
    /// Stop silently (a crash, for tests): the others will declare this node dead.
    Crash,
}

pub(crate) struct Task {
    pub membership: Membership,
    pub socket: UdpSocket,
    pub addr: SocketAddr,
    pub role: Role,
    pub seeds: Vec<SocketAddr>,
    pub base: Instant,
    pub view: watch::Sender<Arc<Snapshot>>,
    pub events: mpsc::Sender<MemberEvent>,
    pub stop: watch::Receiver<StopMode>,
    /// Test-mode partition switch: datagrams to or from blocked addresses are dropped.
    pub filter: Arc<LinkFilter>,
}

struct Loop {
    task: Task,
    timers: BinaryHeap<Reverse<(u64, u64)>>,
    counters: GossipMetrics,
}

/// Milliseconds since `base` on tokio's monotonic clock.
pub(crate) fn now_ms(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Task {
    /// Runs until told to stop (or until every handle is gone).
    pub(crate) async fn run(self) {
        let mut state = Loop {
            task: self,
            timers: BinaryHeap::new(),
            counters: GossipMetrics::default(),
        };
        let now = now_ms(state.task.base);
        let seeds = state.task.seeds.clone();
        let effects = state.task.membership.join(&seeds, now);
        state.apply(effects).await;
        state.publish();
        state.serve().await;
    }
}

impl Loop {
    async fn serve(&mut self) {
        let mut buf = vec![0u8; RECV_BUFFER_BYTES];
        let mut refresh = tokio::time::interval(Duration::from_millis(SNAPSHOT_REFRESH_MS));
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_ms = self.timers.peek().map(|Reverse((at, _))| *at);
            let deadline = self.task.base
                + Duration::from_millis(
                    next_ms.unwrap_or_else(|| now_ms(self.task.base) + IDLE_WAIT_MS),
                );
            tokio::select! {
                biased;
                changed = self.task.stop.changed() => {
                    let mode = *self.task.stop.borrow();
                    if changed.is_err() || mode != StopMode::Run {
                        self.stop(if changed.is_err() { StopMode::Crash } else { mode }).await;
                        return;
                    }
                }
                received = self.task.socket.recv_from(&mut buf) => match received {
                    Ok((_, from)) if self.task.filter.drops_gossip(from) => {}
                    Ok((len, from)) => {
                        let now = now_ms(self.task.base);
                        let bytes = buf.get(..len).unwrap_or_default();
                        let effects = self.task.membership.handle_packet(from, bytes, now);
                        self.apply(effects).await;
                    }
                    Err(e) => {
                        // Linux reports an ICMP "port unreachable" from an earlier send here;
                        // nothing is lost but that peer's answer, which SWIM already handles.
                        self.counters.recv_errors += 1;
                        tracing::debug!(error = %e, "gossip recv_from failed");
                    }
                },
                () = tokio::time::sleep_until(deadline) => self.fire_expired().await,
                _ = refresh.tick() => self.publish(),
            }
        }
    }

    async fn fire_expired(&mut self) {
        let now = now_ms(self.task.base);
        while let Some(Reverse((at, token))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let effects = self.task.membership.handle_timer(TimerToken(token), now);
            self.apply(effects).await;
        }
    }

    async fn stop(&mut self, mode: StopMode) {
        if mode == StopMode::Leave {
            let effects = self.task.membership.leave(now_ms(self.task.base));
            self.apply(effects).await;
        }
        self.publish();
        tracing::info!(addr = %self.task.addr, ?mode, "gossip stopped");
    }

    /// Performs the effects; publishes a fresh snapshot when a member changed state.
    async fn apply(&mut self, effects: Vec<Effect>) {
        let mut changed = false;
        for effect in effects {
            match effect {
                Effect::Send { to, .. } if self.task.filter.drops_gossip(to) => {}
                Effect::Send { to, bytes } => {
                    if let Err(e) = self.task.socket.send_to(&bytes, to).await {
                        self.counters.send_errors += 1;
                        tracing::debug!(%to, error = %e, "gossip send_to failed");
                    }
                }
                Effect::SetTimer { token, at_ms } => self.timers.push(Reverse((at_ms, token.0))),
                Effect::Event(event) => {
                    changed = true;
                    self.report(&event);
                    if self.task.events.try_send(event).is_err() {
                        self.counters.events_dropped += 1;
                    }
                }
            }
        }
        if changed {
            self.publish();
        }
    }

    /// Logs an event and counts the ones the node cares about by role.
    fn report(&mut self, event: &MemberEvent) {
        let (kind, member) = match event {
            MemberEvent::Joined(m) => ("joined", m),
            MemberEvent::Confirmed(m) => ("confirmed", m),
            MemberEvent::Suspect(m) => ("suspect", m),
            MemberEvent::Refuted(m) => ("refuted", m),
            MemberEvent::Dead(m) => ("dead", m),
            MemberEvent::Rejoined(m) => ("rejoined", m),
            MemberEvent::Left(m) => ("left", m),
            MemberEvent::Removed(m) => ("removed", m),
        };
        match (kind, member.role) {
            ("suspect", Role::Manager) => self.counters.managers_suspected += 1,
            ("dead", Role::Manager) => self.counters.managers_dead += 1,
            ("dead", Role::Worker) => self.counters.workers_dead += 1,
            _ => {}
        }
        if matches!(kind, "suspect" | "dead") {
            tracing::warn!(
                event = kind,
                member = member.id.0,
                role = role_name(member.role),
                addr = %member.addr,
                incarnation = member.incarnation.0,
                "gossip member event"
            );
        } else {
            tracing::info!(
                event = kind,
                member = member.id.0,
                role = role_name(member.role),
                state = state_name(member.state),
                "gossip member event"
            );
        }
    }

    fn publish(&mut self) {
        let snapshot = Snapshot::take(
            &self.task.membership,
            self.task.addr,
            self.task.role,
            &self.counters,
            now_ms(self.task.base),
        );
        self.task.view.send_replace(Arc::new(snapshot));
    }
}
