//! Runs one incarnation of one transaction with revm against the multi-version memory, recording
//! what it read and deriving what it wrote.
//!
//! EVM-specific rules keep unrelated transactions from conflicting:
//! - the beneficiary's fee is not paid inside revm but written as a lazy [`MemoryValue::BalanceDelta`]
//!   (unless the fee is zero, when revm's exact touch semantics are needed);
//! - the recipient of a plain value transfer to an account without code is given a balance of
//!   zero and its increment is written as a delta: no code runs, so nothing observes its balance;
//! - an account with code whose balance the transaction's code did not observe (see
//!   [`crate::balance_observer`]; WETH, payable contracts) is read as [`ReadValue::BalanceIn`]
//!   `0..HUGE`, narrowed by the checks that it could pay what its code sent — valid whatever
//!   earlier transactions credited it — and its net change is written as a delta;
//! - so is the beneficiary when it has no code and a balance (`1..HUGE`, so that it stays
//!   non-empty): code paying the builder, and revm's touch of it when the fee is zero, do not
//!   wait for every earlier fee;
//! - and the sender that can pay (`required..HUGE`, `required` the most its transaction can
//!   spend): revm only checks that it covers that, then changes it by a sum independent of it.

use std::cell::Cell;

use alloy_primitives::{Address, B256, U256};
use revm::{
    Database, ExecuteEvm,
    bytecode::Bytecode,
    context::{
        BlockEnv, Cfg, CfgEnv, ContextTr, JournalTr, LocalContextTr, TxEnv,
        result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction},
    },
    context_interface::{Block, Transaction},
    database_interface::DBErrorMarker,
    handler::{EvmTr, FrameResult, Handler, MainnetContext, MainnetEvm, post_execution},
    interpreter::interpreter_action::FrameInit,
    primitives::{KECCAK_EMPTY, TxKind, hardfork::SpecId},
    state::AccountInfo,
};

use crate::{
    account_diff::diff_account,
    balance_observer::{BalanceBounds, BalanceObserver, HUGE, observe_balances},
    chain,
    mv_memory::{AccountVersions, Blocked, MvMemory, ReadError},
    pre_state::{PreState, ThreadCode},
    storage::{Storage, StorageError},
    types::{
        CodeValue, Lifecycle, MemoryLocation, MemoryValue, ReadSet, ReadValue, TxIdx, WriteSet,
    },
};

impl DBErrorMarker for ReadError {}

/// The state as seen by transaction `tx`: the multi-version memory over the pre-block state.
pub(crate) struct VersionedState<'a, S: ?Sized> {
    pub(crate) mv: &'a MvMemory,
    pub(crate) pre: &'a PreState<'a, S>,
}

