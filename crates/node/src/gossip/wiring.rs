//! How a manager runs gossip: where it binds and whom it contacts (from [`NodeConfig`]), and
//! what it does with member events.
//!
//! Conventions (documented in `docs/api.md` and ADR 0005): a node's gossip id is its node id;
//! a worker's gossip id is its `WorkerId` (same `u64`), so "worker 7 declared dead" means
//! `Command::WorkerLost { worker: WorkerId(7) }`. Only the Raft leader's proposal succeeds;
//! the other managers get `NotLeader` and drop the event. A manager declared suspect or dead is
//! only logged and counted: Raft owns manager leadership. Not here: registering workers.

use std::net::SocketAddr;
use std::sync::Arc;

use steward_membership::{MemberEvent, Role};
use steward_statemachine::{Command, WorkerId};
use tokio::sync::{mpsc, watch};

use super::{Gossip, GossipOptions};
use crate::config::NodeConfig;
use crate::error::{Error, Result};
use crate::node::Node;
use crate::transport::link_filter::LinkFilter;

/// The gossip bind address: `gossip.addr`, else the bound Raft address (same IP and port
/// number, over UDP).
pub(crate) fn bind_addr(config: &NodeConfig, raft_addr: SocketAddr) -> SocketAddr {
    config.gossip.addr.unwrap_or(raft_addr)
}

/// The seeds: `gossip.seeds`, else every other initial member's `raft_addr` (their default
/// gossip address).
pub(crate) fn seeds(config: &NodeConfig) -> Vec<SocketAddr> {
    if !config.gossip.seeds.is_empty() {
        return config.gossip.seeds.clone();
    }
    config
        .initial_members
        .iter()
        .filter(|peer| peer.id != config.id)
        .map(|peer| peer.raft_addr)
        .collect()
}

/// Starts this manager's gossip, unless disabled.
pub(crate) async fn start_for_manager(
    config: &NodeConfig,
    raft_addr: SocketAddr,
    filter: Arc<LinkFilter>,
) -> Result<Option<(Gossip, mpsc::Receiver<MemberEvent>)>> {
    if !config.gossip.enabled {
        return Ok(None);
    }
    let options = GossipOptions {
        id: config.id,
        role: Role::Manager,
        bind: bind_addr(config, raft_addr),
        seeds: seeds(config),
        config: config.gossip.clone(),
    };
    Gossip::start_with_filter(options, filter).await.map(Some)
}

/// Spawns the task that turns member events into actions until `stopped` turns true or the
/// gossip task ends.
pub(crate) fn spawn_event_handler(
    node: Node,
    mut events: mpsc::Receiver<MemberEvent>,
    mut stopped: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                // Stop on the signal, or when the node is gone (Err).
                _ = stopped.wait_for(|stop| *stop) => None,
                event = events.recv() => event,
            };
            match event {
                Some(MemberEvent::Dead(member)) if member.role == Role::Worker => {
                    worker_lost(&node, member.id.0).await;
                }
                Some(_) => {}
                None => return,
            }
        }
    })
}

/// Proposes `WorkerLost` for `worker` if this node leads; otherwise leaves it to the leader.
async fn worker_lost(node: &Node, worker: u64) {
    let command = Command::WorkerLost {
        worker: WorkerId(worker),
    };
    match node.execute(command).await {
        Ok(outcome) => tracing::warn!(worker, ?outcome, "worker declared dead: WorkerLost"),
        Err(Error::NotLeader { .. }) => {
            tracing::debug!(worker, "worker declared dead; the leader records it")
        }
        Err(Error::Rejected(rejection)) => {
            tracing::info!(worker, %rejection, "worker declared dead; WorkerLost refused")
        }
        Err(e) => tracing::warn!(worker, error = %e, "worker declared dead; WorkerLost failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PeerConfig;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn seeds_default_to_the_other_members_raft_addresses() {
        let peers: Vec<PeerConfig> = (1..=3)
            .map(|id| PeerConfig {
                id,
                raft_addr: addr(7000 + id as u16),
                api_addr: addr(8000 + id as u16),
            })
            .collect();
        let mut config = NodeConfig {
            id: 2,
            initial_members: peers,
            ..NodeConfig::default()
        };
        assert_eq!(seeds(&config), vec![addr(7001), addr(7003)]);
        assert_eq!(bind_addr(&config, addr(7002)), addr(7002));
        config.gossip.seeds = vec![addr(9000)];
        config.gossip.addr = Some(addr(9002));
        assert_eq!(seeds(&config), vec![addr(9000)]);
        assert_eq!(bind_addr(&config, addr(7002)), addr(9002));
    }
}
