//! Public entry point of the parallel engine: runs Block-STM workers over a block and assembles
//! the same [`BlockOutput`] the sequential executor produces.

use std::{
    cell::OnceCell,
    num::NonZeroUsize,
    panic::AssertUnwindSafe,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
};

use alloy_consensus::{Block, TxEnvelope, transaction::Recovered};
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::{
    BlockOutput, ChainSpec, ExecutionError, TxIdx, chain,
    mv_memory::MvMemory,
    mv_memory::ReadError,
    output::{StateChanges, merge_changes},
    pipeline::{
        CommittedPrefix, PipelineCounters, PipelineEnd, Slots, Speculate, Threads, execute_pipeline,
    },
    planner::{Plan, plan_block},
    pre_state::PreState,
    scheduler::{Scheduler, Task},
    sequential::{
        BlockStart, SequentialState, check_block_gas, execute_txs, finish_block, receipt_of,
        start_block,
    },
    shape::BlockShape,
    storage::{OverlayStorage, Storage},
    types::{MemoryLocation, TxVersion, WriteKind},
    vm::{BlockVm, Incarnation, TxFailure, TxResult, VersionedState, VmWorker},
    worker_pool::{WorkerPlacement, WorkerPool},
};

/// How a block is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Strategy {
    /// Chosen per block from what is known before running it (transactions, gas, senders).
    #[default]
    Auto,
    /// One transaction after another on the calling thread.
    Sequential,
    /// Block-STM: optimistic execution on every thread against a multi-version memory,
    /// validation, re-execution on conflict.
    BlockStm,
    /// Speculation on every thread against the pre-block state, validated and committed in
    /// block order (a stale transaction is re-executed by the committer).
    Pipeline,
    /// The pipeline for the transactions below this index, then Block-STM on top of them for the
    /// rest (for tests and measurements: [`Strategy::Auto`] does not hand over, see
    /// `docs/benchmarks.md`). A block of no more transactions than this runs the pipeline alone,
    /// and its stats say [`Strategy::Pipeline`].
    HandOver(TxIdx),
    /// Block-STM that gives way to sequential execution once this many executions ran, whatever
    /// their waste (for tests: the give-way path — the committed prefix, its final state, the
    /// sequential rest — on any block; [`Strategy::Auto`] gives way only when conflicts dominate).
    GiveWayAfter(usize),
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Sequential => "sequential",
            Self::BlockStm => "Block-STM",
            Self::Pipeline => "pipeline",
            Self::HandOver(tx) => return write!(f, "pipeline, Block-STM from tx {tx}"),
            Self::GiveWayAfter(executions) => {
                return write!(f, "Block-STM, giving way after {executions} executions");
            }
        })
    }
}

/// How the parallel executor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutorConfig {
    /// Number of worker threads.
    pub concurrency: NonZeroUsize,
    /// The strategy: [`Strategy::Auto`] lets the executor choose per block; any other runs every
    /// block that way (tests use this to exercise each engine on every block).
    pub strategy: Strategy,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            concurrency: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            strategy: Strategy::Auto,
        }
    }
}

impl ExecutorConfig {
    /// Why [`ParallelExecutor::execute`] under this configuration would run `block` on top of
    /// `storage` sequentially, or `None` when it would run in parallel. Judged before running it:
    /// from the block, and from `storage` only whether some recipients have code (a storage
    /// error there counts as no code).
    pub fn sequential_reason<S: Storage + ?Sized>(
        &self,
        chain: &ChainSpec,
        block: &Block<Recovered<TxEnvelope>>,
        storage: &S,
    ) -> Option<String> {
        self.plan(chain, block, storage, &OnceCell::new()).reason
    }

    /// The strategy this configuration runs `block` on top of `storage` with (never
    /// [`Strategy::Auto`]), judged as in [`Self::sequential_reason`].
    pub fn strategy_for<S: Storage + ?Sized>(
        &self,
        chain: &ChainSpec,
        block: &Block<Recovered<TxEnvelope>>,
        storage: &S,
    ) -> Strategy {
        self.plan(chain, block, storage, &OnceCell::new()).strategy
    }

    /// Worker threads for a block of `txs` transactions: never more than transactions.
    fn threads_for(&self, txs: usize) -> usize {
        self.concurrency.get().min(txs.max(1))
    }

