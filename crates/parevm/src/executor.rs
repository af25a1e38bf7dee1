//! Public entry point of the parallel engine: [`ParallelExecutor`] runs each block as the planner
//! chose (sequentially, through the pipeline or through Block-STM) on its persistent workers and
//! returns the same [`BlockOutput`] the sequential executor produces; an internal invariant breach
//! is answered with sequential re-execution.

use std::{cell::OnceCell, num::NonZeroUsize, panic::AssertUnwindSafe, sync::atomic::Ordering};

use alloy_consensus::{Block, TxEnvelope, transaction::Recovered};
use parking_lot::Mutex;

use crate::{
    BlockOutput, ChainSpec, ExecutionError, TxIdx,
    block_stm::{Counters, Engine, execute_block_stm, panic_message},
    mv_memory::MvMemory,
    pipeline::{
        CommittedPrefix, PipelineCounters, PipelineEnd, Slots, Speculate, Threads, execute_pipeline,
    },
    planner::{Plan, plan_block},
    shape::BlockShape,
    storage::Storage,
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
        counters.add_to(&mut stats, txs);
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
