//! `steward-harness`: runs seeds of the crash-recovery harness and prints a summary table.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Parser;
use steward_tests::cluster::Timing;
use steward_tests::{run, summary_table, Fault, RunConfig};

/// Crash-recovery harness for steward (see docs/harness.md).
#[derive(Debug, Parser)]
struct Args {
    /// One seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// A range of seeds, `A..B` (B excluded).
    #[arg(long)]
    seeds: Option<String>,
    /// Managers: 3 or 5.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Workload duration under faults (`60s`, `10m`, `500ms`).
    #[arg(long, default_value = "60s")]
    duration: String,
    /// Fault kinds, comma-separated: kill,pause,torn-tail,bitflip,partition,clock,power-loss
    /// (and the checker self-test lose-tail).
    #[arg(
        long,
        default_value = "kill,pause,torn-tail,bitflip,partition,clock,power-loss"
    )]
    faults: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Real worker processes running the jobs: a number (0: clients complete jobs through the
    /// test-only route), or `auto`: 2 for odd seeds, 0 for even ones.
    #[arg(long, default_value = "auto")]
    workers: String,
    /// Keep data directories of passing seeds too.
    #[arg(long)]
    keep_data: bool,
    /// Where run directories go.
    #[arg(long, default_value = "./harness-runs")]
    dir: PathBuf,
    /// Loopback ports for the nodes, `A..B` (default 20000..32000). Give each harness process
    /// running at the same time its own range.
    #[arg(long)]
    ports: Option<String>,
    /// WAL sync policy of the nodes (`never` only to show the harness catches lost writes).
    #[arg(long, default_value = "always")]
    sync_policy: String,
}

fn seeds(args: &Args) -> anyhow::Result<Vec<u64>> {
    match (&args.seed, &args.seeds) {
        (Some(seed), _) => Ok(vec![*seed]),
        (None, Some(range)) => {
            let (a, b) = range.split_once("..").context("--seeds takes A..B")?;
            Ok((a.parse()?..b.parse()?).collect())
        }
        (None, None) => bail!("give --seed S or --seeds A..B"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.nodes != 3 && args.nodes != 5 {
        bail!("--nodes must be 3 or 5");
    }
    let faults = args
        .faults
        .split(',')
        .filter(|f| !f.is_empty())
        .map(Fault::parse)
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(range) = &args.ports {
        let (floor, ceiling) = range.split_once("..").context("--ports takes A..B")?;
        steward_tests::cluster::use_ports(floor.parse()?, ceiling.parse()?)?;
    }
    let sync_policy = match args.sync_policy.as_str() {
        "always" => "always",
        "batch" => "batch",
        "never" => "never",
        other => bail!("unknown sync policy `{other}`"),
    };
    let duration = steward_node::api::parse_duration("duration", &args.duration)
        .map_err(|err| anyhow::anyhow!("--duration: {err:?}"))?;
    let workers = |seed: u64| -> anyhow::Result<usize> {
        match args.workers.as_str() {
            "auto" => Ok(if seed % 2 == 1 { 2 } else { 0 }),
            count => count.parse().context("--workers takes a number or `auto`"),
        }
    };
    let mut summaries = Vec::new();
    let mut failed = false;
    let mut errors = Vec::new();
    for seed in seeds(&args)? {
        let config = RunConfig {
            seed,
            nodes: args.nodes,
            duration,
            faults: faults.clone(),
            clients: args.clients,
            workers: workers(seed)?,
            keep_data: args.keep_data,
            root: args.dir.clone(),
            timing: Timing {
                sync_policy,
                ..Timing::default()
            },
        };
        // A harness error (a node that would not start, a fault that could not be set up) is
        // not a verdict on the system; it is reported and the next seed runs.
        let summary = match run(&config).await {
            Ok(summary) => summary,
            Err(err) => {
                eprintln!("seed {seed}: harness error: {err:#}");
                errors.push(format!("seed {seed}: {err:#}"));
                continue;
            }
        };
        if !summary.violations.is_empty() {
            failed = true;
            eprintln!("{}", summary.report);
        }
        summaries.push(summary);
        println!("{}", summary_table(&summaries[summaries.len() - 1..]));
    }
    println!("{}", summary_table(&summaries));
    for error in &errors {
        println!("harness error (no verdict): {error}");
    }
    if failed {
        bail!("violations found (seeds above; data directories kept)");
    }
    if !errors.is_empty() {
        bail!("{} seed(s) ended in a harness error (above)", errors.len());
    }
    Ok(())
}