    /// The strategy for `block`, with the reason when it is sequential. The block's shape (its
    /// same-sender chains, [`BlockShape`]) is found (into `shape`) only if the plan needs it.
    fn plan<S: Storage + ?Sized>(
        &self,
        chain: &ChainSpec,
        block: &Block<Recovered<TxEnvelope>>,
        storage: &S,
        shape: &OnceCell<BlockShape>,
    ) -> Plan {
        match self.strategy {
            Strategy::Auto => {
                let threads = self.threads_for(block.body.transactions.len());
                let spec = chain.spec_id(block.header.number, block.header.timestamp);
                plan_block(threads, spec, block, storage, shape)
            }
            Strategy::Sequential => Plan::sequential("configured".into()),
            forced => Plan::parallel(forced),
        }
    }
}

/// Counters of one parallel execution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionStats {
    /// Transactions in the block.
    pub txs: usize,
    /// Worker threads used (1 when the block ran sequentially).
    pub threads: usize,
    /// Transactions executed: Block-STM incarnations (≥ txs when it ran the whole block) plus
    /// those run sequentially.
    pub executions: usize,
    /// Validations performed.
    pub validations: usize,
    /// Incarnations aborted by a failed validation.
    pub aborts: usize,
    /// Executions suspended on an ESTIMATE (dependency discovered at run time).
    pub dependency_waits: usize,
    /// Executions deferred until the sender's previous transaction executed (dependency known
    /// from the transaction list).
    pub sender_waits: usize,
    /// Pipeline: transactions not speculated because speculations of transactions to the same
    /// destination were mostly rejected (left to the committer, which executes them directly).
    pub left_to_committer: usize,
    /// The strategy the block ran with.
    pub strategy: Strategy,
    /// Why the block ran sequentially instead, if it did.
    pub sequential_reason: Option<String>,
    /// Set when Block-STM met so many conflicts that it gave way: transactions before this index
    /// kept their parallel results, the rest ran sequentially on top of them.
    pub sequential_from: Option<TxIdx>,
    /// Set when a parallel engine failed internally (a panic, a broken invariant) and the block
    /// was executed again sequentially: the output is still the sequential one, but the engine
    /// has a bug worth reporting (the message says where).
    pub internal_error: Option<String>,
}

/// The parallel block executor. Create one and reuse it across blocks: its worker threads are
/// created once and sleep between blocks.
#[derive(Debug)]
pub struct ParallelExecutor {
    config: ExecutorConfig,
    /// The persistent workers (none at concurrency 1), reused across blocks.
    pool: Option<WorkerPool>,
    /// The multi-version memory of the previous block, kept for the next one (taken by the block
    /// that runs; a concurrent call on the same executor makes its own).
    memory: Mutex<Option<MvMemory>>,
    /// The pipeline's slots of the previous block, kept for the next one (taken by the block
    /// that runs the pipeline; a second block pipelined meanwhile makes its own).
    slots: Mutex<Slots>,
}

/// One worker's tallies, on a cache line of their own: bumped after every task, shared counters
/// moved one line between the cores all block long.
#[derive(Default)]
struct Tally {
    executions: AtomicUsize,
    validations: AtomicUsize,
    aborts: AtomicUsize,
    dependency_waits: AtomicUsize,
    sender_waits: AtomicUsize,
}

/// When Block-STM gives way to sequential execution.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum GiveWay {
    /// Never (Block-STM forced).
    #[default]
    Never,
    /// Once at least this many executions ran, if more than this share of them (in percent) was
    /// wasted.
    WhenWasteful(usize, usize),
    /// Once this many executions ran ([`Strategy::GiveWayAfter`]).
    After(usize),
}

#[derive(Default)]
struct Counters {
    /// Per worker (indexed by the worker's index in the block).
    tallies: Vec<CachePadded<Tally>>,
    /// When Block-STM gives way to sequential execution.
    give_way: GiveWay,
    /// Set when it did.
    gave_way: AtomicBool,
    /// The committed prefix it kept then.
    sequential_from: Mutex<Option<TxIdx>>,
}

/// Block-STM gives way once at least this many executions ran (and a sixteenth of the block's
/// transactions, up to [`GIVE_WAY_JUDGE_PER_THREAD`] per thread; and 8 per thread), if more than
/// [`GIVE_WAY_WASTE_PERCENT`] percent of them were wasted (more at more threads:
/// [`give_way_percent`]).
const GIVE_WAY_MIN_EXECUTIONS: usize = 32;

