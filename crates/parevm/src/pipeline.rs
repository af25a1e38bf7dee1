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
//! [`SequentialState`], every transaction's effect on it is either revm's on that very state or a
//! speculation whose reads all matched it (revm is deterministic in what it reads). Lazy balance
//! increments keep independent transactions independent: the beneficiary's fee and the credit of
//! a plain transfer to an account without code are added at commit time instead of being read.
//!
//! Compared with Block-STM it has no multi-version memory, no concurrent maps on the read path
//! and no validation wave: speculation reads the immutable pre-block state, and the serial part
//! (validation and applying writes, which sequential execution does anyway) overlaps with
//! speculation. Its limit is that a transaction depending on an earlier one of the same block is
//! executed on the committer, serially: it suits few threads and blocks with few conflicts.

use std::{
    panic::AssertUnwindSafe,
    sync::atomic::{AtomicUsize, Ordering},
};

use alloy_consensus::{Block, Transaction, TxEnvelope, transaction::Recovered};
use alloy_primitives::{Address, B256, U256};
use crossbeam_utils::CachePadded;
use revm::{
    Database, ExecuteEvm,
    bytecode::Bytecode,
    context::{BlockEnv, CfgEnv, result::ExecutionResult},
    handler::{Handler, MainnetContext, MainnetEvm},
    primitives::{KECCAK_EMPTY, hardfork::SpecId},
    state::AccountInfo,
};
use smallvec::{SmallVec, smallvec};

use crate::{
    ChainSpec, ExecutionError, TxIdx,
    account_diff::{AccountDiff, diff_account},
    balance_observer::{BalanceBounds, BalanceObserver, HUGE, observe_balances},
    chain,
    committed_slots::CommittedSlots,
    mv_memory::ReadError,
    native_transfer,
    output::{BlockOutput, TxReceipt, merge_changes},
    pre_state::{PreState, ThreadCode},
    sequential::{
        BlockStart, SequentialState, check_block_gas, execute_tx, finish_block, receipt_of,
        start_block,
    },
    shape::{BlockShape, DESTINATION_BUCKETS, SenderChains, giant_weight},
    storage::{AccountBasic, OverlayStorage, Storage, StorageError},
    sync::{
        AtomicBool, AtomicU8, COMMITTER_SPIN, Condvar, Mutex, PARK_TIMEOUT, SPIN_ROUNDS, spin_loop,
    },
    types::address_bucket,
    vm::{LazyFeeHandler, lazy_recipient, plain_transfer_recipient},
    worker_pool::WorkerPool,
};

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

/// How far past the transaction it waits for the committer looks for one to speculate meanwhile
/// (transactions left to it stay unclaimed: each wait would otherwise scan them all again).
const STEAL_WINDOW: usize = 64;

/// Speculation stops once at least this many speculations were validated, if more than
/// [`GIVE_UP_REJECTED_PERCENT`] percent of them were rejected: conflicts dominate (a hot pool,
/// a chain of dependent calls), and each rejected speculation only delays the committer.
const GIVE_UP_MIN_VALIDATIONS: usize = 32;

/// See [`GIVE_UP_MIN_VALIDATIONS`].
const GIVE_UP_REJECTED_PERCENT: usize = 50;

/// Blocks with at most this many transactions publish every committed slot for speculations to
/// read ([`CommittedSlots`]). Bigger ones publish only the slots of transactions to hot or
/// conflicted destinations ([`publish_if_hot`]): publishing every slot would cost the committer
/// on every transaction, and gigagas blocks of independent transactions gain nothing from it.
pub(crate) const PUBLISH_MAX_TXS: usize = 4096;

/// Transactions a thread claims at once while no speculation was rejected: threads meet on the
/// claim counter once per chunk rather than once per transaction. Once a
/// speculation is rejected, threads claim one transaction at a time: the further ahead a
/// speculation runs, the likelier a conflicting block makes it stale.
const CLAIM_CHUNK: usize = 8;

/// A destination turns hot once at least this many speculations of transactions to it were
/// rejected, and more than half of those validated.
const HOT_MIN_REJECTED: u32 = 2;

/// A transaction to a hot destination is speculated once the previous transaction to that
/// destination is committed, if the committer has at least this many transactions to commit
/// before it ([`is_ripe`]).
const RIPE_MARGIN: usize = 2;

/// How far back [`is_ripe`] looks for the previous transaction to the same destination (beyond,
/// the transaction is left to the committer).
const RIPE_LOOKBACK: usize = 256;

/// Speculations of transactions to one destination (bucket) rejected before threads refresh
/// stale ones to it ([`Refresher`]).
const REFRESH_MIN_REJECTED: u32 = 2;

/// How many transactions after the committer's next (and [`RIPE_MARGIN`]) a speculating thread
/// looks at for stale speculations ([`Refresher`]).
const REFRESH_WINDOW: usize = 16;

/// A speculating thread refreshes stale speculations ([`Refresher`]) once it speculates this many
/// transactions ahead of the committer: the committer, not speculation, is then the limit.
const REFRESH_AHEAD: usize = 32;

/// Hot transactions a speculating thread keeps to speculate once ripe ([`Deferred`]): every one
/// in practice. With 64, a thread far ahead of the committer had kept its fill long before and
/// left the rest of a big block's hot transactions to the committer (`mixed` at 300 Mgas: 754
/// swaps executed by the committer, 426 with every one kept).
const DEFERRED_MAX: usize = 1 << 16;

/// How many of its kept transactions, the nearest the committer first, a speculating thread
/// looks at for a ripe one ([`Deferred::speculate_ripe`]; 4 before the twenty-ninth session).
const DEFERRED_LOOKED_AT: usize = 16;

/// A contract called without input by at least one in this many of a block's transactions is
/// hot from the start (see [`HotDestinations::new`]).
const HOT_FROM_START_SHARE: usize = 8;

/// ... and by at least this many.
const HOT_FROM_START_MIN: usize = 4;

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

/// Destinations (a transaction's `to`) whose speculations are mostly rejected: a contract that
/// every transaction to it changes, such as a sale counting its deposits. Threads leave
/// transactions to a hot destination to the committer, which executes them directly instead of
/// validating a speculation that is likely stale, and speculate the others. Destinations are
/// hashed into [`DESTINATION_BUCKETS`] buckets: a collision leaves another destination's
/// transactions to the committer too (slower, never wrong). Only the committer marks a bucket,
/// from its own counts ([`DestinationCounts`]); threads only read: the flags stay in every
/// core's cache.
struct HotDestinations {
    hot: Box<[AtomicBool]>,
    /// Buckets of destinations with [`REFRESH_MIN_REJECTED`] rejected speculations (see
    /// [`Refresher`]).
    conflicted: Box<[AtomicBool]>,
    /// Whether any bucket is conflicted.
    any_conflicted: AtomicBool,
}

impl HotDestinations {
    /// No destination hot yet, except the contracts `block` calls without input in at least one
    /// in [`HOT_FROM_START_SHARE`] of its transactions: value sent to a contract's `receive` or
    /// fallback code (a sale counting deposits) almost always changes the contract's state, so
    /// each such transaction depends on the previous one; waiting for two rejections would let a
    /// small block's other threads speculate most of them in vain.
    fn new<S: Storage + ?Sized>(
        block: &Block<Recovered<TxEnvelope>>,
        shape: &BlockShape,
        pre: &PreState<'_, S>,
    ) -> Self {
        let flags = || {
            (0..DESTINATION_BUCKETS)
                .map(|_| AtomicBool::new(false))
                .collect()
        };
        let hot = Self {
            hot: flags(),
            conflicted: flags(),
            any_conflicted: AtomicBool::new(false),
        };
        for (to, _) in hot_from_start(block, shape, |to| pre.basic(to)) {
            hot.hot[address_bucket(to, DESTINATION_BUCKETS)].store(true, Ordering::Relaxed);
        }
        hot
    }

    /// The bucket of a transaction's destination (`None` for a contract creation).
    fn bucket(tx: &Recovered<TxEnvelope>) -> Option<usize> {
        Some(address_bucket(tx.kind().to()?, DESTINATION_BUCKETS))
    }

    /// Whether speculating `tx` is likely to be wasted.
    fn is_hot(&self, tx: &Recovered<TxEnvelope>) -> bool {
        Self::bucket(tx).is_some_and(|bucket| self.hot[bucket].load(Ordering::Relaxed))
    }

    /// Whether a speculation of a transaction to `tx`'s destination (or one sharing its bucket)
    /// was rejected.
    fn is_conflicted(&self, tx: &Recovered<TxEnvelope>) -> bool {
        Self::bucket(tx).is_some_and(|bucket| self.conflicted[bucket].load(Ordering::Relaxed))
    }
}

/// The contracts that `block` calls without input in at least one in [`HOT_FROM_START_SHARE`]
/// of its transactions (and [`HOT_FROM_START_MIN`]), with the number of those calls: hot from the
/// start (see [`HotDestinations::new`]). Found once per block (kept in `shape`, whose counts per
/// destination bucket spare the walk over the transactions when no bucket has that many, or when
/// each such bucket's calls all went to one destination). `basic` gives an account's pre-block
/// fields; an account it cannot read counts as without code (a guess: speed only, never the
/// result).
pub(crate) fn hot_from_start<'s>(
    block: &Block<Recovered<TxEnvelope>>,
    shape: &'s BlockShape,
    basic: impl Fn(&Address) -> Result<Option<AccountBasic>, StorageError>,
) -> &'s [(Address, usize)] {
    shape.hot_from_start.get_or_init(|| {
        let txs = block.body.transactions.len();
        let threshold = HOT_FROM_START_MIN.max(txs.div_ceil(HOT_FROM_START_SHARE));
        let full = |bucket: usize| shape.calls_without_input(bucket) >= threshold;
        let mut calls = alloy_primitives::map::AddressMap::<usize>::default();
        let mut mixed = false;
        for bucket in (0..DESTINATION_BUCKETS).filter(|&bucket| full(bucket)) {
            match shape.sole_destination(bucket) {
                Some(to) => {
                    calls.insert(to, shape.calls_without_input(bucket));
                }
                None => mixed = true,
            }
        }
        if mixed {
            for tx in &block.body.transactions {
                if tx.input().is_empty()
                    && let Some(to) = tx.kind().to()
                    && let bucket = address_bucket(to, DESTINATION_BUCKETS)
                    && full(bucket)
                    && shape.sole_destination(bucket).is_none()
                {
                    *calls.entry(*to).or_default() += 1;
                }
            }
        }
        let has_code =
            |to: &Address| basic(to).is_ok_and(|account| code_hash_of(account) != KECCAK_EMPTY);
        calls
            .into_iter()
            .filter(|(to, count)| *count >= threshold && has_code(to))
            .collect()
    })
}

/// The committer's counts per destination bucket: speculations validated, and rejected.
struct DestinationCounts(Vec<(u32, u32)>);

impl DestinationCounts {
    fn new() -> Self {
        Self(vec![(0, 0); DESTINATION_BUCKETS])
    }

    /// Counts the validation of a speculation of `tx`, marking its destination hot when
    /// rejections dominate.
    fn record(&mut self, hot: &HotDestinations, tx: &Recovered<TxEnvelope>, rejected: bool) {
        let Some(bucket) = HotDestinations::bucket(tx) else {
            return;
        };
        let (validated, rejections) = &mut self.0[bucket];
        *validated += 1;
        *rejections += u32::from(rejected);
        if rejected && *rejections == REFRESH_MIN_REJECTED {
            hot.conflicted[bucket].store(true, Ordering::Relaxed);
            hot.any_conflicted.store(true, Ordering::Relaxed);
        }
        if rejected && *rejections >= HOT_MIN_REJECTED && *rejections * 2 > *validated {
            hot.hot[bucket].store(true, Ordering::Relaxed);
        }
    }
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

/// Each transaction's place in the pipeline, kept from block to block (emptied, not freed): its
/// status, and its speculation once made. A speculation is inline (over a kilobyte), so a
/// block's speculations span a kilobyte and more per transaction, and fresh ones were fresh
/// pages: on a gigagas block of plain transfers, the kernel zeroing the 60 MB of its 47,619
/// slots took a seventh of the parallel run (`perf`). The statuses lie apart, one byte each:
/// the committer walks them in order, and they are reset for the next block in one sweep.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    statuses: Vec<AtomicU8>,
    speculations: Vec<Mutex<Option<Speculation>>>,
    /// The slots committed so far, for speculations to read (see [`PUBLISH_MAX_TXS`]).
    committed: CommittedSlots,
}

impl Slots {
    /// Exactly `txs` slots, every one unclaimed and empty (as [`Slots::empty`] left them).
    fn prepare(&mut self, txs: usize) -> &Self {
        self.statuses.truncate(txs);
        self.statuses.resize_with(txs, || AtomicU8::new(UNCLAIMED));
        self.speculations.truncate(txs);
        self.speculations.resize_with(txs, || Mutex::new(None));
        self.committed.next_block();
        self
    }

    /// The slots' number.
    fn len(&self) -> usize {
        self.statuses.len()
    }

    /// Drops what a block left in its slots (speculations still `READY`: past a failed
    /// transaction or the hand-over; the committer dropped the others) and marks them unclaimed
    /// for the next block.
    pub(crate) fn empty(&mut self) {
        for (status, speculation) in self.statuses.iter_mut().zip(&mut self.speculations) {
            if *status.get_mut() == READY {
                *speculation.get_mut() = None;
            }
            *status.get_mut() = UNCLAIMED;
        }
    }
}

