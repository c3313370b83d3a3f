//! Elections started by steward after a pre-vote (ADR 0018). openraft 0.9's own election timer
//! is off (`enable_elect = false`): a candidate it starts bumps the term whether or not it can
//! win, and a candidate with the shorter log both delays the one that can win and punishes
//! itself with a longer timer (ADR 0013). Here a member that has heard nothing for a while
//! first asks the voters whether they would vote for it; only when a quorum says yes does it
//! tell openraft to campaign. Asking changes nothing on the voters.
//!
//! A voter grants a pre-vote on exactly the grounds openraft's vote handler would: it is not
//! the leader, the leader lease it granted has expired, and the candidate's log is at least as
//! long as its own. openraft still runs the real vote; this module decides only when to start.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::{LogId, Membership, ServerState};
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::NodeConfig;
use crate::raft::log_store::LogStore;
use crate::raft::{NodeId, PeerNode, Raft};
use crate::transport::client::PeerPool;
use crate::transport::message::{RaftReply, RaftRpc};

/// When a member campaigns, from its node configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ElectionTiming {
    /// The leader lease a voter grants (openraft's `election_timeout_max`).
    pub lease: Duration,
    /// Silence before a follower of an elected leader asks for pre-votes: drawn from
    /// `[lease + election_timeout_min, 2 × lease)`, as openraft's own timer (ADR 0013). A
    /// follower whose disk stalls for a few hundred ms under load stops taking appends for as
    /// long; a shorter silence turned such stalls into elections (ADR 0018).
    pub following: (Duration, Duration),
    /// Silence before a member without a committed vote (a candidate, or a restarted member,
    /// ADR 0014) asks again: drawn from `[election_timeout_min, election_timeout_max)`.
    pub unsettled: (Duration, Duration),
    /// How long a follower whose leader's process is still there waits before it asks: `4 ×
    /// lease`. A leader that is alive but slow (all members building a snapshot at once) sent
    /// nothing for about a second on a loaded 2-core machine; a dead one refuses connections.
    pub patience: Duration,
    /// How long the probe of the leader's Raft port may take (`heartbeat_interval`).
    pub probe_timeout: Duration,
    /// How long each pre-vote call may take: `2 × lease`. A follower that lags under load
    /// answers only once its Raft core has worked through what is queued before the question
    /// (383 ms seen at 64 clients); giving up on it sooner only costs another silence.
    pub call_timeout: Duration,
}

impl ElectionTiming {
    pub(crate) fn from_config(config: &NodeConfig) -> Self {
        let ms = Duration::from_millis;
        let lease = ms(config.election_timeout_max_ms);
        ElectionTiming {
            lease,
            following: (lease + ms(config.election_timeout_min_ms), lease * 2),
            unsettled: (ms(config.election_timeout_min_ms), lease),
            call_timeout: lease * 2,
            patience: lease * 4,
            probe_timeout: ms(config.heartbeat_interval_ms),
        }
    }

    fn draw(range: (Duration, Duration)) -> Duration {
        let (low, high) = range;
        if high <= low {
            return low;
        }
        low + rand::thread_rng().gen_range(Duration::ZERO..high - low)
    }
}

/// What a voter knows of itself when asked for a pre-vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VoterView {
    /// openraft's server state is `Leader`.
    pub is_leader: bool,
    /// The voter's vote is committed: it follows (or is) an elected leader, whose lease binds.
    pub vote_committed: bool,
    /// Time since openraft last granted or refreshed the vote (every accepted append does).
    pub since_vote_touched: Option<Duration>,
    /// The last entry of the voter's log.
    pub last_log_id: Option<LogId<NodeId>>,
}

/// Why a voter refused a pre-vote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// The voter is the leader.
    #[error("this node is the leader")]
    Leader,
    /// The voter heard from its leader within the lease; openraft would refuse the vote too.
    #[error("heard from the leader {since:?} ago, within the {lease:?} lease")]
    LeaseLive {
        /// Time since the leader's last accepted message.
        since: Duration,
        /// The lease.
        lease: Duration,
    },
    /// The candidate's log ends before the voter's.
    #[error("the candidate's log ends at {candidate:?}, before this node's {voter:?}")]
    ShorterLog {
        /// The candidate's last log id.
        candidate: Option<LogId<NodeId>>,
        /// The voter's last log id.
        voter: Option<LogId<NodeId>>,
    },
}

/// Whether a voter in `view` grants a pre-vote to a candidate whose log ends at
/// `candidate_last`.
pub(crate) fn decide(
    view: &VoterView,
    candidate_last: Option<LogId<NodeId>>,
    lease: Duration,
) -> Result<(), Refusal> {
    if view.is_leader {
        return Err(Refusal::Leader);
    }
    if view.vote_committed {
        match view.since_vote_touched {
            Some(since) if since <= lease => return Err(Refusal::LeaseLive { since, lease }),
            _ => {}
        }
    }
    if candidate_last < view.last_log_id {
        return Err(Refusal::ShorterLog {
            candidate: candidate_last,
            voter: view.last_log_id,
        });
    }
    Ok(())
}

