//! The shared mainnet blocks (`<fixtures>/mainnet/blocks/*`): for each block, the parallel
//! executor at 1, 2 and 8 threads, with each engine forced (Block-STM, the pipeline, the pipeline
//! handing over to Block-STM, Block-STM giving way to sequential execution) and as planned, must
//! equal the sequential executor (and, in the determinism trials, at 2, 4, 8 and 16 threads, 50
//! runs of each engine), and both
//! must match the header (gas used, logs bloom, and the receipts root from Byzantium on); the
//! block's analysis (trace, dependency graph, simulation) must succeed.
//!
//! The fixtures live in `../shared/fixtures` relative to the repository root; `PAREVM_FIXTURES`
//! overrides the path. A missing fixtures directory is a failure, never a silent pass.

use std::{
    num::NonZeroUsize,
    path::{Path, PathBuf},
};

use libtest_mimic::{Arguments, Failed, Trial};
use parevm::{
    ChainSpec, ExecutorConfig, ParallelExecutor, Strategy,
    analysis::{CostModel, DependencyGraph, simulate, trace_block},
    execute_sequential,
};
use parevm_workloads::mainnet::load_block;

const THREADS: [usize; 3] = [1, 2, 8];

fn fixtures_dir() -> PathBuf {
    std::env::var_os("PAREVM_FIXTURES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
        PathBuf::from,
    )
}

fn main() {
    let args = Arguments::from_args();
    libtest_mimic::run(&args, trials()).exit();
}

fn trials() -> Vec<Trial> {
    let blocks = fixtures_dir().join("mainnet/blocks");
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&blocks) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_dir())
            .collect(),
        Err(error) => {
            let message = format!(
                "{}: {error}; set PAREVM_FIXTURES to the shared fixtures directory",
                blocks.display()
            );
            return vec![Trial::test("fixtures", move || Err(message.into()))];
        }
    };
    if dirs.is_empty() {
        let message = format!("no block directories under {}", blocks.display());
        return vec![Trial::test("fixtures", move || Err(message.into()))];
    }
    // Numeric order, so the listing reads like the chain.
    dirs.sort_by_key(|dir| {
        dir.file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    });
    dirs.into_iter()
        .flat_map(|dir| {
            let number = dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let again = dir.clone();
            [
                Trial::test(format!("block_{number}"), move || run_block(&dir)),
                Trial::test(format!("determinism_block_{number}"), move || {
                    run_determinism(&again)
                }),
            ]
        })
        .collect()
}

/// Runs of each thread count in the determinism trials.
const DETERMINISM_RUNS: usize = 50;

/// The block executed `DETERMINISM_RUNS` times at 2, 4, 8 and 16 threads by each engine (at 2 and
/// 8 by the pipeline handing over to Block-STM half-way, and by Block-STM giving way after half as
/// many executions as transactions) gives byte-identical output: the `Debug` rendering of every
/// run equals the sequential one.
fn run_determinism(dir: &Path) -> Result<(), Failed> {
    let block = load_block(dir).map_err(|error| error.to_string())?;
    let chain = ChainSpec::mainnet();
    let expected = format!(
        "{:?}",
        execute_sequential(&chain, &block.block, &block.storage)
    );
    let txs = block.block.body.transactions.len();
    let (half, give_way) = (Strategy::HandOver(txs / 2), Strategy::GiveWayAfter(txs / 2));
    let configs = [Strategy::BlockStm, Strategy::Pipeline]
        .into_iter()
        .flat_map(|strategy| [2, 4, 8, 16].map(|threads| (strategy, threads)))
        .chain([(half, 2), (half, 8), (give_way, 2), (give_way, 8)]);
    for (strategy, threads) in configs {
        let executor = ParallelExecutor::new(ExecutorConfig {
            concurrency: NonZeroUsize::new(threads).expect("non-zero"),
            strategy,
        });
        for run in 0..DETERMINISM_RUNS {
            // Strict: an engine's internal failure is an error, not its sequential re-execution.
            let (output, _) = executor.execute_strict(&chain, &block.block, &block.storage);
            let actual = format!("{output:?}");
            if actual != expected {
                let error = output.err().map(|error| format!(": {error}"));
                return Err(format!(
                    "{strategy} run {run} at {threads} threads differs from sequential{}",
                    error.unwrap_or_default()
                )
                .into());
            }
        }
    }
    Ok(())
}

