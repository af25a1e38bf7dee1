//! `parevm bench`: built-in synthetic workloads and the shared mainnet blocks, executed by plain
//! revm (baseline), parevm sequentially and parevm in parallel, side by side, with the parallel
//! output checked against the sequential one on every run.

use std::{
    io::Write,
    num::NonZeroUsize,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use parevm::{
    BlockOutput, ChainSpec, ExecutionStats, InMemoryStorage, ParallelExecutor,
    alloy_consensus::{Block, TxEnvelope, transaction::Recovered},
    alloy_primitives::{B256, keccak256},
    execute_sequential,
};
use parevm_workloads::{baseline::run_revm, synthetic};
use serde_json::json;

use crate::timing::{median, millis, parallel_capacity, quantile, run_order};

/// Arguments of `parevm bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workloads to run (repeatable): a synthetic name, `mainnet` (every shared block) or
    /// `mainnet/<number>`. Default: every synthetic workload, then every mainnet block.
    #[arg(long = "workload")]
    workloads: Vec<String>,
    /// Worker threads of the parallel executor (default: all cores). A comma-separated list
    /// (`2,4,8,16`) measures one parallel executor per count beside the same baseline and
    /// sequential runs: a scaling table from one build of each workload.
    #[arg(long, value_delimiter = ',')]
    threads: Vec<NonZeroUsize>,
    /// How the parallel executor runs each block: chosen per block (`auto`), or one strategy on
    /// every block. A comma-separated list measures each, at each thread count.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "auto")]
    strategy: Vec<crate::StrategyArg>,
    /// Where the parallel executor's worker threads run: each bound to its own core (`pinned`),
    /// or wherever the operating system puts them (`free`).
    #[arg(long, value_enum, default_value_t = crate::PlacementArg::Pinned)]
    placement: crate::PlacementArg,
    /// Runs of each executor per workload (at least); medians are reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Milliseconds each executor runs per workload (at least): a short block runs more than
    /// `--repeat` times, so that its median is not one timer tick's noise. 0: exactly `--repeat`.
    #[arg(long, default_value_t = 100)]
    min_ms: u64,
    /// Milliseconds of idleness before each timed run (0: none): each run then starts as a node
    /// meets a block, its threads asleep and its caches cooled. Sleeps do not count toward
    /// `--min-ms`; pair with `--min-ms 0 --repeat N`.
    #[arg(long, default_value_t = 0)]
    idle_ms: u64,
    /// Gas budget of each synthetic block.
    #[arg(long, default_value_t = 1_000_000_000)]
    gas: u64,
    /// Seed of the synthetic generators.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fixtures directory (default: $PAREVM_FIXTURES, else ../shared/fixtures).
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// One JSON object per line per workload instead of a table.
    #[arg(long)]
    json: bool,
}

/// A block to benchmark.
struct Workload {
    chain: ChainSpec,
    block: Block<Recovered<TxEnvelope>>,
    storage: InMemoryStorage,
}

/// One parallel executor measured, and the strategy asked of it (its thread count is in its
/// configuration; a block may use fewer, or run sequentially).
struct Configured {
    /// The strategy asked for.
    strategy: crate::StrategyArg,
    executor: ParallelExecutor,
}

impl Configured {
    /// The thread count asked for.
    fn threads(&self) -> NonZeroUsize {
        self.executor.config().concurrency
    }
}

/// Medians of one workload: the baseline and sequential runs, and each parallel executor's.
struct Measurement {
    txs: usize,
    gas_used: u64,
    baseline_ms: f64,
    sequential_ms: f64,
    /// Runs of each executor.
    runs: usize,
    /// One per parallel executor, in the order given.
    parallel: Vec<ParallelMeasurement>,
}

/// Medians of one parallel executor on one workload.
struct ParallelMeasurement {
    parallel_ms: f64,
    /// Quartiles (first, median, third) of the rounds' own speedups.
    round_speedups: [f64; 3],
    stats: ExecutionStats,
}