/// The most executions per thread Block-STM runs before it may give way, however big the block:
/// a sixteenth of a gigagas block of swaps through one pool (7,176) is 448 executions, and at two
/// threads it gave way at transaction 122-142 having executed about 7,500 (4-5% of the block
/// wasted); judged after 128 it gave way at transaction 38-42 having executed 7,266 (exec/tx
/// 1.04 -> 1.01). Its time gain is below this host's noise: 0.953 -> 0.983 and 0.935 -> 0.979
/// of sequential run by run in one process, where a block the change does not touch moved 4%;
/// `bench` medians 1.01 -> 0.98 (twenty-sixth session). No mainnet fixture is big enough to meet
/// the bound (2,048 transactions at two threads); the mixed workload (4,936 and 25,051
/// transactions) gives way under neither. More threads keep judging longer, as measured on 16
/// cores before the bound.
const GIVE_WAY_JUDGE_PER_THREAD: usize = 64;

/// The share of wasted executions (aborted by validation, or stopped at an ESTIMATE), in percent
/// of all executions, above which conflicts dominate: each transaction then waits for its
/// predecessor, and threads only add overhead (a hot pool, a chain of dependent calls). The
/// mainnet block with the most conflicts that still gains at two threads (6137495, 1.5–1.6
/// executions per transaction) wastes about 35%.
const GIVE_WAY_WASTE_PERCENT: usize = 40;

/// The share of wasted executions above which Block-STM gives way at `workers` threads: more
/// threads speculate further ahead, and waste more on a block they still speed up. On 16 cores,
/// Block-STM forced wasted 24–39% of its executions at 4 threads and 40–49% at 8–16 on mainnet
/// blocks it ran 1.15–1.7× faster than sequential (18085863, 12522062, 10760440, 18988207), where
/// the 40% rule gave way within the first transactions (0.55–0.98×); a pool every swap goes through wastes
/// over 85% at 4 threads and more. 40% at 2 threads, 10 points more per further thread, at most
/// 75%.
fn give_way_percent(workers: usize) -> usize {
    (GIVE_WAY_WASTE_PERCENT + 10 * workers.saturating_sub(2)).min(75)
}

impl Counters {
    /// Counters of a block of `txs` transactions run by `workers` threads under `strategy`:
    /// planned Block-STM gives way when conflicts dominate, forced Block-STM never.
    fn new(txs: usize, workers: usize, strategy: Strategy) -> Self {
        let give_way = match strategy {
            Strategy::Auto => GiveWay::WhenWasteful(
                GIVE_WAY_MIN_EXECUTIONS
                    .max((txs / 16).min(GIVE_WAY_JUDGE_PER_THREAD * workers))
                    .max(8 * workers),
                give_way_percent(workers),
            ),
            Strategy::GiveWayAfter(executions) => GiveWay::After(executions),
            Strategy::BlockStm
            | Strategy::HandOver(_)
            | Strategy::Pipeline
            | Strategy::Sequential => GiveWay::Never,
        };
        Self {
            tallies: (0..workers.max(1))
                .map(|_| CachePadded::default())
                .collect(),
            give_way,
            ..Default::default()
        }
    }

    /// The sum of one tally over the workers.
    fn total(&self, field: impl Fn(&Tally) -> &AtomicUsize) -> usize {
        self.tallies
            .iter()
            .map(|tally| field(tally).load(Ordering::Relaxed))
            .sum()
    }

    /// Halts Block-STM, so that the rest of the block runs sequentially, if it may and conflicts
    /// dominate so far (called after each wasted execution).
    fn give_way_if_conflicts_dominate(&self, scheduler: &Scheduler) {
        let GiveWay::WhenWasteful(min_executions, waste_percent) = self.give_way else {
            return;
        };
        let executions = self.total(|tally| &tally.executions);
        let wasted =
            self.total(|tally| &tally.aborts) + self.total(|tally| &tally.dependency_waits);
        if executions >= min_executions
            && wasted * 100 > executions * waste_percent
            && !self.gave_way.swap(true, Ordering::Relaxed)
        {
            scheduler.halt();
        }
    }

    /// Halts Block-STM once the executions [`Strategy::GiveWayAfter`] allows ran (called after
    /// each execution).
    fn give_way_if_due(&self, scheduler: &Scheduler) {
        if let GiveWay::After(limit) = self.give_way
            && self.total(|tally| &tally.executions) >= limit
            && !self.gave_way.swap(true, Ordering::Relaxed)
        {
            scheduler.halt();
        }
    }
}

impl ParallelExecutor {
    /// An executor with this configuration, its workers each bound to a core
    /// ([`WorkerPlacement::Pinned`]). If the worker threads cannot be created, blocks run on the
    /// calling thread only.
    pub fn new(config: ExecutorConfig) -> Self {
        Self::with_placement(config, WorkerPlacement::default())
    }

