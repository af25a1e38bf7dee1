//! Speculation: executing a transaction against the pre-block state (and the slots committed
//! so far), recording what it read and wrote ([`Speculation`], [`Speculator`]).

use alloy_primitives::{Address, B256, U256};
use revm::{
    Database, ExecuteEvm,
    bytecode::Bytecode,
    context::result::ExecutionResult,
    handler::{Handler, MainnetContext, MainnetEvm},
    primitives::KECCAK_EMPTY,
    state::AccountInfo,
};
use smallvec::{SmallVec, smallvec};

use crate::{
    TxIdx,
    account_diff::{AccountDiff, diff_account},
    balance_observer::{BalanceBounds, BalanceObserver, HUGE, observe_balances},
    chain,
    committed_slots::CommittedSlots,
    mv_memory::ReadError,
    native_transfer,
    pre_state::{PreState, ThreadCode},
    storage::{AccountBasic, Storage},
    vm::{LazyFeeHandler, lazy_recipient},
};

use super::{Shared, schedule::follows_in_chain};

/// A value a speculation read from the pre-block state.
#[derive(Debug, PartialEq)]
pub(super) enum Read {
    /// An account (`None`: it did not exist).
    Account(Address, Option<AccountBasic>),
    /// A slot's value as committed by an earlier transaction of the block when the speculation
    /// read it ([`CommittedSlots`]): validated against the committed state without seeding it
    /// (the value is not the pre-block one).
    CommittedStorage(Address, U256, U256),
    /// The recipient of a plain value transfer had no code (its balance was not read); the
    /// pre-block account, to seed the committed state.
    CodelessRecipient(Address, Option<AccountBasic>),
    /// The sender of a transaction that follows one of its sender's, or is sent by the beneficiary
    /// (see [`speculability`](super::schedule::speculability)): the speculation assumed this nonce,
    /// its pre-block code hash and a balance of exactly what the transaction may spend at most
    /// (`required`), and no code observed that balance (see [`crate::balance_observer`]); at commit
    /// the nonce and code hash must match and the balance cover it, and the sender's balance
    /// changes as the speculation changed the assumed one ([`SenderChange`]).
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
pub(super) fn is_empty(account: &AccountBasic) -> bool {
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
pub(super) struct Speculation {
    /// Taken when the speculation is applied.
    pub(super) result: Option<ExecutionResult>,
    pub(super) reads: Reads,
    pub(super) writes: Writes,
    /// A lazy credit to the transfer's recipient.
    pub(super) credit: Option<(Address, U256)>,
    /// The sender's balance change from assumed funds (see [`Read::SenderFunds`]).
    pub(super) sender_change: Option<SenderChange>,
    /// What accounts read as [`Read::Contract`] or [`Read::Payee`] received (credited at commit).
    pub(super) contract_credits: SmallVec<[(Address, U256); 1]>,
    /// Accounts read as [`Read::Contract`] whose code sent value (see [`ContractSend`]); rare,
    /// so not inline.
    pub(super) contract_sends: SmallVec<[ContractSend; 0]>,
    /// The beneficiary's fee (lazy).
    pub(super) fee: U256,
    /// For the sender's next transaction when it is speculated on this one
    /// ([`Speculable::OnPrevious`](super::schedule::Speculable::OnPrevious)): the slots this
    /// speculation wrote, and those the speculations it was made on wrote, with their latest
    /// values. `None` otherwise, or where the chain stops ([`chain_after`]: the next one is then
    /// left to the committer).
    pub(super) chain: Option<Box<Chain>>,
}

impl Speculation {
    /// Whether a slot it read has since been committed with another value: its validation
    /// would fail, unless the slot is written back before.
    pub(super) fn is_stale(&self, committed: &CommittedSlots) -> bool {
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
pub(super) struct Chain(pub(super) Vec<ChainSlot>);

/// A slot a sender's chain of speculations wrote: its address, index and value.
pub(super) type ChainSlot = (Address, U256, U256);

/// How a speculation changed its sender's assumed funds ([`Read::SenderFunds`]): from `required`
/// (what the transaction may spend at most) to `left`. Between the checks at its start and its
/// end only credits change the balance of a sender whose code did not observe it (gas refunds,
/// value sent back to it), so from any committed balance `B >= required` the transaction leaves
/// `B - required + left`, unless that overflows (checked at commit).
#[derive(Debug, PartialEq)]
pub(super) struct SenderChange {
    pub(super) address: Address,
    left: U256,
}

impl SenderChange {
    /// The sender's balance after the transaction from the committed `balance`, at least the
    /// `required` funds assumed (validated before); `None` on overflow.
    pub(super) fn applied_to(&self, balance: U256, required: U256) -> Option<U256> {
        (balance - required).checked_add(self.left)
    }
}

/// An account with code that sent value in a speculation, read without its balance: revm checked
/// that it could pay, and the speculation's outcome holds for any committed balance in
/// `low..high` (see `vm::ContractRead`, Block-STM's counterpart). At commit its net change is
/// applied, modulo 2^256 (a decrease when it sent more than it received).
#[derive(Debug, PartialEq)]
pub(super) struct ContractSend {
    pub(super) address: Address,
    pub(super) bounds: BalanceBounds,
    pub(super) net: U256,
}

/// The revm database of a speculation: the pre-block state, every read recorded.
pub(super) struct SpeculativeDb<'a, S: ?Sized> {
    pre: &'a PreState<'a, S>,
    /// The slots the previous speculations of the sender's chain wrote, read before anything else
    /// (see [`Speculable::OnPrevious`](super::schedule::Speculable::OnPrevious)); empty for other
    /// speculations.
    pub(super) chain: Vec<ChainSlot>,
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

/// One thread's speculative EVM.
pub(super) struct Speculator<'a, S: Storage + ?Sized> {
    pub(super) evm: MainnetEvm<MainnetContext<SpeculativeDb<'a, S>>>,
    /// Speculations run (published to [`PipelineCounters`](super::PipelineCounters) when the thread
    /// leaves).
    pub(super) speculations: usize,
    /// Whether plain transfers are speculated natively (see [`native_transfer`]); off only to
    /// compare with revm's speculation in tests.
    native: bool,
    /// Speculations done natively.
    #[cfg(test)]
    natives: usize,
}

impl<'a, S: Storage + ?Sized> Speculator<'a, S> {
    pub(super) fn new(shared: &Shared<'a, S>) -> Self {
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
    pub(super) fn speculate(&mut self, shared: &Shared<'_, S>, tx: TxIdx) -> Option<Speculation> {
        self.speculate_with(shared, tx, true)
    }

    /// Speculates transaction `tx` only if it is speculated natively (see
    /// [`Speculator::speculate_native`]); `None` otherwise.
    pub(super) fn speculate_natively(
        &mut self,
        shared: &Shared<'_, S>,
        tx: TxIdx,
    ) -> Option<Speculation> {
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

/// Native speculation of plain transfers against revm's speculation of the same transactions,
/// on every fork: equal speculations (result, reads, writes, lazy credits and debits, fee), or
/// both unusable; and the native path taken where it should be.
#[cfg(test)]
mod native_speculation {
    use std::sync::atomic::Ordering;

    use alloy_consensus::{
        Block, BlockBody, Header, Signed, TxEip1559, TxEip2930, TxEnvelope, TxLegacy,
        transaction::Recovered,
    };
    use alloy_eips::eip2930::{AccessList, AccessListItem};
    use alloy_primitives::{Bytes, Signature, TxKind};
    use revm::primitives::hardfork::SpecId;

    use super::*;
    use crate::{
        ChainSpec, InMemoryStorage,
        pipeline::{
            CHAIN_FIRST_MIN, PipelineCounters, READY, Slots, Speculate, Threads, UNCLAIMED,
            schedule::speculate_unclaimed,
        },
        shape::BlockShape,
        worker_pool::WorkerPool,
    };

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
pub(super) mod tests {
    use super::*;

    /// An empty speculation (no reads, no writes) with a fee of 1.
    pub(crate) fn speculation() -> Speculation {
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
}
