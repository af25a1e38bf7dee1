//! `parevm statetest`: every case of the given state-test files through the parallel executor.

use std::{
    collections::BTreeMap,
    io::Write,
    num::NonZeroUsize,
    path::PathBuf,
    process::ExitCode,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use parevm::{ExecutorConfig, ParallelExecutor};
use parevm_workloads::statetest::{
    CaseOutcome, FileReport, SkipList, Summary, collect_files, run_file,
};

/// Arguments of `parevm statetest`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// State-test JSON files, or directories searched recursively for them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Worker threads of the parallel executor for each case (files run concurrently on all
    /// cores).
    #[arg(long, default_value = "2")]
    threads: NonZeroUsize,
    /// The parallel engine every case runs through.
    #[arg(long, value_enum, default_value_t = crate::StrategyArg::BlockStm)]
    strategy: crate::StrategyArg,
    /// A skip list to use instead of the built-in one (`PATTERN  REASON` per line).
    #[arg(long)]
    skip_list: Option<PathBuf>,
}

/// What the workers accumulate.
#[derive(Default)]
struct Totals {
    summary: Summary,
    /// Skip reason -> number of cases.
    skips: BTreeMap<String, usize>,
}

pub(crate) fn run(args: &Args) -> ExitCode {
    let skips = match load_skips(args) {
        Ok(skips) => skips,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let files = match collect_files(&args.paths) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(files.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let totals = Mutex::new(Totals::default());
    let config = ExecutorConfig {
        concurrency: args.threads,
        strategy: args.strategy.into(),
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let executor = ParallelExecutor::new(config);
                let execute =
                    |chain: &_, block: &_, storage: &_| executor.execute(chain, block, storage);
                while let Some(path) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let report = run_file(path, &skips, &execute);
                    record(&report, &totals);
                }
            });
        }
    });
    let totals = totals
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for (reason, count) in &totals.skips {
        println!("skipped {count} case(s): {reason}");
    }
    println!("{}", totals.summary);
    if totals.summary.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn load_skips(args: &Args) -> Result<SkipList, String> {
    match &args.skip_list {
        None => SkipList::builtin().map_err(|error| format!("built-in skip list: {error}")),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("{}: {error}", path.display()))?;
            SkipList::parse(&text).map_err(|error| format!("{}: {error}", path.display()))
        }
    }
}

/// Prints a file's failures and adds its counts to the totals.
fn record(report: &FileReport, totals: &Mutex<Totals>) {
    let lines = report.failure_lines();
    if !lines.is_empty() {
        let mut out = std::io::stdout().lock();
        for line in lines {
            // A closed stdout (e.g. piped into `head`) must not abort the run.
            let _ = writeln!(out, "{line}");
        }
    }
    let mut totals = totals
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    totals.summary.add(report);
    if let Some(entry) = &report.skipped_by
        && report.cases.is_empty()
    {
        *totals
            .skips
            .entry(format!("skip list ({}): {}", entry.pattern, entry.reason))
            .or_default() += 1;
    }
    for case in &report.cases {
        if let CaseOutcome::Skipped(reason) = &case.outcome {
            *totals.skips.entry(reason.clone()).or_default() += 1;
        }
    }
}
