//! Block-STM's run of a block: the workers' loop over the scheduler's tasks (execute, validate),
//! the multi-version memory, giving way to sequential execution when conflicts dominate, and the
//! block's changes collected from the final incarnations; over the whole block, or over the rest
//! the pipeline hands over.

use std::{
    panic::AssertUnwindSafe,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
};

use alloy_consensus::{Block, TxEnvelope, transaction::Recovered};
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::{
    BlockOutput, ChainSpec, ExecutionError, TxIdx, chain,
    executor::{ExecutionStats, Strategy},
    mv_memory::MvMemory,
    mv_memory::ReadError,
    output::{StateChanges, merge_changes},
    pipeline::CommittedPrefix,
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
    worker_pool::WorkerPool,
};

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

/// What one Block-STM run counts (reported in [`ExecutionStats`]) and whether it gave way.
#[derive(Default)]
pub(crate) struct Counters {
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
    pub(crate) fn new(txs: usize, workers: usize, strategy: Strategy) -> Self {
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

    /// Adds this run's counts to `stats` (on top of the pipeline's when it handed over), over
    /// `txs` transactions: the sequential suffix, if it gave way, executed each of its own once.
    pub(crate) fn add_to(&self, stats: &mut ExecutionStats, txs: usize) {
        stats.executions += self.total(|tally| &tally.executions);
        stats.validations += self.total(|tally| &tally.validations);
        stats.aborts += self.total(|tally| &tally.aborts);
        stats.dependency_waits = self.total(|tally| &tally.dependency_waits);
        stats.sender_waits = self.total(|tally| &tally.sender_waits);
        stats.sequential_from = *self.sequential_from.lock();
        if let Some(sequential_from) = stats.sequential_from {
            stats.executions += txs - sequential_from;
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

type Breach = Box<dyn std::any::Any + Send>;

/// What one Block-STM run executes on: the threads (the pool, or the calling thread alone) and
/// the multi-version memory (emptied, reused across blocks).
pub(crate) struct Engine<'a> {
    pub(crate) pool: Option<&'a WorkerPool>,
    pub(crate) threads: usize,
    pub(crate) mv: &'a MvMemory,
}

pub(crate) fn panic_message(panic: Breach) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        message.to_string()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// What one transaction's final incarnation read and wrote: (reads, writes with their kind).
type Accesses = (Vec<MemoryLocation>, Vec<(MemoryLocation, WriteKind)>);

/// A traced block: its output, each transaction's accesses, and the same-sender chains.
type Traced = (BlockOutput, Vec<Accesses>, Vec<Option<TxIdx>>);

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
pub(crate) fn execute_block_stm<S: Storage + ?Sized>(
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
pub(crate) fn run_worker<S: Storage + ?Sized>(
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