/// A value a speculation read from the pre-block state.
#[derive(Debug, PartialEq)]
enum Read {
    /// An account (`None`: it did not exist).
    Account(Address, Option<AccountBasic>),
    /// A slot's value as committed by an earlier transaction of the block when the speculation
    /// read it ([`CommittedSlots`]): validated against the committed state without seeding it
    /// (the value is not the pre-block one).
    CommittedStorage(Address, U256, U256),
    /// The recipient of a plain value transfer had no code (its balance was not read); the
    /// pre-block account, to seed the committed state.
    CodelessRecipient(Address, Option<AccountBasic>),
    /// The sender of a transaction that follows one of its sender's, or is sent by the
    /// beneficiary (see [`speculability`]): the speculation assumed this nonce, its pre-block code
    /// hash and a balance of exactly what the transaction may spend at most (`required`), and no
    /// code observed that balance (see [`crate::balance_observer`]); at commit the nonce and code
    /// hash must match and the balance cover it, and the sender's balance changes as the
    /// speculation changed the assumed one ([`SenderChange`]).
    SenderFunds {
        address: Address,
        nonce: u64,
        required: U256,
        /// The pre-block account, to seed the committed state (and its code hash, assumed).
        pre: Option<AccountBasic>,
    },
    /// A storage slot.
    Storage(Address, U256, U256),
    /// An account with code, not the sender, whose balance the transaction's code did not observe
    /// (see [`crate::balance_observer`]); its pre-block value. At commit its existence, nonce and
    /// code hash must match; what it received is credited (`Speculation::contract_credits`).
    Contract(Address, AccountBasic),
    /// An account without code and not empty (a nonce or a balance), not the sender, whose
    /// balance the transaction's code did not observe and that it only credited (value sent to
    /// it from code: a payout, a refund); its pre-block value. Nothing the transaction does
    /// depends on its balance or nonce: a call's cost depends only on whether it exists (before
    /// EIP-161) or is empty (since), and no instruction reads another account's nonce. At commit
    /// it must still exist without code and not be empty (its own transactions may have changed
    /// its nonce and balance meanwhile); what it received is credited, as for a contract.
    Payee(Address, AccountBasic),
}

/// The code hash of a pre-block account (that of no code when it did not exist).
pub(crate) fn code_hash_of(account: Option<AccountBasic>) -> B256 {
    account.map_or(KECCAK_EMPTY, |account| account.code_hash)
}

/// Whether an account is empty as EIP-161 defines it: no code, no nonce, no balance.
fn is_empty(account: &AccountBasic) -> bool {
    account.code_hash == KECCAK_EMPTY && account.nonce == 0 && account.balance.is_zero()
}

/// A speculation's reads, inline up to a token transfer's four (sender, contract, two balance
/// slots). A speculation is usually made on one thread and committed on the other, and a heap
/// buffer freed on another thread than the one that allocated it costs the allocator atomic
/// operations on lines both cores write (with mimalloc, `mi_free` was a fifth of the threads'
/// time on plain transfers). Inline, the data also travels in the slot array, which the committer
/// walks in order (prefetched), instead of scattered buffers; recycling heap buffers back to
/// their thread was tried and was slower (`docs/benchmarks.md`, tenth session). A token
/// transfer still allocates its contract's list of written slots (`AccountDiff::storage`).
type Reads = SmallVec<[Read; 4]>;

/// A speculation's writes, by account, inline up to a token transfer's two (sender, contract),
/// as for [`Reads`].
type Writes = SmallVec<[(Address, AccountDiff); 2]>;

/// What one speculative execution produced, to be validated and applied at commit.
#[derive(Debug, PartialEq)]
struct Speculation {
    /// Taken when the speculation is applied.
    result: Option<ExecutionResult>,
    reads: Reads,
    writes: Writes,
    /// A lazy credit to the transfer's recipient.
    credit: Option<(Address, U256)>,
    /// The sender's balance change from assumed funds (see [`Read::SenderFunds`]).
    sender_change: Option<SenderChange>,
    /// What accounts read as [`Read::Contract`] or [`Read::Payee`] received (credited at commit).
    contract_credits: SmallVec<[(Address, U256); 1]>,
    /// Accounts read as [`Read::Contract`] whose code sent value (see [`ContractSend`]); rare,
    /// so not inline.
    contract_sends: SmallVec<[ContractSend; 0]>,
    /// The beneficiary's fee (lazy).
    fee: U256,
    /// For the sender's next transaction when it is speculated on this one
    /// ([`Speculable::OnPrevious`]): the slots this speculation wrote, and those the speculations
    /// it was made on wrote, with their latest values. `None` otherwise, or where the chain stops
    /// ([`chain_after`]: the next one is then left to the committer).
    chain: Option<Box<Chain>>,
}

impl Speculation {
    /// Whether a slot it read has since been committed with another value: its validation
    /// would fail, unless the slot is written back before.
    fn is_stale(&self, committed: &CommittedSlots) -> bool {
        self.reads.iter().any(|read| match read {
            Read::Storage(address, slot, value) | Read::CommittedStorage(address, slot, value) => {
                committed
                    .get(address, slot)
                    .is_some_and(|now| now != *value)
            }
            _ => false,
        })
    }
}

/// The slots a sender's chain of speculations wrote ([`Speculation::chain`]); boxed there, so
/// that the speculations of other transactions stay as small as they were (they lie in every
/// transaction's slot: 24 bytes more measured 2-4% on gigagas blocks of plain transfers).
#[derive(Debug, PartialEq)]
struct Chain(Vec<ChainSlot>);

/// A slot a sender's chain of speculations wrote: its address, index and value.
type ChainSlot = (Address, U256, U256);

/// How a speculation changed its sender's assumed funds ([`Read::SenderFunds`]): from `required`
/// (what the transaction may spend at most) to `left`. Between the checks at its start and its
/// end only credits change the balance of a sender whose code did not observe it (gas refunds,
/// value sent back to it), so from any committed balance `B >= required` the transaction leaves
/// `B - required + left`, unless that overflows (checked at commit).
#[derive(Debug, PartialEq)]
struct SenderChange {
    address: Address,
    left: U256,
}

impl SenderChange {
    /// The sender's balance after the transaction from the committed `balance`, at least the
    /// `required` funds assumed (validated before); `None` on overflow.
    fn applied_to(&self, balance: U256, required: U256) -> Option<U256> {
        (balance - required).checked_add(self.left)
    }
}

/// An account with code that sent value in a speculation, read without its balance: revm checked
/// that it could pay, and the speculation's outcome holds for any committed balance in
/// `low..high` (see `vm::ContractRead`, Block-STM's counterpart). At commit its net change is
/// applied, modulo 2^256 (a decrease when it sent more than it received).
#[derive(Debug, PartialEq)]
struct ContractSend {
    address: Address,
    bounds: BalanceBounds,
    net: U256,
}

/// The revm database of a speculation: the pre-block state, every read recorded.
struct SpeculativeDb<'a, S: ?Sized> {
    pre: &'a PreState<'a, S>,
    /// The slots the previous speculations of the sender's chain wrote, read before anything
    /// else (see [`Speculable::OnPrevious`]); empty for other speculations.
    chain: Vec<ChainSlot>,
    /// The slots committed so far, read before the pre-block state (`None`: not published).
    committed: Option<&'a CommittedSlots>,
    reads: Vec<Read>,
    /// The recipient eligible for a lazy credit, and whether it got one.
    lazy_recipient: Option<Address>,
    lazy_recipient_applied: bool,
    /// The sender whose funds are assumed: (address, nonce, balance given to revm).
    lazy_sender: Option<(Address, u64, U256)>,
    /// Accounts whose balance the code observed (see [`crate::balance_observer`]).
    observed: Vec<Address>,
    /// Accounts with code that sent value, with the pre-block balances that give the same
    /// outcome.
    sends: Vec<(Address, BalanceBounds)>,
    /// The code this thread ran.
    codes: ThreadCode,
}

impl<S: ?Sized> BalanceObserver for SpeculativeDb<'_, S> {
    fn observe_balance(&mut self, address: Address) {
        if !self.observed.contains(&address) {
            self.observed.push(address);
        }
    }

    /// As Block-STM's (`vm::VmDb`), against the pre-block balance the speculation read.
    fn require_balance(&mut self, address: Address, balance: U256, value: U256) {
        let read = self.reads.iter().find_map(|read| match read {
            Read::Account(account, Some(pre)) if *account == address => Some(pre.balance),
            _ => None,
        });
        let Some(read) = read else {
            return self.observe_balance(address);
        };
        let index = match self.sends.iter().position(|(send, _)| *send == address) {
            Some(index) => index,
            None => {
                self.sends.push((address, BalanceBounds::default()));
                self.sends.len() - 1
            }
        };
        if !self.sends[index].1.require(read, balance, value) {
            self.observe_balance(address);
        }
    }
}

impl<S: Storage + ?Sized> Database for SpeculativeDb<'_, S> {
    type Error = ReadError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, ReadError> {
        let account = self.pre.basic(&address)?;
        if let Some((sender, nonce, required)) = self.lazy_sender
            && sender == address
        {
            // The nonce its previous transaction leaves, and exactly the balance the checks
            // require: both are verified at commit.
            self.reads.push(Read::SenderFunds {
                address,
                nonce,
                required,
                pre: account,
            });
            return Ok(Some(AccountInfo {
                balance: required,
                nonce,
                code_hash: code_hash_of(account),
                code: None,
                account_id: None,
            }));
        }
        if self.lazy_recipient == Some(address)
            && account.is_none_or(|account| account.code_hash == KECCAK_EMPTY)
        {
            // No code runs: nothing observes the balance, which is credited at commit.
            self.lazy_recipient_applied = true;
            self.reads.push(Read::CodelessRecipient(address, account));
            return Ok(Some(AccountInfo {
                code_hash: KECCAK_EMPTY,
                code: Some(Bytecode::default()),
                ..Default::default()
            }));
        }
        self.reads.push(Read::Account(address, account));
        Ok(account.map(|account| AccountInfo {
            balance: account.balance,
            nonce: account.nonce,
            code_hash: account.code_hash,
            code: None,
            account_id: None,
        }))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, ReadError> {
        Ok(self.codes.code_by_hash(self.pre, &code_hash)?)
    }

    fn storage(&mut self, address: Address, slot: U256) -> Result<U256, ReadError> {
        if let Some(&(.., value)) = (self.chain.iter())
            .find(|(written, written_slot, _)| *written == address && *written_slot == slot)
        {
            // Validated as a committed value: what the chain's commits will have left there.
            self.reads
                .push(Read::CommittedStorage(address, slot, value));
            return Ok(value);
        }
        if let Some(committed) = self.committed
            && let Some(value) = committed.get(&address, &slot)
        {
            self.reads
                .push(Read::CommittedStorage(address, slot, value));
            return Ok(value);
        }
        let value = self.pre.storage(&address, &slot)?;
        self.reads.push(Read::Storage(address, slot, value));
        Ok(value)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, ReadError> {
        Ok(self.pre.block_hash(number)?)
    }
}

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
    /// The giants, in order (see [`outweighs`]).
    giants: &'a [TxIdx],
    /// The giants, the heaviest first ([`giant_weight`]): the order speculating threads take
    /// them in.
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

/// The committer's state: the sequential executor's, plus the receipts so far. The committing
/// thread moves the state into its own EVM for the block (revm's EVM cannot move between
/// threads).
struct Committer<'a, S: Storage + ?Sized> {
    state: SequentialState<'a, S>,
    /// The next transaction to commit.
    next: TxIdx,
    gas_used: u64,
    receipts: Vec<TxReceipt>,
    /// The block's error, if a transaction failed.
    error: Option<ExecutionError>,
    /// Speculations validated (published to [`PipelineCounters`] at the end, as the three
    /// counts below).
    validations: usize,
    /// Speculations rejected.
    rejected: usize,
    /// Transactions executed directly.
    direct: usize,
    /// Transactions not speculated for their hot destination.
    left_to_committer: usize,
    /// Validations and rejections per destination (see [`HotDestinations`]).
    destinations: DestinationCounts,
}

impl<S: Storage + ?Sized> Committer<'_, S> {
    /// A committer at the start of a block of `txs` transactions over `view`.
    fn new<'a>(view: &'a S, txs: usize) -> Committer<'a, S> {
        Committer {
            state: SequentialState::for_txs(view, txs),
            next: 0,
            gas_used: 0,
            receipts: Vec::with_capacity(txs),
            error: None,
            validations: 0,
            rejected: 0,
            direct: 0,
            left_to_committer: 0,
            destinations: DestinationCounts::new(),
        }
    }
}

/// Where a commit round stopped.
enum Stop {
    /// Every transaction is committed, or one failed.
    Finished,
    /// This transaction is being speculated by another thread.
    Speculating(TxIdx),
}

/// The committer's EVM for direct executions on the committed state.
type DirectEvm<'a, S> = MainnetEvm<MainnetContext<SequentialState<'a, S>>>;

/// The committer role: the committed state moved into the committing thread's EVM.
struct Role<'r, 'a, S: Storage + ?Sized> {
    committer: &'r mut Committer<'a, S>,
    evm: &'r mut DirectEvm<'a, S>,
    /// The thread's speculator (used by the committer only when alone).
    speculator: &'r mut Option<Speculator<'a, S>>,
}

