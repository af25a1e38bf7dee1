//! [`InMemoryStorage`]: the whole pre-state in hash maps.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256, map::HashMap};
use revm::{bytecode::Bytecode, primitives::KECCAK_EMPTY};

use super::{AccountBasic, Storage, StorageError};

/// An account of an [`InMemoryStorage`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InMemoryAccount {
    /// Balance, nonce and code hash.
    pub basic: AccountBasic,
    /// Non-zero storage slots.
    pub storage: HashMap<U256, U256>,
}

/// A pre-block state held in memory: accounts, bytecodes by hash and block hashes, in hash maps
/// with alloy's default hasher (foldhash; std's SipHash made every run of the benchmarks 2-8%
/// slower, revm's baseline included).
#[derive(Debug, Clone, Default)]
pub struct InMemoryStorage {
    accounts: HashMap<Address, InMemoryAccount>,
    bytecodes: HashMap<B256, Bytecode>,
    block_hashes: HashMap<u64, B256>,
}

impl InMemoryStorage {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts (or replaces) an account.
    pub fn insert_account(&mut self, address: Address, account: InMemoryAccount) {
        self.accounts.insert(address, account);
    }

    /// Inserts an account with `code` (raw bytes, possibly empty) and `storage` (its slots),
    /// registering the code by hash.
    pub fn insert_account_with_code(
        &mut self,
        address: Address,
        balance: U256,
        nonce: u64,
        code: Bytes,
        storage: impl IntoIterator<Item = (U256, U256)>,
    ) {
        let storage = storage.into_iter().collect();
        let code_hash = self.insert_code(code);
        let basic = AccountBasic {
            balance,
            nonce,
            code_hash,
        };
        self.accounts
            .insert(address, InMemoryAccount { basic, storage });
    }

    /// Registers raw code and returns its hash ([`KECCAK_EMPTY`] for empty code).
    pub fn insert_code(&mut self, code: Bytes) -> B256 {
        if code.is_empty() {
            return KECCAK_EMPTY;
        }
        let hash = keccak256(&code);
        self.bytecodes
            .entry(hash)
            .or_insert_with(|| Bytecode::new_raw(code));
        hash
    }

    /// Registers code under a given hash (as read from a fixture keyed by hash).
    pub fn insert_code_with_hash(&mut self, code_hash: B256, code: Bytecode) {
        self.bytecodes.insert(code_hash, code);
    }

    /// Records the hash of block `number`.
    pub fn insert_block_hash(&mut self, number: u64, hash: B256) {
        self.block_hashes.insert(number, hash);
    }

    /// The accounts, by address.
    pub fn accounts(&self) -> &HashMap<Address, InMemoryAccount> {
        &self.accounts
    }

    /// The recorded block hashes, by number.
    pub fn block_hashes(&self) -> &HashMap<u64, B256> {
        &self.block_hashes
    }

    /// Mutable access to one account.
    pub fn account_mut(&mut self, address: &Address) -> Option<&mut InMemoryAccount> {
        self.accounts.get_mut(address)
    }

    /// Whether code with this hash is known.
    pub fn has_code(&self, code_hash: &B256) -> bool {
        *code_hash == KECCAK_EMPTY || self.bytecodes.contains_key(code_hash)
    }

    /// The raw bytes of the code with this hash, if known.
    pub fn code(&self, code_hash: &B256) -> Option<Bytes> {
        if *code_hash == KECCAK_EMPTY {
            return Some(Bytes::new());
        }
        self.bytecodes
            .get(code_hash)
            .map(|code| code.original_bytes())
    }
}

impl Storage for InMemoryStorage {
    fn basic(&self, address: &Address) -> Result<Option<AccountBasic>, StorageError> {
        Ok(self.accounts.get(address).map(|account| account.basic))
    }

    fn code_by_hash(&self, code_hash: &B256) -> Result<Bytecode, StorageError> {
        if *code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        self.bytecodes.get(code_hash).cloned().ok_or_else(|| {
            StorageError::new(format!("code {code_hash}"), "no bytecode with this hash")
        })
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StorageError> {
        Ok(self
            .accounts
            .get(address)
            .and_then(|account| account.storage.get(slot).copied())
            .unwrap_or_default())
    }

    fn block_hash(&self, number: u64) -> Result<B256, StorageError> {
        self.block_hashes.get(&number).copied().ok_or_else(|| {
            StorageError::new(format!("block hash {number}"), "block hash not provided")
        })
    }
}
