//! Output of the online commands (`job …`, `cluster …`): text or JSON, errors, exit codes, and
//! finding the cluster (`--server`, `STEWARD_SERVER`, or the `steward dev` discovery file).
//!
//! It deliberately does not talk HTTP; `steward_node::client` does.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde::Serialize;
use steward_node::api::ErrorCode;
use steward_node::client::{Client, ClientError};

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: any error not covered below.
pub const EXIT_ERROR: i32 = 1;
/// Exit code: bad usage or input refused by the server as invalid (clap also uses 2).
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the job (or member) does not exist.
pub const EXIT_NOT_FOUND: i32 = 3;
/// Exit code: conflict (idempotency key reused with another body, fence mismatch, refused
/// transition).
pub const EXIT_CONFLICT: i32 = 4;
/// Exit code (`job wait`): the job ended failed, cancelled or timed out.
pub const EXIT_JOB_UNSUCCESSFUL: i32 = 5;
/// Exit code: no server reachable, or no leader within the retry window.
pub const EXIT_UNAVAILABLE: i32 = 6;
/// Exit code (`job wait`): the wait's own timeout passed before the job ended.
pub const EXIT_WAIT_TIMEOUT: i32 = 7;

/// Where `steward dev` writes its discovery file, relative to the working directory.
pub const DEV_DISCOVERY_FILE: &str = ".steward/dev/cluster.json";
/// Server used when nothing else names one: the first default manager.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8001";

/// Text for people, JSON for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON document on stdout (the API's response body).
    Json,
}

/// Options shared by every online command.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Manager API URL(s), comma-separated. Default: the `steward dev` cluster in
    /// ./.steward/dev, else http://127.0.0.1:8001.
    #[arg(long, global = true, env = "STEWARD_SERVER")]
    pub server: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Client namespace scoping idempotency keys.
    #[arg(long, global = true, env = "STEWARD_NAMESPACE")]
    pub namespace: Option<String>,
}

impl ConnectArgs {
    /// A client for the cluster these options name.
    pub fn client(&self) -> anyhow::Result<Client> {
        let urls = match &self.server {
            Some(text) => Client::parse_urls(text)?,
            None => match discover(Path::new(DEV_DISCOVERY_FILE))? {
                Some(urls) => urls,
                None => Client::parse_urls(DEFAULT_SERVER)?,
            },
        };
        let client = Client::new(urls)?;
        Ok(match &self.namespace {
            Some(namespace) => client.with_namespace(namespace.clone()),
            None => client,
        })
    }
}

/// The dev cluster's discovery file (`.steward/dev/cluster.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevDiscovery {
    /// Always [`DevDiscovery::FORMAT`].
    pub format: String,
    /// Format version, [`DevDiscovery::VERSION`].
    pub version: u32,
    /// Process id of the `steward dev` that wrote it last.
    pub pid: u32,
    /// The managers.
    pub nodes: Vec<DevNode>,
}

/// One manager of the dev cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevNode {
    /// Node id.
    pub id: u64,
    /// Raft transport address.
    pub raft_addr: std::net::SocketAddr,
    /// HTTP API address.
    pub api_addr: std::net::SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
}

impl DevDiscovery {
    /// The `format` marker.
    pub const FORMAT: &'static str = "steward-dev-cluster";
    /// The current version.
    pub const VERSION: u32 = 1;

    /// Reads and checks a discovery file; `None` if it does not exist.
    pub fn read(path: &Path) -> anyhow::Result<Option<DevDiscovery>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        let discovery: DevDiscovery =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        anyhow::ensure!(
            discovery.format == Self::FORMAT && discovery.version == Self::VERSION,
            "{}: not a steward dev discovery file of version {} (found {} v{})",
            path.display(),
            Self::VERSION,
            discovery.format,
            discovery.version
        );
        Ok(Some(discovery))
    }
}

fn discover(path: &Path) -> anyhow::Result<Option<Vec<steward_node::client::Url>>> {
    let Some(discovery) = DevDiscovery::read(path)? else {
        return Ok(None);
    };
    let text: Vec<String> = discovery
        .nodes
        .iter()
        .map(|node| format!("http://{}", node.api_addr))
        .collect();
    Ok(Some(Client::parse_urls(&text.join(","))?))
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    write_stdout(&(serde_json::to_string_pretty(value)? + "\n"))
}

/// Writes `text` to stdout. A closed pipe (`steward job list | head`) is not an error: the
/// reader has what it wanted.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}

/// A command's failure: what to print and which exit code to use.
#[derive(Debug)]
pub struct Failure {
    /// Process exit code.
    pub code: i32,
    /// The error.
    pub error: anyhow::Error,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        let code = error
            .downcast_ref::<ClientError>()
            .map_or(EXIT_ERROR, exit_code);
        Failure { code, error }
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Failure {
            code: exit_code(&error),
            error: error.into(),
        }
    }
}

/// The exit code for a client error.
pub fn exit_code(error: &ClientError) -> i32 {
    match error {
        ClientError::Api { detail, .. } => match detail.code {
            ErrorCode::NotFound => EXIT_NOT_FOUND,
            ErrorCode::IdempotencyConflict | ErrorCode::FenceMismatch | ErrorCode::Rejected => {
                EXIT_CONFLICT
            }
            ErrorCode::InvalidJson
            | ErrorCode::UnknownField
            | ErrorCode::MissingField
            | ErrorCode::InvalidField
            | ErrorCode::BodyTooLarge => EXIT_USAGE,
            ErrorCode::NoLeader | ErrorCode::NotLeader | ErrorCode::ShuttingDown => {
                EXIT_UNAVAILABLE
            }
            _ => EXIT_ERROR,
        },
        ClientError::Unreachable { .. } => EXIT_UNAVAILABLE,
        ClientError::InvalidUrl(_) => EXIT_USAGE,
        ClientError::Decode { .. } => EXIT_ERROR,
    }
}

/// Prints the failure (JSON error shape on stdout in JSON mode, text on stderr otherwise) and
/// exits the process with its code. Used by `main` arms of the online commands.
pub fn finish(result: Result<i32, Failure>, format: OutputFormat) -> anyhow::Result<()> {
    let code = match result {
        Ok(code) => code,
        Err(failure) => {
            report(&failure, format);
            failure.code
        }
    };
    if code != EXIT_OK {
        std::process::exit(code);
    }
    Ok(())
}

fn report(failure: &Failure, format: OutputFormat) {
    match (format, failure.error.downcast_ref::<ClientError>()) {
        (OutputFormat::Json, Some(ClientError::Api { detail, .. })) => {
            let body = steward_node::api::ErrorBody {
                error: detail.clone(),
            };
            // Printing can only fail on a closed stdout; the exit code still tells.
            let _ = print_json(&body);
        }
        (OutputFormat::Json, _) => {
            let body = serde_json::json!({"error": {"code": "client", "message": format!("{:#}", failure.error)}});
            // Printing can only fail on a closed stdout; the exit code still tells.
            let _ = print_json(&body);
        }
        (OutputFormat::Text, _) => eprintln!("error: {:#}", failure.error),
    }
}

/// Formats ms since the Unix epoch as `YYYY-MM-DD hh:mm:ss.mmm` UTC.
pub fn timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), valid for every u64 day count we can meet.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}.{:03}",
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000");
        assert_eq!(timestamp(951_782_400_123), "2000-02-29 00:00:00.123");
        assert_eq!(timestamp(1_790_000_000_000), "2026-09-21 14:13:20.000");
    }
}
