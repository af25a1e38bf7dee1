//! What a block's transaction list says before anything runs: each transaction's previous one of
//! the same sender, the giants, the sum of the gas limits, the plain transfers, and the calls
//! without input to each destination bucket. Found in one pass over the list, shared by the
//! planner, the pipeline and Block-STM.
//!
//! On big blocks this pass is serial work before any thread starts, bound by reading the list
//! (432 bytes a transaction): on the 47,619 transactions of a 1-gigagas block of plain transfers
//! it costs about 2.5 ms here, a twelfth of the parallel run, and each further walk for one
//! field about 0.3-0.6 ms; so the planner asks this pass for the gas limits and the transfers
//! instead of walking again (`examples/plan_time.rs`, `docs/benchmarks.md`, twenty-second
//! session). A `HashMap` of senders cost 6.5 ms (a 2 MiB table, fresh every block; thirteenth
//! session).

use std::cell::OnceCell;

use alloy_consensus::{Block, Transaction, TxEnvelope, transaction::Recovered};
use alloy_primitives::Address;

use crate::{
    pipeline::is_plain_transfer,
    types::{TxIdx, address_bucket},
};

/// A transaction with a gas limit above 1/`GIANT_SHARE` of its block's gas used (of its gas
/// limit while the block is built) is a giant ([`BlockShape::giants`]).
pub(crate) const GIANT_SHARE: u64 = 8;

/// How heavy giant `tx` is expected to be, for ordering giants (the heaviest is speculated
/// first, so that the longest work starts first): its calldata's length, then its gas limit.
/// A gas limit is the sender's cap, often a round figure far above what the call uses; the
/// calldata is what the call carries and, in a giant, mostly what it works on. Over the shared
/// mainnet blocks with two or more speculated giants (17 blocks), the longest-running giant was
/// the one with the most calldata in 9 and the one with the highest gas limit in 8, and picking
/// by calldata lost 10.1 ms of the longest giant's head start in all, by gas limit 19.7 ms
/// (`docs/benchmarks.md`, thirtieth session). Mainnet 19426587: a 3-Mgas-limit call with 1.2 kB
/// of calldata ran 0.12-0.19 ms; one of 0.9 Mgas with 11 kB, 1.4-2.6 ms.
pub(crate) fn giant_weight(tx: &Recovered<TxEnvelope>) -> (usize, u64) {
    (tx.input().len(), tx.gas_limit())
}

/// Whether transaction `tx` of `txs` is a giant (one of `giants`, in order) heavier than
/// transaction `than`: `than` is no giant (whatever its calldata), or a lighter one by
/// [`giant_weight`].
pub(crate) fn heavier_giant(
    giants: &[TxIdx],
    txs: &[Recovered<TxEnvelope>],
    tx: TxIdx,
    than: TxIdx,
) -> bool {
    let is_giant = |tx: &TxIdx| giants.binary_search(tx).is_ok();
    is_giant(&tx) && (!is_giant(&than) || giant_weight(&txs[tx]) > giant_weight(&txs[than]))
}

/// Destinations are counted in this many buckets (by [`address_bucket`]).
pub(crate) const DESTINATION_BUCKETS: usize = 256;

/// What one pass over a block's transactions found.
pub(crate) struct BlockShape {
    /// For each transaction, the previous transaction of the same sender in the block.
    pub(crate) previous_of_sender: Vec<Option<TxIdx>>,
    /// For each transaction, a 32-bit tag of its destination ([`destination_tag`]): two
    /// transactions with different tags go to different destinations.
    pub(crate) destination_tags: Vec<u32>,
    /// How many transactions have the same destination tag as their sender's previous one (0:
    /// no sender calls one destination twice in a row, and no chain is to be looked for).
    pub(crate) repeated_destinations: usize,
    /// The transactions whose gas limit is above 1/[`GIANT_SHARE`] of the block's gas used (of
    /// its gas limit when that is not known: a block being built), in order: those that may take
    /// a large share of the block.
    pub(crate) giants: Vec<TxIdx>,
    /// The giants again, the heaviest first by [`giant_weight`] (the order the pipeline's
    /// speculating threads take them in).
    pub(crate) giants_largest_first: Vec<TxIdx>,
    /// The sum of the transactions' gas limits (saturating).
    pub(crate) gas_limits: u64,
    /// How many transactions are plain transfers ([`is_plain_transfer`]).
    pub(crate) plain_transfers: usize,
    /// Calls without input (plain transfers, value sent to `receive` code) per destination
    /// bucket.
    calls_without_input: Vec<BucketCalls>,
    /// The contracts hot from the start, once found ([`crate::pipeline::hot_from_start`]):
    /// found once per block, by whichever of the planner and the pipeline asks first.
    pub(crate) hot_from_start: OnceCell<Vec<(Address, usize)>>,
}