    /// An executor with this configuration whose workers are placed as `placement`.
    pub fn with_placement(config: ExecutorConfig, placement: WorkerPlacement) -> Self {
        Self {
            config,
            pool: WorkerPool::new(config.concurrency.get(), placement),
            memory: Mutex::new(None),
            slots: Mutex::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    /// Executes `block` on top of `storage`: the same result as [`crate::execute_sequential`].
    pub fn execute<S: Storage + ?Sized>(
        &self,
        chain: &ChainSpec,
        block: &Block<Recovered<TxEnvelope>>,
        storage: &S,
    ) -> Result<BlockOutput, ExecutionError> {
        self.execute_with_stats(chain, block, storage).0
    }

    /// Like [`Self::execute`], also returning execution counters.
    pub fn execute_with_stats<S: Storage + ?Sized>(
        &self,
        chain: &ChainSpec,
        block: &Block<Recovered<TxEnvelope>>,
        storage: &S,
    ) -> (Result<BlockOutput, ExecutionError>, ExecutionStats) {
        let txs = block.body.transactions.len();
        let threads = self.config.threads_for(txs);
        let mut stats = ExecutionStats {
            txs,
            threads,
            ..Default::default()
        };
        // Found only when needed: on a sub-millisecond block run sequentially, finding the
        // chains cost 2-4% of the block.
        let shape = OnceCell::new();
        let plan = self.config.plan(chain, block, storage, &shape);
        stats.strategy = plan.strategy;
        stats.threads = if plan.alone { 1 } else { threads };
        if matches!(plan.strategy, Strategy::Sequential | Strategy::Auto) {
            stats.threads = 1;
            stats.executions = txs;
            stats.sequential_reason = plan.reason;
            return (crate::execute_sequential(chain, block, storage), stats);
        }
        let shape = shape.into_inner().unwrap_or_else(|| BlockShape::of(block));
        let mut prefix = None;
        let hand_over_at = match plan.strategy {
            Strategy::Pipeline => Some(None),
            Strategy::HandOver(at) => Some(Some(at)),
            _ => None,
        };
        if let Some(hand_over_at) = hand_over_at {
            let (end, ran) =
                self.execute_pipeline(chain, block, storage, &shape, hand_over_at, stats);
            stats = ran;
            match end {
                Ok(PipelineEnd::HandedOver(committed)) => prefix = Some(*committed),
                // Handed over at or past the end: the pipeline ran the whole block.
                Ok(PipelineEnd::Finished(output)) if hand_over_at.is_some() => {
                    stats.strategy = Strategy::Pipeline;
                    return (Ok(output), stats);
                }
                Ok(PipelineEnd::Finished(output)) => return (Ok(output), stats),
                Err(error) => return (Err(error), stats),
            }
        }
        self.run_block_stm(
            chain,
            block,
            storage,
            shape.previous_of_sender,
            prefix,
            stats,
        )
    }

    /// Like [`Self::execute_with_stats`], but an engine's internal failure is returned as
    /// [`ExecutionError::Internal`] instead of being covered by the sequential re-execution: for
    /// test suites and audits, where the correct output would hide the engine's bug.
    pub fn execute_strict<S: Storage + ?Sized>(
        &self,
        chain: &ChainSpec,
        block: &Block<Recovered<TxEnvelope>>,
        storage: &S,
    ) -> (Result<BlockOutput, ExecutionError>, ExecutionStats) {
        let (output, stats) = self.execute_with_stats(chain, block, storage);
        match &stats.internal_error {
            Some(error) => (Err(ExecutionError::Internal(error.clone())), stats),
            None => (output, stats),
        }
    }

    /// Runs `block` through Block-STM, on top of the pipeline's committed `prefix` if there is
    /// one; an internal error (a panic) falls back to sequential execution.
    fn run_block_stm<S: Storage + ?Sized>(
        &self,
        chain: &ChainSpec,
        block: &Block<Recovered<TxEnvelope>>,
        storage: &S,
        previous_of_sender: Vec<Option<TxIdx>>,
        prefix: Option<CommittedPrefix>,
        mut stats: ExecutionStats,
    ) -> (Result<BlockOutput, ExecutionError>, ExecutionStats) {
        let from = prefix.as_ref().map_or(0, |prefix| prefix.next);
        let (txs, threads) = (block.body.transactions.len(), stats.threads);
        let counters = Counters::new(txs - from, threads, self.config.strategy);
        let reused = self.memory.lock().take();
        let mv = match reused {
            Some(mut mv) => {
                mv.reset(txs - from);
                mv
            }
            None => MvMemory::new(txs - from),
        };
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let engine = Engine {
                pool: self.pool.as_ref(),
                threads,
                mv: &mv,
            };
            execute_block_stm(
                chain,
                block,
                storage,
                engine,
                previous_of_sender,
                &counters,
                None,
                prefix,
            )
        }));
        if matches!(result, Ok(Ok(_))) {
            // A block whose worker panicked may have left the memory half-written: it is dropped.
            *self.memory.lock() = Some(mv);
        }
        // Added to the pipeline's counts when it handed over.
        stats.executions += counters.total(|tally| &tally.executions);
        stats.validations += counters.total(|tally| &tally.validations);
        stats.aborts += counters.total(|tally| &tally.aborts);
        stats.dependency_waits = counters.total(|tally| &tally.dependency_waits);
        stats.sender_waits = counters.total(|tally| &tally.sender_waits);
        stats.sequential_from = *counters.sequential_from.lock();
        if let Some(sequential_from) = stats.sequential_from {
            // The sequential suffix executed each of its transactions once.
            stats.executions += txs - sequential_from;
        }
        match result {
            Ok(Ok(output)) => (output, stats),
            Ok(Err(breach)) | Err(breach) => {
                re_execute_sequentially(chain, block, storage, panic_message(breach), stats)
            }
        }
    }
}