impl<S: Storage + ?Sized> VersionedState<'_, S> {
    /// Runs `read` on the versions of `address` (one lookup for all its account-level locations).
    pub(crate) fn account<R>(
        &self,
        address: Address,
        read: impl FnOnce(&AccountVersions) -> Result<R, Blocked>,
    ) -> Result<R, ReadError> {
        Ok(self
            .mv
            .with_account(address, |address| self.pre.basic(address), read)??)
    }

    pub(crate) fn storage(
        &self,
        address: Address,
        slot: U256,
        tx: TxIdx,
    ) -> Result<U256, ReadError> {
        self.mv.storage(address, slot, tx, |address, slot| {
            self.pre.storage(address, slot)
        })
    }

    /// The value an account-level read observes now.
    fn resolve_account_field(
        account: &AccountVersions,
        location: &MemoryLocation,
        tx: TxIdx,
    ) -> Result<ReadValue, Blocked> {
        Ok(match location {
            MemoryLocation::Lifecycle(_) => ReadValue::Exists(account.exists(tx)?),
            MemoryLocation::Balance(_) => ReadValue::Balance(account.balance(tx)?),
            MemoryLocation::Nonce(_) => ReadValue::Nonce(account.nonce(tx)?),
            MemoryLocation::Code(_) => ReadValue::CodeHash(account.code(tx)?.hash),
            MemoryLocation::Storage(..) => unreachable!("storage is not an account field"),
        })
    }

    /// Whether every read of `read_set` still observes the same value at `tx`. Consecutive reads
    /// of one account are checked under one lookup.
    pub(crate) fn validate(&self, read_set: &ReadSet, tx: TxIdx) -> bool {
        let mut index = 0;
        while index < read_set.len() {
            let (location, value) = &read_set[index];
            if let MemoryLocation::Storage(address, slot) = location {
                match self.storage(*address, *slot, tx) {
                    Ok(current) if ReadValue::Storage(current) == *value => {}
                    _ => return false,
                }
                index += 1;
                continue;
            }
            let address = location.address();
            let run = read_set[index..]
                .iter()
                .take_while(|(location, _)| {
                    !matches!(location, MemoryLocation::Storage(..))
                        && location.address() == address
                })
                .count();
            let valid = self.account(address, |account| {
                for (location, value) in &read_set[index..index + run] {
                    let valid = match value {
                        ReadValue::BalanceIn { low, high } => {
                            (low..high).contains(&&account.balance(tx)?)
                        }
                        value => Self::resolve_account_field(account, location, tx)? == *value,
                    };
                    if !valid {
                        return Ok(false);
                    }
                }
                Ok(true)
            });
            if !matches!(valid, Ok(true)) {
                return false;
            }
            index += run;
        }
        true
    }
}

/// The revm database of one incarnation: versioned reads, recorded.
struct VmDb<'a, S: ?Sized> {
    tx: TxIdx,
    state: &'a VersionedState<'a, S>,
    read_set: ReadSet,
    /// The recipient eligible for a lazy balance, and whether it got one.
    lazy_recipient: Option<Address>,
    lazy_recipient_applied: bool,
    /// The transaction's sender, and the most its transaction can spend (gas limit × max fee +
    /// value + blob fees; `U256::MAX` when that overflows).
    caller: Address,
    caller_spending: U256,
    /// The block's beneficiary, whose balance is read as bounds when it has no code (see
    /// [`VmDb::exact_basic`]).
    beneficiary: Address,
    /// Accounts read with a balance below [`HUGE`] whose balance may be bounds instead: those
    /// with code, the beneficiary without code with a balance, and the sender that can pay.
    bounded: Vec<BoundedRead>,
    /// Accounts whose balance the code observed (see [`crate::balance_observer`]).
    observed: Vec<Address>,
    /// The code this worker ran.
    codes: ThreadCode,
}

/// The balance read of an account whose balance may be bounds (an account with code, the
/// beneficiary, the sender), and the balances that give the incarnation's outcome: `low..high`.
struct BoundedRead {
    address: Address,
    /// Its index in the read set.
    index: usize,
    balance: U256,
    bounds: BalanceBounds,
}

impl<S: ?Sized> BalanceObserver for VmDb<'_, S> {
    fn observe_balance(&mut self, address: Address) {
        if !self.observed.contains(&address) {
            self.observed.push(address);
        }
    }

    fn require_balance(&mut self, address: Address, balance: U256, value: U256) {
        let narrowed = (self.bounded.iter_mut())
            .find(|read| read.address == address)
            .is_some_and(|read| read.bounds.require(read.balance, balance, value));
        if !narrowed {
            self.observe_balance(address);
        }
    }
}

impl<S: Storage + ?Sized> VmDb<'_, S> {
    fn record(&mut self, location: MemoryLocation, value: ReadValue) {
        self.read_set.push((location, value));
    }

    fn read_code(&mut self, address: Address) -> Result<CodeValue, ReadError> {
        let tx = self.tx;
        let code = self.state.account(address, |account| account.code(tx))?;
        self.record(
            MemoryLocation::Code(address),
            ReadValue::CodeHash(code.hash),
        );
        Ok(code)
    }
}