/// A view of a block's senders' chains ([`BlockShape::chains`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SenderChains<'a> {
    /// [`BlockShape::previous_of_sender`].
    pub(crate) previous: &'a [Option<TxIdx>],
    /// [`BlockShape::next_of_sender`] (empty when `repeated` is 0).
    pub(crate) next: &'a [Option<TxIdx>],
    /// [`BlockShape::destination_tags`].
    pub(crate) destination_tags: &'a [u32],
    /// [`BlockShape::repeated_destinations`].
    pub(crate) repeated: usize,
}

/// The calls without input to one destination bucket: how many, and their destination when
/// they all have the same one (then they need no second pass to be counted by destination).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct BucketCalls {
    calls: u32,
    /// The first call's destination, and whether every later one had it too.
    destination: Address,
    sole: bool,
}

impl BlockShape {
    /// Walks `block`'s transactions once.
    ///
    /// Senders go into an open-addressing table of each sender's latest transaction, probed by
    /// a hash of the address, with a 32-bit tag beside the index: a stored transaction's signer
    /// is compared only when the tags match.
    pub(crate) fn of(block: &Block<Recovered<TxEnvelope>>) -> Self {
        Self::with_hash(block, address_hash)
    }

    /// [`Self::of`] with the senders hashed by `hash` (tests give colliding ones).
    fn with_hash(block: &Block<Recovered<TxEnvelope>>, hash: impl Fn(&Address) -> u64) -> Self {
        let txs = &block.body.transactions;
        let mask = (txs.len() * 2).max(2).next_power_of_two() - 1;
        // An entry: the tag (high half) and the transaction's index plus one (0: empty).
        let mut latest = vec![0u64; mask + 1];
        // The senders in order, compact: a matching tag's comparison reads 20 bytes here instead
        // of a cache line of a transaction far back in the list (a third of this pass on 28,901
        // token transfers within groups: `examples/plan_time.rs`).
        let senders: Vec<Address> = txs.iter().map(|tx| tx.signer()).collect();
        // The senders' hashes first, so that the walk below can ask for the table's entry of a
        // transaction a few ahead before it needs it (a random access into a table of 16 bytes
        // per transaction: 42% of this pass on 47,619 plain transfers, waiting on memory).
        let hashes: Vec<u64> = senders.iter().map(&hash).collect();
        let mut destination_tags = Vec::with_capacity(txs.len());
        let mut repeated_destinations = 0;
        let mut calls_without_input = vec![BucketCalls::default(); DESTINATION_BUCKETS];
        let (mut giants, mut gas_limits, mut plain_transfers) = (Vec::new(), 0u64, 0);
        let giant_base = match block.header.gas_used {
            0 => block.header.gas_limit,
            gas_used => gas_used,
        };
        let previous_of_sender = (txs.iter().enumerate())
            .map(|(index, tx)| {
                gas_limits = gas_limits.saturating_add(tx.gas_limit());
                if tx.gas_limit().saturating_mul(GIANT_SHARE) > giant_base {
                    giants.push(index);
                }
                if tx.input().is_empty()
                    && let Some(to) = tx.kind().to()
                {
                    let bucket = &mut calls_without_input[address_bucket(to, DESTINATION_BUCKETS)];
                    if bucket.calls == 0 {
                        (bucket.destination, bucket.sole) = (*to, true);
                    } else if bucket.sole && bucket.destination != *to {
                        bucket.sole = false;
                    }
                    bucket.calls += 1;
                    plain_transfers += usize::from(is_plain_transfer(tx));
                }
                let destination_tag = destination_tag(tx);
                destination_tags.push(destination_tag);
                if let Some(ahead) = hashes.get(index + PREFETCH_AHEAD) {
                    prefetch(&latest[*ahead as usize & mask]);
                }
                let sender = senders[index];
                let hash = hashes[index];
                let tag = hash >> 32;
                let entry = tag << 32 | (index as u64 + 1);
                let mut bucket = hash as usize & mask;
                loop {
                    let stored = latest[bucket] as u32 as usize;
                    if stored == 0 {
                        latest[bucket] = entry;
                        return None;
                    }
                    if latest[bucket] >> 32 == tag && senders[stored - 1] == sender {
                        latest[bucket] = entry;
                        repeated_destinations += usize::from(
                            destination_tag != 0 && destination_tags[stored - 1] == destination_tag,
                        );
                        return Some(stored - 1);
                    }
                    bucket = (bucket + 1) & mask;
                }
            })
            .collect();
        let mut giants_largest_first = giants.clone();
        giants_largest_first.sort_by_key(|&tx| std::cmp::Reverse(giant_weight(&txs[tx])));
        Self {
            previous_of_sender,
            destination_tags,
            repeated_destinations,
            giants,
            giants_largest_first,
            gas_limits,
            plain_transfers,
            calls_without_input,
            hot_from_start: OnceCell::new(),
        }
    }

