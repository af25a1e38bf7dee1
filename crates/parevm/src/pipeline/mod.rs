//! The pipeline: speculative execution on every thread, in-order commit.
//!
//! Every thread speculates: it claims the next unclaimed transaction and executes it against the
//! pre-block state, recording each value it read (accounts, slots) and the writes it made. One
//! thread, the same for the whole block, is the committer: it walks the block in order over the
//! sequential executor's own state and, for each transaction,
//! - if a speculation is ready, validates it — every value it read must equal the committed
//!   state's value now — and applies its writes, or re-executes the transaction directly on the
//!   committed state when a read is stale;
//! - if nobody claimed it yet, executes it directly (it is next in order: no speculation needed);
//! - if another thread is still speculating it, speculates further ahead itself (a chunk it
//!   claims, given up as soon as that speculation is ready, or else a transaction left unclaimed
//!   in another thread's chunk), or, with nothing left, waits for it (the other thread rings a
//!   doorbell).
//!
//! A speculating thread with no chunk left to claim speculates what chunks left unclaimed,
//! from the end of the block back (the furthest from the committer).
//!
//! The output is the sequential executor's by construction: the committed state is
//! [`SequentialState`](crate::sequential::SequentialState), every transaction's effect on it is
//! either revm's on that very state or a speculation whose reads all matched it (revm is
//! deterministic in what it reads). Lazy balance increments keep independent transactions
//! independent: the beneficiary's fee and the credit of a plain transfer to an account without code
//! are added at commit time instead of being read.
//!
//! Compared with Block-STM it has no multi-version memory, no concurrent maps on the read path
//! and no validation wave: speculation reads the immutable pre-block state, and the serial part
//! (validation and applying writes, which sequential execution does anyway) overlaps with
//! speculation. Its limit is that a transaction depending on an earlier one of the same block is
//! executed on the committer, serially: it suits few threads and blocks with few conflicts.

mod committer;
mod doorbell;
mod hot;
#[cfg(all(test, feature = "shuttle"))]
mod interleavings;
mod schedule;
mod slots;
mod speculation;

use std::{
    panic::AssertUnwindSafe,
    sync::atomic::{AtomicUsize, Ordering},
};

use alloy_consensus::{Block, TxEnvelope, transaction::Recovered};
use crossbeam_utils::CachePadded;
use revm::{
    context::{BlockEnv, CfgEnv},
    primitives::hardfork::SpecId,
};

use crate::{
    ChainSpec, ExecutionError, TxIdx,
    committed_slots::CommittedSlots,
    output::{BlockOutput, TxReceipt, merge_changes},
    pre_state::PreState,
    sequential::{BlockStart, finish_block, start_block},
    shape::{BlockShape, SenderChains},
    storage::{OverlayStorage, Storage},
    sync::{AtomicBool, Mutex, spin_loop},
    worker_pool::WorkerPool,
};

use committer::{Committer, commit_block};
use doorbell::Doorbell;
pub(crate) use hot::hot_from_start;
use hot::{Deferred, HotDestinations};
pub(crate) use schedule::{
    CHAIN_FIRST_MIN, Speculable, chain_followers, is_plain_transfer, speculability,
};
use schedule::{
    CLAIM_CHUNK, REFRESH_AHEAD, Refresher, heads_long_chain, speculate_chunk, speculate_leftover,
};
pub(crate) use slots::Slots;
use speculation::Speculator;
pub(crate) use speculation::code_hash_of;

/// Counters of one pipelined block.
#[derive(Debug, Default)]
pub(crate) struct PipelineCounters {
    /// Speculations run (whether used or not).
    pub(crate) speculations: AtomicUsize,
    /// Transactions the committer executed itself (unclaimed, or a stale speculation).
    pub(crate) direct: AtomicUsize,
    /// Speculations validated at commit.
    pub(crate) validations: AtomicUsize,
    /// Speculations rejected at commit (a stale read, or one the committer cannot apply).
    pub(crate) rejected: AtomicUsize,
    /// Transactions not speculated for their hot destination (see [`HotDestinations`]).
    pub(crate) left_to_committer: AtomicUsize,
}

/// Blocks with at most this many transactions publish every committed slot for speculations to read
/// ([`CommittedSlots`]). Bigger ones publish only the slots of transactions to hot or conflicted
/// destinations ([`publish_if_hot`](committer::publish_if_hot)): publishing every slot would cost
/// the committer on every transaction, and gigagas blocks of independent transactions gain nothing
/// from it.
pub(crate) const PUBLISH_MAX_TXS: usize = 4096;