/// The answer to an internal error of a parallel engine (`reason`): the block executed
/// sequentially, the reason reported in the stats.
fn re_execute_sequentially<S: Storage + ?Sized>(
    chain: &ChainSpec,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
    reason: String,
    mut stats: ExecutionStats,
) -> (Result<BlockOutput, ExecutionError>, ExecutionStats) {
    stats.sequential_reason = Some(format!(
        "internal error, re-executed sequentially: {reason}"
    ));
    stats.internal_error = Some(reason);
    let sequential = std::panic::catch_unwind(AssertUnwindSafe(|| {
        crate::execute_sequential(chain, block, storage)
    }))
    .unwrap_or_else(|panic| Err(ExecutionError::Internal(panic_message(panic))));
    (sequential, stats)
}

impl ParallelExecutor {
    /// Runs `block` through the pipeline, handing over to Block-STM once `hand_over_at`
    /// transactions are committed; an internal error (a panic) falls back to sequential
    /// execution.
    fn execute_pipeline<S: Storage + ?Sized>(
        &self,
        chain: &ChainSpec,
        block: &Block<Recovered<TxEnvelope>>,
        storage: &S,
        shape: &BlockShape,
        hand_over_at: Option<TxIdx>,
        mut stats: ExecutionStats,
    ) -> (Result<PipelineEnd, ExecutionError>, ExecutionStats) {
        let counters = PipelineCounters::default();
        let mut slots = std::mem::take(&mut *self.slots.lock());
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let threads = match self.pool.as_ref() {
                Some(pool) if stats.threads > 1 => Threads::Pool(pool, stats.threads),
                // Planned alone for speed, or forced (the speculative path checked on every
                // transaction).
                _ if self.config.strategy == Strategy::Auto => Threads::Alone(Speculate::Natively),
                _ => Threads::Alone(Speculate::Every),
            };
            execute_pipeline(
                chain,
                block,
                storage,
                (shape, &mut slots),
                threads,
                hand_over_at,
                &counters,
            )
        }));
        if result.is_ok() {
            // A block whose thread panicked may have left its slots half-written: dropped.
            slots.empty();
            *self.slots.lock() = slots;
        }
        stats.executions =
            counters.speculations.load(Ordering::Relaxed) + counters.direct.load(Ordering::Relaxed);
        stats.validations = counters.validations.load(Ordering::Relaxed);
        stats.aborts = counters.rejected.load(Ordering::Relaxed);
        stats.left_to_committer = counters.left_to_committer.load(Ordering::Relaxed);
        let sequentially = |reason, stats| {
            let (output, stats) = re_execute_sequentially(chain, block, storage, reason, stats);
            (output.map(PipelineEnd::Finished), stats)
        };
        match result {
            Ok(Err(ExecutionError::Internal(reason))) => sequentially(reason, stats),
            Ok(result) => (result, stats),
            Err(panic) => sequentially(panic_message(panic), stats),
        }
    }
}

type Breach = Box<dyn std::any::Any + Send>;

/// What one Block-STM run executes on: the threads (the pool, or the calling thread alone) and
/// the multi-version memory (emptied, reused across blocks).
struct Engine<'a> {
    pool: Option<&'a WorkerPool>,
    threads: usize,
    mv: &'a MvMemory,
}

fn panic_message(panic: Breach) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        message.to_string()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// What one transaction's final incarnation read and wrote: (reads, writes with their kind).
pub(crate) type Accesses = (Vec<MemoryLocation>, Vec<(MemoryLocation, WriteKind)>);