impl<S: Storage + ?Sized> Database for VmDb<'_, S> {
    type Error = ReadError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, ReadError> {
        if self.lazy_recipient == Some(address) {
            let code = self.read_code(address)?;
            if code.hash == KECCAK_EMPTY {
                self.lazy_recipient_applied = true;
                return Ok(Some(AccountInfo {
                    code_hash: KECCAK_EMPTY,
                    code: Some(Bytecode::default()),
                    ..Default::default()
                }));
            }
            return self.exact_basic(address, Some(code));
        }
        self.exact_basic(address, None)
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, ReadError> {
        Ok(self.codes.code_by_hash(self.state.pre, &code_hash)?)
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, ReadError> {
        let value = self.state.storage(address, index, self.tx)?;
        self.record(
            MemoryLocation::Storage(address, index),
            ReadValue::Storage(value),
        );
        Ok(value)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, ReadError> {
        Ok(self.state.pre.block_hash(number)?)
    }
}

impl<S: Storage + ?Sized> VmDb<'_, S> {
    fn exact_basic(
        &mut self,
        address: Address,
        code: Option<CodeValue>,
    ) -> Result<Option<AccountInfo>, ReadError> {
        let tx = self.tx;
        // The lazy-recipient path has read (and recorded) the code already.
        let code_recorded = code.is_some();
        let info = self.state.account(address, |account| {
            if !account.exists(tx)? {
                return Ok(None);
            }
            let code = match &code {
                Some(code) => code.clone(),
                None => account.code(tx)?,
            };
            Ok(Some((account.balance(tx)?, account.nonce(tx)?, code)))
        })?;
        let Some((balance, nonce, code)) = info else {
            self.record(MemoryLocation::Lifecycle(address), ReadValue::Exists(false));
            return Ok(None);
        };
        self.record(MemoryLocation::Lifecycle(address), ReadValue::Exists(true));
        // Whose balance may be bounds (see `bounded`). The sender: revm's one use of its balance
        // is the check that it covers the most the transaction can spend (`chain::cfg_env` never
        // disables it), after which the transaction changes it by a sum that does not depend on
        // it (revm's fee deduction saturates only below that amount); so any balance from that
        // amount on (and from 1: non-empty) gives the same outcome. The beneficiary without code
        // is read the same way: a CALL paying the builder, or revm's touch when the fee is zero,
        // need not wait for every earlier fee; its balance stays above zero, so that it stays
        // non-empty (touching an empty account deletes it, paying one costs more).
        let bounds = if address == self.caller {
            let low = self.caller_spending.max(U256::from(1));
            (balance >= low).then_some(BalanceBounds { low, high: HUGE })
        } else if address == self.beneficiary && code.hash == KECCAK_EMPTY {
            (!balance.is_zero()).then_some(BalanceBounds {
                low: U256::from(1),
                high: HUGE,
            })
        } else {
            (code.hash != KECCAK_EMPTY && address != self.beneficiary).then(BalanceBounds::default)
        };
        if let Some(bounds) = bounds
            && balance < HUGE
        {
            self.bounded.push(BoundedRead {
                address,
                index: self.read_set.len(),
                balance,
                bounds,
            });
        }
        self.record(
            MemoryLocation::Balance(address),
            ReadValue::Balance(balance),
        );
        self.record(MemoryLocation::Nonce(address), ReadValue::Nonce(nonce));
        if !code_recorded {
            self.record(
                MemoryLocation::Code(address),
                ReadValue::CodeHash(code.hash),
            );
        }
        Ok(Some(AccountInfo {
            balance,
            nonce,
            code_hash: code.hash,
            code: code.code,
            account_id: None,
        }))
    }
}

/// revm's mainnet handler, except that a non-zero beneficiary fee is computed and left to the
/// caller (as a lazy delta) instead of being paid inside the EVM.
pub(crate) struct LazyFeeHandler<EVM> {
    fee: Cell<U256>,
    _evm: std::marker::PhantomData<EVM>,
}

impl<EVM> Default for LazyFeeHandler<EVM> {
    fn default() -> Self {
        Self {
            fee: Cell::new(U256::ZERO),
            _evm: std::marker::PhantomData,
        }
    }
}

impl<EVM> LazyFeeHandler<EVM> {
    /// The fee the last run left to the caller (zero when revm paid it).
    pub(crate) fn fee(&self) -> U256 {
        self.fee.get()
    }
}

impl<EVM> Handler for LazyFeeHandler<EVM>
where
    EVM: EvmTr<
            Context: ContextTr<Journal: revm::context::JournalTr<State = revm::state::EvmState>>,
            Frame: revm::handler::evm::FrameTr<FrameResult = FrameResult, FrameInit = FrameInit>,
        >,
    EVM::Context: ContextTr<Db: Database<Error = ReadError>>,
{
    type Evm = EVM;
    type Error = EVMError<ReadError, InvalidTransaction>;
    type HaltReason = HaltReason;

    fn reward_beneficiary(
        &self,
        evm: &mut Self::Evm,
        exec_result: &mut FrameResult,
    ) -> Result<(), Self::Error> {
        let ctx = evm.ctx();
        let basefee = ctx.block().basefee() as u128;
        let effective_gas_price = ctx.tx().effective_gas_price(basefee);
        let coinbase_gas_price = if ctx.cfg().spec().into().is_enabled_in(SpecId::LONDON) {
            effective_gas_price.saturating_sub(basefee)
        } else {
            effective_gas_price
        };
        let gas = exec_result.gas();
        let used = gas.used().saturating_sub(gas.reservoir());
        let fee = U256::from(coinbase_gas_price) * U256::from(used);
        if fee.is_zero() {
            // A zero fee still touches the beneficiary (EIP-161 deletes it if empty): let revm do it.
            return post_execution::reward_beneficiary(evm.ctx(), exec_result.gas())
                .map_err(From::from);
        }
        self.fee.set(fee);
        Ok(())
    }

    /// revm's cleanup after a failed run, which also clears the database error an instruction
    /// left in the context. An instruction that fails to read (an ESTIMATE) parks the error in
    /// `Context::error` and halts its frame; revm takes it back only when the transaction reaches
    /// its result. When a later step fails first (with a zero fee, revm's own load of the
    /// beneficiary), its cleanup left the parked error behind, and the next transaction run on
    /// this EVM failed with it: a transaction blocked on itself or on a later one, never
    /// resumed, until Block-STM finished without it (mainnet 19929064, zero-tip swaps).
    fn catch_error(
        &self,
        evm: &mut Self::Evm,
        error: Self::Error,
    ) -> Result<ExecutionResult<Self::HaltReason>, Self::Error> {
        *evm.ctx().error() = Ok(());
        evm.ctx().local_mut().clear();
        evm.ctx().journal_mut().discard_tx();
        evm.frame_stack().clear();
        Err(error)
    }
}

/// What a transaction's final incarnation produced.
pub(crate) type TxResult = Result<ExecutionResult, TxFailure>;

/// A transaction that could not be executed (its incarnation writes nothing).
#[derive(Debug, Clone)]
pub(crate) enum TxFailure {
    Invalid(InvalidTransaction),
    Storage(StorageError),
    Internal(String),
}

/// One incarnation's reads, writes and result.
pub(crate) struct Incarnation {
    pub(crate) read_set: ReadSet,
    pub(crate) write_set: WriteSet,
    pub(crate) result: TxResult,
}

/// What every incarnation of a block shares.
pub(crate) struct BlockVm<'a, S: ?Sized> {
    pub(crate) spec: SpecId,
    pub(crate) block_env: BlockEnv,
    pub(crate) cfg: CfgEnv,
    pub(crate) txs: Vec<TxEnv>,
    /// For each tx, the previous tx of the same sender.
    pub(crate) previous_of_sender: Vec<Option<TxIdx>>,
    pub(crate) state: VersionedState<'a, S>,
}

