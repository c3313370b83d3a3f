//! CPU time of a process from `/proc/<pid>/stat`: the benchmarks' one way of counting CPU, for
//! this process (`steward bench wal`) and for the servers under load (`steward bench cluster`).

use std::path::Path;
use std::time::Duration;

/// Clock ticks per second of the times in `/proc/*/stat` (`USER_HZ`, fixed at 100 in the Linux
/// ABI whatever the kernel's internal tick rate).
const PROC_TICKS_PER_SECOND: u64 = 100;

/// User + system CPU time of the process whose `stat` file is `stat_path` (all its threads,
/// exited ones included), or `None` when it cannot be read (the process is gone).
pub fn cpu_time(stat_path: &Path) -> Option<Duration> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the parenthesised command name start at field 3 (state); utime and stime are
    // fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (user + system) * 1000 / PROC_TICKS_PER_SECOND,
    ))
}

/// CPU time of this process so far.
pub fn own_cpu_time() -> Option<Duration> {
    cpu_time(Path::new("/proc/self/stat"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_reads_this_process_and_not_a_missing_one() {
        let before = own_cpu_time().unwrap();
        // Spin until the kernel has charged at least one more tick (bounded: 10 s of wall time
        // is ample even on a machine whose CPUs are shared with other work).
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        while own_cpu_time().unwrap() == before && std::time::Instant::now() < give_up {}
        assert!(own_cpu_time().unwrap() > before);
        assert_eq!(cpu_time(Path::new("/proc/0/stat")), None);
    }
}