/// What the pipeline leaves when it hands over: the block's start with the committed
/// transactions' changes merged in, their receipts, their gas, and the first transaction left.
pub(crate) struct CommittedPrefix {
    pub(crate) start: BlockStart,
    pub(crate) next: TxIdx,
    pub(crate) receipts: Vec<TxReceipt>,
    pub(crate) gas_used: u64,
}

/// How a pipelined block ended.
pub(crate) enum PipelineEnd {
    /// Every transaction committed.
    Finished(BlockOutput),
    /// The committed prefix, the rest of the block left to Block-STM.
    HandedOver(Box<CommittedPrefix>),
}

/// A slot's state: nobody took the transaction yet.
const UNCLAIMED: u8 = 0;
/// A thread is speculating it.
const SPECULATING: u8 = 1;
/// Its speculation is ready (possibly unusable: `None`).
const READY: u8 = 2;
/// The committer took it: executing it directly.
const TAKEN: u8 = 3;
/// Committed: its speculation applied (or rejected and dropped) or its direct execution done.
/// Transactions are committed in order: every one before a committed one is committed.
const COMMITTED: u8 = 4;

/// What every thread of a pipelined block shares.
struct Shared<'a, S: ?Sized> {
    block: &'a Block<Recovered<TxEnvelope>>,
    spec: SpecId,
    block_env: &'a BlockEnv,
    cfg: &'a CfgEnv,
    pre: &'a PreState<'a, S>,
    slots: &'a Slots,
    /// The slots committed so far, when published (see [`PUBLISH_MAX_TXS`]).
    committed: Option<&'a CommittedSlots>,
    /// Whether the committer publishes every transaction's slots, or only those of transactions
    /// to hot or conflicted destinations (see [`PUBLISH_MAX_TXS`]).
    publish_all: bool,
    /// For each transaction, the previous one of the same sender in the block (see
    /// [`speculability`]).
    previous_of_sender: &'a [Option<TxIdx>],
    /// The senders' chains (see [`chain_followers`]).
    chains: SenderChains<'a>,
    /// The giants, in order (see [`outweighs`](schedule::outweighs)).
    giants: &'a [TxIdx],
    /// The giants, the heaviest first ([`giant_weight`](crate::shape::giant_weight)): the order
    /// speculating threads take them in.
    giants_largest_first: &'a [TxIdx],
    /// The committer hands the rest of the block over to Block-STM once this many transactions
    /// are committed ([`crate::Strategy::HandOver`]).
    hand_over_at: Option<TxIdx>,
    /// One thread, and what it speculates before committing (`None`: several threads).
    alone: Option<Speculate>,
    /// Transactions a thread claims at once while no speculation was rejected
    /// ([`CLAIM_CHUNK`]; fewer under shuttle, so that small blocks have several chunks).
    claim_chunk: usize,
    /// How far ahead of the committer a thread refreshes stale speculations ([`REFRESH_AHEAD`];
    /// nearer under shuttle, so that small blocks refresh).
    refresh_ahead: usize,
    /// The next transaction to offer for speculation (claimed by every thread: a line of its
    /// own).
    next_speculation: CachePadded<crate::sync::AtomicUsize>,
    /// The block's flags: read by every thread on every step, written rarely (a line of their
    /// own).
    flags: CachePadded<Flags>,
    /// Wakes the committer (a line of its own).
    doorbell: CachePadded<Doorbell>,
    counters: &'a PipelineCounters,
}

impl<S: ?Sized> Shared<'_, S> {
    /// Whether and how threads speculate transaction `tx` (see [`speculability`]).
    fn speculability(&self, tx: TxIdx) -> Speculable {
        speculability(&self.block.body.transactions, self.previous_of_sender, tx)
    }

    /// The transactions the pipeline commits: all of them, or those before the hand-over
    /// (neither speculated nor committed from there on: they are Block-STM's).
    fn pipelined(&self) -> TxIdx {
        self.slots
            .len()
            .min(self.hand_over_at.unwrap_or(TxIdx::MAX))
    }
}