    /// For each transaction, the next transaction of the same sender in the block; empty when no
    /// sender calls one destination twice in a row ([`Self::repeated_destinations`]: no chain
    /// to follow). Found when needed, not in the pass (most blocks never need it).
    pub(crate) fn next_of_sender(&self) -> Vec<Option<TxIdx>> {
        if self.repeated_destinations == 0 {
            return Vec::new();
        }
        let mut next = vec![None; self.previous_of_sender.len()];
        for (tx, previous) in self.previous_of_sender.iter().enumerate() {
            if let Some(previous) = previous {
                next[*previous] = Some(tx);
            }
        }
        next
    }

    /// The senders' chains, as a view the pipeline's threads share (`next`:
    /// [`Self::next_of_sender`]).
    pub(crate) fn chains<'a>(&'a self, next: &'a [Option<TxIdx>]) -> SenderChains<'a> {
        SenderChains {
            previous: &self.previous_of_sender,
            next,
            destination_tags: &self.destination_tags,
            repeated: self.repeated_destinations,
        }
    }

    /// Calls without input to destinations in `bucket` (of [`DESTINATION_BUCKETS`]).
    pub(crate) fn calls_without_input(&self, bucket: usize) -> usize {
        self.calls_without_input[bucket].calls as usize
    }

    /// The one destination of every call without input to `bucket`, if they all had the same.
    pub(crate) fn sole_destination(&self, bucket: usize) -> Option<Address> {
        let calls = &self.calls_without_input[bucket];
        calls.sole.then_some(calls.destination)
    }

    /// How many transactions go to the block's busiest destination, if more than a third of them
    /// do (by [`Self::destination_tags`]: destinations sharing a tag count together; creations
    /// not at all). Two passes over the tags: the Misra-Gries vote with two counters keeps every
    /// tag of more than a third of them among its candidates, which are then counted.
    pub(crate) fn dominant_destination_calls(&self) -> Option<usize> {
        let tags = &self.destination_tags;
        let mut candidates = [(0u32, 0usize); 2];
        for &tag in tags.iter().filter(|&&tag| tag != 0) {
            if let Some(candidate) =
                (candidates.iter_mut()).find(|(kept, votes)| *votes > 0 && *kept == tag)
            {
                candidate.1 += 1;
            } else if let Some(free) = candidates.iter_mut().find(|(_, votes)| *votes == 0) {
                *free = (tag, 1);
            } else {
                for candidate in &mut candidates {
                    candidate.1 -= 1;
                }
            }
        }
        (candidates.iter())
            .filter(|(_, votes)| *votes > 0)
            .map(|(kept, _)| tags.iter().filter(|&&tag| tag == *kept).count())
            .filter(|&calls| calls * 3 > tags.len())
            .max()
    }
}

/// How many transactions ahead [`BlockShape::of`] asks for the sender table's entry.
const PREFETCH_AHEAD: usize = 16;

/// Asks the processor to bring `value`'s cache line in, without waiting for it (nothing where
/// there is no such instruction).
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing the program sees and cannot fault; the
    // pointer comes from a reference.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// A tag of `tx`'s destination: 0 for a creation, otherwise the address's last four bytes
/// (made nonzero): equal for equal destinations, rarely for others.
pub(crate) fn destination_tag(tx: &Recovered<TxEnvelope>) -> u32 {
    let tail = |to: &Address| u32::from_le_bytes(to[16..].try_into().expect("4 bytes"));
    tx.kind().to().map_or(0, |to| tail(to) | 1)
}

