//! Block-STM vocabulary: transaction indices, incarnations, versions, memory locations and values,
//! read and write sets.

use alloy_primitives::{Address, B256, U256};
use revm::bytecode::Bytecode;

/// Index of a transaction in its block.
pub type TxIdx = usize;

/// How many times a transaction has been (re-)executed before: 0 for the first execution.
pub type Incarnation = usize;

/// One execution of one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxVersion {
    /// The transaction.
    pub tx_idx: TxIdx,
    /// Its incarnation.
    pub incarnation: Incarnation,
}

/// Accounts a block of `txs` transactions is expected to touch, to size maps up front: a
/// transaction touches two or three (sender, recipient, beneficiary), most of them distinct in
/// big blocks.
pub(crate) fn expected_accounts(txs: usize) -> usize {
    2 * txs + 16
}

/// The bucket of `address` among `buckets` (the pipeline's hot destinations, the partitions of
/// Block-STM's output): its last four bytes, multiplied by a golden-ratio constant so that
/// addresses differing in one low byte (test and synthetic ones) spread as well as real ones.
pub(crate) fn address_bucket(address: &Address, buckets: usize) -> usize {
    let low = u32::from_be_bytes([address[16], address[17], address[18], address[19]]);
    (low.wrapping_mul(0x9e37_79b9) >> 16) as usize % buckets
}

/// A unit of state that transactions read and write. Locations are compared by value (address and
/// slot), never by a hash alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemoryLocation {
    /// Whether the account exists, and whether its storage was reset (created or destroyed).
    Lifecycle(Address),
    /// The account's balance.
    Balance(Address),
    /// The account's nonce.
    Nonce(Address),
    /// The account's code.
    Code(Address),
    /// One storage slot.
    Storage(Address, U256),
}

impl MemoryLocation {
    /// The account the location belongs to.
    pub fn address(&self) -> Address {
        match self {
            Self::Lifecycle(address)
            | Self::Balance(address)
            | Self::Nonce(address)
            | Self::Code(address)
            | Self::Storage(address, _) => *address,
        }
    }
}

impl std::fmt::Display for MemoryLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Lifecycle(address) => write!(f, "lifecycle of {address}"),
            Self::Balance(address) => write!(f, "balance of {address}"),
            Self::Nonce(address) => write!(f, "nonce of {address}"),
            Self::Code(address) => write!(f, "code of {address}"),
            Self::Storage(address, slot) => write!(f, "slot {slot:#x} of {address}"),
        }
    }
}

/// An account lifecycle event written by a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// The account came into existence without a storage reset (funded or touched).
    Existing,
    /// A contract was created at the address: it exists and its old storage is gone.
    Created,
    /// The account was destroyed (self-destruct, or deleted as empty): storage is gone.
    Destroyed,
}

impl Lifecycle {
    /// Whether the account exists after this event.
    pub fn exists(self) -> bool {
        !matches!(self, Self::Destroyed)
    }

    /// Whether this event wipes the account's storage.
    pub fn resets_storage(self) -> bool {
        !matches!(self, Self::Existing)
    }
}

/// Code written to an account: its hash and bytecode (`None` for no code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeValue {
    /// Keccak-256 of the code.
    pub hash: B256,
    /// The code, `None` when the account has none.
    pub code: Option<Bytecode>,
}

/// A value written to a [`MemoryLocation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryValue {
    /// A lifecycle event.
    Lifecycle(Lifecycle),
    /// An exact balance.
    Balance(U256),
    /// A lazy balance increment, folded in block order when read (beneficiary fees, transfers);
    /// modulo 2^256, so that a contract's net change may be a decrease.
    BalanceDelta(U256),
    /// A nonce.
    Nonce(u64),
    /// Code.
    Code(CodeValue),
    /// A storage value.
    Storage(U256),
}

/// How a transaction wrote a location, as far as dependencies are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteKind {
    /// An exact value: readers at higher transactions depend on this write alone.
    Exact,
    /// A lazy balance increment: it creates no dependency unless a higher transaction reads the
    /// exact balance, which then depends on every increment since the last exact write.
    Delta,
    /// An account creation or destruction: it also resets the account's storage, so later reads
    /// of the account's slots depend on it.
    StorageReset,
}

/// The value a read observed, kept to validate the read later (value-based validation: a read is
/// still valid when re-reading gives the same value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadValue {
    /// Whether the account existed.
    Exists(bool),
    /// A balance, deltas folded.
    Balance(U256),
    /// Any balance in `low..high`: an account with code whose balance the transaction's code
    /// did not observe (see `balance_observer`) is read this way — `0..2^200` unless the code
    /// sent value from it, which bounds it by revm's checks that it could (or could not) pay — so
    /// that earlier transactions crediting it (WETH deposits) are no conflict.
    BalanceIn {
        /// The lowest balance with the same outcome.
        low: U256,
        /// Above the highest balance with the same outcome.
        high: U256,
    },
    /// A nonce.
    Nonce(u64),
    /// A code hash.
    CodeHash(B256),
    /// A storage value (zero after a storage reset).
    Storage(U256),
}

/// Everything one incarnation read, in read order.
pub type ReadSet = Vec<(MemoryLocation, ReadValue)>;

/// Everything one incarnation wrote.
pub type WriteSet = Vec<(MemoryLocation, MemoryValue)>;
