//! The sequential reference executor: revm, one transaction after another, over a cache of the
//! pre-block state. It is the oracle the parallel engine is checked against. Its `KECCAK256` is
//! memoized as in every engine ([`crate::keccak_memo`]); plain revm, in the workloads' tests,
//! checks it independently.

use std::borrow::BorrowMut;

use alloy_primitives::map::{AddressMap, B256Map, HashMap, hash_map::Entry};

use alloy_consensus::{Block, Transaction, TxEnvelope, transaction::Recovered};
use alloy_eips::Typed2718;
use alloy_primitives::{Address, B256, U256};
use revm::{
    Database, ExecuteEvm,
    bytecode::Bytecode,
    context::{
        BlockEnv, CfgEnv,
        result::{EVMError, ExecutionResult},
    },
    database_interface::DBErrorMarker,
    handler::{MainnetContext, MainnetEvm},
    primitives::{KECCAK_EMPTY, hardfork::SpecId},
    state::{Account, AccountInfo, EvmState},
};

use crate::{
    ExecutionError, TxIdx,
    account_diff::{AccountDiff, diff_account, keeps_lifecycle},
    chain::{self, ChainSpec},
    output::{
        AccountChange, AccountState, BlockOutput, SlotChanges, StateChanges, TxReceipt,
        merge_changes,
    },
    storage::{AccountBasic, OverlayStorage, Storage, StorageError},
    types::{Lifecycle, expected_accounts},
};

impl DBErrorMarker for StorageError {}

/// A revm [`Database`] over a [`Storage`] that applies each transaction's writes: the state of
/// the sequential executor, also used for block-level steps of both executors.
///
/// Written accounts are kept in their output form from the first write on, so that the block's
/// [`StateChanges`] are the state itself at the end: no fold of tens of thousands of accounts
/// into a new map (which cost a fifth of a block of plain transfers). Values only read stay in
/// `reads` and `slot_reads`, which written accounts leave.
pub(crate) struct SequentialState<'a, S: ?Sized> {
    storage: &'a S,
    /// Every account the block wrote, as it is now; its `storage` holds the written slots.
    changes: StateChanges,
    /// Pre-block accounts read and not written (`None`: does not exist).
    reads: AddressMap<Option<AccountBasic>>,
    /// Pre-block slots read and not written, of accounts whose storage the block has not reset.
    slot_reads: HashMap<SlotKey, U256>,
    code: B256Map<Bytecode>,
    /// The sender of the transaction being executed: a valid transaction always writes its
    /// sender (the nonce), so its first read goes straight into `changes` instead of through
    /// `reads` (one map operation fewer per transaction).
    sender: Option<Address>,
    /// When kept (by the pipeline's committer), every slot written since it was last drained,
    /// with its value: the committer publishes them for speculations to read
    /// ([`crate::committed_slots`]).
    pub(crate) written_slots: Option<Vec<(Address, U256, U256)>>,
}

impl<'a, S: Storage + ?Sized> SequentialState<'a, S> {
    pub(crate) fn new(storage: &'a S) -> Self {
        Self::for_txs(storage, 0)
    }

    /// A state sized for `txs` transactions' accounts (no rehashing while the block runs).
    pub(crate) fn for_txs(storage: &'a S, txs: usize) -> Self {
        Self {
            storage,
            changes: StateChanges::with_capacity_and_hasher(
                expected_accounts(txs),
                Default::default(),
            ),
            reads: AddressMap::default(),
            slot_reads: HashMap::default(),
            code: B256Map::default(),
            sender: None,
            written_slots: None,
        }
    }

