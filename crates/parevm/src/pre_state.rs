//! [`PreState`]: the parallel engine's access to [`Storage`]. Account and slot values are cached
//! in the multi-version memory next to their versions; code and block hashes are cached here, so
//! that each pre-block location is read from storage about once per block, whatever the number of
//! incarnations that read it.

use alloy_primitives::{
    Address, B256, Bytes, U256,
    map::{B256Map, DefaultHashBuilder},
};
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

/// One thread's code, for the engine's EVMs: revm clones a contract's `Bytecode` (an `Arc`) at
/// every load and call, and with one copy for all threads every clone and drop moved its reference
/// count's cache line between cores. The first load of a contract shares the block's copy (most
/// contracts run once or twice a block); the second makes this thread's own copy, kept for the
/// rest of the block.
#[derive(Default)]
pub(crate) struct ThreadCode(B256Map<(Bytecode, bool)>);

impl ThreadCode {
    /// The code with hash `code_hash`, from this thread's copies or else from `pre`.
    pub(crate) fn code_by_hash<S: Storage + ?Sized>(
        &mut self,
        pre: &PreState<'_, S>,
        code_hash: &B256,
    ) -> Result<Bytecode, StorageError> {
        if let Some((code, owned)) = self.0.get_mut(code_hash) {
            if !*owned {
                *code = own_copy(code);
                *owned = true;
            }
            return Ok(code.clone());
        }
        let code = pre.code_by_hash(code_hash)?;
        self.0.insert(*code_hash, (code.clone(), false));
        Ok(code)
    }
}

/// A copy of `code` that shares nothing with it (bytes, jump table, reference count).
fn own_copy(code: &Bytecode) -> Bytecode {
    match code.legacy_jump_table() {
        // SAFETY: the bytes (padded), original length and jump table are those of an analyzed
        // legacy bytecode, copied as they are: `new_analyzed`'s invariants hold for the copy.
        Some(jump_table) if code.is_legacy() && !code.bytecode().is_empty() => unsafe {
            Bytecode::new_analyzed(
                Bytes::copy_from_slice(code.bytecode()),
                code.len(),
                jump_table.clone(),
            )
        },
        _ => code.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::InMemoryStorage;

    #[test]
    fn thread_code_is_the_same_code_and_owned_from_the_second_load() {
        // PUSH1 3, JUMP, JUMPDEST, STOP: one valid jump destination.
        let bytes = Bytes::from_static(&[0x60, 0x03, 0x56, 0x5b, 0x00]);
        let code = Bytecode::new_raw(bytes.clone());
        let mut storage = InMemoryStorage::new();
        let hash = storage.insert_code(bytes);
        let pre = PreState::new(&storage);
        let mut thread = ThreadCode::default();
        let first = thread.code_by_hash(&pre, &hash).unwrap();
        let second = thread.code_by_hash(&pre, &hash).unwrap();
        let third = thread.code_by_hash(&pre, &hash).unwrap();
        for copy in [&first, &second, &third] {
            assert_eq!(copy, &code);
            assert_eq!(copy.len(), code.len());
            assert_eq!(copy.bytecode(), code.bytecode());
            assert_eq!(copy.legacy_jump_table(), code.legacy_jump_table());
            assert_eq!(copy.hash_slow(), hash);
        }
        let shared = pre.code_by_hash(&hash).unwrap();
        assert_eq!(first.bytecode_ptr(), shared.bytecode_ptr());
        assert_ne!(second.bytecode_ptr(), shared.bytecode_ptr());
        assert_eq!(second.bytecode_ptr(), third.bytecode_ptr());
        assert!(thread.code_by_hash(&pre, &KECCAK_EMPTY).unwrap().is_empty());
    }
}
