//! Where and on what a benchmark runs: the default run directory (on the working directory's
//! disk, never tmpfs), the machine's load average and a one-line description of the machine.
//!
//! Benchmarks on a shared machine are only as good as this context; every report carries it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// `statfs` magic of tmpfs (`TMPFS_MAGIC` in linux/magic.h).
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// The system temporary directory if it shares a file system with the working directory
/// (so the benchmark measures the disk the user is on), else the working directory.
pub fn default_parent() -> anyhow::Result<PathBuf> {
    let cwd = std::env::current_dir().context("read the working directory")?;
    let tmp = std::env::temp_dir();
    let same_device = match (std::fs::metadata(&cwd), std::fs::metadata(&tmp)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    };
    Ok(if same_device { tmp } else { cwd })
}

/// Creates `dir` (and its parents) if missing, then refuses it on tmpfs: these are disk
/// benchmarks.
pub fn prepare_parent(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    refuse_tmpfs(dir)
}

/// Refuses a directory on tmpfs: these are disk benchmarks.
fn refuse_tmpfs(dir: &Path) -> anyhow::Result<()> {
    let stat =
        nix::sys::statfs::statfs(dir).with_context(|| format!("statfs {}", dir.display()))?;
    // The field's integer type differs between targets; the magic fits either way.
    #[allow(
        clippy::unnecessary_cast,
        reason = "f_type is i64 on some targets and not on others"
    )]
    let fs_type = stat.filesystem_type().0 as i64;
    if fs_type == TMPFS_MAGIC {
        bail!(
            "{} is on tmpfs (memory): these are disk benchmarks; pass --dir on a real disk",
            dir.display()
        );
    }
    Ok(())
}

/// The first three fields of `/proc/loadavg`, or "unknown".
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// One line about the machine: CPUs and model, memory, kernel (from `/proc`).
pub fn describe() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = proc_field(&cpuinfo, "model name").unwrap_or("unknown CPU");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = proc_field(&meminfo, "MemTotal")
        .and_then(|kib| kib.trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or_else(|| "unknown".to_owned(), |kib| format!("{} GiB", kib >> 20));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpus} CPUs ({model}), {memory} RAM, Linux {}",
        kernel.trim()
    )
}

/// The value of the first `name: value` line of a `/proc` text file.
fn proc_field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_are_found_by_name() {
        let text = "processor\t: 0\nmodel name\t: Some CPU @ 2GHz\nMemTotal:  1024 kB\n";
        assert_eq!(proc_field(text, "model name"), Some("Some CPU @ 2GHz"));
        assert_eq!(proc_field(text, "MemTotal"), Some("1024 kB"));
        assert_eq!(proc_field(text, "missing"), None);
        assert!(describe().contains("CPUs"));
    }
}