    /// The account's basic fields now (`None`: it does not exist).
    pub(crate) fn basic_fields(
        &mut self,
        address: Address,
    ) -> Result<Option<AccountBasic>, StorageError> {
        if let Some(change) = self.changes.get(&address) {
            return Ok(change.info.as_ref().map(basic_of));
        }
        if self.sender == Some(address) {
            let read = (!self.reads.is_empty())
                .then(|| self.reads.remove(&address))
                .flatten();
            let pre = match read {
                Some(pre) => pre,
                None => self.storage.basic(&address)?,
            };
            self.changes.insert(address, unwritten(pre));
            return Ok(pre);
        }
        match self.reads.entry(address) {
            Entry::Occupied(entry) => Ok(*entry.get()),
            Entry::Vacant(entry) => Ok(*entry.insert(self.storage.basic(&address)?)),
        }
    }

    /// Like [`Self::basic_fields`], but an account not loaded yet is taken from `pre` — the value
    /// this state's storage gave for it earlier (a speculation read it) — instead of reading
    /// storage again.
    pub(crate) fn basic_fields_seeded(
        &mut self,
        address: Address,
        pre: Option<AccountBasic>,
    ) -> Option<AccountBasic> {
        if let Some(change) = self.changes.get(&address) {
            return change.info.as_ref().map(basic_of);
        }
        *self.reads.entry(address).or_insert(pre)
    }

    /// Where the value of `slot` of `address` comes from.
    fn slot_source(&self, address: &Address, slot: &U256) -> SlotSource {
        match self.changes.get(address) {
            Some(change) => match change.storage.get(slot) {
                Some(value) => SlotSource::Known(*value),
                // Pre-block storage wiped, or the account does not exist.
                None if change.storage_reset || change.info.is_none() => {
                    SlotSource::Known(U256::ZERO)
                }
                None => SlotSource::PreBlock,
            },
            None => match self.reads.get(address) {
                Some(None) => SlotSource::Known(U256::ZERO),
                Some(Some(_)) => SlotSource::PreBlock,
                None => SlotSource::AccountNotLoaded,
            },
        }
    }

    /// The value of `slot` of `address` now, given `pre`, the value this state's storage gives
    /// for it (a speculation read it there): a slot the block has not written or reset still
    /// holds it. Nothing is read or cached (the committer only compares).
    pub(crate) fn storage_seeded(&self, address: Address, slot: U256, pre: U256) -> U256 {
        match self.slot_source(&address, &slot) {
            SlotSource::Known(value) => value,
            SlotSource::PreBlock | SlotSource::AccountNotLoaded => pre,
        }
    }

    /// Applies the writes of one transaction (or system call) that revm executed on this very
    /// state, so that each account's values before it are this state's.
    pub(crate) fn commit(&mut self, spec: SpecId, state: &EvmState) {
        self.sender = None;
        for (address, account) in state {
            if !account.is_touched() {
                continue;
            }
            if keeps_lifecycle(spec, account) {
                self.commit_in_place(*address, account);
            } else if let Some(diff) = diff_account(spec, account) {
                self.apply_diff(*address, diff);
            }
        }
    }

