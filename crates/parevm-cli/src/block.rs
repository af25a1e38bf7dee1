//! `parevm block`: mainnet block fixtures, sequentially and in parallel, compared with each other
//! and with the header.

use std::{num::NonZeroUsize, path::PathBuf, process::ExitCode, time::Instant};

use parevm::{
    BlockOutput, ChainSpec, ExecutionError, ExecutionStats, ParallelExecutor, execute_sequential,
};
use parevm_workloads::mainnet::{HeaderCheck, MainnetBlock, load_block};
use serde_json::json;

use crate::timing::{median, millis};

/// Arguments of `parevm block`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Block directories (each with block.json and pre_state.json; bytecodes.json and
    /// block_hashes.json there or two levels up).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Worker threads of the parallel executor (default: all cores).
    #[arg(long)]
    threads: Option<NonZeroUsize>,
    /// How the parallel executor runs each block: chosen per block (`auto`), or one strategy on
    /// every block.
    #[arg(long, value_enum, default_value_t = crate::StrategyArg::Auto)]
    strategy: crate::StrategyArg,
    /// Where the parallel executor's worker threads run: each bound to its own core (`pinned`),
    /// or wherever the operating system puts them (`free`).
    #[arg(long, value_enum, default_value_t = crate::PlacementArg::Pinned)]
    placement: crate::PlacementArg,
    /// Timed runs of each executor per block, after one untimed warm-up run; the median is
    /// reported.
    #[arg(long, default_value = "3")]
    runs: NonZeroUsize,
    /// One JSON object per line per block instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `f` once untimed, then `runs` times; returns the last result and the median time in
/// milliseconds.
fn timed<T>(runs: NonZeroUsize, mut f: impl FnMut() -> T) -> (T, f64) {
    let mut result = f();
    let mut times = Vec::with_capacity(runs.get());
    for _ in 0..runs.get() {
        let start = Instant::now();
        let output = f();
        times.push(millis(start));
        // Dropping the previous result outside the timed window.
        result = output;
    }
    (result, median(&mut times))
}

/// Both executions of one block.
struct Run {
    block: MainnetBlock,
    threads: usize,
    sequential: Result<BlockOutput, ExecutionError>,
    sequential_ms: f64,
    parallel: Result<BlockOutput, ExecutionError>,
    parallel_ms: f64,
    stats: ExecutionStats,
}

impl Run {
    fn execute(block: MainnetBlock, executor: &ParallelExecutor, runs: NonZeroUsize) -> Self {
        let chain = ChainSpec::mainnet();
        let (sequential, sequential_ms) = timed(runs, || {
            execute_sequential(&chain, &block.block, &block.storage)
        });
        let ((parallel, stats), parallel_ms) = timed(runs, || {
            executor.execute_strict(&chain, &block.block, &block.storage)
        });
        Self {
            threads: executor.config().concurrency.get(),
            block,
            sequential,
            sequential_ms,
            parallel,
            parallel_ms,
            stats,
        }
    }

    fn equal(&self) -> bool {
        match (&self.sequential, &self.parallel) {
            (Ok(sequential), Ok(parallel)) => sequential == parallel,
            (Err(sequential), Err(parallel)) => sequential.to_string() == parallel.to_string(),
            _ => false,
        }
    }

    fn speedup(&self) -> f64 {
        if self.parallel_ms > 0.0 {
            self.sequential_ms / self.parallel_ms
        } else {
            0.0
        }
    }

    /// The header check of the parallel output (`None` when it failed).
    fn header_check(&self) -> Option<HeaderCheck> {
        self.parallel
            .as_ref()
            .ok()
            .map(|output| self.block.check_header(output))
    }

    /// Error lines: execution errors, a parallel/sequential difference, header mismatches.
    fn problems(&self) -> Vec<String> {
        let number = self.block.number();
        let mut problems = Vec::new();
        if let Err(error) = &self.sequential {
            problems.push(format!(
                "block {number}: sequential execution failed: {error}"
            ));
        }
        if let Err(error) = &self.parallel {
            problems.push(format!(
                "block {number}: parallel execution failed: {error}"
            ));
        }
        if !self.equal() {
            problems.push(format!(
                "block {number}: parallel output differs from sequential{}",
                first_difference(&self.sequential, &self.parallel)
            ));
        }
        if let Some(check) = self.header_check() {
            problems.extend(
                check
                    .mismatches
                    .iter()
                    .map(|mismatch| format!("block {number}: {mismatch}")),
            );
        }
        problems
    }
}