/// A 64-bit hash of an address: its three words folded, then the splitmix64 finalizer (every
/// input bit reaches every output bit; test addresses differ in their last bytes only).
fn address_hash(address: &Address) -> u64 {
    let word = |at: usize| u64::from_le_bytes(address[at..at + 8].try_into().expect("8 bytes"));
    let mut z = word(0) ^ word(8).rotate_left(21) ^ word(12).rotate_left(42);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
pub(crate) mod tests {
    use alloy_consensus::{BlockBody, Header, Signed, TxLegacy};
    use alloy_primitives::{B256, Bytes, Signature, TxKind, U256, map::HashMap};
    use proptest::prelude::*;

    use super::*;

    /// A legacy transaction from `Address::with_last_byte(sender)` to
    /// `Address::with_last_byte(to)` (or a creation), with one byte of input or none.
    fn tx_from(
        sender: u8,
        to: Option<u8>,
        input: bool,
        value: u64,
        gas_limit: u64,
    ) -> Recovered<TxEnvelope> {
        tx_with_calldata(sender, to, usize::from(input), value, gas_limit)
    }

    /// A legacy transaction with `calldata` bytes of input.
    fn tx_with_calldata(
        sender: u8,
        to: Option<u8>,
        calldata: usize,
        value: u64,
        gas_limit: u64,
    ) -> Recovered<TxEnvelope> {
        let tx = TxLegacy {
            to: to.map_or(TxKind::Create, |to| {
                TxKind::Call(Address::with_last_byte(to))
            }),
            input: Bytes::from(vec![1; calldata]),
            value: U256::from(value),
            gas_limit,
            ..TxLegacy::default()
        };
        let signed = Signed::new_unchecked(tx, Signature::test_signature(), B256::ZERO);
        Recovered::new_unchecked(TxEnvelope::Legacy(signed), Address::with_last_byte(sender))
    }

    /// A block of legacy transactions: (sender, recipient or creation, with input).
    pub(crate) fn block_of(txs: &[(u8, Option<u8>, bool)]) -> Block<Recovered<TxEnvelope>> {
        let transactions = (txs.iter())
            .map(|&(sender, to, input)| tx_from(sender, to, input, 0, 0))
            .collect();
        Block {
            header: Header::default(),
            body: BlockBody {
                transactions,
                ommers: Vec::new(),
                withdrawals: None,
            },
        }
    }

    /// The shape found with a map of senders and maps per destination bucket: each
    /// transaction's previous one of its sender, and per bucket the calls without input and
    /// their destinations.
    fn expected(
        block: &Block<Recovered<TxEnvelope>>,
    ) -> (Vec<Option<TxIdx>>, Vec<u32>, Vec<Option<Address>>) {
        let mut last = HashMap::<Address, TxIdx>::default();
        let mut calls = vec![0u32; DESTINATION_BUCKETS];
        let mut destinations = vec![std::collections::BTreeSet::new(); DESTINATION_BUCKETS];
        let previous = (block.body.transactions.iter().enumerate())
            .map(|(index, tx)| {
                if let (true, Some(to)) = (tx.input().is_empty(), tx.kind().to()) {
                    calls[address_bucket(to, DESTINATION_BUCKETS)] += 1;
                    destinations[address_bucket(to, DESTINATION_BUCKETS)].insert(*to);
                }
                last.insert(tx.signer(), index)
            })
            .collect();
        let sole = (destinations.iter())
            .map(|to| (to.len() == 1).then(|| *to.first().expect("one")))
            .collect();
        (previous, calls, sole)
    }

    proptest! {
        /// The table of senders agrees with a map (each transaction's previous of its sender,
        /// and how many go where their sender's previous went), whatever the hash: the real one,
        /// one that
        /// puts every sender in the same bucket with the same tag (the signer comparison
        /// decides), one with the same tag everywhere. The counts of calls without input per
        /// destination bucket, and each bucket's sole destination, agree with maps too
        /// (destinations are drawn from all 256 last bytes so that buckets hold several: with 40
        /// consecutive ones, none shared a bucket and a sole destination never cleared went
        /// unnoticed).
        #[test]
        fn shape_matches_a_map_of_senders(
            txs in prop::collection::vec(
                (0u8..24, prop::option::of(any::<u8>()), any::<bool>()),
                0..120,
            ),
        ) {
            let block = block_of(&txs);
            let (previous, calls, sole) = expected(&block);
            let hashes: [fn(&Address) -> u64; 3] =
                [address_hash, |_| 0x1234_5678_0000_0005, |address| u64::from(address[19])];
            for hash in hashes {
                let shape = BlockShape::with_hash(&block, hash);
                prop_assert_eq!(&shape.previous_of_sender, &previous);
                let repeated = (0..previous.len())
                    .filter(|&tx| previous[tx].is_some_and(|previous| {
                        let to = |tx: usize| block.body.transactions[tx].kind().to().copied();
                        to(tx).is_some() && to(previous) == to(tx)
                    }))
                    .count();
                prop_assert_eq!(shape.repeated_destinations, repeated);
                let counted: Vec<u32> =
                    shape.calls_without_input.iter().map(|bucket| bucket.calls).collect();
                prop_assert_eq!(&counted, &calls);
                let found: Vec<_> =
                    (0..DESTINATION_BUCKETS).map(|bucket| shape.sole_destination(bucket)).collect();
                prop_assert_eq!(&found, &sole);
            }
        }
    }

    /// While a block is built (no gas used yet), the giants are the transactions whose gas limit
    /// is above an eighth of the block's (one whose eight-fold overflows, as in some state tests,
    /// too); they are also listed by gas limit, the largest first.
    #[test]
    fn giants_have_more_than_an_eighth_of_the_block_gas_limit() {
        let mut block = block_of(&[]);
        block.header.gas_limit = 8_000_000;
        block.body.transactions = [1_000_000, 1_000_001, 21_000, u64::MAX, 999_999]
            .map(|gas_limit| tx_from(1, Some(2), false, 0, gas_limit))
            .into();
        let shape = BlockShape::of(&block);
        assert_eq!(shape.giants, [1, 3]);
        assert_eq!(shape.giants_largest_first, [3, 1]);
    }

    /// Once the block's gas used is known, the giants are the transactions whose gas limit is
    /// above an eighth of it: a 900,000-gas call in a block that used 2.6 Mgas of 30 is one.
    /// Equal gas limits keep their order.
    #[test]
    fn giants_have_more_than_an_eighth_of_the_gas_used_when_known() {
        let mut block = block_of(&[]);
        block.header.gas_limit = 30_000_000;
        block.header.gas_used = 2_600_000;
        block.body.transactions = [
            337_715, 21_000, 740_000, 908_006, 325_000, 3_000_000, 740_000,
        ]
        .map(|gas_limit| tx_from(1, Some(2), false, 0, gas_limit))
        .into();
        let shape = BlockShape::of(&block);
        assert_eq!(shape.giants, [0, 2, 3, 5, 6]);
        assert_eq!(shape.giants_largest_first, [5, 3, 2, 6, 0]);
    }

    /// Giants are taken the most calldata first, then the highest gas limit: mainnet 19426587's
    /// four giants, (gas limit, calldata bytes), whose longest (1.4-2.6 ms) is the second by gas
    /// limit and the first by calldata, and a fifth with as much calldata as the second by
    /// calldata and a lower gas limit, taken after it.
    #[test]
    fn giants_are_ordered_by_calldata_then_gas_limit() {
        let mut block = block_of(&[]);
        block.header.gas_limit = 30_000_000;
        block.header.gas_used = 2_600_000;
        let giant = |(gas_limit, calldata)| tx_with_calldata(1, Some(2), calldata, 0, gas_limit);
        block.body.transactions = [
            (337_715, 644),
            (740_000, 1_252),
            (3_000_000, 1_188),
            (908_006, 11_012),
            (400_000, 1_252),
        ]
        .map(giant)
        .into();
        let shape = BlockShape::of(&block);
        assert_eq!(shape.giants, [0, 1, 2, 3, 4]);
        assert_eq!(shape.giants_largest_first, [3, 1, 4, 2, 0]);
    }

    /// A giant is heavier than any transaction that is no giant, whatever that one's calldata,
    /// and than a giant with less calldata (or as much and a lower gas limit); not than itself,
    /// nor than a giant with more calldata, whatever the gas limits. No transaction that is no
    /// giant is heavier than anything.
    #[test]
    fn a_giant_is_heavier_than_a_lighter_giant_or_any_other_transaction() {
        let mut block = block_of(&[]);
        block.header.gas_limit = 30_000_000;
        block.header.gas_used = 8_000_000;
        block.body.transactions = [
            (3_000_000, 100),
            (1_100_000, 2_000),
            (100_000, 50_000),
            (1_100_000, 100),
        ]
        .map(|(gas_limit, calldata)| tx_with_calldata(1, Some(2), calldata, 0, gas_limit))
        .into();
        let shape = BlockShape::of(&block);
        assert_eq!(shape.giants, [0, 1, 3]);
        let heavier = |tx, than| heavier_giant(&shape.giants, &block.body.transactions, tx, than);
        assert!(heavier(0, 2) && heavier(1, 2) && heavier(3, 2));
        assert!(heavier(1, 0) && heavier(1, 3) && heavier(0, 3));
        assert!(!heavier(0, 1) && !heavier(3, 0) && !heavier(1, 1));
        assert!(!heavier(2, 0) && !heavier(2, 3));
    }

    /// The pass sums the gas limits (saturating) and counts the plain transfers: value to
    /// another account, without input; not a creation, a call with input, a transfer of
    /// nothing, or one to the sender itself.
    #[test]
    fn gas_limits_are_summed_and_plain_transfers_counted() {
        let txs = [
            (1, Some(2), false, 1, 21_000),
            (1, Some(3), false, 5, 30_000),
            (2, None, false, 1, 100_000),
            (3, Some(4), true, 1, 50_000),
            (4, Some(5), false, 0, 21_000),
            (5, Some(5), false, 1, 21_000),
        ];
        let mut block = block_of(&[]);
        block.body.transactions = (txs.iter())
            .map(|&(sender, to, input, value, gas_limit)| {
                tx_from(sender, to, input, value, gas_limit)
            })
            .collect();
        let shape = BlockShape::of(&block);
        assert_eq!(shape.gas_limits, 243_000);
        assert_eq!(shape.plain_transfers, 2);
        block.body.transactions = vec![tx_from(1, Some(2), false, 0, u64::MAX); 2];
        assert_eq!(BlockShape::of(&block).gas_limits, u64::MAX);
    }

    /// The busiest destination counts once it gets more than a third of the transactions,
    /// wherever they lie in the block (interleaved with two other destinations that the vote
    /// meets as often); creations never count.
    #[test]
    fn a_destination_dominates_with_more_than_a_third_of_the_transactions() {
        let calls = |pattern: &[Option<u8>]| {
            let txs: Vec<_> = (pattern.iter().enumerate())
                .map(|(sender, &to)| (sender as u8, to, true))
                .collect();
            BlockShape::of(&block_of(&txs)).dominant_destination_calls()
        };
        // 4 of 9 to 7, each after one to 8 and one to 9.
        let mut pattern = vec![Some(8), Some(9), Some(7), Some(8), Some(9), Some(7)];
        pattern.extend([Some(7), Some(7), Some(8)]);
        assert_eq!(calls(&pattern), Some(4));
        // 3 of 9: not more than a third.
        pattern[7] = Some(9);
        assert_eq!(calls(&pattern), None);
        // 4 of 10 first, then six others once each: a one-counter (majority) vote loses it.
        let first = [7, 7, 7, 7, 1, 2, 3, 4, 5, 6].map(Some);
        assert_eq!(calls(&first), Some(4));
        // Two destinations of exactly a third each, both still candidates after the vote.
        let thirds = [Some(9), Some(10), Some(7), Some(7), Some(8), Some(8)];
        assert_eq!(calls(&thirds), None);
        // A block of creations and one call.
        assert_eq!(calls(&[None, None, None, Some(1)]), None);
        assert_eq!(calls(&[None, Some(1), Some(1)]), Some(2));
        assert_eq!(calls(&[]), None);
    }

    /// Addresses that differ in one byte, wherever it is, spread over the table's buckets.
    #[test]
    fn address_hash_spreads_addresses_that_differ_in_one_byte() {
        for byte in 0..20 {
            let buckets: std::collections::HashSet<u64> = (0..=255u8)
                .map(|value| {
                    let mut address = Address::ZERO;
                    address[byte] = value;
                    address_hash(&address) & 511
                })
                .collect();
            assert!(
                buckets.len() > 150,
                "byte {byte}: {} buckets",
                buckets.len()
            );
        }
    }
}