    /// Applies the writes to an account that keeps its lifecycle: its fields after the
    /// transaction and its changed slots, copied as they are. Equal to applying
    /// [`diff_account`]'s diff (the values before are this state's), without building it or
    /// cloning revm's original account.
    fn commit_in_place(&mut self, address: Address, account: &Account) {
        let after = &account.info;
        let change = match self.changes.entry(address) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                // An account never read counts as not existing before, as in `written`.
                let pre = self.reads.remove(&address).flatten();
                if let Some(pre) = pre
                    && pre.balance == after.balance
                    && pre.nonce == after.nonce
                    && pre.code_hash == after.code_hash
                    && !account.storage.values().any(|slot| slot.is_changed())
                {
                    // Touched, nothing written (e.g. value passed through): it stays a read.
                    self.reads.insert(address, Some(pre));
                    return;
                }
                entry.insert(unwritten(pre))
            }
        };
        let info = change.info.get_or_insert_with(AccountState::empty);
        info.balance = after.balance;
        info.nonce = after.nonce;
        if info.code_hash != after.code_hash {
            // EIP-7702 delegations change an existing account's code.
            info.code_hash = after.code_hash;
            let code = after.code.as_ref().filter(|code| !code.is_empty());
            info.code = code.map(Bytecode::original_bytes);
            if let Some(code) = code {
                self.code.insert(after.code_hash, code.clone());
            }
        }
        for (slot, value) in &account.storage {
            if !value.is_changed() {
                continue;
            }
            if !self.slot_reads.is_empty() {
                // Written slots leave the read cache: it stays small, cheap to miss in.
                self.slot_reads.remove(&SlotKey(address, *slot));
            }
            if let Some(written) = &mut self.written_slots {
                written.push((address, *slot, value.present_value()));
            }
            change.storage.insert(*slot, value.present_value());
        }
    }

    /// Applies one account's writes (an account never read counts as not existing before).
    pub(crate) fn apply_diff(&mut self, address: Address, diff: AccountDiff) {
        let change = written::<S>(&mut self.changes, &mut self.reads, None, address)
            .expect("no storage read");
        match diff.lifecycle {
            Some(Lifecycle::Destroyed) => {
                *change = AccountChange {
                    info: None,
                    storage_reset: true,
                    storage: SlotChanges::default(),
                };
                return;
            }
            Some(Lifecycle::Created) => {
                change.storage.clear();
                change.storage_reset = true;
            }
            Some(Lifecycle::Existing) | None => {}
        }
        let info = change.info.get_or_insert_with(AccountState::empty);
        if let Some(balance) = diff.balance {
            info.balance = balance;
        }
        if let Some(nonce) = diff.nonce {
            info.nonce = nonce;
        }
        if let Some(code) = diff.code {
            info.code_hash = code.hash;
            info.code = code.code.as_ref().map(Bytecode::original_bytes);
            if let Some(code) = code.code {
                self.code.insert(info.code_hash, code);
            }
        }
        if !self.slot_reads.is_empty() {
            // Written slots leave the read cache: it stays small, cheap to miss in.
            for (slot, _) in &diff.storage {
                self.slot_reads.remove(&SlotKey(address, *slot));
            }
        }
        if let Some(written) = &mut self.written_slots {
            written.extend(
                diff.storage
                    .iter()
                    .map(|(slot, value)| (address, *slot, *value)),
            );
        }
        change.storage.extend(diff.storage);
    }

    /// Sets the account's balance to `new(balance)` in one step (an account that does not exist
    /// comes into existence, as an increment does), reading it from storage if it was not read.
    pub(crate) fn update_balance(
        &mut self,
        address: Address,
        new: impl FnOnce(U256) -> U256,
    ) -> Result<(), StorageError> {
        let info = written(
            &mut self.changes,
            &mut self.reads,
            Some(self.storage),
            address,
        )?
        .info
        .get_or_insert_with(AccountState::empty);
        info.balance = new(info.balance);
        Ok(())
    }

    /// Adds `amount` to a balance, as a block-level step (reward, withdrawal, DAO refund) or a
    /// lazy credit.
    pub(crate) fn increment_balance(
        &mut self,
        address: Address,
        amount: U256,
    ) -> Result<(), StorageError> {
        if amount.is_zero() {
            return Ok(());
        }
        self.update_balance(address, |balance| balance + amount)
    }

    /// Sets a balance to zero and returns what it was (the DAO fork drain).
    pub(crate) fn drain_balance(&mut self, address: Address) -> Result<U256, StorageError> {
        let balance = self
            .basic_fields(address)?
            .map(|basic| basic.balance)
            .unwrap_or_default();
        if !balance.is_zero() {
            self.apply_diff(
                address,
                AccountDiff {
                    balance: Some(U256::ZERO),
                    ..Default::default()
                },
            );
        }
        Ok(balance)
    }

    /// The accounts the block changed, with their final state.
    pub(crate) fn into_changes(self) -> StateChanges {
        self.changes
    }
}

