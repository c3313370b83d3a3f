//! The default crash-recovery set: a few fixed seeds, each covering one group of fault kinds
//! on a real 3-node cluster, two of them with real workers running the jobs (needs the `steward` binary: `cargo build -p steward-cli` with the
//! same `CARGO_TARGET_DIR`, or `STEWARD_BIN`).

use std::time::Duration;

use steward_tests::cluster::Timing;
use steward_tests::{run, summary_table, Fault, RunConfig};

/// Workload time under faults per seed.
const SEED_DURATION: Duration = Duration::from_secs(10);

fn config(seed: u64, faults: Vec<Fault>, workers: usize, root: &std::path::Path) -> RunConfig {
    RunConfig {
        seed,
        nodes: 3,
        duration: SEED_DURATION,
        faults,
        clients: 4,
        workers,
        keep_data: false,
        root: root.to_owned(),
        timing: Timing::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_seeds_survive_every_fault_kind() {
    let root = std::env::temp_dir().join(format!("steward-harness-{}", std::process::id()));
    // Seeds with one or two kinds each, so every kind is surely drawn, then one mixing all.
    let all = vec![
        Fault::Kill,
        Fault::Pause,
        Fault::TornTail,
        Fault::BitFlip,
        Fault::Partition,
        Fault::Clock,
        Fault::PowerLoss,
    ];
    // (seed, kinds, workers, every kind must be drawn)
    let cases = [
        (101, vec![Fault::Kill, Fault::Pause], 0, true),
        (102, vec![Fault::TornTail], 0, true),
        (103, vec![Fault::BitFlip], 0, true),
        (105, vec![Fault::Partition, Fault::Clock], 0, true),
        (106, vec![Fault::PowerLoss], 0, true),
        (107, vec![Fault::Kill], 2, true),
        (104, all, 2, false),
    ];
    let mut summaries = Vec::new();
    for (seed, faults, workers, every_kind_drawn) in cases {
        let kinds: Vec<&str> = faults.iter().map(|f| f.name()).collect();
        let kinds = if every_kind_drawn { kinds } else { Vec::new() };
        let summary = run(&config(seed, faults, workers, &root))
            .await
            .unwrap_or_else(|err| panic!("seed {seed}: {err:#}"));
        assert!(summary.violations.is_empty(), "{}", summary.report);
        for kind in kinds {
            assert!(
                summary.faults.get(kind).copied().unwrap_or(0) > 0,
                "seed {seed} injected no {kind}"
            );
        }
        assert!(
            summary.acknowledged > 0,
            "seed {seed}: nothing acknowledged"
        );
        if workers > 0 {
            assert!(
                summary.extended > 0,
                "seed {seed}: no job was granted an extension"
            );
        }
        summaries.push(summary);
    }
    eprintln!("{}", summary_table(&summaries));
    // Best effort: only emptied directories are left behind on success.
    let _removed = std::fs::remove_dir_all(&root);
}
