//! The pre-block state view ([`Storage`]) and an in-memory implementation.

mod in_memory;
mod overlay;

use std::sync::Arc;

use alloy_primitives::{Address, B256, U256};
use revm::bytecode::Bytecode;

pub use in_memory::{InMemoryAccount, InMemoryStorage};
pub(crate) use overlay::OverlayStorage;

/// An account's basic fields as stored before the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountBasic {
    /// Balance in wei.
    pub balance: U256,
    /// Nonce.
    pub nonce: u64,
    /// Keccak-256 of the code, [`revm::primitives::KECCAK_EMPTY`] for an account without code.
    pub code_hash: B256,
}

/// A failed read of the pre-block state, with what was being read and the implementation's own
/// error as its source.
#[derive(Debug, Clone, thiserror::Error)]
#[error("storage failed reading {what}")]
pub struct StorageError {
    /// What was being read, e.g. `account 0x…` or `slot 0x… of 0x…`.
    pub what: String,
    /// The implementation's error.
    #[source]
    pub source: Arc<dyn std::error::Error + Send + Sync>,
}

impl StorageError {
    /// Wraps an implementation error with a description of the read that failed.
    pub fn new(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            what: what.into(),
            source: Arc::from(source.into()),
        }
    }
}

/// A read-only view of the state before a block: what a node's database or an RPC client provides.
///
/// Implementations must be deterministic for the duration of a block: the engine may read a
/// location several times from several threads and relies on getting the same answer. parevm
/// caches every location it reads, so each is asked for about once per block.
pub trait Storage: Send + Sync {
    /// The account at `address`, or `None` if it does not exist.
    fn basic(&self, address: &Address) -> Result<Option<AccountBasic>, StorageError>;
    /// The code whose Keccak-256 is `code_hash`. Unknown code is an error, not empty code.
    fn code_by_hash(&self, code_hash: &B256) -> Result<Bytecode, StorageError>;
    /// The value of storage slot `slot` of `address` (zero when unset).
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StorageError>;
    /// The hash of block `number` (one of the 256 before the executed block).
    fn block_hash(&self, number: u64) -> Result<B256, StorageError>;
}

impl<S: Storage + ?Sized> Storage for &S {
    fn basic(&self, address: &Address) -> Result<Option<AccountBasic>, StorageError> {
        (**self).basic(address)
    }
    fn code_by_hash(&self, code_hash: &B256) -> Result<Bytecode, StorageError> {
        (**self).code_by_hash(code_hash)
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StorageError> {
        (**self).storage(address, slot)
    }
    fn block_hash(&self, number: u64) -> Result<B256, StorageError> {
        (**self).block_hash(number)
    }
}