/// The most runs of each executor per workload, whatever `--min-ms` asks.
const MAX_RUNS: usize = 10_000;

/// Runs the baseline, the sequential executor and each parallel executor once untimed (a warm-up:
/// the first workload of a run otherwise paid for the worker threads' first start and the heaps'
/// growth), then in turn, `repeat` times or more: until sequential execution has run `min_ms` in
/// all (at most [`MAX_RUNS`] times); each timed run after `idle` of sleep. Every parallel output
/// is checked against the sequential one.
fn measure(
    workload: &Workload,
    executors: &[Configured],
    repeat: usize,
    (min_ms, idle): (u64, Duration),
) -> Result<Measurement, String> {
    let (mut baseline, mut sequential) = (Vec::new(), Vec::new());
    let mut parallel: Vec<Vec<f64>> = vec![Vec::new(); executors.len()];
    let mut stats = vec![ExecutionStats::default(); executors.len()];
    let mut txs_and_gas = (0, 0);
    let mut sequential_total_ms = 0.0;
    let runs_per_round = executors.len() + 2;
    // Errors surface in the timed rounds, which run the same.
    let _ = run_revm(&workload.chain, &workload.block, &workload.storage);
    let _ = execute_sequential(&workload.chain, &workload.block, &workload.storage);
    for configured in executors {
        let _ = (configured.executor).execute(&workload.chain, &workload.block, &workload.storage);
    }
    let mut round = 0;
    while round < repeat.max(1) || (round < MAX_RUNS && sequential_total_ms < min_ms as f64) {
        // The order changes every round: a run's place (what ran just before it, what the
        // allocator and the caches hold) biased the third executor by 2-5% on sub-millisecond
        // blocks when the order was fixed.
        let mut expected = None;
        let mut actual = vec![None; executors.len()];
        for run in run_order(round, runs_per_round) {
            if !idle.is_zero() {
                std::thread::sleep(idle);
            }
            // Each run starts with no earlier output alive (as in a node, which consumes a
            // block's output before the next): outputs are fingerprinted, then dropped untimed.
            match run {
                0 => {
                    let start = Instant::now();
                    run_revm(&workload.chain, &workload.block, &workload.storage)
                        .map_err(|error| format!("baseline: {error}"))?;
                    baseline.push(millis(start));
                }
                1 => {
                    let start = Instant::now();
                    let output =
                        execute_sequential(&workload.chain, &workload.block, &workload.storage)
                            .map_err(|error| format!("sequential: {error}"))?;
                    let elapsed = millis(start);
                    sequential.push(elapsed);
                    sequential_total_ms += elapsed;
                    txs_and_gas = (output.receipts.len(), output.gas_used);
                    expected = Some(fingerprint(output));
                }
                _ => {
                    let index = run - 2;
                    let start = Instant::now();
                    // Strict: an engine's internal failure stops the benchmark, rather than
                    // timing its sequential re-execution.
                    let configured = &executors[index];
                    let (result, run_stats) = configured.executor.execute_strict(
                        &workload.chain,
                        &workload.block,
                        &workload.storage,
                    );
                    parallel[index].push(millis(start));
                    actual[index] = Some(fingerprint(result.map_err(|error| {
                        format!(
                            "parallel ({} threads, {}): {error}",
                            configured.threads(),
                            strategy_name(configured.strategy)
                        )
                    })?));
                    stats[index] = run_stats;
                }
            }
        }
        if let Some(index) = actual.iter().position(|actual| *actual != expected) {
            let configured = &executors[index];
            return Err(format!(
                "parallel output ({} threads, {}) differs from sequential",
                configured.threads(),
                strategy_name(configured.strategy)
            ));
        }
        round += 1;
    }
    let (txs, gas_used) = txs_and_gas;
    let parallel = (parallel.into_iter().zip(stats))
        .map(|(mut times, stats)| {
            // Each round's own ratio: drift of the host between rounds hits both of its runs
            // alike.
            let mut ratios: Vec<f64> = (sequential.iter().zip(&times))
                .map(|(sequential, parallel)| sequential / parallel)
                .collect();
            ratios.sort_by(f64::total_cmp);
            ParallelMeasurement {
                round_speedups: [0.25, 0.5, 0.75].map(|q| quantile(&ratios, q)),
                parallel_ms: median(&mut times),
                stats,
            }
        })
        .collect();
    Ok(Measurement {
        txs,
        gas_used,
        runs: sequential.len(),
        baseline_ms: median(&mut baseline),
        sequential_ms: median(&mut sequential),
        parallel,
    })
}

