//! Public errors.

use revm::context::result::{InvalidHeader, InvalidTransaction};

use crate::{TxIdx, storage::StorageError};

/// Why a block could not be executed. The parallel and the sequential executor return the same
/// error for the same block and pre-state.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecutionError {
    /// A transaction is invalid against the state before it (nonce, balance, gas limits, fees,
    /// blob or authorization rules).
    #[error("transaction {index} is invalid: {source}")]
    InvalidTransaction {
        /// Index of the transaction in the block.
        index: TxIdx,
        /// What revm rejected.
        #[source]
        source: InvalidTransaction,
    },
    /// A transaction cannot be turned into an EVM transaction (e.g. a type the fork lacks).
    #[error("transaction {index} is unsupported: {reason}")]
    UnsupportedTransaction {
        /// Index of the transaction in the block.
        index: TxIdx,
        /// Why.
        reason: String,
    },
    /// The block header is unusable for the fork (missing base fee, prevrandao, ...).
    #[error("invalid block header: {0}")]
    InvalidHeader(String),
    /// A transaction's gas limit is above what the earlier transactions left of the block's.
    #[error(
        "transaction {index} has gas limit {gas_limit}, above the {remaining} gas left in the block"
    )]
    TxGasLimitAboveRemaining {
        /// Index of the transaction.
        index: TxIdx,
        /// Its gas limit.
        gas_limit: u64,
        /// Block gas limit minus the gas used by the transactions before it.
        remaining: u64,
    },
    /// Reading the pre-block state failed.
    #[error("{}: {source}", match .index { Some(i) => format!("transaction {i}"), None => "block-level processing".to_string() })]
    Storage {
        /// The transaction whose execution read it, `None` for system calls, rewards, withdrawals.
        index: Option<TxIdx>,
        /// The storage error.
        #[source]
        source: StorageError,
    },
    /// A system call (EIP-4788, EIP-2935, EIP-7002, EIP-7251) failed.
    #[error("system call to {address} failed: {reason}")]
    SystemCall {
        /// The system contract.
        address: alloy_primitives::Address,
        /// Why.
        reason: String,
    },
    /// An internal error of the EVM or of parevm (a bug): never a wrong result.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<InvalidHeader> for ExecutionError {
    fn from(error: InvalidHeader) -> Self {
        Self::InvalidHeader(error.to_string())
    }
}