/// A traced block: its output, each transaction's accesses, and the same-sender chains.
pub(crate) type Traced = (BlockOutput, Vec<Accesses>, Vec<Option<TxIdx>>);

/// Block-STM on the calling thread alone, which executes every transaction once in block order,
/// returning the output, each transaction's accesses and the same-sender chains (for analysis).
pub(crate) fn trace_block_stm<S: Storage + ?Sized>(
    chain: &ChainSpec,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
) -> Result<Traced, ExecutionError> {
    let previous = BlockShape::of(block).previous_of_sender;
    let mut accesses = Vec::new();
    let mv = MvMemory::new(block.body.transactions.len());
    let engine = Engine {
        pool: None,
        threads: 1,
        mv: &mv,
    };
    let counters = Counters::new(block.body.transactions.len(), 1, Strategy::BlockStm);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        execute_block_stm(
            chain,
            block,
            storage,
            engine,
            previous.clone(),
            &counters,
            Some(&mut accesses),
            None,
        )
    }));
    match outcome {
        Ok(Ok(output)) => Ok((output?, accesses, previous)),
        Ok(Err(breach)) | Err(breach) => Err(ExecutionError::Internal(panic_message(breach))),
    }
}

/// Block-STM over `block`, or over the transactions the pipeline's committed `prefix` left (on
/// top of its changes). The outer error is an internal invariant breach (the caller falls back
/// to sequential execution); the inner result is the block's. With `accesses`, each transaction's
/// final reads and writes are collected there.
///
/// Block-STM numbers the transactions it runs from 0: transaction `from + i` of the block is its
/// transaction `i`.
#[allow(clippy::too_many_arguments)]
fn execute_block_stm<S: Storage + ?Sized>(
    chain: &ChainSpec,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
    engine: Engine<'_>,
    previous_of_sender: Vec<Option<TxIdx>>,
    counters: &Counters,
    accesses: Option<&mut Vec<Accesses>>,
    prefix: Option<CommittedPrefix>,
) -> Result<Result<BlockOutput, ExecutionError>, Breach> {
    let header = &block.header;
    let (start, from, mut receipts, mut gas_used) = match prefix {
        Some(CommittedPrefix {
            start,
            next,
            receipts,
            gas_used,
        }) => (Some(start), next, receipts, gas_used),
        None => (
            None,
            0,
            Vec::with_capacity(block.body.transactions.len()),
            0,
        ),
    };
    let prepared = (|| {
        let start = match start {
            Some(start) => start,
            None => start_block(chain, block, storage)?,
        };
        let txs = block
            .body
            .transactions
            .iter()
            .enumerate()
            .skip(from)
            .map(|(index, tx)| chain::tx_env(index, tx))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, ExecutionError>((start, txs))
    })();
    let previous_of_sender = if from == 0 {
        previous_of_sender
    } else {
        // Links into the prefix are gone: those transactions are committed.
        (previous_of_sender[from..].iter())
            .map(|previous| previous.and_then(|previous| previous.checked_sub(from)))
            .collect()
    };
    let (
        BlockStart {
            spec,
            block_env,
            cfg,
            mut changes,
        },
        txs,
    ) = match prepared {
        Ok(prepared) => prepared,
        // The block cannot run. Which error sequential execution meets first depends on its
        // order (pre-block calls, then each transaction's gas check before its conversion), so it
        // gives the error.
        Err(_) => return Ok(crate::execute_sequential(chain, block, storage)),
    };

    let overlay = OverlayStorage {
        base: storage,
        changes: &changes,
    };
    let pre = PreState::new(&overlay);
    let tx_count = txs.len();
    let state = VersionedState {
        mv: engine.mv,
        pre: &pre,
    };
    let vm = BlockVm {
        spec,
        block_env,
        cfg,
        txs,
        previous_of_sender,
        state,
    };
    let scheduler = Scheduler::new(tx_count);
    let results: Vec<Mutex<Option<TxResult>>> = (0..tx_count).map(|_| Mutex::new(None)).collect();
    let breach: Mutex<Option<Breach>> = Mutex::new(None);

    let work = |worker: usize| {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            run_worker(&vm, &scheduler, &results, counters, worker)
        }));
        if let Err(panic) = outcome {
            scheduler.halt();
            breach.lock().get_or_insert(panic);
        }
    };
    match engine.pool {
        Some(pool) => pool.run(engine.threads, work),
        None => work(0),
    }
    if let Some(panic) = breach.into_inner() {
        return Err(panic);
    }
    if let Some(accesses) = accesses {
        *accesses = (0..tx_count).map(|tx| engine.mv.accesses(tx)).collect();
    }

    // Normally every transaction; after Block-STM gave way, the prefix whose results are final.
    let committed = if counters.gave_way.load(Ordering::Relaxed) {
        let committed = committed_prefix(&vm, &scheduler, &results);
        *counters.sequential_from.lock() = Some(from + committed);
        committed
    } else {
        tx_count
    };
    let committed_txs = (block.body.transactions.iter().enumerate().skip(from))
        .zip(results)
        .take(committed);
    for ((index, tx), result) in committed_txs {
        if let Err(error) = check_block_gas(index, tx, gas_used, header.gas_limit) {
            return Ok(Err(error));
        }
        let result = result
            .into_inner()
            .ok_or_else(|| breach_of(format!("tx {index} has no result")))?;
        let result = match result {
            Ok(result) => result,
            Err(failure) => return Ok(Err(failure_error(index, failure))),
        };
        gas_used += result.tx_gas_used();
        receipts.push(receipt_of(tx, result, gas_used));
    }
    let tx_changes = match collect_changes(&vm.state, committed, &engine) {
        Ok(tx_changes) => tx_changes,
        Err(ReadError::Storage(source)) => {
            return Ok(Err(ExecutionError::Storage {
                index: None,
                source,
            }));
        }
        Err(ReadError::Blocked(tx)) => return Err(breach_of(format!("ESTIMATE of tx {tx} left"))),
    };
    let BlockVm { block_env, cfg, .. } = vm;
    merge_changes(&mut changes, tx_changes);
    if committed < tx_count {
        // The rest of the block, one transaction after another on top of the committed prefix.
        let overlay = OverlayStorage {
            base: storage,
            changes: &changes,
        };
        let mut state = SequentialState::for_txs(&overlay, tx_count - committed);
        let env = (spec, block_env, cfg);
        if let Err(error) = execute_txs(
            &mut state,
            env,
            block,
            from + committed,
            &mut gas_used,
            &mut receipts,
        ) {
            return Ok(Err(error));
        }
        let suffix_changes = state.into_changes();
        merge_changes(&mut changes, suffix_changes);
    }
    Ok(finish_block(
        chain, spec, block, storage, changes, receipts, gas_used,
    ))
}

