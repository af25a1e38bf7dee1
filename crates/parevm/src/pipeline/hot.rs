//! Hot destinations: contracts whose speculations are mostly rejected, left to the committer or
//! speculated once ripe ([`HotDestinations`], [`Deferred`]).

use std::sync::atomic::Ordering;

use alloy_consensus::{Block, Transaction, TxEnvelope, transaction::Recovered};
use alloy_primitives::Address;
use revm::primitives::KECCAK_EMPTY;

use crate::{
    TxIdx,
    pre_state::PreState,
    shape::{BlockShape, DESTINATION_BUCKETS},
    storage::{AccountBasic, Storage, StorageError},
    sync::{AtomicBool, AtomicU8},
    types::address_bucket,
};

use super::{
    COMMITTED, Shared, UNCLAIMED,
    schedule::{Speculable, speculate_one},
    speculation::{Speculator, code_hash_of},
};

/// A destination turns hot once at least this many speculations of transactions to it were
/// rejected, and more than half of those validated.
const HOT_MIN_REJECTED: u32 = 2;

/// A transaction to a hot destination is speculated once the previous transaction to that
/// destination is committed, if the committer has at least this many transactions to commit
/// before it ([`is_ripe`]).
pub(super) const RIPE_MARGIN: usize = 2;

/// How far back [`is_ripe`] looks for the previous transaction to the same destination (beyond,
/// the transaction is left to the committer).
const RIPE_LOOKBACK: usize = 256;

/// Speculations of transactions to one destination (bucket) rejected before threads refresh
/// stale ones to it ([`Refresher`](super::schedule::Refresher)).
pub(super) const REFRESH_MIN_REJECTED: u32 = 2;

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

/// Destinations (a transaction's `to`) whose speculations are mostly rejected: a contract that
/// every transaction to it changes, such as a sale counting its deposits. Threads leave
/// transactions to a hot destination to the committer, which executes them directly instead of
/// validating a speculation that is likely stale, and speculate the others. Destinations are
/// hashed into [`DESTINATION_BUCKETS`] buckets: a collision leaves another destination's
/// transactions to the committer too (slower, never wrong). Only the committer marks a bucket,
/// from its own counts ([`DestinationCounts`]); threads only read: the flags stay in every
/// core's cache.
pub(super) struct HotDestinations {
    hot: Box<[AtomicBool]>,
    /// Buckets of destinations with [`REFRESH_MIN_REJECTED`] rejected speculations (see
    /// [`Refresher`](super::schedule::Refresher)).
    conflicted: Box<[AtomicBool]>,
    /// Whether any bucket is conflicted.
    pub(super) any_conflicted: AtomicBool,
}

impl HotDestinations {
    /// No destination hot yet, except the contracts `block` calls without input in at least one
    /// in [`HOT_FROM_START_SHARE`] of its transactions: value sent to a contract's `receive` or
    /// fallback code (a sale counting deposits) almost always changes the contract's state, so
    /// each such transaction depends on the previous one; waiting for two rejections would let a
    /// small block's other threads speculate most of them in vain.
    pub(super) fn new<S: Storage + ?Sized>(
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
    pub(super) fn is_hot(&self, tx: &Recovered<TxEnvelope>) -> bool {
        Self::bucket(tx).is_some_and(|bucket| self.hot[bucket].load(Ordering::Relaxed))
    }

    /// Whether a speculation of a transaction to `tx`'s destination (or one sharing its bucket)
    /// was rejected.
    pub(super) fn is_conflicted(&self, tx: &Recovered<TxEnvelope>) -> bool {
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
pub(super) struct DestinationCounts(Vec<(u32, u32)>);

impl DestinationCounts {
    pub(super) fn new() -> Self {
        Self(vec![(0, 0); DESTINATION_BUCKETS])
    }

    /// Counts the validation of a speculation of `tx`, marking its destination hot when
    /// rejections dominate.
    pub(super) fn record(
        &mut self,
        hot: &HotDestinations,
        tx: &Recovered<TxEnvelope>,
        rejected: bool,
    ) {
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

/// Whether transaction `tx`, to a hot destination ([`HotDestinations`]), is ripe for speculation:
/// the previous transaction to the same destination (by [`BlockShape::destination_tags`], within
/// [`RIPE_LOOKBACK`]) is committed, so that a speculation made now reads what it wrote
/// ([`CommittedSlots`](crate::committed_slots::CommittedSlots)), and the committer still has at
/// least [`RIPE_MARGIN`] transactions to commit before `tx` (nearer, it would wait for the
/// speculation rather than execute `tx` itself). A hot destination's transactions depend on one
/// another, not on the rest of the block: mainnet 8889776, deposits of ten tokens each to one
/// exchange, interleaved — each transfer is ripe once the one before of its token is committed.
pub(super) fn is_ripe<S: ?Sized>(shared: &Shared<'_, S>, tx: TxIdx) -> bool {
    shared.committed.is_some() && ripe(&shared.slots.statuses, shared.chains.destination_tags, tx)
}

/// [`is_ripe`] on the transactions' statuses and destination tags.
pub(super) fn ripe(statuses: &[AtomicU8], tags: &[u32], tx: TxIdx) -> bool {
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
pub(super) struct Deferred(pub(super) std::collections::VecDeque<TxIdx>);

impl Deferred {
    /// Keeps `tx` (if there is room) when threads pass it only for its hot destination.
    #[cold]
    #[inline(never)]
    pub(super) fn keep<S: ?Sized>(&mut self, shared: &Shared<'_, S>, tx: TxIdx) {
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
    pub(super) fn speculate_ripe<'a, S: Storage + ?Sized>(
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

#[cfg(test)]
mod tests {
    use alloy_primitives::B256;

    use super::*;
    use crate::pipeline::READY;

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