/// One worker's EVM, reused for every incarnation the worker executes.
pub(crate) struct VmWorker<'a, S: Storage + ?Sized> {
    block: &'a BlockVm<'a, S>,
    evm: MainnetEvm<MainnetContext<VmDb<'a, S>>>,
    /// A buffer for the next incarnation's write set (see [`VmWorker::recycle`]).
    write_set: WriteSet,
}

impl<'a, S: Storage + ?Sized> VmWorker<'a, S> {
    pub(crate) fn new(block: &'a BlockVm<'a, S>) -> Self {
        let db = VmDb {
            tx: 0,
            state: &block.state,
            read_set: Vec::new(),
            lazy_recipient: None,
            lazy_recipient_applied: false,
            caller: Address::ZERO,
            caller_spending: U256::MAX,
            beneficiary: block.block_env.beneficiary,
            bounded: Vec::new(),
            observed: Vec::new(),
            codes: ThreadCode::default(),
        };
        let mut evm = chain::build_evm(db, block.block_env.clone(), block.cfg.clone());
        observe_balances(evm.instruction.instruction_table_mut());
        Self {
            block,
            evm,
            write_set: WriteSet::new(),
        }
    }

    /// Takes back an incarnation's buffers once published ([`MvMemory::record`] swaps the read
    /// set with the one it replaced and empties the write set), for the next incarnations: in a
    /// steady state no incarnation allocates, grows or frees its read and write sets.
    pub(crate) fn recycle(&mut self, read_set: ReadSet, write_set: WriteSet) {
        self.evm.ctx.journaled_state.database.read_set = read_set;
        self.write_set = write_set;
    }

