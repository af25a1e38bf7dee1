//! [`PreState`]: the parallel engine's access to [`Storage`]. Account and slot values are cached
//! in the multi-version memory next to their versions; code and block hashes are cached here, so
//! that each pre-block location is read from storage about once per block, whatever the number of
//! incarnations that read it.

use alloy_primitives::{Address, B256, U256, map::DefaultHashBuilder};
use dashmap::DashMap;
use revm::{bytecode::Bytecode, primitives::KECCAK_EMPTY};

use crate::storage::{AccountBasic, Storage, StorageError};

/// Reads of the pre-block state. Errors are not cached: a failed read is retried by the next
/// incarnation that needs it.
pub(crate) struct PreState<'a, S: ?Sized> {
    storage: &'a S,
    code: DashMap<B256, Bytecode, DefaultHashBuilder>,
    block_hashes: DashMap<u64, B256, DefaultHashBuilder>,
}

impl<'a, S: Storage + ?Sized> PreState<'a, S> {
    pub(crate) fn new(storage: &'a S) -> Self {
        Self {
            storage,
            code: DashMap::default(),
            block_hashes: DashMap::default(),
        }
    }

    /// An account from storage (the caller caches it).
    pub(crate) fn basic(&self, address: &Address) -> Result<Option<AccountBasic>, StorageError> {
        self.storage.basic(address)
    }

    /// A storage slot from storage (the caller caches it).
    pub(crate) fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StorageError> {
        self.storage.storage(address, slot)
    }

    pub(crate) fn code_by_hash(&self, code_hash: &B256) -> Result<Bytecode, StorageError> {
        if *code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        if let Some(code) = self.code.get(code_hash) {
            return Ok(code.clone());
        }
        let code = self.storage.code_by_hash(code_hash)?;
        self.code.insert(*code_hash, code.clone());
        Ok(code)
    }

    pub(crate) fn block_hash(&self, number: u64) -> Result<B256, StorageError> {
        if let Some(hash) = self.block_hashes.get(&number) {
            return Ok(*hash);
        }
        let hash = self.storage.block_hash(number)?;
        self.block_hashes.insert(number, hash);
        Ok(hash)
    }
}