/// Answers a pre-vote from `candidate` (the server side of [`RaftRpc::PreVote`]).
pub(crate) async fn answer_pre_vote(
    raft: &Raft,
    log: &LogStore,
    lease: Duration,
    candidate: NodeId,
    candidate_last: Option<LogId<NodeId>>,
) -> Result<(), String> {
    let last_log_id = log
        .last_log_id()
        .await
        .map_err(|e| format!("read this node's last log id: {e}"))?;
    let view = raft
        .with_raft_state(move |state| {
            let now = Instant::now();
            VoterView {
                is_leader: state.server_state == ServerState::Leader,
                vote_committed: state.vote_ref().is_committed(),
                since_vote_touched: state
                    .vote_last_modified()
                    .map(|at| now.saturating_duration_since(at)),
                last_log_id,
            }
        })
        .await
        .map_err(|e| format!("read the Raft state: {e}"))?;
    let verdict = decide(&view, candidate_last, lease);
    tracing::info!(
        candidate,
        granted = verdict.is_ok(),
        ?verdict,
        "pre-vote asked"
    );
    verdict.map_err(|refusal| refusal.to_string())
}

/// What the campaigner reads of its own node each round.
struct SelfView {
    /// Leader, or not a voter: nothing to campaign for.
    idle: bool,
    vote_committed: bool,
    vote_touched: Option<Instant>,
}

/// The task that watches for a silent leader and campaigns.
pub(crate) struct Campaigner {
    pub me: NodeId,
    pub raft: Raft,
    pub log: LogStore,
    pub pool: Arc<PeerPool>,
    pub timing: ElectionTiming,
}

impl Campaigner {
    /// Runs until `stop` turns true or openraft stops.
    pub(crate) fn spawn(self, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let started = Instant::now();
        let mut last_attempt: Option<Instant> = None;
        let mut following_silence = ElectionTiming::draw(self.timing.following);
        let mut unsettled_silence = ElectionTiming::draw(self.timing.unsettled);
        let idle_poll = self.timing.unsettled.0;
        loop {
            if *stop.borrow() {
                return;
            }
            let me = self.me;
            let Ok(view) = self
                .raft
                .with_raft_state(move |state| SelfView {
                    idle: state.server_state == ServerState::Leader
                        || state.server_state == ServerState::Learner,
                    vote_committed: state.vote_ref().is_committed(),
                    vote_touched: state.vote_last_modified(),
                })
                .await
            else {
                return;
            };
            let membership = self.membership();
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            let due = if view.idle || !voters.contains(&me) {
                Instant::now() + idle_poll
            } else if voters.len() == 1 {
                last_attempt.map_or_else(Instant::now, |at| at + unsettled_silence)
            } else {
                let quiet_since = [view.vote_touched, last_attempt]
                    .into_iter()
                    .flatten()
                    .max()
                    .unwrap_or(started);
                let silence = if view.vote_committed {
                    following_silence
                } else {
                    unsettled_silence
                };
                quiet_since + silence
            };
            let due = match (view.vote_committed, view.vote_touched) {
                (true, Some(touched)) if due <= Instant::now() && self.leader_alive().await => {
                    due.max(touched + self.timing.patience)
                }
                _ => due,
            };
            if due > Instant::now() {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    changed = stop.changed() => if changed.is_err() { return },
                }
                continue;
            }
            last_attempt = Some(Instant::now());
            following_silence = ElectionTiming::draw(self.timing.following);
            unsettled_silence = ElectionTiming::draw(self.timing.unsettled);
            if self.won_pre_vote(&membership).await {
                tracing::info!(id = me, "pre-vote won; starting an election");
                if self.raft.trigger().elect().await.is_err() {
                    return;
                }
            }
        }
    }

    /// True when the leader this node follows still accepts a TCP connection on its Raft port
    /// within the probe timeout: its process is there, only slow. A killed process's port
    /// refuses at once; a lost host or a cut network times out.
    async fn leader_alive(&self) -> bool {
        let (leader, membership) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            (m.current_leader, m.membership_config.membership().clone())
        };
        let Some(addr) = leader
            .filter(|id| *id != self.me)
            .and_then(|id| membership.get_node(&id).map(|node| node.raft_addr))
        else {
            return false;
        };
        let probe = tokio::net::TcpStream::connect(addr);
        matches!(
            tokio::time::timeout(self.timing.probe_timeout, probe).await,
            Ok(Ok(_))
        )
    }

    fn membership(&self) -> Membership<NodeId, PeerNode> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone()
    }

    /// Asks every other voter; true once a quorum of every joint configuration granted.
    async fn won_pre_vote(&self, membership: &Membership<NodeId, PeerNode>) -> bool {
        let last_log_id = match self.log.last_log_id().await {
            Ok(last) => last,
            Err(e) => {
                tracing::warn!(error = %e, "pre-vote skipped: cannot read the last log id");
                return false;
            }
        };
        let mut granted = BTreeSet::from([self.me]);
        if has_quorum(membership, &granted) {
            return true;
        }
        let mut calls = JoinSet::new();
        for id in membership.voter_ids().filter(|id| *id != self.me) {
            let Some(node) = membership.get_node(&id) else {
                continue;
            };
            let client = self.pool.get(id, node.raft_addr);
            let rpc = RaftRpc::PreVote {
                candidate: self.me,
                last_log_id,
            };
            let timeout = self.timing.call_timeout;
            calls.spawn(async move { (id, client.call(&rpc, timeout).await) });
        }
        let mut refusals = Vec::new();
        while let Some(joined) = calls.join_next().await {
            let Ok((id, reply)) = joined else {
                continue;
            };
            match reply {
                Ok(RaftReply::PreVote(Ok(()))) => {
                    granted.insert(id);
                    if has_quorum(membership, &granted) {
                        return true;
                    }
                }
                Ok(RaftReply::PreVote(Err(reason))) => refusals.push(format!("{id}: {reason}")),
                Ok(other) => refusals.push(format!("{id}: unexpected {other:?}")),
                Err(e) => refusals.push(format!("{id}: {e}")),
            }
        }
        tracing::info!(id = self.me, ?refusals, "pre-vote lost; not campaigning");
        false
    }
}