    /// The previous transaction of `tx`'s sender in the block.
    pub(crate) fn previous_of_sender(&self, tx: TxIdx) -> Option<TxIdx> {
        self.block.previous_of_sender[tx]
    }

    /// The block's multi-version memory.
    pub(crate) fn mv(&self) -> &'a MvMemory {
        self.block.state.mv
    }

    /// Executes transaction `tx` against the current multi-version memory.
    pub(crate) fn execute(&mut self, tx: TxIdx) -> Result<Incarnation, Blocked> {
        let block = self.block;
        let tx_env = &block.txs[tx];
        let lazy_recipient = lazy_recipient(tx_env);
        {
            let db = &mut self.evm.ctx.journaled_state.database;
            db.tx = tx;
            db.read_set.clear();
            db.lazy_recipient = lazy_recipient;
            db.lazy_recipient_applied = false;
            db.caller = tx_env.caller;
            db.caller_spending = tx_env.max_balance_spending().unwrap_or(U256::MAX);
            db.bounded.clear();
            db.observed.clear();
        }
        self.evm.ctx.tx = tx_env.clone();
        let mut handler = LazyFeeHandler::default();
        let result = handler.run(&mut self.evm);
        let evm_state = self.evm.finalize();
        let db = &mut self.evm.ctx.journaled_state.database;
        if let Err(EVMError::Database(ReadError::Blocked(blocking))) = result {
            // The read set stays for the next attempt to reuse.
            return Err(Blocked(blocking));
        }
        let mut read_set = std::mem::take(&mut db.read_set);
        // Bounded accounts whose balance the code did not observe: read as their bounds (one that
        // received `HUGE` wei or more from the sender counts as observed: its balance could decide
        // whether the credit overflows).
        let sent_huge_to = tx_env.kind.to().filter(|_| tx_env.value >= HUGE);
        let observed = &db.observed;
        db.bounded.retain(|read| {
            let unobserved =
                !observed.contains(&read.address) && sent_huge_to != Some(&read.address);
            if unobserved {
                read_set[read.index].1 = ReadValue::BalanceIn {
                    low: read.bounds.low,
                    high: read.bounds.high,
                };
            }
            unobserved
        });
        let bounded = &db.bounded;
        let lazy_recipient = lazy_recipient.filter(|_| db.lazy_recipient_applied);
        let mut write_set = std::mem::take(&mut self.write_set);
        write_set.clear();

        let result = match result {
            Ok(result) => result,
            Err(error) => {
                let failure = match error {
                    EVMError::Database(ReadError::Storage(source)) => TxFailure::Storage(source),
                    EVMError::Transaction(invalid) => TxFailure::Invalid(invalid),
                    other => TxFailure::Internal(other.to_string()),
                };
                return Ok(Incarnation {
                    read_set,
                    write_set,
                    result: Err(failure),
                });
            }
        };
        let fee = handler.fee();
        let beneficiary = block.block_env.beneficiary;
        let mut beneficiary_destroyed = false;
        for (address, account) in &evm_state {
            let Some(diff) = diff_account(block.spec, account) else {
                continue;
            };
            let lazy = lazy_recipient == Some(*address);
            if *address == beneficiary && diff.lifecycle == Some(Lifecycle::Destroyed) {
                beneficiary_destroyed = true;
            }
            if let Some(lifecycle) = diff.lifecycle.filter(|_| !lazy) {
                write_set.push((
                    MemoryLocation::Lifecycle(*address),
                    MemoryValue::Lifecycle(lifecycle),
                ));
            }
            if let Some(balance) = diff.balance {
                let value = if lazy {
                    MemoryValue::BalanceDelta(balance)
                } else if let Some(read) = bounded.iter().find(|read| read.address == *address) {
                    // Its net change, a decrease modulo 2^256 if it sent more than it received.
                    MemoryValue::BalanceDelta(balance.wrapping_sub(read.balance))
                } else {
                    MemoryValue::Balance(balance)
                };
                write_set.push((MemoryLocation::Balance(*address), value));
            }
            if let Some(nonce) = diff.nonce {
                write_set.push((MemoryLocation::Nonce(*address), MemoryValue::Nonce(nonce)));
            }
            if let Some(code) = diff.code {
                write_set.push((MemoryLocation::Code(*address), MemoryValue::Code(code)));
            }
            for (slot, value) in diff.storage {
                write_set.push((
                    MemoryLocation::Storage(*address, slot),
                    MemoryValue::Storage(value),
                ));
            }
        }
        if !fee.is_zero() && !beneficiary_destroyed {
            add_fee(&mut write_set, beneficiary, fee);
        }
        Ok(Incarnation {
            read_set,
            write_set,
            result: Ok(result),
        })
    }
}