/// After Block-STM gave way: the longest prefix of transactions whose latest incarnation executed
/// successfully and still validates against the versions below it. By induction on the index,
/// those versions are final, so these results and writes are the sequential ones.
fn committed_prefix<S: Storage + ?Sized>(
    vm: &BlockVm<'_, S>,
    scheduler: &Scheduler,
    results: &[Mutex<Option<TxResult>>],
) -> TxIdx {
    let state = &vm.state;
    (0..results.len())
        .find(|&tx| {
            let committed = scheduler.is_executed(tx)
                && matches!(*results[tx].lock(), Some(Ok(_)))
                && state
                    .mv
                    .with_read_set(tx, |read_set| state.validate(read_set, tx));
            !committed
        })
        .unwrap_or(results.len())
}

fn breach_of(message: String) -> Breach {
    Box::new(message)
}

fn failure_error(index: TxIdx, failure: TxFailure) -> ExecutionError {
    match failure {
        TxFailure::Invalid(source) => ExecutionError::InvalidTransaction { index, source },
        TxFailure::Storage(source) => ExecutionError::Storage {
            index: Some(index),
            source,
        },
        TxFailure::Internal(message) => {
            ExecutionError::Internal(format!("transaction {index}: {message}"))
        }
    }
}

/// Worker `index` of the block: takes tasks until the block is done, counting in its own tally.
fn run_worker<S: Storage + ?Sized>(
    vm: &BlockVm<'_, S>,
    scheduler: &Scheduler,
    results: &[Mutex<Option<TxResult>>],
    counters: &Counters,
    index: usize,
) {
    let mut worker = VmWorker::new(vm);
    let tally = &counters.tallies[index];
    scheduler.run_worker(
        |version| try_execute(&mut worker, scheduler, results, counters, tally, version),
        |version| try_validate(vm, scheduler, counters, tally, version),
    );
}

