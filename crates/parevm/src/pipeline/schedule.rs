//! What a speculating thread takes next: chunks in order, giants and the heads of long chains
//! first, what chunks left unclaimed from the end back, a sender's next call on its previous
//! one's speculation, stale speculations refreshed ([`speculate_chunk`], [`Refresher`]).

use std::sync::atomic::Ordering;

use alloy_consensus::{Block, Transaction, TxEnvelope, transaction::Recovered};

use crate::{
    TxIdx,
    shape::{SenderChains, heavier_giant},
    storage::Storage,
    vm::plain_transfer_recipient,
};

#[cfg(feature = "shuttle")]
use crate::sync::spin_loop;

use super::{
    COMMITTED, READY, SPECULATING, Shared, UNCLAIMED,
    hot::{Deferred, RIPE_MARGIN, is_ripe},
    speculation::{ChainSlot, Speculator},
};

/// How far past the transaction it waits for the committer looks for one to speculate meanwhile
/// (transactions left to it stay unclaimed: each wait would otherwise scan them all again).
const STEAL_WINDOW: usize = 64;

/// Transactions a thread claims at once while no speculation was rejected: threads meet on the
/// claim counter once per chunk rather than once per transaction. Once a
/// speculation is rejected, threads claim one transaction at a time: the further ahead a
/// speculation runs, the likelier a conflicting block makes it stale.
pub(super) const CLAIM_CHUNK: usize = 8;

/// How many transactions after the committer's next (and [`RIPE_MARGIN`]) a speculating thread
/// looks at for stale speculations ([`Refresher`]).
const REFRESH_WINDOW: usize = 16;

/// A speculating thread refreshes stale speculations ([`Refresher`]) once it speculates this many
/// transactions ahead of the committer: the committer, not speculation, is then the limit.
pub(super) const REFRESH_AHEAD: usize = 32;

/// Whether and how the pipeline's threads speculate a transaction ([`speculability`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Speculable {
    /// On the pre-block state (and the slots committed so far).
    Yes,
    /// Only on top of its sender's previous transaction's speculation, a call to the same contract
    /// (reading first the slots it and the chain before it wrote: see
    /// [`Speculation::chain`](super::speculation::Speculation::chain)), in a long chain of such
    /// calls ([`chain_followers`]); otherwise the committer executes it.
    OnPrevious,
    /// Not at all: the committer executes it.
    No,
}

/// How the pipeline speculates transaction `tx` of `txs` (`previous`: each one's previous
/// transaction of the same sender): always the first of its sender's, and a plain value transfer
/// (see [`is_plain_transfer`]); a later one with its sender's nonce and funds assumed (see
/// [`Read::SenderFunds`](super::speculation::Read::SenderFunds)) unless one of its sender's
/// [`SAME_SENDER_LOOKBACK`] previous transactions in the block created a contract or went to the
/// same destination: what a sender does twice to one contract usually depends on the first time (a
/// token's balance of the sender, an allowance then a swap, a bot's own contract), and a
/// speculation made stale that way only makes the committer wait for it before executing the
/// transaction itself (mainnet 12520364: two 6.5-Mgas calls of one sender to one contract, 1.33x ->
/// 1.01x when the second was speculated on the pre-block state). When that earlier transaction is
/// the sender's previous one and a call, the transaction may be speculated on top of it
/// ([`Speculable::OnPrevious`]).
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