/// Adds the beneficiary's fee to the write set: into its balance write if the transaction wrote
/// one, as a lazy delta otherwise.
fn add_fee(write_set: &mut WriteSet, beneficiary: Address, fee: U256) {
    let mut has_lifecycle = false;
    let mut credited = false;
    for (location, value) in write_set.iter_mut() {
        match (location, value) {
            (MemoryLocation::Balance(address), MemoryValue::Balance(balance))
            | (MemoryLocation::Balance(address), MemoryValue::BalanceDelta(balance))
                if *address == beneficiary =>
            {
                *balance = balance.wrapping_add(fee);
                credited = true;
            }
            (MemoryLocation::Lifecycle(address), _) if *address == beneficiary => {
                has_lifecycle = true;
            }
            _ => {}
        }
    }
    if !credited {
        write_set.push((
            MemoryLocation::Balance(beneficiary),
            MemoryValue::BalanceDelta(fee),
        ));
    }
    if !has_lifecycle {
        write_set.push((
            MemoryLocation::Lifecycle(beneficiary),
            MemoryValue::Lifecycle(Lifecycle::Existing),
        ));
    }
}

/// The recipient of a plain value transfer, whose balance a transaction need not read.
pub(crate) fn lazy_recipient(tx_env: &TxEnv) -> Option<Address> {
    plain_transfer_recipient(tx_env.kind, tx_env.value, tx_env.caller, tx_env.tx_type)
}

