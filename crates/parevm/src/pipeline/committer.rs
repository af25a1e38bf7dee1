//! The committer: validates speculations in block order against the committed state and
//! applies them, or executes the transaction directly ([`commit_block`]).

use std::sync::atomic::Ordering;

use alloy_primitives::{Address, U256};
use revm::{
    Database,
    context::result::ExecutionResult,
    handler::{MainnetContext, MainnetEvm},
    primitives::KECCAK_EMPTY,
};

use crate::{
    ExecutionError, TxIdx, chain,
    committed_slots::CommittedSlots,
    output::TxReceipt,
    sequential::{SequentialState, check_block_gas, execute_tx, receipt_of},
    storage::Storage,
    sync::Mutex,
};

use super::{
    COMMITTED, READY, Shared, Speculate, TAKEN, UNCLAIMED,
    hot::DestinationCounts,
    schedule::{
        Speculable, is_plain_transfer, outweighs, speculate_chunk, speculate_leftover, window_after,
    },
    speculation::{Read, Speculation, Speculator, code_hash_of, is_empty},
};

/// Speculation stops once at least this many speculations were validated, if more than
/// [`GIVE_UP_REJECTED_PERCENT`] percent of them were rejected: conflicts dominate (a hot pool,
/// a chain of dependent calls), and each rejected speculation only delays the committer.
const GIVE_UP_MIN_VALIDATIONS: usize = 32;

/// See [`GIVE_UP_MIN_VALIDATIONS`].
const GIVE_UP_REJECTED_PERCENT: usize = 50;

/// The committer's state: the sequential executor's, plus the receipts so far. The committing
/// thread moves the state into its own EVM for the block (revm's EVM cannot move between
/// threads).
pub(super) struct Committer<'a, S: Storage + ?Sized> {
    pub(super) state: SequentialState<'a, S>,
    /// The next transaction to commit.
    pub(super) next: TxIdx,
    pub(super) gas_used: u64,
    pub(super) receipts: Vec<TxReceipt>,
    /// The block's error, if a transaction failed.
    pub(super) error: Option<ExecutionError>,
    /// Speculations validated (published to [`PipelineCounters`](super::PipelineCounters) at the
    /// end, as the three counts below).
    pub(super) validations: usize,
    /// Speculations rejected.
    pub(super) rejected: usize,
    /// Transactions executed directly.
    pub(super) direct: usize,
    /// Transactions not speculated for their hot destination.
    pub(super) left_to_committer: usize,
    /// Validations and rejections per destination (see
    /// [`HotDestinations`](super::hot::HotDestinations)).
    pub(super) destinations: DestinationCounts,
}

impl<S: Storage + ?Sized> Committer<'_, S> {
    /// A committer at the start of a block of `txs` transactions over `view`.
    pub(super) fn new<'a>(view: &'a S, txs: usize) -> Committer<'a, S> {
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
                    // Alone, the previous transaction is committed: speculating on it gains
                    // nothing.
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

/// The committer's loop: commits in order; while the next transaction is being speculated by
/// another thread, speculates the next unclaimed chunk itself, or, with none left, waits for that
/// speculation. The role stays on one thread for the whole block: the committed state, the
/// committer's EVM and the allocations of its direct executions stay in one core's cache (moving
/// the role with the speculations, as before, cost 2–7% more CPU time on two cores:
/// `docs/benchmarks.md`, twelfth session).
pub(super) fn commit_block<'a, S: Storage + ?Sized>(
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

/// In a block too big to publish every slot ([`PUBLISH_MAX_TXS`](super::PUBLISH_MAX_TXS)),
/// publishes the slots `written` by transaction `tx` if its destination is hot or conflicted: those
/// are the slots the next transactions to that destination read (a pool swapped again), speculated
/// once ripe ([`is_ripe`](super::hot::is_ripe)). Drops the others. Kept out of the committer's loop
/// (its code stays small).
#[inline(never)]
pub(super) fn publish_if_hot<S: ?Sized>(
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