/// Where two outputs first differ, for the error message (empty when one is an error).
fn first_difference(
    sequential: &Result<BlockOutput, ExecutionError>,
    parallel: &Result<BlockOutput, ExecutionError>,
) -> String {
    match (sequential, parallel) {
        (Ok(sequential), Ok(parallel)) => sequential
            .first_difference(parallel)
            .map(|difference| format!(": {difference}"))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

pub(crate) fn run(args: &Args) -> ExitCode {
    let executor = crate::executor(args.threads, args.strategy, args.placement);
    if !args.json {
        println!(
            "{:>10} {:>5} {:>11} {:>7} {:>13} {:>11} {:>7} {:>5}  header check",
            "block", "txs", "gas", "threads", "sequential_ms", "parallel_ms", "speedup", "equal"
        );
    }
    let mut ok = true;
    for dir in &args.dirs {
        let block = match load_block(dir) {
            Ok(block) => block,
            Err(error) => {
                ok = false;
                if args.json {
                    println!(
                        "{}",
                        json!({ "dir": dir.display().to_string(), "error": error.to_string() })
                    );
                }
                eprintln!("error: {error}");
                continue;
            }
        };
        let run = Run::execute(block, &executor, args.runs);
        let problems = run.problems();
        ok &= problems.is_empty();
        if args.json {
            println!("{}", json_line(&run, &problems));
        } else {
            print_row(&run);
        }
        for problem in &problems {
            eprintln!("error: {problem}");
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn header_summary(check: Option<&HeaderCheck>) -> String {
    let Some(check) = check else {
        return "not checked (execution failed)".into();
    };
    let fields: Vec<&str> = check.checked.iter().map(|field| field.name()).collect();
    let mut summary = if check.matches() {
        format!("ok ({})", fields.join(", "))
    } else {
        let bad: Vec<&str> = check
            .mismatches
            .iter()
            .map(|mismatch| mismatch.field.name())
            .collect();
        format!("MISMATCH ({})", bad.join(", "))
    };
    for note in &check.notes {
        summary.push_str("; ");
        summary.push_str(note);
    }
    summary
}

fn print_row(run: &Run) {
    let gas = run
        .parallel
        .as_ref()
        .map_or(run.block.expected_gas_used(), |output| output.gas_used);
    println!(
        "{:>10} {:>5} {:>11} {:>7} {:>13.3} {:>11.3} {:>7.2} {:>5}  {}",
        run.block.number(),
        run.block.block.body.transactions.len(),
        gas,
        run.threads,
        run.sequential_ms,
        run.parallel_ms,
        run.speedup(),
        if run.equal() { "yes" } else { "NO" },
        header_summary(run.header_check().as_ref()),
    );
}

fn json_line(run: &Run, problems: &[String]) -> serde_json::Value {
    let check = run.header_check();
    json!({
        "block": run.block.number(),
        "dir": run.block.dir.display().to_string(),
        "txs": run.block.block.body.transactions.len(),
        "gas_used": run.parallel.as_ref().ok().map(|output| output.gas_used),
        "expected_gas_used": run.block.expected_gas_used(),
        "threads": run.threads,
        "sequential_ms": run.sequential_ms,
        "parallel_ms": run.parallel_ms,
        "speedup": run.speedup(),
        "parallel_equals_sequential": run.equal(),
        "matches_header": check.as_ref().is_some_and(HeaderCheck::matches),
        "checked": check.as_ref().map_or_else(Vec::new, |check| {
            check.checked.iter().map(|field| field.name()).collect()
        }),
        "mismatches": check.as_ref().map_or_else(Vec::new, |check| {
            check.mismatches.iter().map(|mismatch| json!({
                "field": mismatch.field.name(),
                "expected": mismatch.expected,
                "actual": mismatch.actual,
            })).collect()
        }),
        "notes": check.as_ref().map_or_else(Vec::new, |check| check.notes.clone()),
        "uncle_count": run.block.uncle_count,
        "stats": {
            "executions": run.stats.executions,
            "validations": run.stats.validations,
            "aborts": run.stats.aborts,
            "strategy": run.stats.strategy.to_string(),
            "sequential_reason": run.stats.sequential_reason,
        },
        "errors": problems,
    })
}