impl<'a, S: Storage + ?Sized> Role<'_, 'a, S> {
    /// Commits transactions in order until the block is finished or the next one is being
    /// speculated elsewhere.
    fn run(&mut self, shared: &Shared<'a, S>) -> Stop {
        let txs = shared.pipelined();
        while self.committer.next < txs {
            let tx = self.committer.next;
            let status = &shared.slots.statuses[tx];
            // A speculation is applied where it lies (in its slot, or here when this thread made
            // it): it is over a kilobyte inline, and moving it into `commit` and `apply` made
            // `memmove` a fifth of a one-thread pipeline's time (5891667).
            let mut own;
            let mut ready = None;
            let speculation = match status.load(Ordering::Acquire) {
                UNCLAIMED => {
                    if status
                        .compare_exchange(UNCLAIMED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                        .is_err()
                    {
                        continue; // A thread claimed it meanwhile: look again.
                    }
                    // A speculator that joins late (its core woke after the block began) starts
                    // past the committer, not on transactions the committer has taken.
                    if shared.alone.is_none()
                        && shared.next_speculation.load(Ordering::Relaxed) <= tx
                    {
                        shared.next_speculation.fetch_max(tx + 1, Ordering::Relaxed);
                    }
                    let envelope = &shared.block.body.transactions[tx];
                    // Alone, the previous transaction is committed: speculating on it gains nothing.
                    let speculable = shared.speculability(tx) == Speculable::Yes;
                    let hot = speculable && shared.flags.hot.is_hot(envelope);
                    self.committer.left_to_committer += usize::from(hot);
                    own = match shared.alone {
                        Some(speculate) if speculable && !hot => {
                            let speculator =
                                (self.speculator).get_or_insert_with(|| Speculator::new(shared));
                            match speculate {
                                Speculate::Every => speculator.speculate(shared, tx),
                                Speculate::Natively if is_plain_transfer(envelope) => {
                                    speculator.speculate_natively(shared, tx)
                                }
                                Speculate::Natively => None,
                            }
                        }
                        _ => None,
                    };
                    own.as_mut()
                }
                READY => {
                    let speculation = shared.slots.speculations[tx].lock();
                    if status.load(Ordering::Acquire) != READY {
                        continue; // A thread took it back to speculate it again (`Refresher`).
                    }
                    ready.insert(speculation).as_mut()
                }
                _ => return Stop::Speculating(tx),
            };
            let committed = self.commit(shared, tx, speculation);
            if let Some(mut ready) = ready {
                // Dropped while in this core's cache, not in `Slots::empty`'s sweep.
                *ready = None;
            }
            if let Err(error) = committed {
                self.committer.error = Some(error);
                return Stop::Finished;
            }
            // After the commit's slots are published: a thread that sees this status reads
            // them (see `is_ripe`).
            status.store(COMMITTED, Ordering::Release);
            self.committer.next += 1;
        }
        Stop::Finished
    }

    /// Commits transaction `tx`: its speculation if every read still holds, otherwise a direct
    /// execution on the committed state.
    fn commit(
        &mut self,
        shared: &Shared<'a, S>,
        tx: TxIdx,
        speculation: Option<&mut Speculation>,
    ) -> Result<(), ExecutionError> {
        let envelope = &shared.block.body.transactions[tx];
        check_block_gas(
            tx,
            envelope,
            self.committer.gas_used,
            shared.block.header.gas_limit,
        )?;
        if let Some(speculation) = speculation {
            self.committer.validations += 1;
            let applied = self.apply(shared.block_env.beneficiary, speculation);
            self.committer
                .destinations
                .record(&shared.flags.hot, envelope, applied.is_none());
            if let Some(result) = applied {
                self.publish(shared, tx);
                self.committer.gas_used += result.tx_gas_used();
                self.committer
                    .receipts
                    .push(receipt_of(envelope, result, self.committer.gas_used));
                return Ok(());
            }
            self.committer.rejected += 1;
            if self.committer.rejected == 1 {
                shared.flags.conflicts.store(true, Ordering::Relaxed);
            }
            let (validated, rejected) = (self.committer.validations, self.committer.rejected);
            if validated >= GIVE_UP_MIN_VALIDATIONS
                && rejected * 100 > validated * GIVE_UP_REJECTED_PERCENT
            {
                shared.flags.speculating.store(false, Ordering::Relaxed);
            }
        }
        self.committer.direct += 1;
        execute_tx(
            self.evm,
            shared.spec,
            tx,
            envelope,
            &mut self.committer.gas_used,
            &mut self.committer.receipts,
        )?;
        self.publish(shared, tx);
        Ok(())
    }

    /// Publishes the slots transaction `tx` wrote, for speculations to read.
    fn publish(&mut self, shared: &Shared<'a, S>, tx: TxIdx) {
        let state = &mut self.evm.ctx.journaled_state.database;
        if let (Some(committed), Some(written)) = (shared.committed, &mut state.written_slots) {
            if shared.publish_all {
                for (address, slot, value) in written.drain(..) {
                    committed.publish(&address, &slot, &value);
                }
            } else {
                publish_if_hot(shared, committed, written, tx);
            }
        }
    }

    /// Applies `speculation` to the committed state if every value it read is still current (and
    /// its lazy credits do not overflow), returning its result; `None` leaves the state as is.
    fn apply(
        &mut self,
        beneficiary: Address,
        speculation: &mut Speculation,
    ) -> Option<ExecutionResult> {
        let state = &mut self.evm.ctx.journaled_state.database;
        // A location the block has not written holds the pre-block value, which is what the
        // speculation read from the same storage: valid by construction. Accounts read this way
        // seed the state (storage is not read twice; the writes below need them loaded); slots
        // are only compared.
        // The sender's committed balance, when its funds were assumed.
        let mut funds = None;
        for read in &speculation.reads {
            let current = match *read {
                Read::Account(address, account) => {
                    state.basic_fields_seeded(address, account) == account
                }
                Read::CodelessRecipient(address, pre) => state
                    .basic_fields_seeded(address, pre)
                    .is_none_or(|account| account.code_hash == KECCAK_EMPTY),
                Read::Storage(address, slot, value) => {
                    state.storage_seeded(address, slot, value) == value
                }
                Read::CommittedStorage(address, slot, value) => {
                    Database::storage(&mut *state, address, slot).is_ok_and(|now| now == value)
                }
                Read::Contract(address, pre) => state
                    .basic_fields_seeded(address, Some(pre))
                    .is_some_and(|account| {
                        account.nonce == pre.nonce && account.code_hash == pre.code_hash
                    }),
                Read::Payee(address, pre) => state
                    .basic_fields_seeded(address, Some(pre))
                    .is_some_and(|account| {
                        account.code_hash == KECCAK_EMPTY && !is_empty(&account)
                    }),
                Read::SenderFunds {
                    address,
                    nonce,
                    required,
                    pre,
                } => {
                    let account = state.basic_fields_seeded(address, pre);
                    funds = account.map(|account| (account.balance, required));
                    account.is_some_and(|account| {
                        account.nonce == nonce
                            && account.code_hash == code_hash_of(pre)
                            && account.balance >= required
                    })
                }
            };
            if !current {
                return None;
            }
        }
        // Increments are checked like revm's (a credit that would overflow is not applied there):
        // such a transaction is re-executed. Every account written below is loaded by now (the
        // reads above seed the sender and the recipient, these checks load the beneficiary), so
        // nothing after the first write reads storage or can fail.
        let fits = |state: &mut SequentialState<'_, S>, address, amount: U256| {
            let account = state.basic_fields(address).ok()?;
            let balance = account.map_or(U256::ZERO, |account| account.balance);
            balance.checked_add(amount).map(drop)
        };
        if let Some((recipient, amount)) = speculation.credit {
            fits(state, recipient, amount)?;
        }
        for (contract, amount) in &speculation.contract_credits {
            fits(state, *contract, *amount)?;
        }
        for send in &speculation.contract_sends {
            let account = state.basic_fields(send.address).ok()??;
            if !send.bounds.contains(&account.balance) {
                return None;
            }
        }
        if !speculation.fee.is_zero() {
            fits(state, beneficiary, speculation.fee)?;
        }
        let sender_balance = match &speculation.sender_change {
            Some(change) => {
                let (balance, required) = funds?;
                let balance = change.applied_to(balance, required)?;
                if change.address == beneficiary {
                    balance.checked_add(speculation.fee)?; // Its fee is added below.
                }
                Some((change.address, balance))
            }
            None => None,
        };
        const LOADED: &str = "accounts written at commit are loaded before the first write";
        for (address, diff) in speculation.writes.drain(..) {
            state.apply_diff(address, diff);
        }
        if let Some((sender, balance)) = sender_balance {
            state.update_balance(sender, |_| balance).expect(LOADED);
        }
        if let Some((recipient, amount)) = speculation.credit {
            state.increment_balance(recipient, amount).expect(LOADED);
        }
        for &(contract, amount) in &speculation.contract_credits {
            state.increment_balance(contract, amount).expect(LOADED);
        }
        for send in &speculation.contract_sends {
            // Within its bounds, the balance never went below a send: exact modulo 2^256. An
            // unchanged balance is not written (nor listed among the block's changes).
            if !send.net.is_zero() {
                (state.update_balance(send.address, |balance| balance.wrapping_add(send.net)))
                    .expect(LOADED);
            }
        }
        state
            .increment_balance(beneficiary, speculation.fee)
            .expect(LOADED);
        speculation.result.take()
    }
}

/// One thread's speculative EVM.
struct Speculator<'a, S: Storage + ?Sized> {
    evm: MainnetEvm<MainnetContext<SpeculativeDb<'a, S>>>,
    /// Speculations run (published to [`PipelineCounters`] when the thread leaves).
    speculations: usize,
    /// Whether plain transfers are speculated natively (see [`native_transfer`]); off only to
    /// compare with revm's speculation in tests.
    native: bool,
    /// Speculations done natively.
    #[cfg(test)]
    natives: usize,
}

impl<'a, S: Storage + ?Sized> Speculator<'a, S> {
    fn new(shared: &Shared<'a, S>) -> Self {
        let db = SpeculativeDb {
            pre: shared.pre,
            chain: Vec::new(),
            committed: shared.committed,
            reads: Vec::new(),
            lazy_recipient: None,
            lazy_recipient_applied: false,
            lazy_sender: None,
            observed: Vec::new(),
            sends: Vec::new(),
            codes: ThreadCode::default(),
        };
        let mut evm = chain::build_evm(db, shared.block_env.clone(), shared.cfg.clone());
        observe_balances(evm.instruction.instruction_table_mut());
        Self {
            evm,
            speculations: 0,
            native: true,
            #[cfg(test)]
            natives: 0,
        }
    }

    /// Executes transaction `tx` against the pre-block state. `None` when the speculation cannot
    /// be applied as such (the transaction failed, or touched the beneficiary) or is not run (a
    /// plain transfer with assumed funds into code): the committer then executes it directly.
    fn speculate(&mut self, shared: &Shared<'_, S>, tx: TxIdx) -> Option<Speculation> {
        self.speculate_with(shared, tx, true)
    }

    /// Speculates transaction `tx` only if it is speculated natively (see
    /// [`Speculator::speculate_native`]); `None` otherwise.
    fn speculate_natively(&mut self, shared: &Shared<'_, S>, tx: TxIdx) -> Option<Speculation> {
        self.speculate_with(shared, tx, false)
    }