/// `address`'s entry in `changes`, created on its first write from the pre-block value read
/// earlier (taken out of `reads`); an account not read yet is read from `storage`, or without
/// one counts as not existing before.
fn written<'c, S: Storage + ?Sized>(
    changes: &'c mut StateChanges,
    reads: &mut AddressMap<Option<AccountBasic>>,
    storage: Option<&S>,
    address: Address,
) -> Result<&'c mut AccountChange, StorageError> {
    Ok(match changes.entry(address) {
        Entry::Occupied(entry) => entry.into_mut(),
        Entry::Vacant(entry) => {
            let pre = match (reads.remove(&address), storage) {
                (Some(pre), _) => pre,
                (None, Some(storage)) => storage.basic(&address)?,
                (None, None) => None,
            };
            entry.insert(unwritten(pre))
        }
    })
}

/// The change entry of an account before its first write: its pre-block value (`None`: it did
/// not exist), no slot written.
fn unwritten(pre: Option<AccountBasic>) -> AccountChange {
    AccountChange {
        info: pre.map(|basic| AccountState {
            balance: basic.balance,
            nonce: basic.nonce,
            code_hash: basic.code_hash,
            code: None,
        }),
        storage_reset: false,
        storage: SlotChanges::default(),
    }
}

/// A slot of an account, as a key of [`SequentialState`]'s read cache. Hashed as two words
/// (the address's last eight bytes, the slot's limbs folded) instead of its 52 bytes: hashing
/// the tuple was 2-4% of sequential execution (`foldhash::hash_bytes_long`, mainnet 15537393).
/// Keys are compared in full, so colliding words only cost a probe.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SlotKey(Address, U256);

impl std::hash::Hash for SlotKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let address = u64::from_le_bytes(self.0[12..].try_into().expect("eight bytes"));
        let [a, b, c, d] = *self.1.as_limbs();
        state.write_u64(address);
        state.write_u64(a ^ b.rotate_left(16) ^ c.rotate_left(32) ^ d.rotate_left(48));
    }
}

/// Where a slot's value comes from.
enum SlotSource {
    /// Written by the block, or zero (storage reset, or no account).
    Known(U256),
    /// The pre-block value (cached in `slot_reads` once read).
    PreBlock,
    /// The account is not loaded yet: load it, then it is one of the above.
    AccountNotLoaded,
}

/// The basic fields of an account's state.
fn basic_of(state: &AccountState) -> AccountBasic {
    AccountBasic {
        balance: state.balance,
        nonce: state.nonce,
        code_hash: state.code_hash,
    }
}

impl<S: Storage + ?Sized> Database for SequentialState<'_, S> {
    type Error = StorageError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        // Code is loaded by hash (written code is in `code`).
        Ok(self.basic_fields(address)?.map(|basic| AccountInfo {
            balance: basic.balance,
            nonce: basic.nonce,
            code_hash: basic.code_hash,
            code: None,
            account_id: None,
        }))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        if code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        if let Some(code) = self.code.get(&code_hash) {
            return Ok(code.clone());
        }
        let code = self.storage.code_by_hash(&code_hash)?;
        self.code.insert(code_hash, code.clone());
        Ok(code)
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, Self::Error> {
        match self.slot_source(&address, &index) {
            SlotSource::Known(value) => return Ok(value),
            SlotSource::PreBlock => {}
            SlotSource::AccountNotLoaded => {
                if self.basic_fields(address)?.is_none() {
                    return Ok(U256::ZERO);
                }
            }
        }
        match self.slot_reads.entry(SlotKey(address, index)) {
            Entry::Occupied(entry) => Ok(*entry.get()),
            Entry::Vacant(entry) => Ok(*entry.insert(self.storage.storage(&address, &index)?)),
        }
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error> {
        self.storage.block_hash(number)
    }
}

/// Maps a revm error of transaction `index` to the public error.
pub(crate) fn map_evm_error(index: TxIdx, error: EVMError<StorageError>) -> ExecutionError {
    match error {
        EVMError::Transaction(source) => ExecutionError::InvalidTransaction { index, source },
        EVMError::Header(header) => ExecutionError::InvalidHeader(header.to_string()),
        EVMError::Database(source) => ExecutionError::Storage {
            index: Some(index),
            source,
        },
        other => ExecutionError::Internal(format!("transaction {index}: {other}")),
    }
}

