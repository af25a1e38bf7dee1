//! Public entry point of the parallel engine: runs Block-STM workers over a block and assembles
//! the same [`BlockOutput`] the sequential executor produces.

use std::{
    cell::{LazyCell, OnceCell},
    num::NonZeroUsize,
    panic::AssertUnwindSafe,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
};

use alloy_consensus::{Block, Transaction, TxEnvelope, transaction::Recovered};
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use revm::primitives::{KECCAK_EMPTY, hardfork::SpecId};

use crate::{
    BlockOutput, ChainSpec, ExecutionError, TxIdx, chain,
    mv_memory::MvMemory,
    mv_memory::ReadError,
    output::{StateChanges, merge_changes},
    pipeline::{
        CHAIN_FIRST_MIN, CommittedPrefix, PUBLISH_MAX_TXS, PipelineCounters, PipelineEnd, Slots,
        Speculable, Speculate, Threads, chain_followers, code_hash_of, execute_pipeline,
        hot_from_start, is_plain_transfer, speculability,
    },
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

/// How a block is to run: the strategy, on how many threads, and the reason when it is
/// sequential.
struct Plan {
    strategy: Strategy,
    /// On the calling thread alone, whatever the executor's threads.
    alone: bool,
    reason: Option<String>,
}

impl Plan {
    fn sequential(reason: String) -> Self {
        Self {
            strategy: Strategy::Sequential,
            alone: false,
            reason: Some(reason),
        }
    }

    fn parallel(strategy: Strategy) -> Self {
        Self {
            strategy,
            alone: false,
            reason: None,
        }
    }

    /// `strategy` on the calling thread alone.
    fn alone(strategy: Strategy) -> Self {
        Self {
            alone: true,
            ..Self::parallel(strategy)
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

/// Blocks with less gas than this run sequentially: the fixed cost of parallel execution (waking
/// workers, assembling the output) does not pay below it.
const MIN_PARALLEL_GAS: u64 = 5_000_000;

/// From Berlin on, a block with less gas than [`MIN_PARALLEL_GAS`] but at least this much runs
/// Block-STM if its transactions are heavy enough for it (and it suits it otherwise). EIP-2929
/// prices a cold account or slot access at 2,100-2,600 gas, close to what it costs in time, so a
/// few Mgas of such transactions take a millisecond or more; before Berlin the same gas bought
/// many more cheap accesses. Measured at 2 threads on the four mainnet fixtures concerned (seven
/// rounds of 30-40 runs, Block-STM forced, medians of the rounds): 19426587 (2.6 Mgas, 2.6 ms)
/// 1.18x, 19934116 (3.4 Mgas, 1.5 ms) 1.57x; 19923400 (1.6 Mgas) 1.11x and 19933122 (2.1 Mgas)
/// 1.12x there, but 0.64-0.94x in some `bench` rounds, when this was 2.5 Mgas. Since Block-STM
/// reads a contract's balance only where its code observes it, those two gain 1.15-1.29x in
/// `bench` (four rounds each, first quartiles of the rounds 1.07-1.24x; 0.98-1.10x before). The
/// pre-Berlin ones stay sequential (2179522: 0.43-0.47x, 3356896: 0.68-0.73x).
const MIN_HEAVY_GAS_SINCE_BERLIN: u64 = 1_500_000;

/// A block that one sender's nonce chain dominates runs the pipeline from this much gas on when
/// the pipeline speculates nearly every transaction that follows one of its sender's (with the
/// sender's funds assumed, checked at commit: see [`CHAIN_CALLS_TOLERATED`]); below it, on the
/// calling thread alone when most of the block are plain transfers
/// ([`ALONE_MIN_TRANSFERS_PERCENT`]), otherwise sequentially.
/// Measured with `examples/strategies.rs`, medians of 41 runs: one sender's chain of transfers,
/// 1.33-1.82x with the pipeline from 5 to 60 Mgas (1.99x at 200 Mgas, 7 runs). The mainnet
/// payout blocks (8-15 Mgas, 0.3-1.5 ms; a mining pool paying out in its own block) ran
/// 0.93-1.32x until their transfers were speculated natively with the beneficiary as sender and
/// the first transaction was left to the committer (a heavy first call that pays the beneficiary
/// was executed twice): since then 1.34-1.63x at 2 threads (5891667, 11814555, 12300570,
/// 12520364; `profile_block`, 300 runs each).
const MIN_CHAIN_PIPELINE_GAS: u64 = MIN_PARALLEL_GAS;

/// A block that one sender's chain dominates runs the pipeline only if at most one in this many
/// of its transactions are left to the committer for following their sender's (see
/// [`speculability`]: the committer executes those itself, in order): mainnet 12520364, a pool's
/// 650 payouts and one call among them, 1.34x with the pipeline forced at 2 threads
/// (`profile_block`, 300 runs).
const CHAIN_CALLS_TOLERATED: usize = 20;

/// A block with less gas than [`ALONE_MAX_GAS`] of which at least this share (in percent) are
/// plain transfers runs the pipeline on the calling thread alone (see `plan_block`).
const ALONE_MIN_TRANSFERS_PERCENT: usize = 75;

/// Below this much gas, a block of mostly plain transfers runs the pipeline alone (see
/// `plan_block`): above it, a second thread pays for its wake-up. Measured in `bench` (workers
/// parked between runs, as between a node's blocks), 5 rounds, one thread against two: plain
/// transfers 1.71-1.73 against 1.59-1.62 at 8 Mgas, 1.67 against 1.67-1.74 at 12 Mgas; one
/// sender's chain 1.64-1.67 against 1.45-1.47 and 1.61-1.64 against 1.51-1.59; a hot recipient
/// 1.71-1.72 against 1.51-1.52 and 1.67-1.71 against 1.55-1.64. Mainnet payout chains:
/// 5891667 (8 Mgas) 1.48-1.52 against 1.32-1.37, 11814555 (12.5 Mgas) 1.28-1.30 against
/// 1.10-1.29; above it 12300570 (14.9 Mgas) 1.23-1.24 against 1.51-1.52, 12520364 (15 Mgas)
/// 0.89-0.90 against 1.31-1.34.
const ALONE_MAX_GAS: u64 = 13_000_000;

/// How many of a block's first plain transfers [`transfers_go_into_code`] looks at.
const INTO_CODE_SAMPLE: usize = 16;

/// Whether at least a third of the first [`INTO_CODE_SAMPLE`] plain transfers of `block` go to
/// accounts with code (or to accounts `storage` fails to read): a sample, so that a block of
/// plain transfers is not looked up account by account before it runs. The pipeline speculates
/// a plain transfer natively only between accounts without code, and executes the others
/// directly, as sequentially: mainnet 2641321 (78 plain transfers of 83, 46 of them to distinct
/// contracts) ran 0.93-0.97x on the calling thread alone and 0.98-1.00x planned sequential (four
/// alternating `bench` rounds); 2179522 (11 of its 218 into code), 3356896 (17 of 166),
/// 11814555 (28 of 578) and 5891667 (3 of 380) run 1.2-1.5x alone.
fn transfers_go_into_code<S: Storage + ?Sized>(
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
) -> bool {
    let (mut sampled, mut into_code) = (0, 0);
    for to in (block.body.transactions.iter())
        .filter(|tx| is_plain_transfer(tx))
        .filter_map(|tx| tx.kind().to().copied())
        .take(INTO_CODE_SAMPLE)
    {
        sampled += 1;
        let codeless =
            (storage.basic(&to)).is_ok_and(|account| code_hash_of(account) == KECCAK_EMPTY);
        into_code += usize::from(!codeless);
    }
    into_code * 3 >= sampled.max(1)
}

/// Blocks with fewer transactions than this run sequentially.
const MIN_PARALLEL_TXS: usize = 16;

/// Block-STM's per-transaction overhead (versioned reads, publication, validation) is amortized
/// by heavy transactions: a block runs Block-STM only if its gas per transaction is at least this
/// (swaps, the mixed workload and most recent mainnet blocks), at any thread count. Lighter
/// blocks run the pipeline, whose overhead is lower but whose committer executes every
/// conflicting transaction itself. Calibrated on 2 cores (`docs/benchmarks.md`): ERC-20
/// transfers (34,600 gas) gain 1.5× with the pipeline and 1.0–1.3× with Block-STM; the mixed
/// workload (39,900) 0.7–0.95× and 1.1–1.35×. On 16 cores the pipeline kept its lead on light
/// blocks at 4–16 threads (ERC-20 2.4–3.7× against 1.3–1.6×, plain transfers 1.9–2.1× against
/// 0.5–0.7×; mainnet 4330482 and 8038679 at 8 threads 1.40× and 1.82× against 0.74× and 1.49×),
/// so the threshold no longer falls with the thread count (it was 76,000 / threads).
const BLOCK_STM_MIN_GAS_PER_TX: u64 = 38_000;

/// The strategy for a block, judged from what is known before running it, with the reason when
/// it is sequential.
fn plan_block<S: Storage + ?Sized>(
    threads: usize,
    spec: SpecId,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
    shape: &OnceCell<BlockShape>,
) -> Plan {
    let sequential = Plan::sequential;
    let txs = block.body.transactions.len();
    if txs < 2 {
        return sequential("fewer than two transactions".into());
    }
    if threads < 2 {
        return sequential("one thread".into());
    }
    if txs < MIN_PARALLEL_TXS {
        return sequential(format!(
            "{txs} transactions (fewer than {MIN_PARALLEL_TXS})"
        ));
    }
    let gas = expected_gas(block, shape);
    let gas_per_tx = gas / txs as u64;
    let heavy = gas_per_tx >= BLOCK_STM_MIN_GAS_PER_TX;
    let small = gas < MIN_PARALLEL_GAS;
    // Mostly plain transfers (`ALONE_MIN_TRANSFERS_PERCENT`), not into code (a sample:
    // `transfers_go_into_code`): small, they run the pipeline on
    // this thread alone, at the end of the checks below. Counted only for blocks with less gas
    // than `ALONE_MAX_GAS` (the others never ask), from the shape if it was found already.
    let transfers = LazyCell::new(|| {
        let plain_transfers = match shape.get() {
            Some(shape) => shape.plain_transfers,
            None => (block.body.transactions.iter())
                .filter(|tx| is_plain_transfer(tx))
                .count(),
        };
        plain_transfers * 100 >= txs * ALONE_MIN_TRANSFERS_PERCENT
            && !transfers_go_into_code(block, storage)
    });
    if small
        && !*transfers
        && !(heavy && gas >= MIN_HEAVY_GAS_SINCE_BERLIN && spec.is_enabled_in(SpecId::BERLIN))
    {
        return sequential(format!("{gas} gas (less than {MIN_PARALLEL_GAS})"));
    }
    // The longest same-sender chain: Block-STM waits for each predecessor, and the pipeline's
    // committer executes each follower that is not a plain transfer itself. When the chain covers
    // most of the block, parallelism does not pay (mainnet payout blocks with Block-STM forced:
    // 0.36–0.50×), unless nearly every follower is a plain transfer (all but one in
    // `CHAIN_CALLS_TOLERATED`) and the block is big enough for the pipeline
    // (`MIN_CHAIN_PIPELINE_GAS`) or mostly plain transfers (`transfers`: then alone if small).
    // Otherwise, such a chain is found without the map of chains: its sender sends a strict
    // majority of the transactions (a majority vote).
    let chain_covers =
        |longest: usize| format!("one sender's nonce chain covers {longest} of {txs} transactions");
    let chain_pipelined = gas >= MIN_CHAIN_PIPELINE_GAS || *transfers;
    if !chain_pipelined
        && let Some(longest) = majority_sender_count(block)
        && longest * 3 > txs * 2
    {
        return sequential(chain_covers(longest));
    }
    let shape = shape.get_or_init(|| BlockShape::of(block));
    let previous_of_sender = &shape.previous_of_sender;
    let longest = longest_chain(previous_of_sender);
    // A call that follows one of its sender's to a destination it already called is not
    // speculated on the pre-block state (see `speculability`): `serial` counts those. The
    // pipeline leaves to its committer those of them that are not in a long chain, speculated
    // each on the one before (`chain_followers`): `to_committer`.
    let serial = (0..txs)
        .filter(|&tx| {
            speculability(&block.body.transactions, previous_of_sender, tx) != Speculable::Yes
        })
        .count();
    // (Counted only where it decides: a walk over the block's chains.)
    let to_committer = if serial * 3 > txs {
        let next = shape.next_of_sender();
        let chains = shape.chains(&next);
        let chained: usize = (0..txs)
            .map(|head| chain_followers(block, chains, head, txs))
            .filter(|&followers| followers >= CHAIN_FIRST_MIN)
            .sum();
        serial - chained
    } else {
        serial
    };
    if longest * 3 > txs * 2 && !(serial * CHAIN_CALLS_TOLERATED <= txs && chain_pipelined) {
        return sequential(chain_covers(longest));
    }
    // A block suited to Block-STM whose calls rarely share contracts takes the pipeline, small or
    // not (if the pipeline's own conditions below hold); at two threads, so does one whose
    // speculations read the slots committed before them (see `committed_slots_pay`).
    let suits_block_stm = heavy && block_stm_suits(block, previous_of_sender);
    if suits_block_stm
        && !calls_rarely_share_contracts(block, threads)
        && !committed_slots_pay(threads, block, gas, shape)
    {
        return Plan::parallel(Strategy::BlockStm);
    }
    if small && !suits_block_stm && !*transfers {
        return sequential(format!(
            "{gas} gas (less than {MIN_PARALLEL_GAS}), not suited to Block-STM"
        ));
    }
    // With a third of the block left to the pipeline's committer, the pipeline does not pay
    // (mainnet 4370000 while its chain was left to the committer, 37 of 97: 0.74-1.06x with the
    // pipeline, forced).
    // Where the pipeline would not pay, a block suited to Block-STM goes back to it.
    if to_committer * 3 > txs {
        if suits_block_stm {
            return Plan::parallel(Strategy::BlockStm);
        }
        return sequential(format!(
            "{gas_per_tx} gas per transaction, {to_committer} of {txs} transactions call what \
             their sender called (or created) earlier in the block: too chained for either engine"
        ));
    }
    // A call without input (value sent to a contract's receive code) to a contract that much of
    // the block calls that way changes it every time: the pipeline leaves those transactions to
    // its committer, one after another (`pipeline::hot_from_start`). When they are more than two
    // thirds of the block, it adds only its overhead (mainnet 6196166, 79 of 108: 0.92x; 8889776,
    // 106 of 330: 1.18x). Below that, the other transactions pay for it even where Block-STM
    // suits the block (6137495, 33 of 60: 1.19-1.33x against Block-STM's 0.93-1.20x in three
    // `bench` rounds; it ran Block-STM when the bound was a half).
    let left: usize = (hot_from_start(block, shape, |to| storage.basic(to)).iter())
        .map(|(_, calls)| calls)
        .sum();
    if left * 3 > txs * 2 {
        if suits_block_stm {
            return Plan::parallel(Strategy::BlockStm);
        }
        return sequential(format!(
            "{left} of {txs} transactions call without input contracts that many of them call \
             so: the pipeline's committer would execute them one after another"
        ));
    }
    // A block with less gas than `ALONE_MAX_GAS` whose transactions are mostly plain transfers
    // (`transfers`) runs the pipeline on the calling thread alone: it speculates those natively,
    // without revm, at a fraction of their sequential cost, and executes the rest directly, as
    // sequentially; with no thread to wake and nothing crossing cores it pays from a few dozen
    // transfers. Its committer is then the bottleneck, which a second thread relieves only on
    // bigger blocks (`ALONE_MAX_GAS`). Measured with `examples/strategies.rs` (medians of 200-400
    // runs, the pipeline forced), plain transfers between distinct accounts at 1 thread against
    // 2: 1.30x at 19 transactions, 1.54x at 47, 1.67x at 95 (0.61x and 0.86x at 2 threads in the
    // seventeenth session, on the previous host), 1.68x against 1.18x at 142, 1.69x against 1.47x
    // at 223, 1.65x against 1.70x at 476 (10 Mgas), 1.74x against 2.08x at 1,428; one sender's
    // chain 1.57x and a hot recipient 1.59x at 95 alone. Mainnet, alone against sequential
    // (nineteenth session, 200-300 runs): 2179522 (218 of 222 plain transfers) 1.38-1.46x, 3356896
    // (166 of 176) 1.16-1.21x, 116525 (66 of 83) 1.10-1.15x; 2641321 (78 of 83, but 46 of them
    // into code, executed directly) 0.97x, 0.93-0.97x in the twenty-third session: since then
    // sequential, its transfers going into code (`transfers_go_into_code`).
    if gas < ALONE_MAX_GAS && *transfers {
        return Plan::alone(Strategy::Pipeline);
    }
    Plan::parallel(Strategy::Pipeline)
}

/// The gas `block` is expected to use: the header's gas used when known (validation, sync);
/// otherwise (block building) three quarters of the gas limits, a typical ratio on mainnet,
/// summed by the pass that finds the block's shape (into `shape`: one walk over the
/// transactions, not two, on the biggest blocks).
fn expected_gas(block: &Block<Recovered<TxEnvelope>>, shape: &OnceCell<BlockShape>) -> u64 {
    match block.header.gas_used {
        0 => shape.get_or_init(|| BlockShape::of(block)).gas_limits / 4 * 3,
        gas_used => gas_used,
    }
}

/// Whether a block heavy enough for Block-STM also has the structure it needs. Block-STM makes a
/// transaction that follows one of its sender's wait for it, and its aborts cascade through a
/// contract that most transactions change; the pipeline's committer executes such transactions
/// itself, at sequential cost. So Block-STM is not chosen
/// - when more than 2 in 5 transactions follow one of their sender's (mainnet 4370000, 48 of 97:
///   0.66-0.75x with Block-STM, forced);
/// - when 9 in 10 transactions or more carry no input (value transfers, to accounts with code or
///   without): on the four such mainnet blocks the pipeline did better at 2 threads in three
///   rounds of each (6196166, transfers to a sale contract that counts them: 0.86x vs 0.69x;
///   13217637 1.59x vs 1.30x; 14396881 1.31x vs 0.79x; 15274915 1.24x vs 0.99x, medians), and
///   on 16 cores at 8 threads too (14396881 1.56x vs 0.70x, 15274915 1.18x vs 1.00x, 13217637
///   1.71x vs 1.67x; 6196166 runs sequentially).
fn block_stm_suits(
    block: &Block<Recovered<TxEnvelope>>,
    previous_of_sender: &[Option<TxIdx>],
) -> bool {
    let txs = previous_of_sender.len();
    let followers = previous_of_sender.iter().flatten().count();
    if followers * 5 > txs * 2 {
        return false;
    }
    let without_input = block
        .body
        .transactions
        .iter()
        .filter(|tx| tx.input().is_empty())
        .count();
    without_input * 10 < txs * 9
}

/// Whether, at `threads`, a block that Block-STM suits and whose calls share contracts runs the
/// pipeline anyway, its speculations reading the slots committed before them (a block of at most
/// `PUBLISH_MAX_TXS` transactions, `committed_slots.rs`): a swap on a pool swapped earlier in the
/// block is then speculated validly once the earlier swap is committed, where it was always
/// rejected. At two threads it overtook Block-STM on three of the five mainnet blocks that took
/// it (`examples/strategies 2 100`, two rounds, pipeline against Block-STM: 12522062 1.53-1.52x
/// against 1.14-1.12x, 11114732 1.69-1.66x against 1.38-1.33x, 10760440 1.35x against
/// 1.15-1.12x; 7279999 1.43x against 1.51x), not on a block one transaction dominates
/// (15537394, a 26-Mgas contract creation of its 30 Mgas: 0.97-1.01x against 1.16-1.19x: the
/// committer commits nothing past it until it ends, and re-executes serially what the others
/// speculated before it, where Block-STM re-executes on every thread). Above two threads, and
/// for blocks under `MIN_PARALLEL_GAS` (none among the fixtures that take Block-STM): unmeasured,
/// Block-STM as before. A bigger block publishes only the slots of transactions to hot or
/// conflicted destinations (`pipeline::publish_if_hot`), so it takes the pipeline too unless one
/// destination gets more than a third of its transactions: then each of those waits for the one
/// before to be committed, and Block-STM did better (`uniswap-hot-pool` at 300 Mgas, every swap
/// through one pool: 1.06x against 0.96x pipelined; `mixed` at 1 Ggas, four pools among
/// transfers: Block-STM 1.11-1.14x against the pipeline's 1.24-1.36x, `profile_block`).
fn committed_slots_pay(
    threads: usize,
    block: &Block<Recovered<TxEnvelope>>,
    gas: u64,
    shape: &BlockShape,
) -> bool {
    let txs = &block.body.transactions;
    let dominates = |tx: &TxIdx| u128::from(txs[*tx].gas_limit()) * 3 >= u128::from(gas) * 2;
    threads <= 2
        && gas >= MIN_PARALLEL_GAS
        && !shape.giants.iter().any(dominates)
        && (txs.len() <= PUBLISH_MAX_TXS || shape.dominant_destination_calls().is_none())
}

/// A block heavy enough for Block-STM whose calls (transactions with input) rarely go to a
/// contract that another call of the block goes to: fewer than [`SHARED_CALLS_PERCENT`] of its
/// transactions are such calls; above 2 threads, fewer than
/// [`SHARED_CALLS_MANY_THREADS_PERCENT`]. The pipeline then beats Block-STM: Block-STM's edge is
/// re-executing conflicting transactions on any thread, and conflicts mostly come from contracts
/// that several transactions call; the pipeline's overhead is lower. Calibrated at 2 threads on
/// the 23 heavy mainnet fixtures (`docs/benchmarks.md`, eleventh session: geometric mean over
/// them +3.2% in each of five runs against Block-STM on all of them, two parameters fitted on 23
/// blocks) and on the synthetic ones: Uniswap swaps through distinct pools (no call shares a
/// contract) 1.55–2.03× with the pipeline against 1.59–1.78×, ahead in 8 of 9 runs; the mixed
/// workload (half of its transactions such calls: tokens and hot pools) 0.95–1.07× against
/// 1.11–1.32×.
fn calls_rarely_share_contracts(block: &Block<Recovered<TxEnvelope>>, threads: usize) -> bool {
    let txs = block.body.transactions.len();
    let mut calls = alloy_primitives::map::AddressMap::<usize>::default();
    for tx in &block.body.transactions {
        if let Some(to) = tx.kind().to()
            && !tx.input().is_empty()
        {
            *calls.entry(*to).or_default() += 1;
        }
    }
    let shared: usize = calls.values().filter(|calls| **calls > 1).sum();
    let percent = if threads > 2 {
        SHARED_CALLS_MANY_THREADS_PERCENT
    } else {
        SHARED_CALLS_PERCENT
    };
    shared * 100 < txs * percent
}

/// See [`calls_rarely_share_contracts`]. Until the eighteenth session, 30% from 80,000 gas per
/// transaction on: once the caller worked a block's first share itself (the pipeline's committer
/// no longer waiting for a worker to wake), the pipeline overtook Block-STM on four blocks of 38-41%
/// such calls (`examples/strategies 2 80`, pipeline against Block-STM: 18426253 1.28× against 1.18×,
/// 17034869 1.54× against 1.42×, 18085863 1.52× against 1.47×; 16257471 1.34× against 1.40×).
/// Block-STM stays ahead above it (10760440 at 61%: 1.06× against 1.15×; 12522062 at 59%, 7279999
/// at 50%), but for 11114732 (56%: 1.63× against 1.36×).
const SHARED_CALLS_PERCENT: usize = 45;

/// Above 2 threads Block-STM's parallel re-execution pays as soon as calls share contracts at
/// all. On 16 cores at 8 threads, 21 of the 22 heavy mainnet blocks have 21–75% of their
/// transactions such calls, and 18 of them ran Block-STM faster than the pipeline (4864590 1.98×
/// against 1.43×, 14029313 1.87× against 1.37×); the one without (6137495) and Uniswap swaps
/// through distinct pools ran the pipeline faster (1.48× against 1.23×; 6.8× against 5.2×, at 16
/// threads 12.0× against 8.9×).
const SHARED_CALLS_MANY_THREADS_PERCENT: usize = 10;

/// How many transactions the sender of a strict majority of `block`'s transactions sent, if one
/// sender did (Boyer-Moore majority vote: two passes, no map).
fn majority_sender_count(block: &Block<Recovered<TxEnvelope>>) -> Option<usize> {
    let txs = &block.body.transactions;
    let mut candidate = None;
    let mut votes = 0usize;
    for tx in txs {
        let sender = tx.signer();
        if votes == 0 {
            candidate = Some(sender);
            votes = 1;
        } else if candidate == Some(sender) {
            votes += 1;
        } else {
            votes -= 1;
        }
    }
    let candidate = candidate?;
    let count = txs.iter().filter(|tx| tx.signer() == candidate).count();
    (count * 2 > txs.len()).then_some(count)
}

/// The most transactions one sender has in the block, from its same-sender links (0 for an
/// empty block).
fn longest_chain(previous_of_sender: &[Option<TxIdx>]) -> usize {
    let mut length = vec![1usize; previous_of_sender.len()];
    for (tx, previous) in previous_of_sender.iter().enumerate() {
        if let Some(previous) = previous {
            length[tx] = length[*previous] + 1;
        }
    }
    length.into_iter().max().unwrap_or(0)
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

    /// A block of contract creations by `senders`, one transaction each.
    fn block_from(senders: &[u8]) -> Block<Recovered<TxEnvelope>> {
        let txs: Vec<_> = senders
            .iter()
            .map(|&sender| (sender, None, false))
            .collect();
        crate::shape::tests::block_of(&txs)
    }

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

    /// The majority vote agrees with the map of chains on who sends a strict majority.
    #[test]
    fn majority_sender_is_the_longest_chain_when_it_covers_most() {
        let cases: [(&[u8], Option<usize>); 6] = [
            (&[], None),
            (&[1], Some(1)),
            (&[1, 2], None),
            (&[1, 2, 1, 3, 1], Some(3)),
            (&[2, 3, 1, 1, 1, 1, 2], Some(4)),
            (&[1, 1, 2, 2, 3, 3, 1], None),
        ];
        for (senders, expected) in cases {
            let block = block_from(senders);
            assert_eq!(majority_sender_count(&block), expected, "{senders:?}");
            let longest = longest_chain(&BlockShape::of(&block).previous_of_sender);
            match expected {
                Some(count) => assert_eq!(longest, count, "{senders:?}"),
                None => assert!(longest * 2 <= senders.len(), "{senders:?}"),
            }
        }
    }
}