impl<'a, S: Storage + ?Sized> Shared<'a, S> {
    /// What the threads running `block` on `threads` share, every slot unclaimed.
    fn new(
        block: &'a Block<Recovered<TxEnvelope>>,
        (spec, block_env, cfg): (SpecId, &'a BlockEnv, &'a CfgEnv),
        pre: &'a PreState<'a, S>,
        (shape, next_of_sender, slots): (&'a BlockShape, &'a [Option<TxIdx>], &'a Slots),
        threads: &Threads<'_>,
        hand_over_at: Option<TxIdx>,
        counters: &'a PipelineCounters,
    ) -> Self {
        let txs = block.body.transactions.len();
        Self {
            block,
            spec,
            block_env,
            cfg,
            pre,
            hand_over_at,
            slots,
            // Not on a thread alone that speculates plain transfers only (they read no slot);
            // on one that speculates everything (forced, for tests), each speculation runs after
            // the commits before it and reads their slots.
            committed: (!matches!(threads, Threads::Alone(Speculate::Natively)))
                .then_some(&slots.committed),
            publish_all: txs <= PUBLISH_MAX_TXS,
            previous_of_sender: &shape.previous_of_sender,
            chains: shape.chains(next_of_sender),
            giants: &shape.giants,
            giants_largest_first: &shape.giants_largest_first,
            alone: match threads {
                Threads::Alone(speculate) => Some(*speculate),
                _ => None,
            },
            claim_chunk: match threads {
                #[cfg(all(test, feature = "shuttle"))]
                Threads::Shuttle(_) => 2,
                _ => CLAIM_CHUNK,
            },
            refresh_ahead: match threads {
                #[cfg(all(test, feature = "shuttle"))]
                Threads::Shuttle(_) => 1,
                _ => REFRESH_AHEAD,
            },
            // With other threads, the first transaction is the committer's from the start: valid
            // on the committed state by construction, so speculating it would only make the
            // committer wait (and, where the speculation is unusable, execute it twice: mainnet
            // 12300570's first transaction, a 360,000-gas call that pays the beneficiary).
            next_speculation: CachePadded::new(crate::sync::AtomicUsize::new(usize::from(
                !matches!(threads, Threads::Alone(_)),
            ))),
            flags: CachePadded::new(Flags {
                speculating: AtomicBool::new(true),
                done: AtomicBool::new(txs == 0),
                conflicts: AtomicBool::new(false),
                hot: HotDestinations::new(block, shape, pre),
            }),
            doorbell: CachePadded::new(Doorbell::new()),
            counters,
        }
    }
}

/// The flags of a pipelined block.
struct Flags {
    /// Cleared when rejected speculations dominate: threads stop speculating and the committer
    /// executes the rest directly.
    speculating: AtomicBool,
    /// Set when the block is committed or failed: threads stop.
    done: AtomicBool,
    /// Set at the first rejected speculation: threads claim one transaction at a time (see
    /// [`CLAIM_CHUNK`]).
    conflicts: AtomicBool,
    /// Destinations whose transactions are left to the committer.
    hot: HotDestinations,
}

/// The threads a pipelined block runs on.
pub(crate) enum Threads<'p> {
    /// The calling thread alone, speculating before committing.
    Alone(Speculate),
    /// This many threads of the pool.
    Pool(&'p WorkerPool, usize),
    /// The calling thread and this many minus one shuttle threads (model tests).
    #[cfg(all(test, feature = "shuttle"))]
    Shuttle(usize),
}

/// What the calling thread alone speculates before committing a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Speculate {
    /// Every transaction threads would speculate (see [`speculability`]): the speculative path
    /// checked against the committed state on every such transaction (the pipeline forced on
    /// one thread, as the state tests run it).
    Every,
    /// Only what it speculates natively (see [`native_transfer`](crate::native_transfer)); the rest
    /// is executed directly, as sequentially, since alone a speculation made with revm and then
    /// validated only costs more (mainnet 3356896, 166 plain transfers of 176: 1.03x against
    /// 1.21x). The planner's choice for small blocks of plain transfers.
    Natively,
}

