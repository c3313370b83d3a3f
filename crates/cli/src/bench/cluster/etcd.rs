//! What `steward bench cluster` needs to know about etcd 3.4: each member's command line, its
//! JSON gateway (`/v3/kv/put`, `/v3/maintenance/status`, `/health`) and the body of one write.
//!
//! The gateway is etcd's own translation of its gRPC API to JSON over HTTP/1.1, served on the
//! client port; using it lets one HTTP client drive both systems, with no protobuf tooling.
//! Keys and values travel base64-encoded, 64-bit ids as decimal strings. Members get the same
//! heartbeat and election timeout as steward's defaults, so a failover compares the mechanisms
//! rather than the knobs. It deliberately holds no process handling and no load logic.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Deserialize;

/// Leader heartbeat, as steward's default `heartbeat_interval_ms`. etcd's default: 100.
pub const HEARTBEAT_INTERVAL_MS: u64 = 100;
/// Election timeout, as steward's default leader lease (`election_timeout_max_ms`): an etcd
/// follower ignores votes for this long after it last heard from its leader (check-quorum)
/// and campaigns after [this, 2 × this) of silence; a steward follower refuses votes for
/// 500 ms and campaigns after 800–1000 ms (ADR 0013). etcd's default: 1000.
pub const ELECTION_TIMEOUT_MS: u64 = 500;

/// Addresses of one etcd member.
#[derive(Clone, Copy, Debug)]
pub struct EtcdAddrs {
    /// Client URL's address (gRPC and its JSON gateway).
    pub client: SocketAddr,
    /// Peer URL's address (Raft).
    pub peer: SocketAddr,
}

/// The member name of slot `slot`.
pub fn member_name(slot: usize) -> String {
    format!("etcd-{}", slot + 1)
}

/// The command-line arguments of member `slot` of `all`, data in `dir/data`; `token` keeps
/// clusters of different runs apart.
pub fn args(dir: &Path, slot: usize, all: &[EtcdAddrs], token: &str) -> Vec<OsString> {
    let me = &all[slot];
    let initial_cluster = all
        .iter()
        .enumerate()
        .map(|(index, peer)| format!("{}=http://{}", member_name(index), peer.peer))
        .collect::<Vec<_>>()
        .join(",");
    let mut args: Vec<OsString> = Vec::new();
    let mut flag = |name: &str, value: String| {
        args.push(format!("--{name}").into());
        args.push(value.into());
    };
    flag("name", member_name(slot));
    flag("data-dir", dir.join("data").display().to_string());
    flag("listen-client-urls", format!("http://{}", me.client));
    flag("advertise-client-urls", format!("http://{}", me.client));
    flag("listen-peer-urls", format!("http://{}", me.peer));
    flag("initial-advertise-peer-urls", format!("http://{}", me.peer));
    flag("initial-cluster", initial_cluster);
    flag("initial-cluster-state", "new".to_owned());
    flag("initial-cluster-token", token.to_owned());
    flag("heartbeat-interval", HEARTBEAT_INTERVAL_MS.to_string());
    flag("election-timeout", ELECTION_TIMEOUT_MS.to_string());
    flag("logger", "zap".to_owned());
    flag("log-level", "warn".to_owned());
    args
}

/// The parts of a `/v3/maintenance/status` answer the benchmark reads.
#[derive(Debug, Deserialize)]
struct StatusAnswer {
    header: StatusHeader,
    /// The leader's member id; absent or "0" while there is none.
    #[serde(default)]
    leader: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StatusHeader {
    member_id: String,
}

/// A member's `(own id, leader id)` from its `/v3/maintenance/status` answer.
pub fn status_ids(body: &[u8]) -> anyhow::Result<(u64, Option<u64>)> {
    let answer: StatusAnswer =
        serde_json::from_slice(body).context("decode an etcd maintenance status")?;
    let id = answer
        .header
        .member_id
        .parse()
        .context("etcd member id is not a decimal u64")?;
    let leader = match answer.leader.as_deref() {
        None | Some("0") => None,
        Some(text) => Some(
            text.parse()
                .context("etcd leader id is not a decimal u64")?,
        ),
    };
    Ok((id, leader))
}

/// Whether a `/health` answer says healthy (`{"health":"true"}`).
pub fn is_healthy(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Health {
        health: String,
    }
    serde_json::from_slice::<Health>(body).is_ok_and(|h| h.health == "true")
}

/// The JSON gateway's body of a PUT of `value` under `key` (both base64, as the gateway wants).
pub fn put_body(key: &str, value: &[u8]) -> String {
    let mut body = String::with_capacity(32 + (key.len() + value.len()) * 4 / 3);
    body.push_str("{\"key\":\"");
    BASE64.encode_string(key, &mut body);
    body.push_str("\",\"value\":\"");
    BASE64.encode_string(value, &mut body);
    body.push_str("\"}");
    body
}

/// The key of client `client`'s operation `sequence` in run `tag`.
pub fn key(tag: &str, client: usize, sequence: u64) -> String {
    format!("bench/{tag}/{client}/{sequence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_answers_give_member_and_leader_ids() {
        let body = br#"{"header":{"cluster_id":"1","member_id":"13668033151171901709",
            "revision":"2","raft_term":"2"},"version":"3.4.23","leader":"42"}"#;
        assert_eq!(
            status_ids(body).unwrap(),
            (13_668_033_151_171_901_709, Some(42))
        );
        let leaderless = br#"{"header":{"member_id":"7"},"leader":"0"}"#;
        assert_eq!(status_ids(leaderless).unwrap(), (7, None));
        assert!(status_ids(b"{}").is_err());
    }

    #[test]
    fn health_is_read_from_the_body() {
        assert!(is_healthy(br#"{"health":"true"}"#));
        assert!(!is_healthy(br#"{"health":"false"}"#));
        assert!(!is_healthy(b"not json"));
    }

    #[test]
    fn put_bodies_are_gateway_json_with_base64_fields() {
        let body = put_body("foo", b"bar");
        assert_eq!(body, r#"{"key":"Zm9v","value":"YmFy"}"#);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["key"], "Zm9v");
    }

    #[test]
    fn every_member_lists_the_whole_cluster() {
        let all: Vec<EtcdAddrs> = (0..3)
            .map(|i| EtcdAddrs {
                client: SocketAddr::from(([127, 0, 0, 1], 12_000 + i)),
                peer: SocketAddr::from(([127, 0, 0, 1], 13_000 + i)),
            })
            .collect();
        let args: Vec<String> = args(Path::new("/d"), 1, &all, "t")
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let value_of = |flag: &str| {
            let at = args.iter().position(|a| a == flag).unwrap();
            args[at + 1].clone()
        };
        assert_eq!(value_of("--name"), "etcd-2");
        assert_eq!(value_of("--data-dir"), "/d/data");
        assert_eq!(value_of("--listen-client-urls"), "http://127.0.0.1:12001");
        assert_eq!(
            value_of("--initial-cluster"),
            "etcd-1=http://127.0.0.1:13000,etcd-2=http://127.0.0.1:13001,\
             etcd-3=http://127.0.0.1:13002"
        );
    }
}
