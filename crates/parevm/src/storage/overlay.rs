//! [`OverlayStorage`]: a [`Storage`] with block-level changes (system calls, earlier steps of the
//! block) applied on top.

use alloy_primitives::{Address, B256, U256};
use revm::bytecode::Bytecode;

use super::{AccountBasic, Storage, StorageError};
use crate::output::StateChanges;

/// `base` with `changes` applied.
pub(crate) struct OverlayStorage<'a, S: ?Sized> {
    pub(crate) base: &'a S,
    pub(crate) changes: &'a StateChanges,
}

impl<S: Storage + ?Sized> Storage for OverlayStorage<'_, S> {
    fn basic(&self, address: &Address) -> Result<Option<AccountBasic>, StorageError> {
        match self.changes.get(address) {
            Some(change) => Ok(change.info.as_ref().map(|info| AccountBasic {
                balance: info.balance,
                nonce: info.nonce,
                code_hash: info.code_hash,
            })),
            None => self.base.basic(address),
        }
    }

    fn code_by_hash(&self, code_hash: &B256) -> Result<Bytecode, StorageError> {
        for change in self.changes.values() {
            if let Some(info) = &change.info
                && info.code_hash == *code_hash
                && let Some(code) = &info.code
            {
                return Ok(Bytecode::new_raw(code.clone()));
            }
        }
        self.base.code_by_hash(code_hash)
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StorageError> {
        match self.changes.get(address) {
            Some(change) => match change.storage.get(slot) {
                Some(value) => Ok(*value),
                None if change.storage_reset || change.info.is_none() => Ok(U256::ZERO),
                None => self.base.storage(address, slot),
            },
            None => self.base.storage(address, slot),
        }
    }

    fn block_hash(&self, number: u64) -> Result<B256, StorageError> {
        self.base.block_hash(number)
    }
}