/// The name of a strategy as `--strategy` takes it.
fn strategy_name(strategy: crate::StrategyArg) -> String {
    clap::ValueEnum::to_possible_value(&strategy)
        .map(|value| value.get_name().to_owned())
        .unwrap_or_default()
}

/// A digest of everything in an output (its `Debug` rendering is canonical), consuming it.
fn fingerprint(output: BlockOutput) -> B256 {
    keccak256(format!("{output:?}"))
}

/// The fixtures directory: the flag, else `$PAREVM_FIXTURES`, else `../shared/fixtures`.
pub(crate) fn fixtures_dir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("PAREVM_FIXTURES").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/fixtures"))
}

/// The names to run, expanded (`mainnet` → every block found).
fn expand(args: &Args, fixtures: &Path) -> (Vec<String>, Vec<String>) {
    let mut notes = Vec::new();
    let blocks_dir = fixtures.join("mainnet/blocks");
    let mut mainnet: Vec<u64> = std::fs::read_dir(&blocks_dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    mainnet.sort_unstable();
    let requested: Vec<String> = if args.workloads.is_empty() {
        let mut all: Vec<String> = synthetic::NAMES
            .iter()
            .map(|name| name.to_string())
            .collect();
        all.push("mainnet".into());
        all
    } else {
        args.workloads.clone()
    };
    let mut names = Vec::new();
    for name in requested {
        if name == "mainnet" {
            if mainnet.is_empty() {
                notes.push(format!(
                    "mainnet blocks skipped: no fixtures under {} (use --fixtures or PAREVM_FIXTURES)",
                    blocks_dir.display()
                ));
            }
            names.extend(mainnet.iter().map(|number| format!("mainnet/{number}")));
        } else {
            names.push(name);
        }
    }
    (names, notes)
}

fn load(name: &str, args: &Args, fixtures: &Path) -> Result<Workload, String> {
    if let Some(number) = name.strip_prefix("mainnet/") {
        let block =
            parevm_workloads::mainnet::load_block(&fixtures.join("mainnet/blocks").join(number))
                .map_err(|error| error.to_string())?;
        return Ok(Workload {
            chain: ChainSpec::mainnet(),
            block: block.block,
            storage: block.storage,
        });
    }
    let workload = synthetic::workload(name, args.gas, args.seed).ok_or_else(|| {
        format!(
            "unknown workload {name:?} (known: {}, mainnet, mainnet/<n>)",
            synthetic::NAMES.join(", ")
        )
    })?;
    Ok(Workload {
        chain: workload.chain,
        block: workload.block,
        storage: workload.storage,
    })
}

/// Runs `parevm bench`.
pub(crate) fn run(args: &Args) -> ExitCode {
    let fixtures = fixtures_dir(args.fixtures.as_deref());
    let thread_counts: Vec<Option<NonZeroUsize>> = if args.threads.is_empty() {
        vec![None]
    } else {
        args.threads.iter().copied().map(Some).collect()
    };
    let executors: Vec<Configured> = (thread_counts.iter())
        .flat_map(|threads| {
            (args.strategy.iter()).map(move |strategy| Configured {
                strategy: *strategy,
                executor: crate::executor(*threads, *strategy, args.placement),
            })
        })
        .collect();
    let (names, notes) = expand(args, &fixtures);
    // The host's parallel capacity is measured at the most threads any executor has.
    let capacity_threads = (executors.iter())
        .map(|configured| configured.threads().get())
        .max()
        .unwrap_or(1);
    let mut capacities = Vec::new();
    for note in &notes {
        eprintln!("{note}");
    }
    if !args.json {
        println!(
            "{:<22} {:>7} {:>14} {:>3} {:>11} {:>11} {:>11} {:>7} {:>7} {:>6} {:>6}  strategy",
            "workload",
            "txs",
            "gas",
            "thr",
            "baseline_ms",
            "seq_ms",
            "par_ms",
            "speedup",
            "Ggas/s",
            "exec/tx",
            "val/tx"
        );
    }
    let mut failed = false;
    // Mainnet speedups, per executor.
    let mut mainnet = vec![Vec::new(); executors.len()];
    // Speedups of the other workloads, one per executor: the summary table.
    let mut others: Vec<(String, Vec<f64>)> = Vec::new();
    for (index, name) in names.iter().enumerate() {
        eprint!("\r[{}/{}] {name:<30}", index + 1, names.len());
        let _ = std::io::stderr().flush();
        let result = load(name, args, &fixtures).and_then(|workload| {
            // The host's parallel capacity just before and just after.
            let before = parallel_capacity(capacity_threads);
            let measurement = measure(
                &workload,
                &executors,
                args.repeat,
                (args.min_ms, Duration::from_millis(args.idle_ms)),
            )?;
            Ok((measurement, [before, parallel_capacity(capacity_threads)]))
        });
        let (measurement, host_capacity) = match result {
            Ok(measurement) => measurement,
            Err(error) => {
                eprintln!("\r{name}: error: {error}");
                failed = true;
                continue;
            }
        };
        eprint!("\r");
        capacities.extend(host_capacity);
        if !name.starts_with("mainnet/") {
            let speedups = (measurement.parallel.iter())
                .map(|parallel| measurement.sequential_ms / parallel.parallel_ms)
                .collect();
            others.push((name.clone(), speedups));
        }
        for (configured, (parallel, mainnet)) in executors
            .iter()
            .zip(measurement.parallel.iter().zip(&mut mainnet))
        {
            let speedup = measurement.sequential_ms / parallel.parallel_ms;
            if name.starts_with("mainnet/") {
                mainnet.push(speedup);
            }
            print_row(
                args,
                name,
                (&measurement, host_capacity),
                configured,
                parallel,
            );
        }
    }
    eprint!("\r{:60}\r", "");
    if !args.json && executors.len() > 1 {
        let geomeans: Vec<f64> = mainnet.iter().map(|speedups| geomean(speedups)).collect();
        if !mainnet[0].is_empty() {
            others.push(("mainnet (geometric mean)".into(), geomeans));
        }
        print!("\n{}", speedup_table(&executors, &others));
    }
    if !args.json {
        for (configured, speedups) in executors.iter().zip(&mainnet) {
            if speedups.is_empty() {
                continue;
            }
            let geomean = geomean(speedups);
            let worst = speedups.iter().copied().fold(f64::INFINITY, f64::min);
            let config = if executors.len() > 1 {
                format!(
                    " ({} threads, {})",
                    configured.threads(),
                    strategy_name(configured.strategy)
                )
            } else {
                String::new()
            };
            println!(
                "mainnet{config}: {} blocks, geometric mean speedup {geomean:.2}, worst {worst:.2}",
                speedups.len()
            );
        }
    }
    if !args.json && !capacities.is_empty() {
        let lowest = capacities.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "host: parallel capacity at {capacity_threads} threads, median {:.2}, lowest {lowest:.2} \
             (one thread's work done at once; measured before and after each workload)",
            median(&mut capacities)
        );
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The geometric mean of `values`.
fn geomean(values: &[f64]) -> f64 {
    (values.iter().map(|value| value.ln()).sum::<f64>() / values.len() as f64).exp()
}

/// The speedups of every workload (a row) under every executor (a column, named
/// `threads/strategy`): a scaling table.
fn speedup_table(executors: &[Configured], rows: &[(String, Vec<f64>)]) -> String {
    use std::fmt::Write as _;
    let mut table = format!("{:<26}", "speedup");
    for configured in executors {
        let column = format!(
            "{}/{}",
            configured.threads(),
            strategy_name(configured.strategy)
        );
        let _ = write!(table, " {column:>14}");
    }
    table.push('\n');
    for (name, speedups) in rows {
        let _ = write!(table, "{name:<26}");
        for speedup in speedups {
            let _ = write!(table, " {speedup:>14.2}");
        }
        table.push('\n');
    }
    table
}

/// Prints one row (or JSON line): `configured`'s parallel runs of workload `name`, measured with
/// the host's parallel capacity `host_capacity` before and after.
fn print_row(
    args: &Args,
    name: &str,
    (measurement, host_capacity): (&Measurement, [f64; 2]),
    configured: &Configured,
    parallel: &ParallelMeasurement,
) {
    let speedup = measurement.sequential_ms / parallel.parallel_ms;
    let gigagas_per_s = measurement.gas_used as f64 / (parallel.parallel_ms / 1000.0) / 1e9;
    let txs = measurement.txs.max(1) as f64;
    let stats = &parallel.stats;
    let executions_per_tx = stats.executions as f64 / txs;
    let validations_per_tx = stats.validations as f64 / txs;
    if args.json {
        let line = json!({
            "workload": name,
            "txs": measurement.txs,
            "gas_used": measurement.gas_used,
            "threads": stats.threads,
            "threads_configured": configured.threads(),
            "strategy_requested": strategy_name(configured.strategy),
            "placement": clap::ValueEnum::to_possible_value(&args.placement)
                .map(|value| value.get_name().to_owned()),
            "idle_ms": args.idle_ms,
            "baseline_ms": measurement.baseline_ms,
            "sequential_ms": measurement.sequential_ms,
            "parallel_ms": parallel.parallel_ms,
            "speedup": speedup,
            "sequential_vs_baseline": measurement.sequential_ms / measurement.baseline_ms,
            "runs": measurement.runs,
            "round_speedup_quartiles": parallel.round_speedups,
            "host_parallel_capacity": host_capacity,
            "gigagas_per_s": gigagas_per_s,
            "executions": stats.executions,
            "validations": stats.validations,
            "aborts": stats.aborts,
            "dependency_waits": stats.dependency_waits,
            "sender_waits": stats.sender_waits,
            "left_to_committer": stats.left_to_committer,
            "executions_per_tx": executions_per_tx,
            "validations_per_tx": validations_per_tx,
            "strategy": stats.strategy.to_string(),
            "sequential_reason": stats.sequential_reason,
            "sequential_from": stats.sequential_from,
            "parallel_equals_sequential": true,
        });
        println!("{line}");
    } else {
        let forced = match configured.strategy {
            crate::StrategyArg::Auto => "",
            _ => "forced ",
        };
        println!(
            "{:<22} {:>7} {:>14} {:>3} {:>11.3} {:>11.3} {:>11.3} {:>7.2} {:>7.3} {:>6.2} {:>6.2}  {forced}{}",
            name,
            measurement.txs,
            measurement.gas_used,
            configured.threads(),
            measurement.baseline_ms,
            measurement.sequential_ms,
            parallel.parallel_ms,
            speedup,
            gigagas_per_s,
            executions_per_tx,
            validations_per_tx,
            choice(stats),
        );
    }
}

/// The strategy a block ran with, as the table shows it.
fn choice(stats: &parevm::ExecutionStats) -> String {
    match stats.sequential_from {
        Some(from) => format!("{} (gave way at tx {from})", stats.strategy),
        None => stats.strategy.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        num::NonZeroUsize,
        time::{Duration, Instant},
    };

    use super::{Configured, MAX_RUNS, Workload, measure, speedup_table};
    use crate::{PlacementArg, StrategyArg};

    fn workload() -> Workload {
        let workload = parevm_workloads::synthetic::workload("raw-transfers", 2_100_000, 1)
            .expect("a built-in workload");
        Workload {
            chain: workload.chain,
            block: workload.block,
            storage: workload.storage,
        }
    }

    fn configured(threads: usize, strategy: StrategyArg, placement: PlacementArg) -> Configured {
        let threads = NonZeroUsize::new(threads).unwrap();
        Configured {
            strategy,
            executor: crate::executor(Some(threads), strategy, placement),
        }
    }

    #[test]
    fn short_blocks_run_until_the_minimum_time() {
        let workload = workload();
        let executors = [configured(2, StrategyArg::Auto, PlacementArg::Pinned)];
        let exact = measure(&workload, &executors, 2, (0, Duration::ZERO)).unwrap();
        assert_eq!(exact.runs, 2);
        assert_eq!(exact.txs, 100);
        let [low, middle, high] = exact.parallel[0].round_speedups;
        assert!(
            low > 0.0 && low <= middle && middle <= high,
            "{low} {middle} {high}"
        );
        // Ten times what two runs took: two runs cannot reach it.
        let min_ms = (exact.sequential_ms * 10.0).ceil() as u64 + 1;
        let timed = measure(&workload, &executors, 2, (min_ms, Duration::ZERO)).unwrap();
        assert!(
            timed.runs > 2 && timed.runs <= MAX_RUNS,
            "{} runs",
            timed.runs
        );
    }

    #[test]
    fn idle_runs_sleep_before_each_timed_run() {
        let workload = workload();
        let executors = [configured(2, StrategyArg::Auto, PlacementArg::Free)];
        let idle = Duration::from_millis(5);
        let start = Instant::now();
        let measured = measure(&workload, &executors, 2, (0, idle)).unwrap();
        assert_eq!(measured.runs, 2);
        // Two rounds of three executors, each run after its sleep.
        assert!(start.elapsed() >= idle * 6, "{:?}", start.elapsed());
        // The sleeps are not timed.
        assert!(measured.sequential_ms < 5.0, "{}", measured.sequential_ms);
    }

    #[test]
    fn every_configuration_is_measured_beside_one_sequential_run() {
        let workload = workload();
        let executors = [
            configured(1, StrategyArg::Auto, PlacementArg::Free),
            configured(2, StrategyArg::BlockStm, PlacementArg::Free),
            configured(3, StrategyArg::Pipeline, PlacementArg::Free),
        ];
        let measured = measure(&workload, &executors, 3, (0, Duration::ZERO)).unwrap();
        assert_eq!(measured.runs, 3);
        assert_eq!(measured.parallel.len(), 3);
        let strategies: Vec<String> = (measured.parallel.iter())
            .map(|parallel| parallel.stats.strategy.to_string())
            .collect();
        assert_eq!(strategies, ["sequential", "Block-STM", "pipeline"]);
        assert_eq!(measured.parallel[1].stats.threads, 2);
        assert_eq!(measured.parallel[2].stats.threads, 3);
    }

    #[test]
    fn the_speedup_table_has_a_column_per_configuration() {
        let executors = [
            configured(2, StrategyArg::Auto, PlacementArg::Free),
            configured(4, StrategyArg::BlockStm, PlacementArg::Free),
        ];
        let rows = [("erc20".to_string(), vec![1.5, 2.25])];
        let table = speedup_table(&executors, &rows);
        let lines: Vec<Vec<&str>> = (table.lines())
            .map(|line| line.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines,
            [
                vec!["speedup", "2/auto", "4/block-stm"],
                vec!["erc20", "1.50", "2.25"]
            ]
        );
    }
}
