//! What one transaction did to one account, derived from revm's post-transaction account: the
//! single definition of "a write" shared by the sequential oracle and the parallel engine.

use alloy_primitives::U256;
use revm::{bytecode::Bytecode, primitives::hardfork::SpecId, state::Account};

use crate::types::{CodeValue, Lifecycle};

/// The writes of one transaction to one account.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct AccountDiff {
    /// A lifecycle event, if any. [`Lifecycle::Created`] and [`Lifecycle::Destroyed`] come with
    /// explicit balance, nonce and code.
    pub(crate) lifecycle: Option<Lifecycle>,
    /// The new balance, if written.
    pub(crate) balance: Option<U256>,
    /// The new nonce, if written.
    pub(crate) nonce: Option<u64>,
    /// The new code, if written.
    pub(crate) code: Option<CodeValue>,
    /// Storage slots written, with their new values.
    pub(crate) storage: Vec<(U256, U256)>,
}

/// Whether a touched `account` keeps its lifecycle: neither created, nor self-destructed, nor
/// cleared as empty (EIP-161). Its writes are then its fields and changed slots as they are.
pub(crate) fn keeps_lifecycle(spec: SpecId, account: &Account) -> bool {
    let cleared = spec.is_enabled_in(SpecId::SPURIOUS_DRAGON) && account.is_empty();
    !(account.is_selfdestructed() || account.is_created() || cleared)
}

/// The writes a transaction made to `account`, or `None` when it only read it.
pub(crate) fn diff_account(spec: SpecId, account: &Account) -> Option<AccountDiff> {
    if !account.is_touched() {
        return None;
    }
    let existed = !account.is_loaded_as_not_existing();
    let before = account.original_info();
    let after = &account.info;

    if account.is_selfdestructed()
        || (spec.is_enabled_in(SpecId::SPURIOUS_DRAGON)
            && account.is_empty()
            && !account.is_created())
    {
        if !existed && !account.is_selfdestructed() {
            // A touched account that did not exist and stays empty: nothing happened (EIP-161).
            return None;
        }
        return Some(AccountDiff {
            lifecycle: Some(Lifecycle::Destroyed),
            balance: Some(U256::ZERO),
            nonce: Some(0),
            code: Some(CodeValue {
                hash: revm::primitives::KECCAK_EMPTY,
                code: None,
            }),
            storage: Vec::new(),
        });
    }

    let code_value = || CodeValue {
        hash: after.code_hash,
        code: after
            .code
            .clone()
            .filter(|code: &Bytecode| !code.is_empty()),
    };
    let storage = account
        .storage
        .iter()
        .filter(|(_, slot)| slot.is_changed())
        .map(|(key, slot)| (*key, slot.present_value()))
        .collect();
    if account.is_created() {
        return Some(AccountDiff {
            lifecycle: Some(Lifecycle::Created),
            balance: Some(after.balance),
            nonce: Some(after.nonce),
            code: Some(code_value()),
            storage,
        });
    }
    let diff = AccountDiff {
        lifecycle: (!existed).then_some(Lifecycle::Existing),
        balance: (after.balance != before.balance).then_some(after.balance),
        nonce: (after.nonce != before.nonce).then_some(after.nonce),
        code: (after.code_hash != before.code_hash).then(code_value),
        storage,
    };
    // Touched but unchanged (e.g. value passed through): no write.
    let unchanged = diff.lifecycle.is_none()
        && diff.balance.is_none()
        && diff.nonce.is_none()
        && diff.code.is_none()
        && diff.storage.is_empty();
    (!unchanged).then_some(diff)
}