    /// [`Speculator::speculate`], falling back to revm where the native path declines if
    /// `with_revm`.
    fn speculate_with(
        &mut self,
        shared: &Shared<'_, S>,
        tx: TxIdx,
        with_revm: bool,
    ) -> Option<Speculation> {
        let tx_env = chain::tx_env(tx, &shared.block.body.transactions[tx]).ok()?;
        let lazy_recipient = lazy_recipient(&tx_env);
        // A transaction that follows one of its sender's, or is sent by the beneficiary (whose
        // balance every fee changes): assume the sender's funds.
        let beneficiary = shared.block_env.beneficiary;
        let assume_funds = shared.previous_of_sender[tx].is_some() || tx_env.caller == beneficiary;
        let lazy_sender = if assume_funds {
            let required =
                revm::context_interface::Transaction::max_balance_spending(&tx_env).ok()?;
            Some((tx_env.caller, tx_env.nonce, required))
        } else {
            None
        };
        self.evm.ctx.tx = tx_env;
        if self.native
            && let Some(recipient) = lazy_recipient
            && let Some(speculation) = self.speculate_native(shared, recipient, lazy_sender)
        {
            self.speculations += 1;
            #[cfg(test)]
            {
                self.natives += 1;
            }
            return Some(speculation);
        }
        if !with_revm {
            return None;
        }
        self.speculations += 1;
        {
            let db = &mut self.evm.ctx.journaled_state.database;
            db.reads.clear();
            db.lazy_recipient = lazy_recipient;
            db.lazy_recipient_applied = false;
            db.lazy_sender = lazy_sender;
            db.observed.clear();
            db.sends.clear();
        }
        let mut handler = LazyFeeHandler::default();
        let result = handler.run(&mut self.evm);
        let evm_state = self.evm.finalize();
        let db = &mut self.evm.ctx.journaled_state.database;
        let result = result.ok()?;
        // Copied out (inline when they fit); the database keeps its buffer for the next one.
        let mut reads = Reads::from_iter(db.reads.drain(..));
        let caller = self.evm.ctx.tx.caller;
        // Accounts with code whose balance the code did not observe: their balance is not read
        // (validated without it, what they received credited at commit).
        // (An account holding `HUGE` wei or more, or receiving that much from the sender,
        // counts as observed: its balance could decide whether a credit overflows.)
        // Accounts without code, the same, as payees (not empty, and not in a transaction that
        // authorizes code, whose authorities' nonces decide what it does).
        let sent_huge = self.evm.ctx.tx.value >= HUGE;
        let to = self.evm.ctx.tx.kind.to().copied();
        let authorizes = !self.evm.ctx.tx.authorization_list.is_empty();
        for read in &mut reads {
            if let Read::Account(address, Some(pre)) = *read
                && pre.balance < HUGE
                && address != caller
                && address != beneficiary
                && !(sent_huge && to == Some(address))
                && !db.observed.contains(&address)
            {
                if pre.code_hash != KECCAK_EMPTY {
                    *read = Read::Contract(address, pre);
                } else if !authorizes && !is_empty(&pre) {
                    *read = Read::Payee(address, pre);
                }
            }
        }
        let mut contract_credits = SmallVec::new();
        // Every contract read without its balance whose code sent value carries its bounds,
        // whether or not its balance changed (a send that failed changes nothing).
        let mut contract_sends: SmallVec<[ContractSend; 0]> = (db.sends.iter())
            .filter(|(address, _)| {
                (reads.iter())
                    .any(|read| matches!(read, Read::Contract(contract, _) if contract == address))
            })
            .map(|&(address, bounds)| ContractSend {
                address,
                bounds,
                net: U256::ZERO,
            })
            .collect();
        let lazy_recipient = lazy_recipient.filter(|_| db.lazy_recipient_applied);
        if lazy_sender.is_some_and(|(sender, ..)| db.observed.contains(&sender)) {
            return None; // Code observed the assumed balance.
        }
        let mut writes = Writes::new();
        let mut credit = None;
        let mut sender_change = None;
        let beneficiary_is_lazy_sender =
            lazy_sender.is_some_and(|(sender, ..)| sender == beneficiary);
        for (address, account) in &evm_state {
            if *address == beneficiary && account.is_touched() && !beneficiary_is_lazy_sender {
                return None; // Exact writes to the beneficiary: left to revm.
            }
            let Some(diff) = diff_account(shared.spec, account) else {
                continue;
            };
            if lazy_recipient == Some(*address) {
                // Only a pure balance credit can be applied lazily.
                match diff {
                    AccountDiff {
                        lifecycle: None,
                        balance: Some(amount),
                        nonce: None,
                        code: None,
                        storage,
                    } if storage.is_empty() => credit = Some((*address, amount)),
                    _ => return None,
                }
                continue;
            }
            if let Some(read) = (reads.iter_mut()).find(|read| {
                matches!(read, Read::Payee(account, _) | Read::Contract(account, _)
                    if account == address)
            }) {
                match *read {
                    // A payee: only a pure balance credit is applied lazily; anything else reads
                    // it exactly.
                    Read::Payee(_, pre) => match diff {
                        AccountDiff {
                            lifecycle: None,
                            balance,
                            nonce: None,
                            code: None,
                            ref storage,
                        } if storage.is_empty()
                            && balance.is_none_or(|balance| balance >= pre.balance) =>
                        {
                            if let Some(credit) = balance
                                .filter(|&balance| balance > pre.balance)
                                .map(|balance| balance - pre.balance)
                            {
                                contract_credits.push((*address, credit));
                            }
                        }
                        _ => {
                            *read = Read::Account(*address, Some(pre));
                            writes.push((*address, diff));
                        }
                    },
                    Read::Contract(_, pre) => {
                        let sent =
                            (contract_sends.iter_mut()).find(|send| send.address == *address);
                        match diff.balance {
                            // It sent value: its net change, within bounds.
                            Some(balance)
                                if diff.lifecycle.is_none()
                                    && let Some(send) = sent =>
                            {
                                send.net = balance.wrapping_sub(pre.balance);
                                writes.push((
                                    *address,
                                    AccountDiff {
                                        balance: None,
                                        ..diff
                                    },
                                ));
                            }
                            // It only received (sending would have observed it): a credit.
                            Some(balance) if diff.lifecycle.is_none() && balance >= pre.balance => {
                                if balance > pre.balance {
                                    contract_credits.push((*address, balance - pre.balance));
                                }
                                writes.push((
                                    *address,
                                    AccountDiff {
                                        balance: None,
                                        ..diff
                                    },
                                ));
                            }
                            // Not expected; then its balance is read exactly after all.
                            Some(_) => {
                                *read = Read::Account(*address, Some(pre));
                                contract_sends.retain(|send| send.address != *address);
                                writes.push((*address, diff));
                            }
                            None => writes.push((*address, diff)),
                        }
                    }
                    _ => unreachable!("found as a payee or a contract read"),
                }
                continue;
            }
            if let Some((sender, _, required)) = lazy_sender
                && sender == *address
            {
                // The balance written is relative to the assumed one.
                let left = match &diff {
                    AccountDiff {
                        lifecycle: None,
                        balance,
                        code: None,
                        ..
                    } => balance.unwrap_or(required),
                    _ => return None,
                };
                sender_change = Some(SenderChange {
                    address: sender,
                    left,
                });
                writes.push((
                    *address,
                    AccountDiff {
                        balance: None,
                        ..diff
                    },
                ));
                continue;
            }
            writes.push((*address, diff));
        }
        if lazy_sender.is_some() && sender_change.is_none() {
            return None;
        }
        let chained = shared.chains.repeated > 0
            && (shared.chains.next[tx])
                .is_some_and(|next| follows_in_chain(shared.block, shared.chains, next));
        Some(Speculation {
            result: Some(result),
            chain: chained
                .then(|| chain_after(&db.chain, caller, &writes))
                .flatten(),
            reads,
            writes,
            credit,
            sender_change,
            contract_credits,
            contract_sends,
            fee: handler.fee(),
        })
    }
}

impl<S: Storage + ?Sized> Speculator<'_, S> {
    /// Speculates the transaction in the EVM's context natively (see [`native_transfer`]) when it
    /// is a plain transfer between accounts without code to `recipient`, with the same reads,
    /// writes and lazy credits as revm's speculation of it; `None` leaves it to revm.
    fn speculate_native(
        &mut self,
        shared: &Shared<'_, S>,
        recipient: Address,
        lazy_sender: Option<(Address, u64, U256)>,
    ) -> Option<Speculation> {
        let tx = &self.evm.ctx.tx;
        let caller = tx.caller;
        if !native_transfer::eligible(shared.spec, tx, shared.block_env.beneficiary) {
            return None;
        }
        // The recipient first: one with code (the likeliest reason to decline) is then the only
        // account revm's speculation reads again.
        let recipient_pre = shared.pre.basic(&recipient).ok()?;
        if recipient_pre.is_some_and(|account| account.code_hash != KECCAK_EMPTY) {
            return None;
        }
        let sender_pre = shared.pre.basic(&caller).ok()?;
        if code_hash_of(sender_pre) != KECCAK_EMPTY {
            return None;
        }
        let (sender_read, balance, nonce) = match lazy_sender {
            Some((address, nonce, required)) => (
                Read::SenderFunds {
                    address,
                    nonce,
                    required,
                    pre: sender_pre,
                },
                required,
                nonce,
            ),
            None => {
                let account = sender_pre?;
                (
                    Read::Account(caller, sender_pre),
                    account.balance,
                    account.nonce,
                )
            }
        };
        let value = tx.value;
        let transfer = native_transfer::execute(&mut self.evm, balance, nonce)?;
        // As revm's speculation: an assumed balance is written as a change, an exact one as is.
        let (sender_balance, sender_change) = match lazy_sender {
            Some(_) => (
                None,
                Some(SenderChange {
                    address: caller,
                    left: transfer.sender_balance,
                }),
            ),
            None => (Some(transfer.sender_balance), None),
        };
        Some(Speculation {
            result: Some(transfer.result),
            reads: smallvec![
                sender_read,
                Read::CodelessRecipient(recipient, recipient_pre),
            ],
            writes: smallvec![(
                caller,
                AccountDiff {
                    balance: sender_balance,
                    nonce: Some(nonce + 1),
                    ..Default::default()
                },
            )],
            credit: Some((recipient, value)),
            sender_change,
            contract_credits: SmallVec::new(),
            contract_sends: SmallVec::new(),
            fee: transfer.fee,
            chain: None,
        })
    }
}

/// The slots a sender's chain wrote up to a speculation ([`Speculation::chain`]): those of the
/// chain before it (`chain`), updated with its `writes` (those of its `sender` included). `None`
/// when it created or destroyed an account (its storage starts anew: not a list of writes), or
/// wrote another account than its sender exactly (a balance, a nonce, code): the next one would
/// read that account's pre-block state and be rejected (mainnet 11743952, a bot paid by its
/// sender's calls: 9 of 32 speculations on the one before rejected so).
fn chain_after(chain: &[ChainSlot], sender: Address, writes: &Writes) -> Option<Box<Chain>> {
    let mut chain = chain.to_vec();
    for (address, diff) in writes {
        let exact = diff.balance.is_some() || diff.code.is_some() || diff.nonce.is_some();
        if diff.lifecycle.is_some() || (exact && *address != sender) {
            return None;
        }
        for &(slot, value) in &diff.storage {
            match (chain.iter_mut())
                .find(|(written, written_slot, _)| written == address && *written_slot == slot)
            {
                Some(written) => written.2 = value,
                None => chain.push((*address, slot, value)),
            }
        }
    }
    Some(Box::new(Chain(chain)))
}

/// Whether and how the pipeline's threads speculate a transaction ([`speculability`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Speculable {
    /// On the pre-block state (and the slots committed so far).
    Yes,
    /// Only on top of its sender's previous transaction's speculation, a call to the same
    /// contract (reading first the slots it and the chain before it wrote: see
    /// [`Speculation::chain`]), in a long chain of such calls ([`chain_followers`]); otherwise the
    /// committer executes it.
    OnPrevious,
    /// Not at all: the committer executes it.
    No,
}

/// How the pipeline speculates transaction `tx` of `txs` (`previous`: each one's previous
/// transaction of the same sender): always the first of its sender's, and a plain value transfer
/// (see [`is_plain_transfer`]); a later one with its sender's nonce and funds assumed (see
/// [`Read::SenderFunds`]) unless one of its sender's [`SAME_SENDER_LOOKBACK`] previous
/// transactions in the block created a contract or went to the same destination: what a sender
/// does twice to one contract usually depends on the first time (a token's balance of the sender,
/// an allowance then a swap, a bot's own contract), and a speculation made stale that way only
/// makes the committer wait for it before executing the transaction itself (mainnet 12520364:
/// two 6.5-Mgas calls of one sender to one contract, 1.33x -> 1.01x when the second was
/// speculated on the pre-block state). When that earlier transaction is the sender's previous
/// one and a call, the transaction may be speculated on top of it ([`Speculable::OnPrevious`]).
pub(crate) fn speculability(
    txs: &[Recovered<TxEnvelope>],
    previous: &[Option<TxIdx>],
    tx: TxIdx,
) -> Speculable {
    let Some(previous_tx) = previous[tx] else {
        return Speculable::Yes;
    };
    let envelope = &txs[tx];
    if is_plain_transfer(envelope) {
        return Speculable::Yes;
    }
    let Some(to) = envelope.kind().to().copied() else {
        return Speculable::No; // A creation: its address is likely what the sender calls next.
    };
    let mut earlier = previous_tx;
    for _ in 0..SAME_SENDER_LOOKBACK {
        match txs[earlier].kind().to() {
            None => return Speculable::No,
            Some(earlier_to) if *earlier_to == to => {
                return if earlier == previous_tx {
                    Speculable::OnPrevious
                } else {
                    Speculable::No
                };
            }
            Some(_) => {}
        }
        match previous[earlier] {
            Some(before) => earlier = before,
            None => return Speculable::Yes,
        }
    }
    Speculable::Yes
}

/// How many of its sender's previous transactions [`speculability`] looks at.
const SAME_SENDER_LOOKBACK: usize = 16;

/// Whether `tx` looks like a plain value transfer: one whose recipient would get a lazy credit,
/// without input (so probably no code runs).
pub(crate) fn is_plain_transfer(tx: &Recovered<TxEnvelope>) -> bool {
    use alloy_eips::Typed2718;
    tx.input().is_empty()
        && plain_transfer_recipient(tx.kind(), tx.value(), tx.signer(), tx.ty()).is_some()
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
    /// Only what it speculates natively (see [`native_transfer`]); the rest is executed directly,
    /// as sequentially, since alone a speculation made with revm and then validated only costs
    /// more (mainnet 3356896, 166 plain transfers of 176: 1.03x against 1.21x). The planner's
    /// choice for small blocks of plain transfers.
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

/// The committer's loop: commits in order; while the next transaction is being speculated by
/// another thread, speculates the next unclaimed chunk itself, or, with none left, waits for that
/// speculation. The role stays on one thread for the whole block: the committed state, the
/// committer's EVM and the allocations of its direct executions stay in one core's cache (moving
/// the role with the speculations, as before, cost 2–7% more CPU time on two cores:
/// `docs/benchmarks.md`, twelfth session).
fn commit_block<'a, S: Storage + ?Sized>(
    shared: &Shared<'a, S>,
    committer: &Mutex<Committer<'a, S>>,
    view: &'a S,
    speculator: &mut Option<Speculator<'a, S>>,
) {
    let mut guard = committer.lock();
    let committer = &mut *guard;
    let mut evm = chain::build_evm(
        SequentialState::new(view),
        shared.block_env.clone(),
        shared.cfg.clone(),
    );
    std::mem::swap(&mut evm.ctx.journaled_state.database, &mut committer.state);
    if shared.committed.is_some() {
        evm.ctx.journaled_state.database.written_slots = Some(Vec::new());
    }
    loop {
        let stop = Role {
            committer: &mut *committer,
            evm: &mut evm,
            speculator: &mut *speculator,
        }
        .run(shared);
        let Stop::Speculating(awaited) = stop else {
            break;
        };
        let status = &shared.slots.statuses[awaited];
        let window = window_after(shared, awaited).filter(|&tx| !outweighs(shared, tx, awaited));
        if !speculate_chunk(shared, speculator, Some(awaited), None)
            && speculate_leftover(shared, speculator, window, false).is_none()
        {
            shared.doorbell.wait_until(|| {
                status.load(Ordering::SeqCst) == READY || shared.flags.done.load(Ordering::SeqCst)
            });
        }
        if shared.flags.done.load(Ordering::SeqCst) {
            break; // Another thread panicked.
        }
    }
    std::mem::swap(&mut evm.ctx.journaled_state.database, &mut committer.state);
    shared.flags.done.store(true, Ordering::SeqCst);
}