/// The receipt fields of one executed transaction.
pub(crate) fn receipt_of(
    tx: &Recovered<TxEnvelope>,
    result: ExecutionResult,
    cumulative_gas_used: u64,
) -> TxReceipt {
    let tx_type = alloy_consensus::TxType::try_from(tx.inner().ty()).unwrap_or_default();
    TxReceipt {
        tx_type,
        success: result.is_success(),
        gas_used: result.tx_gas_used(),
        cumulative_gas_used,
        logs: result.into_logs(),
    }
}

/// Checks that transaction `index` fits in what is left of the block gas limit.
pub(crate) fn check_block_gas(
    index: TxIdx,
    tx: &Recovered<TxEnvelope>,
    gas_used_before: u64,
    block_gas_limit: u64,
) -> Result<(), ExecutionError> {
    let remaining = block_gas_limit.saturating_sub(gas_used_before);
    if tx.inner().gas_limit() > remaining {
        return Err(ExecutionError::TxGasLimitAboveRemaining {
            index,
            gas_limit: tx.inner().gas_limit(),
            remaining,
        });
    }
    Ok(())
}

/// Executes transactions `first..` of `block` one after another on `state` with plain revm,
/// committing each, appending their receipts and adding their gas to `gas_used`.
pub(crate) fn execute_txs<S: Storage + ?Sized>(
    state: &mut SequentialState<'_, S>,
    (spec, block_env, cfg): (SpecId, BlockEnv, CfgEnv),
    block: &Block<Recovered<TxEnvelope>>,
    first: TxIdx,
    gas_used: &mut u64,
    receipts: &mut Vec<TxReceipt>,
) -> Result<(), ExecutionError> {
    let gas_limit = block.header.gas_limit;
    let mut evm = chain::build_evm(state, block_env, cfg);
    for (index, tx) in block.body.transactions.iter().enumerate().skip(first) {
        check_block_gas(index, tx, *gas_used, gas_limit)?;
        execute_tx(&mut evm, spec, index, tx, gas_used, receipts)?;
    }
    Ok(())
}

/// Executes transaction `index` with plain revm over the sequential state and commits it,
/// appending its receipt and adding its gas to `gas_used` (the block gas check is the caller's).
pub(crate) fn execute_tx<'s, S, DB>(
    evm: &mut MainnetEvm<MainnetContext<DB>>,
    spec: SpecId,
    index: TxIdx,
    tx: &Recovered<TxEnvelope>,
    gas_used: &mut u64,
    receipts: &mut Vec<TxReceipt>,
) -> Result<(), ExecutionError>
where
    S: Storage + ?Sized + 's,
    DB: Database<Error = StorageError> + BorrowMut<SequentialState<'s, S>>,
{
    let tx_env = chain::tx_env(index, tx)?;
    // Set for this transaction only (`commit` clears it): a valid one writes its sender.
    evm.ctx.journaled_state.database.borrow_mut().sender = Some(tx_env.caller);
    let outcome = evm
        .transact(tx_env)
        .map_err(|error| map_evm_error(index, error))?;
    evm.ctx
        .journaled_state
        .database
        .borrow_mut()
        .commit(spec, &outcome.state);
    *gas_used += outcome.result.tx_gas_used();
    receipts.push(receipt_of(tx, outcome.result, *gas_used));
    Ok(())
}

/// What every executor does before a block's transactions, in the order sequential execution
/// does it (so that all meet the same first error): the fork, the environments, and the
/// pre-block changes (DAO drain, system calls) the transactions run on top of.
pub(crate) struct BlockStart {
    pub(crate) spec: SpecId,
    pub(crate) block_env: BlockEnv,
    pub(crate) cfg: CfgEnv,
    pub(crate) changes: StateChanges,
}