/// The recipient of a value transfer to another account (not an EIP-7702 transaction, whose
/// authorizations may give accounts code): the one rule behind lazy credits in both engines and
/// the pipeline's choice of what to speculate.
pub(crate) fn plain_transfer_recipient(
    kind: TxKind,
    value: U256,
    caller: Address,
    tx_type: u8,
) -> Option<Address> {
    match kind {
        TxKind::Call(to)
            if !value.is_zero()
                && to != caller
                && tx_type != alloy_consensus::TxType::Eip7702 as u8 =>
        {
            Some(to)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use revm::{context::TxEnv, primitives::keccak256};

    use super::*;

    /// A pre-state of funded accounts and one contract, whose slot reads and the beneficiary's
    /// load fail (blocked on tx 7) while `blocking`.
    struct BlockingDb {
        blocking: bool,
        contract: Address,
        code: Bytecode,
        beneficiary: Address,
    }

    impl Database for BlockingDb {
        type Error = ReadError;

        fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, ReadError> {
            if self.blocking && address == self.beneficiary {
                return Err(ReadError::Blocked(7));
            }
            if address == self.contract {
                return Ok(Some(AccountInfo::default().with_code(self.code.clone())));
            }
            Ok(Some(AccountInfo::from_balance(
                U256::from(10).pow(U256::from(20)),
            )))
        }

        fn code_by_hash(&mut self, _: B256) -> Result<Bytecode, ReadError> {
            Ok(self.code.clone())
        }

        fn storage(&mut self, _: Address, _: U256) -> Result<U256, ReadError> {
            if self.blocking {
                return Err(ReadError::Blocked(7));
            }
            Ok(U256::ZERO)
        }

        fn block_hash(&mut self, number: u64) -> Result<B256, ReadError> {
            Ok(keccak256(number.to_be_bytes()))
        }
    }

    /// A run that fails on a read after an instruction failed on one leaves the EVM clean: the
    /// next transaction on it runs, instead of failing with the first run's parked error.
    #[test]
    fn a_failed_run_leaves_no_error_for_the_next() {
        let (contract, beneficiary) = (Address::repeat_byte(0xc0), Address::repeat_byte(0xbe));
        let db = BlockingDb {
            blocking: true,
            contract,
            // PUSH1 0, SLOAD, STOP: the SLOAD fails inside the interpreter.
            code: Bytecode::new_raw([0x60, 0x00, 0x54, 0x00].into()),
            beneficiary,
        };
        let block_env = BlockEnv {
            beneficiary,
            basefee: 0,
            gas_limit: 30_000_000,
            ..Default::default()
        };
        let mut evm = chain::build_evm(db, block_env, CfgEnv::new_with_spec(SpecId::CANCUN));
        // A zero fee: revm itself loads the beneficiary, which fails after the SLOAD did.
        evm.ctx.tx = TxEnv {
            caller: Address::repeat_byte(0xca),
            kind: TxKind::Call(contract),
            gas_limit: 100_000,
            gas_price: 0,
            ..Default::default()
        };
        let first = LazyFeeHandler::default().run(&mut evm);
        assert!(
            matches!(first, Err(EVMError::Database(ReadError::Blocked(7)))),
            "{first:?}"
        );
        evm.finalize();
        evm.ctx.journaled_state.database.blocking = false;
        let second = LazyFeeHandler::default().run(&mut evm);
        assert!(
            matches!(second, Ok(ExecutionResult::Success { .. })),
            "{second:?}"
        );
    }
}
