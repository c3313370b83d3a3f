//! TCP transport between managers: length-prefixed bincode frames with magic and protocol
//! version, one pooled, pipelined connection per peer, timeouts, reconnect with backoff and
//! jitter. ADR 0008.
//!
//! Layout: [`frame`] encodes and checks frames, [`message`] defines what they carry,
//! [`client`] is the pooled outgoing side, [`server`] the listener, [`link_filter`] the
//! test-only partition switch both sides consult. This module knows nothing of
//! openraft's retry policy or membership; `raft::network` adapts it to openraft.

use std::sync::atomic::{AtomicU64, Ordering};

pub mod client;
pub mod frame;
pub mod link_filter;
pub mod message;
pub mod server;

/// Transport counters, shared by the client pool and the server of one node.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Frames written to sockets.
    pub frames_sent: AtomicU64,
    /// Frames read and accepted.
    pub frames_received: AtomicU64,
    /// Frames refused for a bad magic (the connection is closed).
    pub refused_bad_magic: AtomicU64,
    /// Frames refused for another protocol version (answered with a refusal, then closed).
    pub refused_version: AtomicU64,
    /// Frames refused as too large or of an unknown kind (the connection is closed).
    pub refused_malformed: AtomicU64,
    /// Frames whose body did not decode (answered with `Refused`, the connection stays open).
    pub refused_body: AtomicU64,
    /// Outgoing connections established.
    pub connects: AtomicU64,
    /// Outgoing connection attempts that failed.
    pub connect_failures: AtomicU64,
    /// Requests that timed out waiting for their response.
    pub request_timeouts: AtomicU64,
}

/// A point-in-time copy of [`TransportStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TransportStatsSnapshot {
    /// See [`TransportStats::frames_sent`].
    pub frames_sent: u64,
    /// See [`TransportStats::frames_received`].
    pub frames_received: u64,
    /// See [`TransportStats::refused_bad_magic`].
    pub refused_bad_magic: u64,
    /// See [`TransportStats::refused_version`].
    pub refused_version: u64,
    /// See [`TransportStats::refused_malformed`].
    pub refused_malformed: u64,
    /// See [`TransportStats::refused_body`].
    pub refused_body: u64,
    /// See [`TransportStats::connects`].
    pub connects: u64,
    /// See [`TransportStats::connect_failures`].
    pub connect_failures: u64,
    /// See [`TransportStats::request_timeouts`].
    pub request_timeouts: u64,
}

impl TransportStats {
    /// Copies the counters.
    pub fn snapshot(&self) -> TransportStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStatsSnapshot {
            frames_sent: get(&self.frames_sent),
            frames_received: get(&self.frames_received),
            refused_bad_magic: get(&self.refused_bad_magic),
            refused_version: get(&self.refused_version),
            refused_malformed: get(&self.refused_malformed),
            refused_body: get(&self.refused_body),
            connects: get(&self.connects),
            connect_failures: get(&self.connect_failures),
            request_timeouts: get(&self.request_timeouts),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused frame under the counter its error belongs to.
    pub(crate) fn count_refusal(&self, err: &frame::FrameError) {
        let counter = match err {
            frame::FrameError::BadMagic(_) => &self.refused_bad_magic,
            frame::FrameError::UnsupportedVersion { .. } => &self.refused_version,
            frame::FrameError::UnknownKind(_) | frame::FrameError::TooLarge(_) => {
                &self.refused_malformed
            }
            frame::FrameError::Body(_) => &self.refused_body,
        };
        Self::bump(counter);
    }
}

/// Reads one frame (header and body) from `reader`. `Ok(None)` is a clean end of stream before
/// a header started.
pub(crate) async fn read_frame<R>(
    reader: &mut R,
) -> std::io::Result<Option<Result<(frame::FrameHeader, Vec<u8>), frame::FrameError>>>
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;

    let mut header = [0u8; frame::HEADER_BYTES];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let header = match frame::decode_header(&header) {
        Ok(header) => header,
        Err(e) => return Ok(Some(Err(e))),
    };
    let mut body = vec![0u8; header.body_bytes];
    reader.read_exact(&mut body).await?;
    Ok(Some(Ok((header, body))))
}
