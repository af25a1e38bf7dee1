//! [`PreState`]: a concurrent cache in front of [`Storage`], so that each pre-block location is
//! read from storage about once per block, whatever the number of incarnations that read it.

use alloy_primitives::{Address, B256, U256, map::DefaultHashBuilder};
use dashmap::DashMap;
use revm::{bytecode::Bytecode, primitives::KECCAK_EMPTY};

use crate::storage::{AccountBasic, Storage, StorageError};

/// Cached reads of the pre-block state. Errors are not cached: a failed read is retried by the
/// next incarnation that needs it.
pub(crate) struct PreState<'a, S: ?Sized> {
    storage: &'a S,
    accounts: DashMap<Address, Option<AccountBasic>, DefaultHashBuilder>,
    slots: DashMap<(Address, U256), U256, DefaultHashBuilder>,
    code: DashMap<B256, Bytecode, DefaultHashBuilder>,
    block_hashes: DashMap<u64, B256, DefaultHashBuilder>,
}

impl<'a, S: Storage + ?Sized> PreState<'a, S> {
    pub(crate) fn new(storage: &'a S) -> Self {
        Self {
            storage,
            accounts: DashMap::default(),
            slots: DashMap::default(),
            code: DashMap::default(),
            block_hashes: DashMap::default(),
        }
    }

    pub(crate) fn basic(&self, address: &Address) -> Result<Option<AccountBasic>, StorageError> {
        if let Some(basic) = self.accounts.get(address) {
            return Ok(*basic);
        }
        let basic = self.storage.basic(address)?;
        self.accounts.insert(*address, basic);
        Ok(basic)
    }

    pub(crate) fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StorageError> {
        let key = (*address, *slot);
        if let Some(value) = self.slots.get(&key) {
            return Ok(*value);
        }
        let value = self.storage.storage(address, slot)?;
        self.slots.insert(key, value);
        Ok(value)
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
