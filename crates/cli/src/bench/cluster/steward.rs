//! What `steward bench cluster` needs to know about steward: each member's config file, the
//! readiness and leader routes, and the body of one write (a job submit).
//!
//! Members run the `steward` binary of the bench itself (`steward server --config FILE`) with
//! the shipped defaults except for what the benchmark fixes: `sync_policy = "always"`, the
//! snapshot threshold (recovery cases) and `warn` logging. It deliberately holds no process
//! handling (`process`) and no load logic (`crate::load`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use bytes::Bytes;
use steward_node::api::types::{ClusterStatusView, SubmitJobRequest, WorkflowSpec};

/// Addresses of one steward member.
#[derive(Clone, Copy, Debug)]
pub struct StewardAddrs {
    /// Node id: the slot's index + 1.
    pub id: u64,
    /// Raft TCP (and gossip UDP) address.
    pub raft: SocketAddr,
    /// HTTP API address.
    pub api: SocketAddr,
}

/// Writes `dir/config.toml` for member `me` of `all`, data in `dir/data`. `snapshot_after_entries`
/// `None` keeps the node's default.
pub fn write_config(
    dir: &Path,
    me: &StewardAddrs,
    all: &[StewardAddrs],
    snapshot_after_entries: Option<u64>,
) -> anyhow::Result<()> {
    let mut text = String::from("[node]\n");
    writeln!(text, "id = {}", me.id)?;
    writeln!(
        text,
        "data_dir = {:?}",
        dir.join("data").display().to_string()
    )?;
    writeln!(text, "raft_addr = \"{}\"", me.raft)?;
    writeln!(text, "api_addr = \"{}\"", me.api)?;
    writeln!(text, "sync_policy = \"always\"")?;
    if let Some(entries) = snapshot_after_entries {
        writeln!(text, "snapshot_after_entries = {entries}")?;
    }
    text.push_str("initial_members = [\n");
    for peer in all {
        writeln!(
            text,
            "  {{ id = {}, raft_addr = \"{}\", api_addr = \"{}\" }},",
            peer.id, peer.raft, peer.api
        )?;
    }
    text.push_str("]\n\n[log]\nlevel = \"warn\"\n");
    let path = dir.join("config.toml");
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
}

/// The leader's node id in a `/v1/cluster/status` answer.
pub fn leader_id(body: &[u8]) -> anyhow::Result<Option<u64>> {
    let status: ClusterStatusView =
        serde_json::from_slice(body).context("decode a steward cluster status")?;
    Ok(status.leader_id)
}

/// The body of every benchmark submit: one workflow whose argument is the payload. Every
/// submit sends the same body under its own idempotency key, so each creates its own job.
pub fn submit_body(payload: &str) -> anyhow::Result<Bytes> {
    let request = SubmitJobRequest {
        name: None,
        labels: Default::default(),
        workflows: vec![WorkflowSpec {
            name: "main".to_owned(),
            command: vec!["true".to_owned(), payload.to_owned()],
            env: Default::default(),
            cores: None,
            timeout_ms: None,
            working_dir: None,
        }],
        timeout_ms: None,
        retry_budget: None,
        cancel_grace_ms: None,
    };
    Ok(Bytes::from(
        serde_json::to_vec(&request).context("encode the submit body")?,
    ))
}

/// The idempotency key of client `client`'s operation `sequence` in run `tag`.
pub fn idempotency_key(tag: &str, client: usize, sequence: u64) -> String {
    format!("bench-{tag}-{client}-{sequence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_is_a_valid_server_config() {
        let dir = tempfile::tempdir().unwrap();
        let addrs: Vec<StewardAddrs> = (1..=3)
            .map(|id| StewardAddrs {
                id,
                raft: SocketAddr::from(([127, 0, 0, 1], 10_000 + id as u16)),
                api: SocketAddr::from(([127, 0, 0, 1], 11_000 + id as u16)),
            })
            .collect();
        write_config(dir.path(), &addrs[1], &addrs, Some(10)).unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
        let config: crate::server::ServerConfig = toml::from_str(&text).unwrap();
        assert_eq!(config.node.id, 2);
        assert_eq!(
            config.node.sync_policy,
            steward_node::SyncPolicyConfig::Always
        );
        assert_eq!(config.node.snapshot_after_entries, 10);
        assert_eq!(config.node.initial_members.len(), 3);
        assert_eq!(config.node.data_dir, dir.path().join("data"));
        config.node.validate().unwrap();
    }

    #[test]
    fn the_submit_body_carries_the_payload() {
        let body = submit_body("abc").unwrap();
        let request: SubmitJobRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(request.workflows[0].command, ["true", "abc"]);
    }
}
