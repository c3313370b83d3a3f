//! UNCONFIRMED peers in the simulator: a peer learned only by gossip is never suspected or
//! declared dead; managers are pinged proactively (3 attempts) and workers never; both are
//! removed (not declared dead) after their role's timeout.

mod sim;

use std::cell::RefCell;
use std::rc::Rc;

use steward_membership::wire::{decode, Message};
use steward_membership::{Config, Role};

use sim::ours::OurNode;
use sim::{topology, NetConfig, Obs, Sim, View};

const SEED: u64 = 0xC0F1;
/// Nodes 0..GHOST are managers; node GHOST is the newcomer.
const GHOST: usize = 5;

type Pings = Rc<RefCell<Vec<(u64, usize)>>>;

/// Managers 0..5 form a cluster; then a `role` node joins through node 0 while its links to
/// nodes 1..5 are cut, so those only ever hear of it by gossip from node 0 (which keeps
/// seeing it alive). Returns the simulator, the time the newcomer started and the pings
/// nodes 1..5 sent it (time, sender).
fn ghost(role: Role) -> (Sim<OurNode>, u64, Pings) {
    let n = GHOST + 1;
    let nodes = (0..n)
        .map(|i| {
            let r = if i == GHOST { role } else { Role::Manager };
            OurNode::new(i, Config::default(), r, SEED)
        })
        .collect();
    let mut sim = Sim::new(
        nodes,
        topology::lan(n, 2, SEED),
        NetConfig::lossy(0.0),
        SEED,
    );
    sim.start(0, &[]);
    for i in 1..GHOST {
        sim.run_for(100);
        sim.start(i, &[0]);
    }
    sim.run_for(20_000);
    for i in 1..GHOST {
        sim.block(i, GHOST);
    }
    let pings: Pings = Rc::new(RefCell::new(Vec::new()));
    let log = pings.clone();
    sim.send_hook = Some(Box::new(move |now, from, to, bytes| {
        if to == GHOST && from != 0 {
            if let Ok(packet) = decode(bytes, 1400) {
                if matches!(packet.message, Message::Ping { .. }) {
                    log.borrow_mut().push((now, from));
                }
            }
        }
    }));
    let started = sim.now;
    sim.start(GHOST, &[0]);
    (sim, started, pings)
}

/// When `observer` first removed the newcomer.
fn first_removal(sim: &Sim<OurNode>, observer: usize) -> Option<u64> {
    sim.observations
        .iter()
        .find(|o| o.observer == observer && o.subject == GHOST && o.obs == Obs::Removed)
        .map(|o| o.at)
}

fn check(role: Role, timeout_ms: u64, expected_pings: usize) {
    let (mut sim, started, pings) = ghost(role);
    sim.run_for(5_000);
    for observer in 1..GHOST {
        assert_eq!(
            sim.view_of(observer, GHOST),
            Some(View::Unconfirmed),
            "seed {SEED:#x}: node {observer} did not learn the {role:?} by gossip"
        );
    }
    sim.run_for(timeout_ms + 5_000);
    for observer in 1..GHOST {
        let removed = first_removal(&sim, observer);
        let Some(removed) = removed else {
            panic!("seed {SEED:#x}: node {observer} never removed the unconfirmed {role:?}");
        };
        assert!(
            removed >= started + timeout_ms && removed <= started + timeout_ms + 2_000,
            "seed {SEED:#x}: node {observer} removed the {role:?} at +{} ms",
            removed - started
        );
        let sent = pings
            .borrow()
            .iter()
            .filter(|(at, f)| *f == observer && *at <= removed)
            .count();
        assert_eq!(
            sent, expected_pings,
            "seed {SEED:#x}: node {observer} sent {sent} confirmation pings to the {role:?}"
        );
    }
    for o in sim.observations.iter().filter(|o| o.subject == GHOST) {
        assert!(
            !matches!(o.obs, Obs::Suspect | Obs::Down),
            "seed {SEED:#x}: the {role:?} was suspected or declared dead: {o:?}"
        );
    }
}

#[test]
fn an_unconfirmed_manager_gets_three_proactive_pings_then_is_removed() {
    check(Role::Manager, 90_000, 3);
}

#[test]
fn an_unconfirmed_gate_gets_five_proactive_pings_then_is_removed() {
    check(Role::Gate, 120_000, 5);
}

#[test]
fn a_worker_is_never_probed_for_confirmation() {
    check(Role::Worker, 180_000, 0);
}