fn try_execute<S: Storage + ?Sized>(
    worker: &mut VmWorker<'_, S>,
    scheduler: &Scheduler,
    results: &[Mutex<Option<TxResult>>],
    counters: &Counters,
    tally: &Tally,
    version: TxVersion,
) -> Option<Task> {
    let tx = version.tx_idx;
    // Same-sender chains are known before execution: wait for the sender's previous transaction
    // instead of discovering the nonce dependency by an abort.
    if let Some(previous) = worker.previous_of_sender(tx)
        && scheduler.add_dependency(tx, previous)
    {
        tally.sender_waits.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    loop {
        tally.executions.fetch_add(1, Ordering::Relaxed);
        match worker.execute(tx) {
            Err(blocked) => {
                tally.dependency_waits.fetch_add(1, Ordering::Relaxed);
                counters.give_way_if_conflicts_dominate(scheduler);
                if scheduler.add_dependency(tx, blocked.0) {
                    return None;
                }
            }
            Ok(Incarnation {
                mut read_set,
                mut write_set,
                result,
            }) => {
                *results[tx].lock() = Some(result);
                let wrote_new_location = worker.mv().record(version, &mut read_set, &mut write_set);
                worker.recycle(read_set, write_set);
                counters.give_way_if_due(scheduler);
                return scheduler.finish_execution(version, wrote_new_location);
            }
        }
    }
}

fn try_validate<S: Storage + ?Sized>(
    vm: &BlockVm<'_, S>,
    scheduler: &Scheduler,
    counters: &Counters,
    tally: &Tally,
    version: TxVersion,
) -> Option<Task> {
    tally.validations.fetch_add(1, Ordering::Relaxed);
    let tx = version.tx_idx;
    let valid = vm
        .state
        .mv
        .with_read_set(tx, |read_set| vm.state.validate(read_set, tx));
    let aborted = !valid && scheduler.try_validation_abort(version);
    if aborted {
        tally.aborts.fetch_add(1, Ordering::Relaxed);
        vm.state.mv.convert_writes_to_estimates(tx);
        counters.give_way_if_conflicts_dominate(scheduler);
    }
    scheduler.finish_validation(tx, aborted)
}

/// Memory entries (accounts and slots) from which the output is assembled on every thread of the
/// block: below, waking the workers again costs more than the split saves.
const PARALLEL_COLLECTION_ENTRIES: usize = 4096;

/// The block's state changes from the final multi-version memory (after `txs`), assembled on
/// the engine's threads when the memory is large: each thread builds the changes of one
/// partition of the accounts, then the partitions are merged (moving whole accounts).
fn collect_changes<S: Storage + ?Sized>(
    state: &VersionedState<'_, S>,
    txs: usize,
    engine: &Engine<'_>,
) -> Result<StateChanges, ReadError> {
    let load = |address: &alloy_primitives::Address| state.pre.basic(address);
    let pool = match engine.pool {
        Some(pool) if engine.threads > 1 && state.mv.entries() >= PARALLEL_COLLECTION_ENTRIES => {
            pool
        }
        _ => return state.mv.final_changes(txs, (0, 1), load),
    };
    let parts = engine.threads;
    let assembled: Vec<Mutex<Option<Result<StateChanges, ReadError>>>> =
        (0..parts).map(|_| Mutex::new(None)).collect();
    let assemble = |part: usize| {
        *assembled[part].lock() = Some(state.mv.final_changes(txs, (part, parts), load));
    };
    pool.run(parts, assemble);
    let mut changes = StateChanges::default();
    for part in assembled {
        let part = part.into_inner().expect("the scope ran every part")?;
        if changes.is_empty() {
            changes = part;
        } else {
            changes.extend(part);
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Block-STM tolerates more wasted executions before giving way at more threads, up to 75%.
    #[test]
    fn give_way_tolerates_more_waste_at_more_threads() {
        let percents = [1, 2, 3, 4, 6, 8, 16].map(give_way_percent);
        assert_eq!(percents, [40, 40, 50, 60, 75, 75, 75]);
        let counters = Counters::new(1000, 8, Strategy::Auto);
        assert_eq!(counters.give_way, GiveWay::WhenWasteful(64, 75));
        let forced = Counters::new(1000, 8, Strategy::BlockStm);
        assert_eq!(forced.give_way, GiveWay::Never);
    }

    /// A big block is judged after a sixteenth of its transactions, but at most 64 executions
    /// per thread; a small one after 32.
    #[test]
    fn give_way_judges_big_blocks_after_a_bounded_number_of_executions() {
        let judged_after = |txs, workers| match Counters::new(txs, workers, Strategy::Auto).give_way
        {
            GiveWay::WhenWasteful(executions, _) => executions,
            other => panic!("{other:?}"),
        };
        assert_eq!(judged_after(100, 2), 32);
        assert_eq!(judged_after(1600, 2), 100);
        assert_eq!(judged_after(7176, 2), 128);
        assert_eq!(judged_after(7176, 4), 256);
        assert_eq!(judged_after(7176, 16), 448);
    }
}