/// In a block too big to publish every slot ([`PUBLISH_MAX_TXS`]), publishes the slots
/// `written` by transaction `tx` if its destination is hot or conflicted: those are the slots
/// the next transactions to that destination read (a pool swapped again), speculated once ripe
/// ([`is_ripe`]). Drops the others. Kept out of the committer's loop (its code stays small).
#[inline(never)]
fn publish_if_hot<S: ?Sized>(
    shared: &Shared<'_, S>,
    committed: &CommittedSlots,
    written: &mut Vec<(Address, U256, U256)>,
    tx: TxIdx,
) {
    let envelope = &shared.block.body.transactions[tx];
    if shared.flags.hot.is_hot(envelope) || shared.flags.hot.is_conflicted(envelope) {
        for (address, slot, value) in written.drain(..) {
            committed.publish(&address, &slot, &value);
        }
    } else {
        written.clear();
    }
}

/// Claims the next chunk of unclaimed transactions and speculates each that threads speculate
/// (see [`speculability`], [`HotDestinations`]) and the committer has not taken meanwhile. False
/// when nothing was left to claim (or speculation stopped, or the block is done). The committer
/// passes the status it waits for: it stops as soon as that speculation is ready, leaving the rest
/// of its chunk unclaimed (to execute directly when it gets there, or for another thread to
/// speculate first).
fn speculate_chunk<'a, S: Storage + ?Sized>(
    shared: &Shared<'a, S>,
    speculator: &mut Option<Speculator<'a, S>>,
    awaited: Option<TxIdx>,
    mut deferred: Option<&mut Deferred>,
) -> bool {
    let txs = shared.pipelined();
    let chunk = if shared.flags.conflicts.load(Ordering::Relaxed) {
        1
    } else {
        shared.claim_chunk
    };
    if shared.flags.done.load(Ordering::Acquire)
        || !shared.flags.speculating.load(Ordering::Relaxed)
    {
        return false;
    }
    let start = shared.next_speculation.fetch_add(chunk, Ordering::Relaxed);
    if start >= txs {
        return false;
    }
    for tx in start..txs.min(start + chunk) {
        if !shared.flags.speculating.load(Ordering::Relaxed)
            || awaited.is_some_and(|awaited| {
                shared.slots.statuses[awaited].load(Ordering::Acquire) == READY
            })
        {
            break;
        }
        if awaited.is_some_and(|awaited| outweighs(shared, tx, awaited)) {
            continue; // Left unclaimed: see `outweighs`.
        }
        if !speculate_unclaimed(shared, speculator, tx, awaited.is_none())
            && let Some(deferred) = deferred.as_deref_mut()
        {
            deferred.keep(shared, tx);
        }
    }
    true
}

/// Speculates the first of `candidates` that is still unclaimed and that threads speculate (one
/// left in a claimed chunk: its thread has not reached it yet, or the committer gave it up),
/// consuming the candidates up to it. The transaction speculated, or `None` when there is none
/// (or speculation stopped, or the block is done).
///
/// The committer looks at the [`STEAL_WINDOW`] after the transaction it waits for; a
/// speculating thread takes the giants first ([`outweighs`]) and, with no chunk left, looks from
/// the end of the block back, the furthest from the committer (which would otherwise wait for a
/// speculation it could have executed itself).
fn speculate_leftover<'a, S: Storage + ?Sized>(
    shared: &Shared<'a, S>,
    speculator: &mut Option<Speculator<'a, S>>,
    mut candidates: impl Iterator<Item = TxIdx>,
    follow: bool,
) -> Option<TxIdx> {
    if shared.flags.done.load(Ordering::Acquire)
        || !shared.flags.speculating.load(Ordering::Relaxed)
    {
        return None;
    }
    candidates.find(|&tx| {
        shared.slots.statuses[tx].load(Ordering::Relaxed) == UNCLAIMED
            && speculate_unclaimed(shared, speculator, tx, follow)
    })
}

/// Whether transaction `tx` is a giant (one that may take a large share of the block: see
/// [`BlockShape::giants`]) heavier than `awaited`: `awaited` is no giant, or a lighter one by
/// [`giant_weight`]. Speculating threads take the
/// giants first, the heaviest first, and the committer waiting for `awaited`'s speculation does
/// not speculate a giant heavier than it (it commits nothing until its own speculation ends).
/// Mainnet 16257471: waiting for transaction 1 (ready 140 us later), the committer speculated
/// transaction 22, a 9-Mgas call of the block's 20, for 4.6 ms, while the other thread ran out of
/// work; left to the committer in order, it started 0.6 ms later and the other thread ran out of
/// work all the same. Speculations read the pre-block state: taken first, a giant's speculation
/// is as usable as in order. A giant no heavier than the one awaited is speculated in order: on
/// 19934116, waiting for a 630-us giant, the committer skipped an 84-us one, which the other
/// thread took only after its own and the committer waited for.
fn outweighs<S: ?Sized>(shared: &Shared<'_, S>, tx: TxIdx, awaited: TxIdx) -> bool {
    let txs = &shared.block.body.transactions;
    let is_giant = |tx: &TxIdx| shared.giants.binary_search(tx).is_ok();
    is_giant(&tx) && (!is_giant(&awaited) || giant_weight(&txs[tx]) > giant_weight(&txs[awaited]))
}

/// The [`STEAL_WINDOW`] transactions after `tx` (fewer at the end of what is pipelined).
fn window_after<S: ?Sized>(shared: &Shared<'_, S>, tx: TxIdx) -> std::ops::Range<TxIdx> {
    tx + 1..shared.pipelined().min(tx + 1 + STEAL_WINDOW)
}

/// Speculates transaction `tx` and publishes the speculation if threads speculate it (see
/// [`speculability`], [`HotDestinations`]) and nobody claimed it yet (the committer may have taken
/// it meanwhile); whether it did. A speculating thread (`follow`) then goes on with the sender's
/// chain if `tx` heads a long one ([`chain_followers`]): each next transaction speculated on the
/// one before, in order, ahead of the committer.
fn speculate_unclaimed<'a, S: Storage + ?Sized>(
    shared: &Shared<'a, S>,
    speculator: &mut Option<Speculator<'a, S>>,
    mut tx: TxIdx,
    follow: bool,
) -> bool {
    if !speculate_one(shared, speculator, tx, false) {
        return false;
    }
    if !follow || !heads_long_chain(shared, tx) {
        return true;
    }
    while let Some(next) = shared.chains.next[tx]
        && follows_in_chain(shared.block, shared.chains, next)
        && next < shared.pipelined()
        && !shared.flags.done.load(Ordering::Relaxed)
        && shared.flags.speculating.load(Ordering::Relaxed)
        && speculate_one(shared, speculator, next, true)
    {
        tx = next;
    }
    true
}

/// Whether transaction `tx` heads a chain of at least [`CHAIN_FIRST_MIN`] followers
/// ([`chain_followers`]).
fn heads_long_chain<S: ?Sized>(shared: &Shared<'_, S>, tx: TxIdx) -> bool {
    chain_followers(shared.block, shared.chains, tx, CHAIN_FIRST_MIN) >= CHAIN_FIRST_MIN
}

/// How many transactions follow transaction `tx` in its sender's chain (at most `at_most`): its
/// sender's next ones, each a call to the contract the one before called
/// ([`Speculable::OnPrevious`]) within [`FOLLOW_MAX_DISTANCE`] of it; 0 when `tx` itself follows
/// another that way (it does not head a chain). A chain of at least [`CHAIN_FIRST_MIN`]
/// followers is serial work that the rest of the block can go on beside: speculating threads take
/// its head first and follow it to its end, each transaction speculated on the one before
/// (mainnet 4370000, a sender's 32 calls to one contract, most at the end of the block: 0.99x
/// sequential, 1.27x so). Shorter chains are left to the committer: speculated after their
/// previous one, they were ready later than the committer would have executed them (mainnet
/// 5283152, three calls of a sender: 1.49x -> 1.36x).
pub(crate) fn chain_followers(
    block: &Block<Recovered<TxEnvelope>>,
    chains: SenderChains<'_>,
    tx: TxIdx,
    at_most: usize,
) -> usize {
    if chains.repeated == 0 || chains.next[tx].is_none() || follows_in_chain(block, chains, tx) {
        return 0;
    }
    let (mut at, mut followers) = (tx, 0);
    while followers < at_most
        && let Some(after) = chains.next[at]
        && follows_in_chain(block, chains, after)
    {
        (at, followers) = (after, followers + 1);
    }
    followers
}

/// Whether transaction `tx` is speculated on its sender's previous one, near enough to be
/// followed ([`chain_followers`]).
fn follows_in_chain(
    block: &Block<Recovered<TxEnvelope>>,
    chains: SenderChains<'_>,
    tx: TxIdx,
) -> bool {
    let tags = chains.destination_tags;
    chains.previous[tx].is_some_and(|previous| {
        tx - previous <= FOLLOW_MAX_DISTANCE && tags[tx] != 0 && tags[tx] == tags[previous]
    }) && speculability(&block.body.transactions, chains.previous, tx) == Speculable::OnPrevious
}

/// Followers that make a chain long ([`chain_followers`]).
pub(crate) const CHAIN_FIRST_MIN: usize = 4;

/// How far ahead (in transactions) of the one before a transaction of a chain may be
/// ([`chain_followers`]).
const FOLLOW_MAX_DISTANCE: usize = 64;

/// Whether transaction `tx`, to a hot destination ([`HotDestinations`]), is ripe for
/// speculation: the previous transaction to the same destination (by
/// [`BlockShape::destination_tags`], within [`RIPE_LOOKBACK`]) is committed, so that a
/// speculation made now reads what it wrote ([`CommittedSlots`]), and the committer still has
/// at least [`RIPE_MARGIN`] transactions to commit before `tx` (nearer, it would wait for the
/// speculation rather than execute `tx` itself). A hot destination's transactions depend on one
/// another, not on the rest of the block: mainnet 8889776, deposits of ten tokens each to one
/// exchange, interleaved — each transfer is ripe once the one before of its token is committed.
fn is_ripe<S: ?Sized>(shared: &Shared<'_, S>, tx: TxIdx) -> bool {
    shared.committed.is_some() && ripe(&shared.slots.statuses, shared.chains.destination_tags, tx)
}

/// [`is_ripe`] on the transactions' statuses and destination tags.
fn ripe(statuses: &[AtomicU8], tags: &[u32], tx: TxIdx) -> bool {
    let committed = |at: TxIdx| statuses[at].load(Ordering::Acquire) == COMMITTED;
    if tx < RIPE_MARGIN || committed(tx - RIPE_MARGIN) {
        return false;
    }
    for at in (tx.saturating_sub(RIPE_LOOKBACK)..tx).rev() {
        if tags[at] == tags[tx] {
            return committed(at);
        }
        if committed(at) {
            return true; // So is every transaction before.
        }
    }
    tx <= RIPE_LOOKBACK
}

/// Transactions to hot destinations that a speculating thread passed before they were ripe
/// ([`is_ripe`]), in order: it looks at them again before each claim, and waits for them once
/// nothing is left to claim.
#[derive(Default)]
struct Deferred(std::collections::VecDeque<TxIdx>);

impl Deferred {
    /// Keeps `tx` (if there is room) when threads pass it only for its hot destination.
    #[cold]
    #[inline(never)]
    fn keep<S: ?Sized>(&mut self, shared: &Shared<'_, S>, tx: TxIdx) {
        if self.0.len() < DEFERRED_MAX
            && shared.committed.is_some()
            && shared.speculability(tx) == Speculable::Yes
            && shared.flags.hot.is_hot(&shared.block.body.transactions[tx])
            && shared.slots.statuses[tx].load(Ordering::Relaxed) == UNCLAIMED
        {
            self.0.push_back(tx);
        }
    }

    /// Speculates the first kept transaction that is ripe, dropping those claimed meanwhile;
    /// whether one was speculated.
    fn speculate_ripe<'a, S: Storage + ?Sized>(
        &mut self,
        shared: &Shared<'a, S>,
        speculator: &mut Option<Speculator<'a, S>>,
    ) -> bool {
        if shared.flags.done.load(Ordering::Acquire)
            || !shared.flags.speculating.load(Ordering::Relaxed)
        {
            self.0.clear();
            return false;
        }
        let unclaimed = |tx: TxIdx| shared.slots.statuses[tx].load(Ordering::Relaxed) == UNCLAIMED;
        // Those claimed meanwhile leave from the front (a walk over every kept one on each call
        // would cost the thousands a big block keeps); further back, they are skipped.
        while self.0.front().is_some_and(|&tx| !unclaimed(tx)) {
            self.0.pop_front();
        }
        // The first few only: the nearest the committer, whose previous ones commit first.
        let Some((at, tx)) = (self.0.iter().copied().enumerate())
            .filter(|&(_, tx)| unclaimed(tx))
            .take(DEFERRED_LOOKED_AT)
            .find(|&(_, tx)| is_ripe(shared, tx))
        else {
            return false;
        };
        self.0.remove(at);
        speculate_one(shared, speculator, tx, false)
    }
}

/// A speculating thread's watch over the speculations just ahead of the committer: one that read
/// a slot since committed with another value is stale (the committer would reject it and
/// execute the transaction itself, serially), so the thread takes it back and speculates it
/// again on the committed values. Block-STM's re-execution, for the pipeline: the committer's
/// direct executions of stale speculations were its work beyond sequential's (mainnet 8889776,
/// 10760440, 16146267: rejections on 12-18% of their transactions).
#[derive(Default)]
struct Refresher {
    /// The first transaction not seen committed.
    committed: TxIdx,
    /// The committer's next transaction when this thread last looked for stale speculations:
    /// until it commits another, none turns stale.
    looked_at: Option<TxIdx>,
}

