//! Plain value transfers without the EVM: a transfer between two accounts without code runs no
//! code, so its outcome is arithmetic on the sender's nonce and balance. Speculating one this way
//! costs about half of what revm's handler (journal, frame, result, diff) costs, and half of that
//! is the two account lookups (profile of 200 Mgas of raw transfers: about 0.8 µs per transaction
//! against 1.6 µs).
//!
//! Only the checks that need no state are left to revm's own handler steps (`validate_env`,
//! `validate_initial_tx_gas`), and the caller's checks are revm's own functions: the rules stay
//! revm's. What is computed here is the rest of revm's path for such a transfer — intrinsic gas
//! spent, nothing refunded, the EIP-7623 floor, the caller reimbursed for unused gas, the
//! beneficiary paid per gas used. Anything outside the narrow case [`eligible`] describes is left
//! to revm, as is every invalid transaction (revm decides how it fails).

use alloy_primitives::{Address, Bytes, U256};
use revm::{
    Database,
    context::{
        Cfg, TxEnv,
        result::{ExecutionResult, Output, ResultGas, SuccessReason},
    },
    context_interface::{Block, Transaction, transaction::TransactionType},
    handler::{
        Handler, MainnetContext, MainnetEvm,
        pre_execution::{calculate_caller_fee, validate_account_nonce_and_code_with_components},
    },
    primitives::hardfork::SpecId,
    state::AccountInfo,
};

use crate::{mv_memory::ReadError, vm::LazyFeeHandler};

/// What a native transfer did, beyond the value credited to its recipient.
#[derive(Debug)]
pub(crate) struct NativeTransfer {
    /// What revm would return.
    pub(crate) result: ExecutionResult,
    /// The sender's balance afterwards (its nonce is one more).
    pub(crate) sender_balance: U256,
    /// The beneficiary's fee (never zero: a zero fee touches the beneficiary, left to revm).
    pub(crate) fee: U256,
}

/// Whether `tx` is a transfer [`execute`] may handle: a call with value and no input to another
/// account that is not the beneficiary nor a precompile (addresses up to 0xffff), without access
/// or authorization list or blobs, of a legacy,
/// EIP-2930 or EIP-1559 type, before Amsterdam (whose state gas changes a transfer's cost). Both
/// accounts must also be without code (checked by the caller, from state).
pub(crate) fn eligible(spec: SpecId, tx: &TxEnv, beneficiary: Address) -> bool {
    let Some(to) = tx.kind.to() else {
        return false;
    };
    let not_precompile = to.0[..18].iter().any(|byte| *byte != 0);
    !spec.is_enabled_in(SpecId::AMSTERDAM)
        && matches!(
            TransactionType::from(tx.tx_type),
            TransactionType::Legacy | TransactionType::Eip2930 | TransactionType::Eip1559
        )
        && !tx.value.is_zero()
        && tx.data.is_empty()
        && tx.access_list.0.is_empty()
        && tx.authorization_list.is_empty()
        && tx.blob_hashes.is_empty()
        && *to != tx.caller
        && *to != beneficiary
        && not_precompile
}

/// Executes the [`eligible`] transfer in `evm`'s context from a sender without code that has
/// `balance` and `nonce`, to an account without code. `None` when revm must decide: the
/// transaction is invalid, or the fee is zero.
pub(crate) fn execute<DB: Database<Error = ReadError>>(
    evm: &mut MainnetEvm<MainnetContext<DB>>,
    balance: U256,
    nonce: u64,
) -> Option<NativeTransfer> {
    let handler = LazyFeeHandler::default();
    handler.validate_env(evm).ok()?;
    let gas = handler.validate_initial_tx_gas(evm).ok()?;
    let ctx = &evm.ctx;
    let (tx, block, cfg) = (&ctx.tx, &ctx.block, &ctx.cfg);
    if cfg.is_fee_charge_disabled() {
        return None;
    }
    let sender = AccountInfo {
        balance,
        nonce,
        ..Default::default()
    };
    validate_account_nonce_and_code_with_components(&sender, tx, cfg).ok()?;
    // The balance after the gas limit is charged, then the value sent.
    let charged = calculate_caller_fee(balance, tx, block, cfg).ok()?;
    let after_value = charged.checked_sub(tx.value)?;
    // The call runs no code: intrinsic gas is spent, nothing refunded, then the floor applies.
    let initial = gas.initial_total_gas();
    let spent = initial.max(gas.floor_gas());
    let basefee = u128::from(block.basefee());
    let price = tx.effective_gas_price(basefee);
    let reimbursed = U256::from(price.checked_mul(u128::from(tx.gas_limit.checked_sub(spent)?))?);
    let coinbase_price = if cfg.spec.is_enabled_in(SpecId::LONDON) {
        price.saturating_sub(basefee)
    } else {
        price
    };
    let fee = U256::from(coinbase_price.checked_mul(u128::from(spent))?);
    if fee.is_zero() {
        return None;
    }
    let result = ExecutionResult::Success {
        reason: SuccessReason::Stop,
        gas: ResultGas::default()
            .with_total_gas_spent(initial)
            .with_refunded(0)
            .with_floor_gas(gas.floor_gas())
            .with_state_gas_spent(gas.initial_state_gas),
        logs: Vec::new(),
        output: Output::Call(Bytes::new()),
    };
    Some(NativeTransfer {
        result,
        sender_balance: after_value + reimbursed,
        fee,
    })
}