/// Runs `block` (its `shape`, and `slots` for its transactions) through the pipeline on
/// `threads`, handing the rest over to Block-STM once `hand_over_at` transactions are committed.
pub(crate) fn execute_pipeline<S: Storage + ?Sized>(
    chain: &ChainSpec,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
    (shape, slots): (&BlockShape, &mut Slots),
    threads: Threads<'_>,
    hand_over_at: Option<TxIdx>,
    counters: &PipelineCounters,
) -> Result<PipelineEnd, ExecutionError> {
    let BlockStart {
        spec,
        block_env,
        cfg,
        mut changes,
    } = start_block(chain, block, storage)?;
    let overlay = OverlayStorage {
        base: storage,
        changes: &changes,
    };
    let pre = PreState::new(&overlay);
    let txs = block.body.transactions.len();
    slots.prepare(txs);
    let next_of_sender = shape.next_of_sender();
    let shared = Shared::new(
        block,
        (spec, &block_env, &cfg),
        &pre,
        (shape, &next_of_sender, slots),
        &threads,
        hand_over_at,
        counters,
    );
    let committer = CachePadded::new(Mutex::new(Committer::new(&overlay, txs)));
    let work = |index: usize| run_thread(&shared, &committer, &overlay, index);
    match threads {
        Threads::Alone(_) => work(0),
        Threads::Pool(pool, threads) => pool.run(threads, work),
        #[cfg(all(test, feature = "shuttle"))]
        Threads::Shuttle(threads) => shuttle::thread::scope(|scope| {
            for index in 1..threads {
                scope.spawn(move || work(index));
            }
            work(0);
        }),
    }
    let pipelined = shared.pipelined();
    let Committer {
        state,
        next,
        gas_used,
        receipts,
        error,
        validations,
        rejected,
        direct,
        left_to_committer,
        destinations: _,
    } = CachePadded::into_inner(committer).into_inner();
    counters.validations.store(validations, Ordering::Relaxed);
    counters.rejected.store(rejected, Ordering::Relaxed);
    counters.direct.store(direct, Ordering::Relaxed);
    counters
        .left_to_committer
        .store(left_to_committer, Ordering::Relaxed);
    if let Some(error) = error {
        return Err(error);
    }
    if next != pipelined {
        return Err(ExecutionError::Internal(format!(
            "pipeline stopped at transaction {next} of {txs}"
        )));
    }
    let tx_changes = state.into_changes();
    merge_changes(&mut changes, tx_changes);
    if next < txs {
        let start = BlockStart {
            spec,
            block_env,
            cfg,
            changes,
        };
        return Ok(PipelineEnd::HandedOver(Box::new(CommittedPrefix {
            start,
            next,
            receipts,
            gas_used,
        })));
    }
    finish_block(chain, spec, block, storage, changes, receipts, gas_used)
        .map(PipelineEnd::Finished)
}

/// One thread's part of the block: thread 0 is the committer (see [`commit_block`]); the others
/// speculate until nothing is left to claim. A panic stops the block (the committer may be
/// waiting for this thread's speculation) and goes on unwinding.
fn run_thread<'a, S: Storage + ?Sized>(
    shared: &Shared<'a, S>,
    committer: &Mutex<Committer<'a, S>>,
    view: &'a S,
    index: usize,
) {
    let mut speculator: Option<Speculator<'a, S>> = None;
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        if index == 0 {
            commit_block(shared, committer, view, &mut speculator);
        } else {
            // The heads of long chains first (see `heads_long_chain`), then the giants (see
            // `outweighs`), then chunks, then what chunks left unclaimed, from the end back.
            let pipelined = shared.pipelined();
            if shared.chains.repeated > 0 {
                let mut chains = (0..pipelined).filter(|&tx| heads_long_chain(shared, tx));
                while speculate_leftover(shared, &mut speculator, &mut chains, true).is_some() {}
            }
            let mut giants =
                (shared.giants_largest_first.iter().copied()).filter(|&tx| tx < pipelined);
            while speculate_leftover(shared, &mut speculator, &mut giants, true).is_some() {}
            // Before each claim, what is near the committer: a stale speculation to refresh, or a
            // transaction to a hot destination that has ripened.
            let (mut deferred, mut refresher) = (Deferred::default(), Refresher::default());
            let mut near_the_committer = |speculator: &mut _, deferred: &mut Deferred| {
                (refresher.ahead(shared) && refresher.refresh(shared, speculator))
                    || deferred.speculate_ripe(shared, speculator)
            };
            while {
                near_the_committer(&mut speculator, &mut deferred);
                speculate_chunk(shared, &mut speculator, None, Some(&mut deferred))
            } {}
            let mut from_the_end = (0..pipelined).rev();
            while {
                near_the_committer(&mut speculator, &mut deferred);
                speculate_leftover(shared, &mut speculator, &mut from_the_end, true).is_some()
            } {}
            // Nothing left to claim: the kept transactions ripen as the committer goes on (or it
            // takes them), and speculations ahead of it turn stale meanwhile. (Watching for stale
            // speculations until the block's end, with nothing kept, slowed the committer: the
            // statuses it writes are the ones watched.)
            while !deferred.0.is_empty() {
                if !refresher.refresh(shared, &mut speculator)
                    && !deferred.speculate_ripe(shared, &mut speculator)
                {
                    spin_loop();
                }
            }
        }
    }));
    if let Some(speculator) = speculator {
        shared
            .counters
            .speculations
            .fetch_add(speculator.speculations, Ordering::Relaxed);
    }
    if let Err(panic) = outcome {
        shared.flags.done.store(true, Ordering::SeqCst);
        shared.doorbell.ring();
        std::panic::resume_unwind(panic);
    }
}