fn run_block(dir: &Path) -> Result<(), Failed> {
    let block = load_block(dir).map_err(|error| error.to_string())?;
    let chain = ChainSpec::mainnet();
    let sequential = execute_sequential(&chain, &block.block, &block.storage)
        .map_err(|error| format!("sequential execution failed: {error}"))?;
    let mut problems = Vec::new();
    let check = block.check_header(&sequential);
    problems.extend(
        check
            .mismatches
            .iter()
            .map(|mismatch| format!("sequential: {mismatch}")),
    );
    // Each engine forced on every block at each thread count (the pipeline also handing over to
    // Block-STM after a third of the transactions, Block-STM also giving way to sequential
    // execution after half as many executions as transactions), then as users run it (the planner
    // chooses sequential execution, the pipeline — which may hand over — or Block-STM, and
    // Block-STM may give way to sequential execution when conflicts dominate).
    let txs = block.block.body.transactions.len();
    let third = Strategy::HandOver(txs / 3);
    let give_way = Strategy::GiveWayAfter(txs / 2);
    let configs = [Strategy::BlockStm, Strategy::Pipeline, third, give_way]
        .into_iter()
        .flat_map(|strategy| THREADS.iter().map(move |threads| (*threads, strategy)))
        .chain([(2, Strategy::Auto), (8, Strategy::Auto)]);
    for (threads, strategy) in configs {
        let executor = ParallelExecutor::new(ExecutorConfig {
            concurrency: NonZeroUsize::new(threads).unwrap_or(NonZeroUsize::MIN),
            strategy,
        });
        let run = format!("{threads} threads ({strategy})");
        // Strict: an engine's internal failure is an error, not its sequential re-execution.
        match executor
            .execute_strict(&chain, &block.block, &block.storage)
            .0
        {
            Err(error) => problems.push(format!("{run}: execution failed: {error}")),
            Ok(parallel) => {
                if parallel != sequential {
                    problems.push(format!("{run}: output differs from sequential"));
                }
                problems.extend(
                    block
                        .check_header(&parallel)
                        .mismatches
                        .iter()
                        .map(|mismatch| format!("{run}: {mismatch}")),
                );
            }
        }
    }
    problems.extend(analysis_problems(&chain, &block, &sequential));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("block {}:\n{}", block.number(), problems.join("\n")).into())
    }
}

/// The block's analysis: the trace's gas per transaction equals the receipts', and the simulation
/// finishes (does not stall) at every thread count.
fn analysis_problems(
    chain: &ChainSpec,
    block: &parevm_workloads::mainnet::MainnetBlock,
    sequential: &parevm::BlockOutput,
) -> Vec<String> {
    let trace = match trace_block(chain, &block.block, &block.storage) {
        Ok(trace) => trace,
        Err(error) => return vec![format!("analysis: trace failed: {error}")],
    };
    let mut problems = Vec::new();
    let traced: Vec<u64> = trace.txs.iter().map(|tx| tx.gas_used).collect();
    let receipts: Vec<u64> = sequential.receipts.iter().map(|r| r.gas_used).collect();
    if traced != receipts {
        problems.push("analysis: traced gas differs from the receipts".to_string());
    }
    let graph = DependencyGraph::new(&trace);
    for threads in [1, 2, 8, 32] {
        if let Err(error) = simulate(&graph, threads, &CostModel::default()) {
            problems.push(format!("analysis: {threads} threads: {error}"));
        }
    }
    problems
}