/// True when `granted` holds a majority of every configuration of `membership` (two during a
/// joint change).
fn has_quorum(membership: &Membership<NodeId, PeerNode>, granted: &BTreeSet<NodeId>) -> bool {
    membership.get_joint_config().iter().all(|config| {
        let yes = config.iter().filter(|id| granted.contains(id)).count();
        yes * 2 > config.len()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use openraft::CommittedLeaderId;

    use super::*;

    const LEASE: Duration = Duration::from_millis(500);

    fn log_id(term: u64, index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    fn follower(since_ms: u64, last: Option<LogId<NodeId>>) -> VoterView {
        VoterView {
            is_leader: false,
            vote_committed: true,
            since_vote_touched: Some(Duration::from_millis(since_ms)),
            last_log_id: last,
        }
    }

    #[test]
    fn a_leader_refuses() {
        let view = VoterView {
            is_leader: true,
            ..follower(10_000, None)
        };
        assert_eq!(decide(&view, log_id(9, 9), LEASE), Err(Refusal::Leader));
    }

    #[test]
    fn a_live_lease_refuses_and_an_expired_one_grants() {
        let refused = decide(&follower(500, log_id(2, 5)), log_id(2, 5), LEASE);
        assert!(matches!(refused, Err(Refusal::LeaseLive { .. })));
        assert_eq!(
            decide(&follower(501, log_id(2, 5)), log_id(2, 5), LEASE),
            Ok(())
        );
    }

    #[test]
    fn an_uncommitted_vote_has_no_lease() {
        let view = VoterView {
            vote_committed: false,
            ..follower(1, log_id(2, 5))
        };
        assert_eq!(decide(&view, log_id(2, 5), LEASE), Ok(()));
    }

    #[test]
    fn a_shorter_log_is_refused_by_index_then_by_term() {
        let voter = follower(900, log_id(3, 10));
        assert!(matches!(
            decide(&voter, log_id(3, 9), LEASE),
            Err(Refusal::ShorterLog { .. })
        ));
        assert!(matches!(
            decide(&voter, log_id(2, 12), LEASE),
            Err(Refusal::ShorterLog { .. })
        ));
        assert!(matches!(
            decide(&voter, None, LEASE),
            Err(Refusal::ShorterLog { .. })
        ));
        assert_eq!(decide(&voter, log_id(3, 10), LEASE), Ok(()));
        assert_eq!(decide(&voter, log_id(4, 2), LEASE), Ok(()));
    }

    #[test]
    fn quorum_needs_a_majority_of_each_joint_configuration() {
        let nodes: BTreeMap<NodeId, PeerNode> =
            (1..=5).map(|id| (id, PeerNode::default())).collect();
        let single = Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes.clone());
        assert!(!has_quorum(&single, &BTreeSet::from([1])));
        assert!(has_quorum(&single, &BTreeSet::from([1, 3])));
        let joint = Membership::new(
            vec![BTreeSet::from([1, 2, 3]), BTreeSet::from([3, 4, 5])],
            nodes,
        );
        assert!(!has_quorum(&joint, &BTreeSet::from([1, 2])));
        assert!(has_quorum(&joint, &BTreeSet::from([1, 3, 4])));
    }

    #[test]
    fn following_silence_is_openrafts_lease_plus_election_timeout() {
        let timing = ElectionTiming::from_config(&NodeConfig::default());
        assert_eq!(timing.lease, Duration::from_millis(500));
        assert_eq!(
            timing.following,
            (Duration::from_millis(800), Duration::from_millis(1000))
        );
        for _ in 0..100 {
            let drawn = ElectionTiming::draw(timing.following);
            assert!(drawn >= timing.following.0 && drawn < timing.following.1);
        }
    }
}
