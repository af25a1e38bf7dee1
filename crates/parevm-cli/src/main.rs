//! `parevm`: run ethereum/tests state tests and real mainnet blocks through the parallel
//! executor, checking it against the expected results and the sequential executor.

mod analyze;
mod bench;
mod block;
mod statetest;
mod timing;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Block-STM allocates per incarnation on every worker and frees across threads: glibc's
/// allocator serializes that, mimalloc does not (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The parevm command line.
#[derive(Debug, Parser)]
#[command(name = "parevm", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmark built-in workloads and mainnet blocks: baseline revm, sequential, parallel.
    Bench(bench::Args),
    /// Run GeneralStateTests JSON files through the parallel executor (Block-STM, or `--strategy`).
    Statetest(statetest::Args),
    /// Execute mainnet block fixtures sequentially and in parallel, compare the two and the
    /// header.
    Block(block::Args),
    /// Trace blocks' reads and writes: dependency graph, critical path, hot locations, and a
    /// simulated Block-STM schedule at several thread counts.
    Analyze(analyze::Args),
}

/// The parallel executor for `--threads` (default: all cores) running `strategy`, its workers
/// placed as `placement`.
pub(crate) fn executor(
    threads: Option<std::num::NonZeroUsize>,
    strategy: StrategyArg,
    placement: PlacementArg,
) -> parevm::ParallelExecutor {
    let concurrency = threads.unwrap_or_else(|| {
        std::thread::available_parallelism().unwrap_or(std::num::NonZeroUsize::MIN)
    });
    parevm::ParallelExecutor::with_placement(
        parevm::ExecutorConfig {
            concurrency,
            strategy: strategy.into(),
        },
        placement.into(),
    )
}

/// `--placement`: where the parallel executor's worker threads run.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub(crate) enum PlacementArg {
    /// Each worker bound to its own core; the calling thread works beside those of the other
    /// cores.
    #[default]
    Pinned,
    /// Wherever the operating system puts them; the calling thread works beside them.
    Free,
}

impl From<PlacementArg> for parevm::WorkerPlacement {
    fn from(placement: PlacementArg) -> Self {
        match placement {
            PlacementArg::Pinned => Self::Pinned,
            PlacementArg::Free => Self::Free,
        }
    }
}

/// `--strategy`: how the parallel executor runs each block.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub(crate) enum StrategyArg {
    /// Chosen per block by the executor.
    #[default]
    Auto,
    /// One transaction after another.
    Sequential,
    /// Block-STM on every block.
    BlockStm,
    /// Speculation and in-order commit on every block.
    Pipeline,
}

impl From<StrategyArg> for parevm::Strategy {
    fn from(strategy: StrategyArg) -> Self {
        match strategy {
            StrategyArg::Auto => Self::Auto,
            StrategyArg::Sequential => Self::Sequential,
            StrategyArg::BlockStm => Self::BlockStm,
            StrategyArg::Pipeline => Self::Pipeline,
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Bench(args) => bench::run(&args),
        Command::Statetest(args) => statetest::run(&args),
        Command::Block(args) => block::run(&args),
        Command::Analyze(args) => analyze::run(&args),
    }
}