/// Claims the next chunk of unclaimed transactions and speculates each that threads speculate (see
/// [`speculability`], [`HotDestinations`](super::hot::HotDestinations)) and the committer has not
/// taken meanwhile. False when nothing was left to claim (or speculation stopped, or the block is
/// done). The committer passes the status it waits for: it stops as soon as that speculation is
/// ready, leaving the rest of its chunk unclaimed (to execute directly when it gets there, or for
/// another thread to speculate first).
pub(super) fn speculate_chunk<'a, S: Storage + ?Sized>(
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
pub(super) fn speculate_leftover<'a, S: Storage + ?Sized>(
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
/// [`BlockShape::giants`](crate::shape::BlockShape::giants)) heavier than `awaited`
/// ([`heavier_giant`]). Speculating threads take the giants first, the heaviest first, and the
/// committer waiting for `awaited`'s speculation does not speculate a giant heavier than it (it commits nothing until its own speculation ends). Mainnet 16257471: waiting
/// for transaction 1 (ready 140 us later), the committer speculated transaction 22, a 9-Mgas call
/// of the block's 20, for 4.6 ms, while the other thread ran out of work; left to the committer in
/// order, it started 0.6 ms later and the other thread ran out of work all the same. Speculations
/// read the pre-block state: taken first, a giant's speculation is as usable as in order. A giant
/// no heavier than the one awaited is speculated in order: on 19934116, waiting for a 630-us giant,
/// the committer skipped an 84-us one, which the other thread took only after its own and the
/// committer waited for.
pub(super) fn outweighs<S: ?Sized>(shared: &Shared<'_, S>, tx: TxIdx, awaited: TxIdx) -> bool {
    heavier_giant(shared.giants, &shared.block.body.transactions, tx, awaited)
}

/// The [`STEAL_WINDOW`] transactions after `tx` (fewer at the end of what is pipelined).
pub(super) fn window_after<S: ?Sized>(shared: &Shared<'_, S>, tx: TxIdx) -> std::ops::Range<TxIdx> {
    tx + 1..shared.pipelined().min(tx + 1 + STEAL_WINDOW)
}

/// Speculates transaction `tx` and publishes the speculation if threads speculate it (see
/// [`speculability`], [`HotDestinations`](super::hot::HotDestinations)) and nobody claimed it yet
/// (the committer may have taken it meanwhile); whether it did. A speculating thread (`follow`)
/// then goes on with the sender's chain if `tx` heads a long one ([`chain_followers`]): each next
/// transaction speculated on the one before, in order, ahead of the committer.
pub(super) fn speculate_unclaimed<'a, S: Storage + ?Sized>(
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
pub(super) fn heads_long_chain<S: ?Sized>(shared: &Shared<'_, S>, tx: TxIdx) -> bool {
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
pub(super) fn follows_in_chain(
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

/// A speculating thread's watch over the speculations just ahead of the committer: one that read
/// a slot since committed with another value is stale (the committer would reject it and
/// execute the transaction itself, serially), so the thread takes it back and speculates it
/// again on the committed values. Block-STM's re-execution, for the pipeline: the committer's
/// direct executions of stale speculations were its work beyond sequential's (mainnet 8889776,
/// 10760440, 16146267: rejections on 12-18% of their transactions).
#[derive(Default)]
pub(super) struct Refresher {
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
    pub(super) fn ahead<S: ?Sized>(&mut self, shared: &Shared<'_, S>) -> bool {
        shared.flags.hot.any_conflicted.load(Ordering::Relaxed)
            && shared.next_speculation.load(Ordering::Relaxed)
                >= self.committer_next(shared) + shared.refresh_ahead
    }

    /// Speculates again the first stale and ripe speculation ([`is_ripe`]) to a destination with
    /// [`REFRESH_MIN_REJECTED`](super::hot::REFRESH_MIN_REJECTED) rejections among the
    /// [`REFRESH_WINDOW`] transactions from [`RIPE_MARGIN`] after the committer's next; whether
    /// there was one.
    pub(super) fn refresh<'a, S: Storage + ?Sized>(
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
pub(super) fn speculate_one<'a, S: Storage + ?Sized>(
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
/// ([`Speculation::chain`](super::speculation::Speculation::chain)), for a speculation of its
/// sender's next transaction to read first; whether that speculation can be made (`previous`'s is
/// ready, usable and carries its chain).
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