/// The steps before `block`'s transactions.
pub(crate) fn start_block<S: Storage + ?Sized>(
    chain: &ChainSpec,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
) -> Result<BlockStart, ExecutionError> {
    let header = &block.header;
    let spec = chain.spec_id(header.number, header.timestamp);
    let block_env = chain::block_env(header, spec)?;
    let cfg = chain::cfg_env(chain, spec);
    let changes = chain::pre_block_changes(chain, spec, block, storage)?;
    Ok(BlockStart {
        spec,
        block_env,
        cfg,
        changes,
    })
}

/// The steps after `block`'s transactions, whose changes are already folded into `changes`:
/// post-block changes (rewards, withdrawals, request calls) on top, and the output.
pub(crate) fn finish_block<S: Storage + ?Sized>(
    chain: &ChainSpec,
    spec: SpecId,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
    mut changes: StateChanges,
    receipts: Vec<TxReceipt>,
    gas_used: u64,
) -> Result<BlockOutput, ExecutionError> {
    let post = chain::post_block_changes(chain, spec, block, storage, &changes)?;
    merge_changes(&mut changes, post);
    Ok(BlockOutput {
        receipts,
        gas_used,
        state_changes: changes,
    })
}

/// Executes a block one transaction after another with plain revm: the reference result.
pub fn execute_sequential<S: Storage + ?Sized>(
    chain: &ChainSpec,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
) -> Result<BlockOutput, ExecutionError> {
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
    let mut state = SequentialState::for_txs(&overlay, block.body.transactions.len());
    let mut receipts = Vec::with_capacity(block.body.transactions.len());
    let mut gas_used = 0u64;
    let env = (spec, block_env, cfg);
    execute_txs(&mut state, env, block, 0, &mut gas_used, &mut receipts)?;
    let tx_changes = state.into_changes();
    merge_changes(&mut changes, tx_changes);
    finish_block(chain, spec, block, storage, changes, receipts, gas_used)
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{Address, U256, map::HashMap};
    use revm::{
        Database,
        bytecode::Bytecode,
        primitives::hardfork::SpecId,
        state::{Account, EvmState, EvmStorageSlot, TransactionId},
    };

    use super::SequentialState;
    use crate::{
        account_diff::diff_account,
        storage::{AccountBasic, InMemoryAccount, InMemoryStorage},
    };

    const EOA: Address = Address::with_last_byte(1);
    const CONTRACT: Address = Address::with_last_byte(2);
    const FRESH: Address = Address::with_last_byte(3);
    const UNCHANGED: Address = Address::with_last_byte(4);

    fn storage() -> InMemoryStorage {
        let mut storage = InMemoryStorage::new();
        for (address, balance, nonce) in [(EOA, 1_000, 5), (UNCHANGED, 7, 0)] {
            let basic = AccountBasic {
                balance: U256::from(balance),
                nonce,
                code_hash: revm::primitives::KECCAK_EMPTY,
            };
            storage.insert_account(
                address,
                InMemoryAccount {
                    basic,
                    storage: HashMap::default(),
                },
            );
        }
        let slots = [
            (U256::from(1), U256::from(10)),
            (U256::from(2), U256::from(20)),
        ];
        storage.insert_account_with_code(
            CONTRACT,
            U256::from(3),
            1,
            vec![0x60, 0x00, 0x54, 0x00].into(),
            slots,
        );
        storage
    }

    /// revm's account for `address` as `state` gives it, touched.
    fn loaded(state: &mut SequentialState<'_, InMemoryStorage>, address: Address) -> Account {
        let account = match state.basic(address).unwrap() {
            Some(info) => Account::from(info),
            None => Account::new_not_existing(TransactionId::ZERO),
        };
        account.with_touched_mark()
    }

    /// One transaction's writes, built against `state`: every kind `commit` copies in place.
    fn writes(state: &mut SequentialState<'_, InMemoryStorage>, round: u64) -> EvmState {
        let mut writes = EvmState::default();
        let mut sender = loaded(state, EOA);
        sender.info.nonce += 1;
        sender.info.balance -= U256::from(100);
        if round == 1 {
            // An EIP-7702 delegation on the sender.
            let code = Bytecode::new_eip7702(CONTRACT);
            sender.info.code_hash = code.hash_slow();
            sender.info.code = Some(code);
        }
        writes.insert(EOA, sender);
        let mut contract = loaded(state, CONTRACT);
        let one = state.storage(CONTRACT, U256::from(1)).unwrap();
        let two = state.storage(CONTRACT, U256::from(2)).unwrap();
        contract.storage.insert(
            U256::from(1),
            EvmStorageSlot::new_changed(one, one + U256::from(round + 1), TransactionId::ZERO),
        );
        contract
            .storage
            .insert(U256::from(2), EvmStorageSlot::new(two, TransactionId::ZERO));
        writes.insert(CONTRACT, contract);
        // Touched, nothing written: stays a read.
        writes.insert(UNCHANGED, loaded(state, UNCHANGED));
        // Did not exist: receives value in round 0, only touched in round 1.
        let mut fresh = loaded(state, FRESH);
        if round == 0 {
            fresh.info.balance += U256::from(100);
        }
        writes.insert(FRESH, fresh);
        writes
    }

    #[test]
    fn only_the_current_transactions_sender_is_read_into_the_written_accounts() {
        let pre = storage();
        let mut state = SequentialState::new(&pre);
        // UNCHANGED read before, as another transaction's recipient: it stays a read until its
        // own transaction, which moves it.
        let unchanged = state.basic(UNCHANGED).unwrap();
        assert!(state.reads.contains_key(&UNCHANGED));
        state.sender = Some(UNCHANGED);
        assert_eq!(state.basic(UNCHANGED).unwrap(), unchanged);
        assert!(!state.reads.contains_key(&UNCHANGED));
        assert!(state.changes.contains_key(&UNCHANGED));
        let mut sender = loaded(&mut state, UNCHANGED);
        sender.info.nonce += 1;
        let writes: EvmState = [(UNCHANGED, sender)].into_iter().collect();
        state.commit(SpecId::CANCUN, &writes);
        assert_eq!(state.sender, None, "cleared by the commit");
        // Read after its transaction: an ordinary read.
        state.basic(EOA).unwrap();
        assert!(state.reads.contains_key(&EOA));
        let changes = state.into_changes();
        let written = changes.get(&UNCHANGED).unwrap().info.as_ref().unwrap();
        assert_eq!(written.nonce, 1);
        assert!(!changes.contains_key(&EOA));
    }

    #[test]
    fn commit_in_place_equals_applying_the_diffs() {
        let pre = storage();
        for spec in [SpecId::HOMESTEAD, SpecId::CANCUN, SpecId::PRAGUE] {
            let (mut in_place, mut by_diff) =
                (SequentialState::new(&pre), SequentialState::new(&pre));
            for round in 0..3 {
                let state = writes(&mut in_place, round);
                assert_eq!(state, writes(&mut by_diff, round), "{spec:?} round {round}");
                in_place.commit(spec, &state);
                for (address, account) in &state {
                    if let Some(diff) = diff_account(spec, account) {
                        by_diff.apply_diff(*address, diff);
                    }
                }
                for address in [EOA, CONTRACT, FRESH, UNCHANGED] {
                    assert_eq!(
                        in_place.basic(address).unwrap(),
                        by_diff.basic(address).unwrap(),
                        "{spec:?} round {round} {address}"
                    );
                }
            }
            assert!(in_place.reads.contains_key(&UNCHANGED), "{spec:?}");
            let (in_place, by_diff) = (in_place.into_changes(), by_diff.into_changes());
            assert!(!in_place.contains_key(&UNCHANGED), "{spec:?}");
            assert_eq!(in_place.get(&EOA).unwrap().info.as_ref().unwrap().nonce, 8);
            assert_eq!(in_place, by_diff, "{spec:?}");
        }
    }
}