impl Refresher {
    /// The committer's next transaction, as far as the statuses show.
    fn committer_next<S: ?Sized>(&mut self, shared: &Shared<'_, S>) -> TxIdx {
        let statuses = &shared.slots.statuses;
        while self.committed < statuses.len()
            && statuses[self.committed].load(Ordering::Acquire) == COMMITTED
        {
            self.committed += 1;
        }
        self.committed
    }

    /// Whether this thread runs at least [`REFRESH_AHEAD`] transactions ahead of the committer.
    fn ahead<S: ?Sized>(&mut self, shared: &Shared<'_, S>) -> bool {
        shared.flags.hot.any_conflicted.load(Ordering::Relaxed)
            && shared.next_speculation.load(Ordering::Relaxed)
                >= self.committer_next(shared) + shared.refresh_ahead
    }

    /// Speculates again the first stale and ripe speculation ([`is_ripe`]) to a destination with
    /// [`REFRESH_MIN_REJECTED`] rejections among the [`REFRESH_WINDOW`] transactions from
    /// [`RIPE_MARGIN`] after the committer's next; whether there was one.
    fn refresh<'a, S: Storage + ?Sized>(
        &mut self,
        shared: &Shared<'a, S>,
        speculator: &mut Option<Speculator<'a, S>>,
    ) -> bool {
        let Some(committed) = shared.committed else {
            return false;
        };
        if shared.flags.done.load(Ordering::Acquire)
            || !shared.flags.speculating.load(Ordering::Relaxed)
        {
            return false;
        }
        let next = self.committer_next(shared);
        if self.looked_at.replace(next) == Some(next) {
            return false; // Nothing committed since.
        }
        let pipelined = shared.pipelined();
        let from = (next + RIPE_MARGIN).min(pipelined);
        let window = from..pipelined.min(from + REFRESH_WINDOW);
        for (tx, status) in window.clone().zip(&shared.slots.statuses[window]) {
            if status.load(Ordering::Acquire) != READY
                || !(shared.flags.hot).is_conflicted(&shared.block.body.transactions[tx])
            {
                continue;
            }
            // The committer locks a ready speculation to validate it: never wait for it.
            let Some(mut speculation) = shared.slots.speculations[tx].try_lock() else {
                continue;
            };
            let stale = status.load(Ordering::Acquire) == READY
                && (speculation.as_ref()).is_some_and(|speculation| {
                    speculation.chain.is_none() && speculation.is_stale(committed)
                })
                && shared.speculability(tx) == Speculable::Yes
                && is_ripe(shared, tx);
            if !stale {
                continue;
            }
            // Under the lock: the committer, once it holds it, sees the status again.
            status.store(SPECULATING, Ordering::SeqCst);
            let stale = speculation.take();
            drop(speculation);
            drop(stale);
            let speculator = speculator.get_or_insert_with(|| Speculator::new(shared));
            // Not on a chain (see above): nothing a chain wrote is to be read first.
            speculator.evm.ctx.journaled_state.database.chain.clear();
            speculate_claimed(shared, speculator, tx);
            self.looked_at = None; // The rest of the window is still to look at.
            return true;
        }
        false
    }
}

/// Speculates transaction `tx` as [`speculate_unclaimed`] does, without following; a
/// [`Speculable::OnPrevious`] one only when following (`on_previous`).
fn speculate_one<'a, S: Storage + ?Sized>(
    shared: &Shared<'a, S>,
    speculator: &mut Option<Speculator<'a, S>>,
    tx: TxIdx,
    on_previous: bool,
) -> bool {
    let envelope = &shared.block.body.transactions[tx];
    let speculable = shared.speculability(tx);
    if speculable == Speculable::No
        || (speculable == Speculable::OnPrevious && !on_previous)
        || (shared.flags.hot.is_hot(envelope) && !is_ripe(shared, tx))
    {
        return false; // Left to the committer.
    }
    let status = &shared.slots.statuses[tx];
    if status.load(Ordering::Relaxed) != UNCLAIMED {
        return false;
    }
    let speculator = speculator.get_or_insert_with(|| Speculator::new(shared));
    let chain = &mut speculator.evm.ctx.journaled_state.database.chain;
    chain.clear();
    if speculable == Speculable::OnPrevious {
        let previous = shared.previous_of_sender[tx].expect("a follower has a previous one");
        if !load_chain(shared, previous, chain) {
            return false; // Its previous one's speculation is not there, or not usable.
        }
    }
    if status
        .compare_exchange(UNCLAIMED, SPECULATING, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return false; // Claimed meanwhile.
    }
    speculate_claimed(shared, speculator, tx);
    true
}

/// Speculates transaction `tx`, which this thread has marked `SPECULATING` (its chain loaded
/// into the speculator's database, or cleared), publishes the speculation and wakes the
/// committer.
fn speculate_claimed<'a, S: Storage + ?Sized>(
    shared: &Shared<'a, S>,
    speculator: &mut Speculator<'a, S>,
    tx: TxIdx,
) {
    let speculation = speculator.speculate(shared, tx);
    // A speculation takes a while: under shuttle, other threads get to run meanwhile (the
    // committer reaches the transaction and waits for it).
    #[cfg(feature = "shuttle")]
    for _ in 0..4 {
        spin_loop();
    }
    *shared.slots.speculations[tx].lock() = speculation;
    shared.slots.statuses[tx].store(READY, Ordering::SeqCst);
    shared.doorbell.ring();
}

/// Loads into `chain` the slots that transaction `previous`'s chain of speculations wrote
/// ([`Speculation::chain`]), for a speculation of its sender's next transaction to read first;
/// whether that speculation can be made (`previous`'s is ready, usable and carries its chain).
fn load_chain<S: ?Sized>(
    shared: &Shared<'_, S>,
    previous: TxIdx,
    chain: &mut Vec<ChainSlot>,
) -> bool {
    // The committer holds this lock while it commits `previous`'s speculation, and marks it
    // committed before letting go: under the lock, a ready one is not being applied.
    let speculation = shared.slots.speculations[previous].lock();
    if shared.slots.statuses[previous].load(Ordering::Acquire) != READY {
        return false;
    }
    match speculation
        .as_ref()
        .and_then(|speculation| speculation.chain.as_ref())
    {
        Some(written) => {
            chain.extend_from_slice(&written.0);
            true
        }
        None => false,
    }
}

/// Wakes the committer when the speculation it waits for is published.
struct Doorbell {
    /// Whether the committer is parked (or about to). SeqCst with the slots' status: the
    /// committer marks itself parked before it checks the slot, a thread publishes a speculation
    /// before it checks for the committer, so one of the two always sees the other.
    parked: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Doorbell {
    fn new() -> Self {
        Self {
            parked: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// Busy-waits for `ready` up to [`COMMITTER_SPIN`], then parks until it holds.
    fn wait_until(&self, ready: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        loop {
            for _ in 0..SPIN_ROUNDS {
                if ready() {
                    return;
                }
                spin_loop();
            }
            if start.elapsed() >= COMMITTER_SPIN {
                break;
            }
        }
        while !ready() {
            let guard = self.lock.lock();
            self.parked.store(true, Ordering::SeqCst);
            if !ready() {
                drop(self.wake.wait_timeout(guard, PARK_TIMEOUT));
            }
            self.parked.store(false, Ordering::SeqCst);
        }
    }

    /// Wakes the committer if it is parked.
    fn ring(&self) {
        if self.parked.load(Ordering::SeqCst) {
            let _guard = self.lock.lock();
            self.wake.notify_all();
        }
    }
}

/// The pipeline under shuttle: every lock, atomic and condition variable is a scheduling point, and
/// each test explores many interleavings of a small block whose speculations are partly stale
/// (senders credited earlier in the block), partly assumed funds (a sender's chain), partly lazy
/// credits (a shared recipient). A commit left behind would show as an internal error (the block
/// stopped short), a lost wake-up of the committer as a deadlock; every run must give the
/// sequential output.
#[cfg(all(test, feature = "shuttle"))]
mod interleavings {
    use std::sync::Arc;

    use alloy_consensus::{BlockBody, Header, Signed, TxLegacy};
    use alloy_primitives::{Bytes, Signature, TxKind};
    use shuttle::{
        Config, MaxSteps, Runner,
        scheduler::{DfsScheduler, PctScheduler, RandomScheduler, Scheduler as Exploration},
    };

    use super::*;
    use crate::{InMemoryStorage, execute_sequential};

    type Fixture = (ChainSpec, Block<Recovered<TxEnvelope>>, InMemoryStorage);

    fn transfer(from: u8, nonce: u64, to: u8, value: u64) -> Recovered<TxEnvelope> {
        let tx = TxLegacy {
            gas_price: 10,
            gas_limit: 21_000,
            nonce,
            to: TxKind::Call(Address::with_last_byte(to)),
            value: U256::from(value),
            ..Default::default()
        };
        let signed = Signed::new_unchecked(tx, Signature::test_signature(), B256::ZERO);
        Recovered::new_unchecked(TxEnvelope::Legacy(signed), Address::with_last_byte(from))
    }

    /// Accounts 1–4 funded; 1 sends three times (a chain), 2 receives then sends (stale), 9 is a
    /// hot recipient without code.
    fn fixture() -> Fixture {
        let mut storage = InMemoryStorage::new();
        for account in 1..=4 {
            let address = Address::with_last_byte(account);
            let balance = U256::from(10u64.pow(18));
            storage.insert_account_with_code(address, balance, 0, Bytes::new(), []);
        }
        let txs = vec![
            transfer(1, 0, 2, 1_000),
            transfer(3, 0, 9, 5),
            transfer(2, 0, 9, 7),
            transfer(1, 1, 9, 11),
            transfer(4, 0, 1, 13),
            transfer(1, 2, 3, 17),
        ];
        let block = Block {
            header: Header {
                number: 1,
                gas_limit: 30_000_000,
                beneficiary: Address::with_last_byte(0xbe),
                ..Default::default()
            },
            body: BlockBody {
                transactions: txs,
                ommers: vec![],
                withdrawals: None,
            },
        };
        (ChainSpec::fixed(SpecId::BYZANTIUM), block, storage)
    }

    fn explore(threads: usize, exploration: impl Exploration + 'static) {
        explore_on(fixture(), threads, exploration);
    }

    /// A counter's contract (`SSTORE(0, SLOAD(0) + 1)`) at `0x…cc`; account 5 calls it five times
    /// in a row (a chain its followers are speculated on, each on the one before), with account
    /// 6's call to it and a transfer between them.
    fn chained_calls() -> Fixture {
        let (chain, mut block, mut storage) = fixture();
        let counter = Address::with_last_byte(0xcc);
        for account in [5, 6] {
            let address = Address::with_last_byte(account);
            let balance = U256::from(10u64.pow(18));
            storage.insert_account_with_code(address, balance, 0, Bytes::new(), []);
        }
        let code =
            Bytes::from_static(&[0x60, 0x00, 0x54, 0x60, 0x01, 0x01, 0x60, 0x00, 0x55, 0x00]);
        storage.insert_account_with_code(counter, U256::ZERO, 1, code, []);
        let call = |from: u8, nonce: u64| {
            let tx = TxLegacy {
                gas_price: 10,
                gas_limit: 60_000,
                nonce,
                to: TxKind::Call(counter),
                input: Bytes::from_static(&[1]),
                ..Default::default()
            };
            let signed = Signed::new_unchecked(tx, Signature::test_signature(), B256::ZERO);
            Recovered::new_unchecked(TxEnvelope::Legacy(signed), Address::with_last_byte(from))
        };
        block.body.transactions = vec![
            call(5, 0),
            call(5, 1),
            transfer(1, 0, 2, 1_000),
            call(5, 2),
            call(6, 0),
            call(5, 3),
            call(5, 4),
        ];
        (chain, block, storage)
    }

    /// `count` counters' contracts (as in [`chained_calls`]) at `0x…c0` on, called in turn by
    /// sixteen senders: each call reads what the one before to its counter wrote, so that
    /// speculations go stale (and are refreshed), destinations turn hot (and their calls ripen
    /// once the one before is committed). Seen with a temporary print: 4 counters refreshed 99
    /// speculations in 500 explorations; 2 counters ripened calls (a race: the previous call is
    /// committed between the margin check and the look back), refreshed none.
    fn interleaved_counters(count: u8) -> Fixture {
        let (chain, mut block, mut storage) = fixture();
        let code =
            Bytes::from_static(&[0x60, 0x00, 0x54, 0x60, 0x01, 0x01, 0x60, 0x00, 0x55, 0x00]);
        let counters: Vec<Address> = (0..count)
            .map(|n| Address::with_last_byte(0xc0 + n))
            .collect();
        for &counter in &counters {
            storage.insert_account_with_code(counter, U256::ZERO, 1, code.clone(), []);
        }
        block.body.transactions = (0..16u8)
            .map(|index| {
                let from = Address::with_last_byte(0x10 + index);
                let balance = U256::from(10u64.pow(18));
                storage.insert_account_with_code(from, balance, 0, Bytes::new(), []);
                let tx = TxLegacy {
                    gas_price: 10,
                    gas_limit: 60_000,
                    to: TxKind::Call(counters[usize::from(index % count)]),
                    input: Bytes::from_static(&[1]),
                    ..Default::default()
                };
                let signed = Signed::new_unchecked(tx, Signature::test_signature(), B256::ZERO);
                Recovered::new_unchecked(TxEnvelope::Legacy(signed), from)
            })
            .collect();
        (chain, block, storage)
    }

    fn explore_on(fixture: Fixture, threads: usize, exploration: impl Exploration + 'static) {
        let (chain, block, storage) = fixture;
        let expected = format!("{:?}", execute_sequential(&chain, &block, &storage));
        let fixture = Arc::new((chain, block, storage));
        let mut config = Config::new();
        config.max_steps = MaxSteps::FailAfter(1_000_000);
        Runner::new(exploration, config).run(move || {
            let (chain, block, storage) = &*fixture;
            let shape = BlockShape::of(block);
            let counters = PipelineCounters::default();
            let output = execute_pipeline(
                chain,
                block,
                storage,
                (&shape, &mut Slots::default()),
                Threads::Shuttle(threads),
                None,
                &counters,
            )
            .map(|end| match end {
                PipelineEnd::Finished(output) => output,
                PipelineEnd::HandedOver(_) => unreachable!("the pipeline never hands over here"),
            });
            assert_eq!(
                format!("{output:?}"),
                expected,
                "{threads} threads: output differs from sequential"
            );
        });
    }

    #[test]
    fn shuttle_pipeline_refreshed_and_ripened_speculations_match_sequential() {
        for counters in [2, 4] {
            explore_on(interleaved_counters(counters), 2, RandomScheduler::new(300));
            explore_on(interleaved_counters(counters), 3, PctScheduler::new(3, 200));
        }
    }

    #[test]
    fn shuttle_pipeline_random_interleavings_match_sequential() {
        explore(2, RandomScheduler::new(300));
        explore(3, RandomScheduler::new(200));
    }

    #[test]
    fn shuttle_pipeline_priority_interleavings_match_sequential() {
        explore(2, PctScheduler::new(3, 200));
        explore(3, PctScheduler::new(4, 100));
    }

    #[test]
    fn shuttle_pipeline_dfs_interleavings_match_sequential() {
        explore(2, DfsScheduler::new(Some(300), false));
    }

    #[test]
    fn shuttle_pipeline_chained_calls_match_sequential() {
        explore_on(chained_calls(), 2, RandomScheduler::new(300));
        explore_on(chained_calls(), 3, PctScheduler::new(3, 200));
    }
}

/// Native speculation of plain transfers against revm's speculation of the same transactions,
/// on every fork: equal speculations (result, reads, writes, lazy credits and debits, fee), or
/// both unusable; and the native path taken where it should be.
#[cfg(test)]
mod native_speculation {
    use alloy_consensus::{BlockBody, Header, Signed, TxEip1559, TxEip2930, TxLegacy};
    use alloy_eips::eip2930::{AccessList, AccessListItem};
    use alloy_primitives::{Bytes, Signature, TxKind};

    use super::*;
    use crate::InMemoryStorage;

    const BASEFEE: u64 = 7;
    const BENEFICIARY: Address = Address::repeat_byte(0xbe);
    const CONTRACT: Address = Address::repeat_byte(0xcc);

    fn account(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    /// `tx` with a test signature, wrapped by `envelope`, sent by `account(from)`.
    fn sent<T>(tx: T, envelope: fn(Signed<T>) -> TxEnvelope, from: u8) -> Recovered<TxEnvelope> {
        let signed = Signed::new_unchecked(tx, Signature::test_signature(), B256::ZERO);
        Recovered::new_unchecked(envelope(signed), account(from))
    }

    fn legacy(nonce: u64, to: Address, gas_limit: u64, gas_price: u128) -> TxLegacy {
        TxLegacy {
            chain_id: None,
            nonce,
            gas_price,
            gas_limit,
            to: TxKind::Call(to),
            value: U256::from(1_000),
            input: Bytes::new(),
        }
    }

    fn signed_legacy(tx: TxLegacy, from: u8) -> Recovered<TxEnvelope> {
        sent(tx, TxEnvelope::Legacy, from)
    }

    fn eip2930(
        from: u8,
        nonce: u64,
        to: Address,
        access_list: AccessList,
    ) -> Recovered<TxEnvelope> {
        let tx = TxEip2930 {
            chain_id: 1,
            nonce,
            gas_price: 20,
            gas_limit: 60_000,
            to: TxKind::Call(to),
            value: U256::from(3),
            access_list,
            input: Bytes::new(),
        };
        sent(tx, TxEnvelope::Eip2930, from)
    }

    fn eip1559(
        from: u8,
        nonce: u64,
        to: Address,
        max_fee: u128,
        priority: u128,
    ) -> Recovered<TxEnvelope> {
        let tx = TxEip1559 {
            chain_id: 1,
            nonce,
            gas_limit: 30_000,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: priority,
            to: TxKind::Call(to),
            value: U256::from(5),
            access_list: AccessList::default(),
            input: Bytes::new(),
        };
        sent(tx, TxEnvelope::Eip1559, from)
    }

    /// The block's transactions, each with whether it is speculated natively from `spec` on.
    fn transactions(spec: SpecId) -> Vec<(Recovered<TxEnvelope>, bool)> {
        let london = spec.is_enabled_in(SpecId::LONDON);
        let berlin = spec.is_enabled_in(SpecId::BERLIN);
        let price = u128::from(BASEFEE) + 2;
        let with_chain_id = |mut tx: TxLegacy| {
            tx.chain_id = Some(1);
            tx
        };
        let access_list = AccessList(vec![AccessListItem {
            address: CONTRACT,
            storage_keys: vec![],
        }]);
        vec![
            // To an account that does not exist, with EIP-155 replay protection.
            (
                signed_legacy(with_chain_id(legacy(0, account(0x71), 21_000, price)), 1),
                true,
            ),
            // To an existing account, with more gas than needed.
            (signed_legacy(legacy(0, account(3), 50_000, price), 2), true),
            // The sender's second: its funds are assumed.
            (signed_legacy(legacy(1, account(4), 21_000, price), 1), true),
            // To code, to a precompile, to the beneficiary: revm's.
            (signed_legacy(legacy(0, CONTRACT, 50_000, price), 3), false),
            (
                signed_legacy(legacy(0, Address::with_last_byte(4), 50_000, price), 4),
                false,
            ),
            (
                signed_legacy(legacy(0, BENEFICIARY, 21_000, price), 5),
                false,
            ),
            // Invalid: a nonce ahead, no funds, too little gas, a price under the base fee, another
            // chain.
            (
                signed_legacy(legacy(9, account(3), 21_000, price), 6),
                false,
            ),
            (
                signed_legacy(legacy(0, account(3), 21_000, price), 0x60),
                false,
            ),
            (
                signed_legacy(legacy(0, account(3), 20_999, price), 7),
                false,
            ),
            (
                signed_legacy(legacy(0, account(3), 21_000, u128::from(BASEFEE) - 1), 8),
                !london,
            ),
            (
                signed_legacy(
                    TxLegacy {
                        chain_id: Some(5),
                        ..legacy(0, account(3), 21_000, price)
                    },
                    9,
                ),
                false,
            ),
            // Typed transactions.
            (eip2930(10, 0, account(0x72), AccessList::default()), berlin),
            (eip2930(11, 0, account(0x72), access_list), false),
            (eip1559(12, 0, account(0x73), 100, 3), london),
            (eip1559(13, 0, account(0x73), u128::from(BASEFEE), 0), false),
            // A sender with code.
            (
                signed_legacy(legacy(0, account(3), 21_000, price), 0xcc),
                false,
            ),
            // Sent by the beneficiary (a pool paying out in its own block), its first and its
            // second: its funds are assumed, its fee comes back to it at commit.
            (
                signed_legacy(legacy(0, account(0x74), 21_000, price), 0xbe),
                true,
            ),
            (
                signed_legacy(legacy(1, account(0x75), 30_000, price), 0xbe),
                true,
            ),
        ]
    }

    fn header(spec: SpecId) -> Header {
        let london = spec.is_enabled_in(SpecId::LONDON);
        let cancun = spec.is_enabled_in(SpecId::CANCUN);
        Header {
            number: 1_000,
            timestamp: 1_000_000,
            gas_limit: 30_000_000,
            beneficiary: BENEFICIARY,
            difficulty: U256::from(1u64),
            base_fee_per_gas: london.then_some(BASEFEE),
            excess_blob_gas: cancun.then_some(0),
            blob_gas_used: cancun.then_some(0),
            parent_beacon_block_root: cancun.then_some(B256::repeat_byte(0x42)),
            mix_hash: B256::repeat_byte(0x11),
            ..Default::default()
        }
    }

    /// A block of `transactions` under [`header`].
    fn block_of(
        spec: SpecId,
        transactions: Vec<Recovered<TxEnvelope>>,
    ) -> Block<Recovered<TxEnvelope>> {
        Block {
            header: header(spec),
            body: BlockBody {
                transactions,
                ommers: vec![],
                withdrawals: None,
            },
        }
    }

    /// `speculation` with its writes in address order (revm's come in its state map's order).
    fn in_address_order(mut speculation: Speculation) -> Speculation {
        speculation.writes.sort_by_key(|(address, _)| *address);
        speculation
    }

    #[test]
    fn native_speculation_matches_revm_on_every_fork() {
        let mut storage = InMemoryStorage::new();
        for sender in (1..=13).chain([0xbe]) {
            let balance = U256::from(10u64.pow(18));
            storage.insert_account_with_code(account(sender), balance, 0, Bytes::new(), []);
        }
        storage.insert_account_with_code(account(0x60), U256::from(100), 0, Bytes::new(), []);
        let code = Bytes::from_static(&[0x60, 0x00, 0x54, 0x00]);
        for address in [CONTRACT, account(0xcc)] {
            storage.insert_account_with_code(
                address,
                U256::from(10u64.pow(18)),
                1,
                code.clone(),
                [],
            );
        }
        let pre = PreState::new(&storage);
        for spec in [
            SpecId::FRONTIER,
            SpecId::HOMESTEAD,
            SpecId::SPURIOUS_DRAGON,
            SpecId::BYZANTIUM,
            SpecId::ISTANBUL,
            SpecId::BERLIN,
            SpecId::LONDON,
            SpecId::MERGE,
            SpecId::SHANGHAI,
            SpecId::CANCUN,
            SpecId::PRAGUE,
            SpecId::OSAKA,
        ] {
            let chain = ChainSpec::fixed(spec);
            let (transactions, natives): (Vec<_>, Vec<_>) = transactions(spec).into_iter().unzip();
            let block = block_of(spec, transactions);
            let block_env = chain::block_env(&block.header, spec).unwrap();
            let cfg = chain::cfg_env(&chain, spec);
            let shape = BlockShape::of(&block);
            let next_of_sender = shape.next_of_sender();
            let counters = PipelineCounters::default();
            let mut slots = Slots::default();
            let shared = Shared::new(
                &block,
                (spec, &block_env, &cfg),
                &pre,
                (
                    &shape,
                    &next_of_sender,
                    slots.prepare(block.body.transactions.len()),
                ),
                &Threads::Alone(Speculate::Every),
                None,
                &counters,
            );
            let mut native = Speculator::new(&shared);
            let mut revm = Speculator::new(&shared);
            revm.native = false;
            for (tx, expect_native) in natives.into_iter().enumerate() {
                let before = native.natives;
                let fast = native.speculate(&shared, tx).map(in_address_order);
                let slow = revm.speculate(&shared, tx).map(in_address_order);
                assert_eq!(fast, slow, "{spec:?}, transaction {tx}");
                assert_eq!(
                    native.natives - before == 1,
                    expect_native,
                    "{spec:?}, transaction {tx}: native path taken"
                );
            }
            assert_eq!(revm.natives, 0);
        }
    }

    /// A transfer whose sender's funds are assumed is speculated into code, usable unless the
    /// code observed the sender's balance (the speculation then still counts); with other
    /// threads, speculation starts at the block's second transaction.
    #[test]
    fn assumed_funds_observed_by_code_and_the_first_transaction_are_not_used() {
        let spec = SpecId::CANCUN;
        let mut storage = InMemoryStorage::new();
        let funds = U256::from(10u64.pow(18));
        storage.insert_account_with_code(account(1), funds, 0, Bytes::new(), []);
        let stop = Bytes::from_static(&[0x00]);
        storage.insert_account_with_code(CONTRACT, funds, 1, stop, []);
        // `BALANCE(ORIGIN) POP STOP`.
        let observer = Bytes::from_static(&[0x32, 0x31, 0x50, 0x00]);
        storage.insert_account_with_code(account(0xcd), funds, 1, observer, []);
        let price = u128::from(BASEFEE) + 2;
        let block = block_of(
            spec,
            vec![
                signed_legacy(legacy(0, account(0x71), 21_000, price), 1),
                // Its sender's second and third: funds assumed, into code.
                signed_legacy(legacy(1, CONTRACT, 50_000, price), 1),
                signed_legacy(legacy(2, account(0xcd), 50_000, price), 1),
            ],
        );
        let pre = PreState::new(&storage);
        let block_env = chain::block_env(&block.header, spec).unwrap();
        let cfg = chain::cfg_env(&ChainSpec::fixed(spec), spec);
        let shape = BlockShape::of(&block);
        let next_of_sender = shape.next_of_sender();
        let counters = PipelineCounters::default();
        let mut slots = Slots::default();
        slots.prepare(block.body.transactions.len());
        let shared = |threads| {
            Shared::new(
                &block,
                (spec, &block_env, &cfg),
                &pre,
                (&shape, &next_of_sender, &slots),
                threads,
                None,
                &counters,
            )
        };
        let alone = shared(&Threads::Alone(Speculate::Every));
        let mut speculator = Speculator::new(&alone);
        assert!(speculator.speculate(&alone, 0).is_some());
        let into_code = speculator.speculate(&alone, 1).expect("usable");
        let Read::SenderFunds {
            nonce: 1, required, ..
        } = into_code.reads[0]
        else {
            panic!("assumed funds");
        };
        let change = into_code.sender_change.expect("assumed funds");
        assert_eq!(required - change.left, U256::from(1_000 + 21_000 * price));
        assert!(speculator.speculate(&alone, 2).is_none());
        assert_eq!(speculator.speculations, 3);
        assert_eq!(alone.next_speculation.load(Ordering::Relaxed), 0);
        let pool = WorkerPool::new(2, crate::WorkerPlacement::Free).expect("a pool");
        let pooled = shared(&Threads::Pool(&pool, 2));
        assert_eq!(pooled.next_speculation.load(Ordering::Relaxed), 1);
    }

    /// A block of calls that each add one to a counter's slot: a sender's first call, then
    /// `followers` more in a row after another sender's call.
    fn counter_calls(followers: u64) -> (Block<Recovered<TxEnvelope>>, InMemoryStorage) {
        let spec = SpecId::CANCUN;
        let mut storage = InMemoryStorage::new();
        let funds = U256::from(10u64.pow(18));
        for sender in [1, 2] {
            storage.insert_account_with_code(account(sender), funds, 0, Bytes::new(), []);
        }
        // `SSTORE(0, SLOAD(0) + 1) STOP`.
        let counter =
            Bytes::from_static(&[0x60, 0x00, 0x54, 0x60, 0x01, 0x01, 0x60, 0x00, 0x55, 0x00]);
        storage.insert_account_with_code(CONTRACT, U256::ZERO, 1, counter, []);
        let call = |nonce, from| {
            let tx = TxLegacy {
                input: Bytes::from_static(&[1]),
                value: U256::ZERO,
                ..legacy(nonce, CONTRACT, 60_000, u128::from(BASEFEE) + 2)
            };
            signed_legacy(tx, from)
        };
        let transactions = [call(0, 2)]
            .into_iter()
            .chain((0..=followers).map(|nonce| call(nonce, 1)))
            .collect();
        (block_of(spec, transactions), storage)
    }

    /// Speculates transaction 1 of `block` (the head of its sender's chain) on a speculating
    /// thread, and returns each transaction's status and speculation afterwards.
    fn speculate_head(
        block: &Block<Recovered<TxEnvelope>>,
        storage: &InMemoryStorage,
    ) -> Vec<(u8, Option<Speculation>)> {
        let spec = SpecId::CANCUN;
        let pre = PreState::new(storage);
        let block_env = chain::block_env(&block.header, spec).unwrap();
        let cfg = chain::cfg_env(&ChainSpec::fixed(spec), spec);
        let shape = BlockShape::of(block);
        let next_of_sender = shape.next_of_sender();
        let counters = PipelineCounters::default();
        let mut slots = Slots::default();
        let pool = WorkerPool::new(2, crate::WorkerPlacement::Free).expect("a pool");
        let shared = Shared::new(
            block,
            (spec, &block_env, &cfg),
            &pre,
            (
                &shape,
                &next_of_sender,
                slots.prepare(block.body.transactions.len()),
            ),
            &Threads::Pool(&pool, 2),
            None,
            &counters,
        );
        let mut speculator = None;
        assert!(speculate_unclaimed(&shared, &mut speculator, 1, true));
        (shared.slots.statuses.iter().zip(&shared.slots.speculations))
            .map(|(status, speculation)| {
                (status.load(Ordering::Relaxed), speculation.lock().take())
            })
            .collect()
    }

    /// A sender's run of at least `CHAIN_FIRST_MIN` calls to one contract after its first: a
    /// speculating thread that speculates the first goes on with the others, each on the one
    /// before: it reads the counter the one before left (validated as a committed value) and
    /// passes on what it wrote.
    #[test]
    fn a_long_chain_is_speculated_each_call_on_the_one_before() {
        let followers = CHAIN_FIRST_MIN as u64 + 1;
        let (block, storage) = counter_calls(followers);
        let speculated = speculate_head(&block, &storage);
        assert_eq!(speculated[0].0, UNCLAIMED);
        for (tx, (status, speculation)) in speculated.iter().enumerate().skip(1) {
            assert_eq!(*status, READY, "transaction {tx}");
            let speculation = speculation.as_ref().expect("usable");
            let counted = U256::from(tx);
            let read = Read::CommittedStorage(CONTRACT, U256::ZERO, counted - U256::from(1));
            assert_eq!(
                speculation.reads.contains(&read),
                tx > 1,
                "transaction {tx}"
            );
            let passed_on = (speculation.chain.as_deref()).map(|chain| chain.0.as_slice());
            let last = tx == followers as usize + 1;
            let expected = [(CONTRACT, U256::ZERO, counted)];
            assert_eq!(
                passed_on,
                (!last).then_some(&expected[..]),
                "transaction {tx}"
            );
        }
    }

    /// A shorter run is left to the committer: the first call is speculated, the others not.
    #[test]
    fn a_short_chain_is_left_to_the_committer() {
        let (block, storage) = counter_calls(CHAIN_FIRST_MIN as u64 - 1);
        let speculated = speculate_head(&block, &storage);
        let statuses: Vec<u8> = speculated.iter().map(|(status, _)| *status).collect();
        let mut expected = vec![UNCLAIMED; statuses.len()];
        expected[1] = READY;
        assert_eq!(statuses, expected);
    }

    /// What a chain passes on: the slots written, the latest value of each; nothing past a
    /// speculation that created or destroyed an account or wrote another account than its
    /// sender exactly (a balance, a nonce or code).
    #[test]
    fn a_chain_passes_on_slots_and_stops_at_exact_account_writes() {
        let sender = account(1);
        let slots = |storage: &[(u64, u64)]| AccountDiff {
            storage: (storage.iter())
                .map(|&(slot, value)| (U256::from(slot), U256::from(value)))
                .collect(),
            ..AccountDiff::default()
        };
        let before = [(CONTRACT, U256::from(1), U256::from(10))];
        let writes: Writes = smallvec![
            (
                sender,
                AccountDiff {
                    nonce: Some(3),
                    ..AccountDiff::default()
                }
            ),
            (CONTRACT, slots(&[(1, 11), (2, 20)])),
        ];
        assert_eq!(
            chain_after(&before, sender, &writes).map(|chain| chain.0),
            Some(vec![
                (CONTRACT, U256::from(1), U256::from(11)),
                (CONTRACT, U256::from(2), U256::from(20)),
            ])
        );
        let paid: Writes = smallvec![(
            account(2),
            AccountDiff {
                balance: Some(U256::from(5)),
                ..AccountDiff::default()
            }
        )];
        assert_eq!(chain_after(&before, sender, &paid), None);
        let created: Writes = smallvec![(
            CONTRACT,
            AccountDiff {
                lifecycle: Some(crate::types::Lifecycle::Created),
                ..slots(&[(1, 1)])
            }
        )];
        assert_eq!(chain_after(&before, sender, &created), None);
    }
}

#[cfg(test)]
mod slots {
    use super::*;

    fn speculation() -> Speculation {
        Speculation {
            result: None,
            reads: SmallVec::new(),
            writes: SmallVec::new(),
            credit: None,
            sender_change: None,
            contract_credits: SmallVec::new(),
            contract_sends: SmallVec::new(),
            fee: U256::from(1),
            chain: None,
        }
    }

    /// Emptied, every slot is unclaimed and holds no speculation, whatever the block left in it
    /// (a speculation past a failed transaction is still `READY`), and the slots are reused at
    /// another length.
    #[test]
    fn emptied_slots_are_unclaimed_and_hold_nothing() {
        let mut slots = Slots::default();
        slots.prepare(4);
        let left = [UNCLAIMED, TAKEN, COMMITTED, READY];
        for (tx, status) in left.into_iter().enumerate() {
            slots.statuses[tx].store(status, Ordering::Relaxed);
        }
        *slots.speculations[3].lock() = Some(speculation());
        slots.empty();
        for tx in 0..4 {
            assert_eq!(
                slots.statuses[tx].load(Ordering::Relaxed),
                UNCLAIMED,
                "{tx}"
            );
            assert!(slots.speculations[tx].lock().is_none(), "{tx}");
        }
        assert_eq!(slots.prepare(6).len(), 6);
        assert_eq!(slots.prepare(2).len(), 2);
    }

    /// A transaction to a hot destination ripens once the previous one to its destination is
    /// committed, while the committer still has [`RIPE_MARGIN`] transactions to commit before
    /// it; one whose destination is not among the [`RIPE_LOOKBACK`] before it, once every one
    /// of those it looked at is committed.
    #[test]
    fn a_transaction_ripens_once_the_one_before_to_its_destination_is_committed() {
        let statuses = |committed: TxIdx, txs: TxIdx| -> Vec<AtomicU8> {
            (0..txs)
                .map(|tx| AtomicU8::new(if tx < committed { COMMITTED } else { READY }))
                .collect()
        };
        let tags = [1, 2, 1, 3, 3, 1];
        // Transaction 5's previous one to its destination is transaction 2.
        assert!(!ripe(&statuses(0, 6), &tags, 5), "2 not committed");
        assert!(!ripe(&statuses(2, 6), &tags, 5), "2 not committed");
        assert!(ripe(&statuses(3, 6), &tags, 5));
        assert!(
            !ripe(&statuses(4, 6), &tags, 5),
            "the committer is too near"
        );
        // No transaction before 3 goes to its destination; 4 follows 3.
        assert!(ripe(&statuses(0, 6), &tags, 3));
        assert!(!ripe(&statuses(0, 6), &tags, 4));
        assert!(
            !ripe(&statuses(0, 6), &tags, 1),
            "the committer is too near"
        );
        // Beyond the lookback, nothing committed: unknown, not ripe.
        let txs = RIPE_LOOKBACK + 8;
        let distinct: Vec<u32> = (1..=txs as u32).collect();
        assert!(!ripe(&statuses(0, txs), &distinct, txs - 1));
        assert!(ripe(&statuses(8, txs), &distinct, txs - 1));
    }

    /// A speculation is stale once a slot it read is committed with another value, whether it
    /// read the pre-block value or one committed earlier; not while the slot is unpublished or
    /// holds the value read.
    #[test]
    fn a_speculation_is_stale_once_a_slot_it_read_is_committed_otherwise() {
        let mut committed = CommittedSlots::default();
        committed.next_block();
        let (contract, slot, other) = (Address::with_last_byte(0xcc), U256::from(7), U256::from(8));
        let mut speculation = speculation();
        speculation.reads.push(Read::Account(contract, None));
        speculation
            .reads
            .push(Read::Storage(contract, slot, U256::from(1)));
        assert!(!speculation.is_stale(&committed), "nothing published");
        committed.publish(&contract, &other, &U256::from(5));
        assert!(!speculation.is_stale(&committed), "another slot");
        committed.publish(&contract, &slot, &U256::from(1));
        assert!(!speculation.is_stale(&committed), "the value read");
        committed.publish(&contract, &slot, &U256::from(2));
        assert!(speculation.is_stale(&committed));
        let mut read_committed = self::speculation();
        read_committed
            .reads
            .push(Read::CommittedStorage(contract, slot, U256::from(2)));
        assert!(!read_committed.is_stale(&committed));
        committed.publish(&contract, &slot, &U256::from(3));
        assert!(read_committed.is_stale(&committed));
    }

    /// The contracts hot from the start are counted exactly whether their bucket holds calls to
    /// one destination only (counted by the shape's pass) or to several (a walk over the block):
    /// two contracts sharing a bucket, a contract alone in its own, an account without code, and
    /// a contract under the threshold.
    #[test]
    fn contracts_hot_from_start_are_counted_whether_their_bucket_is_shared_or_not() {
        use crate::shape::tests::block_of;
        let bucket = |byte: u8| address_bucket(&Address::with_last_byte(byte), DESTINATION_BUCKETS);
        let (shared_a, shared_b) = (1..=u8::MAX)
            .flat_map(|a| (a + 1..=u8::MAX).map(move |b| (a, b)))
            .find(|&(a, b)| bucket(a) == bucket(b))
            .expect("two bytes share a bucket");
        let alone = (1..=u8::MAX)
            .find(|&byte| bucket(byte) != bucket(shared_a))
            .expect("another bucket");
        let codeless = (1..=u8::MAX)
            .find(|&byte| ![bucket(shared_a), bucket(alone)].contains(&bucket(byte)))
            .expect("a third bucket");
        let rare = (1..=u8::MAX)
            .find(|&byte| {
                ![bucket(shared_a), bucket(alone), bucket(codeless)].contains(&bucket(byte))
            })
            .expect("a fourth bucket");
        // 24 transactions: the threshold is 4 (one in 8, at least `HOT_FROM_START_MIN`).
        let destinations = [
            (shared_a, 6),
            (shared_b, 4),
            (alone, 5),
            (codeless, 6),
            (rare, 3),
        ];
        let txs: Vec<_> = (destinations.iter())
            .flat_map(|&(to, calls)| std::iter::repeat_n(to, calls))
            .enumerate()
            .map(|(sender, to)| (sender as u8, Some(to), false))
            .collect();
        let block = block_of(&txs);
        let shape = BlockShape::of(&block);
        let basic = |address: &Address| {
            Ok((address[19] != codeless).then(|| AccountBasic {
                code_hash: B256::repeat_byte(0xc0),
                ..Default::default()
            }))
        };
        let mut hot = hot_from_start(&block, &shape, basic).to_vec();
        hot.sort();
        let mut expected = vec![
            (Address::with_last_byte(shared_a), 6),
            (Address::with_last_byte(shared_b), 4),
            (Address::with_last_byte(alone), 5),
        ];
        expected.sort();
        assert_eq!(hot, expected);
    }
}
