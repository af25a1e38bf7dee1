//! The multi-version memory: for every memory location, the values written by each transaction's
//! latest incarnation, ordered by transaction index, so that a reader at tx `j` sees the write of
//! the highest tx below `j` — or the pre-block value, which is cached here too.
//!
//! Locations are granular ([`MemoryLocation`]: lifecycle, balance, nonce, code, each storage slot)
//! and compared by value, but they are stored per account: the four account-level histories and
//! the account's pre-block value share one map entry, so loading an account costs one lookup.
//! Each history is a small vector sorted by transaction index (most locations have zero or one
//! writer; hot ones are appended to in roughly increasing order).

use std::{
    collections::HashSet,
    hash::Hash,
    sync::atomic::{AtomicBool, Ordering},
};

use alloy_primitives::{
    Address, U256,
    map::{AddressMap, DefaultHashBuilder, Entry as MapEntry},
};
use dashmap::DashMap;
use parking_lot::Mutex;
use revm::primitives::KECCAK_EMPTY;
use smallvec::SmallVec;

use crate::{
    output::{AccountChange, AccountState, SlotChanges, StateChanges},
    storage::{AccountBasic, StorageError},
    types::{
        CodeValue, Lifecycle, MemoryLocation, MemoryValue, ReadSet, ReadValue, TxIdx, TxVersion,
        WriteKind, WriteSet, address_bucket, expected_accounts,
    },
};

/// One transaction's entry at one location.
#[derive(Debug, Clone)]
enum Entry<T> {
    /// The value written by the tx's latest incarnation.
    Data(T),
    /// The tx was aborted: its write here is likely to be repeated; readers must wait for it.
    Estimate,
}

/// The writes to one location, sorted by transaction index. One write is stored inline: most
/// locations have at most one writer, and publishing then allocates nothing.
#[derive(Debug)]
struct Versions<T>(SmallVec<[(TxIdx, Entry<T>); 1]>);

impl<T> Default for Versions<T> {
    fn default() -> Self {
        Self(SmallVec::new())
    }
}

impl<T> Versions<T> {
    fn position(&self, tx: TxIdx) -> Result<usize, usize> {
        // Writers mostly arrive in increasing order: check the end first.
        match self.0.last() {
            None => Err(0),
            Some((last, _)) if *last < tx => Err(self.0.len()),
            _ => self.0.binary_search_by_key(&tx, |(writer, _)| *writer),
        }
    }

    fn insert(&mut self, tx: TxIdx, entry: Entry<T>) {
        match self.position(tx) {
            Ok(index) => self.0[index].1 = entry,
            Err(index) => self.0.insert(index, (tx, entry)),
        }
    }

    fn remove(&mut self, tx: TxIdx) {
        if let Ok(index) = self.position(tx) {
            self.0.remove(index);
        }
    }

    fn mark_estimate(&mut self, tx: TxIdx) {
        if let Ok(index) = self.position(tx) {
            self.0[index].1 = Entry::Estimate;
        }
    }

    /// Entries of txs below `tx`, highest first.
    fn below(&self, tx: TxIdx) -> impl Iterator<Item = &(TxIdx, Entry<T>)> {
        let end = self.0.partition_point(|(writer, _)| *writer < tx);
        self.0[..end].iter().rev()
    }

    /// The latest entry below `tx`.
    fn latest(&self, tx: TxIdx) -> Result<Option<(TxIdx, &T)>, Blocked> {
        match self.below(tx).next() {
            None => Ok(None),
            Some((writer, Entry::Estimate)) => Err(Blocked(*writer)),
            Some((writer, Entry::Data(value))) => Ok(Some((*writer, value))),
        }
    }

    /// Whether a tx below `tx` wrote here (its entry may be an ESTIMATE).
    fn written_below(&self, tx: TxIdx) -> bool {
        self.0.first().is_some_and(|(writer, _)| *writer < tx)
    }

    /// `tx`'s own entry.
    fn get(&self, tx: TxIdx) -> Option<&Entry<T>> {
        self.position(tx).ok().map(|index| &self.0[index].1)
    }
}

/// What to do to a transaction's entry at a location.
#[derive(Debug, Clone, Copy)]
enum Edit {
    /// The tx's new incarnation no longer writes there.
    Remove,
    /// The tx was aborted: readers must wait for its next incarnation.
    Estimate,
}

/// A balance write: exact, or a lazy increment folded when read.
#[derive(Debug, Clone, Copy)]
enum BalanceWrite {
    Exact(U256),
    Delta(U256),
}

/// A read that must wait: the tx whose entry is an ESTIMATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blocked(pub(crate) TxIdx);

/// Why a versioned read produced no value.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ReadError {
    /// A lower transaction's write is an ESTIMATE: wait for it.
    #[error("blocked on transaction {0}")]
    Blocked(TxIdx),
    /// The pre-block state failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<Blocked> for ReadError {
    fn from(Blocked(tx): Blocked) -> Self {
        Self::Blocked(tx)
    }
}

/// Everything known about one account: its pre-block value once loaded, and the writes to its
/// account-level locations.
#[derive(Debug, Default)]
pub(crate) struct AccountVersions {
    /// `None` until loaded; then the pre-block account (`None` inside: it did not exist).
    base: Option<Option<AccountBasic>>,
    lifecycle: Versions<Lifecycle>,
    balance: Versions<BalanceWrite>,
    nonce: Versions<u64>,
    code: Versions<CodeValue>,
}

impl AccountVersions {
    fn base(&self) -> Option<AccountBasic> {
        self.base.flatten()
    }

    /// Whether a tx below `tx` wrote one of the account-level locations. Writes at or above it
    /// do not count: after Block-STM gave way, those txs run again sequentially and report their
    /// own changes.
    fn written_below(&self, tx: TxIdx) -> bool {
        self.lifecycle.written_below(tx)
            || self.balance.written_below(tx)
            || self.nonce.written_below(tx)
            || self.code.written_below(tx)
    }

    /// Whether the account exists at `tx`: its latest lifecycle event, else the pre-block state;
    /// a lazy increment since then brings it into existence (lazy writers do not write
    /// [`Lifecycle::Existing`], so that a hot recipient gets one write per transaction).
    pub(crate) fn exists(&self, tx: TxIdx) -> Result<bool, Blocked> {
        let (since, exists) = match self.lifecycle.latest(tx)? {
            Some((writer, lifecycle)) => (Some(writer), lifecycle.exists()),
            None => (None, self.base().is_some()),
        };
        if exists {
            return Ok(true);
        }
        for (writer, entry) in self.balance.below(tx) {
            if since.is_some_and(|since| *writer <= since) {
                break;
            }
            match entry {
                Entry::Estimate => return Err(Blocked(*writer)),
                Entry::Data(BalanceWrite::Delta(_)) => return Ok(true),
                Entry::Data(BalanceWrite::Exact(_)) => {}
            }
        }
        Ok(false)
    }

    /// The balance at `tx`, lazy increments folded onto the latest exact value.
    pub(crate) fn balance(&self, tx: TxIdx) -> Result<U256, Blocked> {
        let mut delta = U256::ZERO;
        for (writer, entry) in self.balance.below(tx) {
            match entry {
                Entry::Estimate => return Err(Blocked(*writer)),
                Entry::Data(BalanceWrite::Delta(increment)) => {
                    delta = delta.wrapping_add(*increment)
                }
                Entry::Data(BalanceWrite::Exact(balance)) => return Ok(balance.wrapping_add(delta)),
            }
        }
        Ok(self
            .base()
            .map(|base| base.balance)
            .unwrap_or_default()
            .wrapping_add(delta))
    }

    pub(crate) fn nonce(&self, tx: TxIdx) -> Result<u64, Blocked> {
        Ok(match self.nonce.latest(tx)? {
            Some((_, nonce)) => *nonce,
            None => self.base().map(|base| base.nonce).unwrap_or_default(),
        })
    }

    /// The code at `tx`; for pre-block code only the hash (bytes are loaded by hash).
    pub(crate) fn code(&self, tx: TxIdx) -> Result<CodeValue, Blocked> {
        Ok(match self.code.latest(tx)? {
            Some((_, code)) => code.clone(),
            None => CodeValue {
                hash: self.base().map_or(KECCAK_EMPTY, |base| base.code_hash),
                code: None,
            },
        })
    }

    /// The latest storage reset (creation or destruction) in `after..tx`: `Some(true)` when one
    /// shadows a slot written by tx `after` (`None`: the slot was never written).
    fn storage_reset_since(&self, after: Option<TxIdx>, tx: TxIdx) -> Result<bool, Blocked> {
        for (writer, entry) in self.lifecycle.below(tx) {
            if after.is_some_and(|after| *writer < after) {
                break;
            }
            match entry {
                Entry::Estimate => return Err(Blocked(*writer)),
                Entry::Data(lifecycle) if lifecycle.resets_storage() => {
                    // A reset by the slot's own writer shadows it only when it destroyed the
                    // account (a creation writes its slots after the reset).
                    let shadows = after
                        .is_none_or(|after| *writer > after || *lifecycle == Lifecycle::Destroyed);
                    if shadows {
                        return Ok(true);
                    }
                }
                Entry::Data(_) => {}
            }
        }
        Ok(false)
    }

    /// The account's change after all `txs` (storage left empty) and its latest storage reset.
    fn final_change(&self, txs: TxIdx) -> Result<(AccountChange, Option<TxIdx>), Blocked> {
        let reset = self.last_storage_reset(txs);
        let info = if self.exists(txs)? {
            let code = self.code(txs)?;
            Some(AccountState {
                balance: self.balance(txs)?,
                nonce: self.nonce(txs)?,
                code_hash: code.hash,
                // Bytes only when the block wrote code (the pre-block value carries none), and it
                // is not empty.
                code: code
                    .code
                    .map(|code| code.original_bytes())
                    .filter(|code| !code.is_empty()),
            })
        } else {
            None
        };
        let change = AccountChange {
            info,
            storage_reset: reset.is_some(),
            storage: SlotChanges::default(),
        };
        Ok((change, reset))
    }

    /// The index of the latest storage reset below `tx`.
    fn last_storage_reset(&self, tx: TxIdx) -> Option<TxIdx> {
        self.lifecycle
            .below(tx)
            .find_map(|(writer, entry)| match entry {
                Entry::Data(lifecycle) if lifecycle.resets_storage() => Some(*writer),
                _ => None,
            })
    }
}

/// One storage slot: its pre-block value once loaded, and its writes.
#[derive(Debug, Default)]
struct SlotVersions {
    base: Option<U256>,
    writes: Versions<U256>,
}

impl std::fmt::Debug for MvMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MvMemory")
            .field("accounts", &self.accounts.len())
            .field("slots", &self.slots.len())
            .field("txs", &self.last_written.len())
            .finish()
    }
}

/// A concurrent map sized for `capacity` entries, so that its shards do not rehash while workers
/// publish.
fn presized<K: Eq + Hash, V>(capacity: usize) -> DashMap<K, V, DefaultHashBuilder> {
    DashMap::with_capacity_and_hasher(capacity, DefaultHashBuilder::default())
}

/// Empties `map`, keeping its table when it already holds `capacity` entries (a new, presized one
/// otherwise).
fn clear_for<K: Eq + Hash, V>(map: &mut DashMap<K, V, DefaultHashBuilder>, capacity: usize) {
    if map.capacity() < capacity {
        *map = presized(capacity);
    } else {
        map.clear();
    }
}

/// Storage slots a block of `txs` transactions is expected to touch.
fn expected_slots(txs: usize) -> usize {
    txs + 16
}

/// The multi-version data structure of Block-STM.
pub(crate) struct MvMemory {
    accounts: DashMap<Address, AccountVersions, DefaultHashBuilder>,
    slots: DashMap<(Address, U256), SlotVersions, DefaultHashBuilder>,
    /// Set once any tx writes a storage-resetting lifecycle event; until then slot reads skip the
    /// account lookup. Monotonic within a block; a reader that missed it is caught by validation
    /// (the writer's new location re-validates every higher tx).
    any_storage_reset: AtomicBool,
    /// Per tx, the locations its latest incarnation wrote.
    last_written: Vec<Mutex<Vec<MemoryLocation>>>,
    /// Per tx, what its latest incarnation read.
    last_read: Vec<Mutex<ReadSet>>,
}

impl MvMemory {
    pub(crate) fn new(txs: usize) -> Self {
        Self {
            accounts: presized(expected_accounts(txs)),
            slots: presized(expected_slots(txs)),
            any_storage_reset: AtomicBool::new(false),
            last_written: (0..txs).map(|_| Mutex::new(Vec::new())).collect(),
            last_read: (0..txs).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// Empties the memory for a block of `txs` transactions, keeping its allocations: the maps'
    /// tables stay sized for the largest block seen, so the next block neither rehashes nor
    /// faults in fresh pages.
    pub(crate) fn reset(&mut self, txs: usize) {
        clear_for(&mut self.accounts, expected_accounts(txs));
        clear_for(&mut self.slots, expected_slots(txs));
        *self.any_storage_reset.get_mut() = false;
        for locations in &mut self.last_written {
            locations.get_mut().clear();
        }
        for reads in &mut self.last_read {
            reads.get_mut().clear();
        }
        self.last_written.resize_with(txs, Default::default);
        self.last_read.resize_with(txs, Default::default);
    }

    /// Runs `read` on the versions of `address`, loading its pre-block value first if needed.
    pub(crate) fn with_account<R>(
        &self,
        address: Address,
        load: impl FnOnce(&Address) -> Result<Option<AccountBasic>, StorageError>,
        read: impl FnOnce(&AccountVersions) -> R,
    ) -> Result<R, StorageError> {
        if let Some(account) = self.accounts.get(&address)
            && account.base.is_some()
        {
            return Ok(read(&account));
        }
        let base = load(&address)?;
        let mut account = self.accounts.entry(address).or_default();
        account.base.get_or_insert(base);
        Ok(read(&account.downgrade()))
    }

    /// The value of a storage slot at `tx` (zero after a storage reset), loading its pre-block
    /// value if needed.
    pub(crate) fn storage(
        &self,
        address: Address,
        slot: U256,
        tx: TxIdx,
        load: impl FnOnce(&Address, &U256) -> Result<U256, StorageError>,
    ) -> Result<U256, ReadError> {
        let key = (address, slot);
        let resolved = match self.slots.get(&key) {
            Some(versions) => match versions.writes.latest(tx)? {
                Some((writer, value)) => Some((Some(writer), *value)),
                None => versions.base.map(|base| (None, base)),
            },
            None => None,
        };
        let (writer, value) = match resolved {
            Some(resolved) => resolved,
            None => {
                let base = load(&address, &slot)?;
                let mut versions = self.slots.entry(key).or_default();
                let base = *versions.base.get_or_insert(base);
                match versions.writes.latest(tx)? {
                    Some((writer, value)) => (Some(writer), *value),
                    None => (None, base),
                }
            }
        };
        if self.any_storage_reset.load(Ordering::Acquire)
            && let Some(account) = self.accounts.get(&address)
            && account.storage_reset_since(writer, tx)?
        {
            return Ok(U256::ZERO);
        }
        Ok(value)
    }

    /// Publishes an incarnation's reads and writes. Returns whether it wrote a location the
    /// previous incarnation did not (then higher txs must be re-validated).
    ///
    /// The buffers stay with the caller, to reuse: `read_set` is swapped with the read set it
    /// replaces, `write_set` is emptied (its locations copied into this tx's list of written
    /// locations, whose buffer is kept).
    pub(crate) fn record(
        &self,
        version: TxVersion,
        read_set: &mut ReadSet,
        write_set: &mut WriteSet,
    ) -> bool {
        let tx = version.tx_idx;
        // New values first, then the previous incarnation's other locations removed.
        for (location, value) in write_set.iter() {
            self.write(tx, *location, Entry::Data(value.clone()));
        }
        let mut last_written = self.last_written[tx].lock();
        // Linear scans for the usual handful of locations; sets for big write sets, where
        // pairwise comparison would be quadratic.
        let wrote_new_location;
        if write_set.len().max(last_written.len()) <= 16 {
            let writes = |location: &MemoryLocation| {
                write_set.iter().any(|(written, _)| written == location)
            };
            wrote_new_location = write_set
                .iter()
                .any(|(location, _)| !last_written.contains(location));
            for location in last_written.iter().filter(|location| !writes(location)) {
                self.edit(tx, location, Edit::Remove);
            }
        } else {
            let new: HashSet<&MemoryLocation> =
                write_set.iter().map(|(location, _)| location).collect();
            let old: HashSet<&MemoryLocation> = last_written.iter().collect();
            wrote_new_location = new.iter().any(|location| !old.contains(location));
            for location in old.iter().filter(|location| !new.contains(*location)) {
                self.edit(tx, location, Edit::Remove);
            }
        }
        last_written.clear();
        last_written.extend(write_set.drain(..).map(|(location, _)| location));
        drop(last_written);
        std::mem::swap(&mut *self.last_read[tx].lock(), read_set);
        wrote_new_location
    }

    fn write(&self, tx: TxIdx, location: MemoryLocation, entry: Entry<MemoryValue>) {
        if let MemoryLocation::Storage(address, slot) = location {
            let value = match entry {
                Entry::Data(MemoryValue::Storage(value)) => Entry::Data(value),
                _ => Entry::Estimate,
            };
            self.slots
                .entry((address, slot))
                .or_default()
                .writes
                .insert(tx, value);
            return;
        }
        let mut account = self.accounts.entry(location.address()).or_default();
        match (location, entry) {
            (MemoryLocation::Lifecycle(_), Entry::Data(MemoryValue::Lifecycle(lifecycle))) => {
                if lifecycle.resets_storage() {
                    self.any_storage_reset.store(true, Ordering::Release);
                }
                account.lifecycle.insert(tx, Entry::Data(lifecycle));
            }
            (MemoryLocation::Balance(_), Entry::Data(MemoryValue::Balance(balance))) => {
                account
                    .balance
                    .insert(tx, Entry::Data(BalanceWrite::Exact(balance)));
            }
            (MemoryLocation::Balance(_), Entry::Data(MemoryValue::BalanceDelta(delta))) => {
                account
                    .balance
                    .insert(tx, Entry::Data(BalanceWrite::Delta(delta)));
            }
            (MemoryLocation::Nonce(_), Entry::Data(MemoryValue::Nonce(nonce))) => {
                account.nonce.insert(tx, Entry::Data(nonce));
            }
            (MemoryLocation::Code(_), Entry::Data(MemoryValue::Code(code))) => {
                account.code.insert(tx, Entry::Data(code));
            }
            (location, entry) => {
                // A value of another kind than its location: a bug in the write set.
                debug_assert!(false, "mismatched write {location:?} {entry:?}");
            }
        }
    }

    /// Removes `tx`'s entry at `location`, or marks it as an ESTIMATE.
    fn edit(&self, tx: TxIdx, location: &MemoryLocation, edit: Edit) {
        fn apply<T>(versions: &mut Versions<T>, tx: TxIdx, edit: Edit) {
            match edit {
                Edit::Remove => versions.remove(tx),
                Edit::Estimate => versions.mark_estimate(tx),
            }
        }
        if let MemoryLocation::Storage(address, slot) = *location {
            if let Some(mut versions) = self.slots.get_mut(&(address, slot)) {
                apply(&mut versions.writes, tx, edit);
            }
            return;
        }
        if let Some(mut account) = self.accounts.get_mut(&location.address()) {
            match location {
                MemoryLocation::Lifecycle(_) => apply(&mut account.lifecycle, tx, edit),
                MemoryLocation::Balance(_) => apply(&mut account.balance, tx, edit),
                MemoryLocation::Nonce(_) => apply(&mut account.nonce, tx, edit),
                MemoryLocation::Code(_) => apply(&mut account.code, tx, edit),
                MemoryLocation::Storage(..) => {}
            }
        }
    }

    /// Marks every write of `tx`'s latest incarnation as an ESTIMATE (the tx was aborted).
    pub(crate) fn convert_writes_to_estimates(&self, tx: TxIdx) {
        for location in self.last_written[tx].lock().iter() {
            self.edit(tx, location, Edit::Estimate);
        }
    }

    /// The locations `tx`'s latest incarnation read, and those it wrote with how (for analysis).
    pub(crate) fn accesses(
        &self,
        tx: TxIdx,
    ) -> (Vec<MemoryLocation>, Vec<(MemoryLocation, WriteKind)>) {
        // A read of a balance within bounds depends on no write in practice: left out.
        let reads = self.last_read[tx]
            .lock()
            .iter()
            .filter(|(_, value)| !matches!(value, ReadValue::BalanceIn { .. }))
            .map(|(location, _)| *location)
            .collect();
        let writes = self.last_written[tx]
            .lock()
            .iter()
            .map(|location| (*location, self.write_kind(tx, location)))
            .collect();
        (reads, writes)
    }

    fn write_kind(&self, tx: TxIdx, location: &MemoryLocation) -> WriteKind {
        let Some(account) = self.accounts.get(&location.address()) else {
            return WriteKind::Exact;
        };
        match location {
            MemoryLocation::Balance(_) => match account.balance.get(tx) {
                Some(Entry::Data(BalanceWrite::Delta(_))) => WriteKind::Delta,
                _ => WriteKind::Exact,
            },
            MemoryLocation::Lifecycle(_) => match account.lifecycle.get(tx) {
                Some(Entry::Data(lifecycle)) if lifecycle.resets_storage() => {
                    WriteKind::StorageReset
                }
                _ => WriteKind::Exact,
            },
            _ => WriteKind::Exact,
        }
    }

    /// Runs `f` on the read set of `tx`'s latest incarnation.
    pub(crate) fn with_read_set<R>(&self, tx: TxIdx, f: impl FnOnce(&ReadSet) -> R) -> R {
        f(&self.last_read[tx].lock())
    }

    /// Entries in the memory (accounts and slots): what assembling the output iterates.
    pub(crate) fn entries(&self) -> usize {
        self.accounts.len() + self.slots.len()
    }

    /// The block's state changes from the final versions (after all `txs`) of the accounts in
    /// partition `part` of `parts` (see [`address_bucket`]): every account a tx below `txs` wrote
    /// (after Block-STM gave way, higher txs run again sequentially), with its
    /// final state, and every written slot's final value (slots written before the account's
    /// latest storage reset dropped). Accounts with only slot writes are included. One pass over
    /// the accounts, one over the slots, no sorting; the partitions of one block are disjoint and
    /// can be assembled on different threads.
    pub(crate) fn final_changes(
        &self,
        txs: TxIdx,
        (part, parts): (usize, usize),
        load: impl Fn(&Address) -> Result<Option<AccountBasic>, StorageError>,
    ) -> Result<StateChanges, ReadError> {
        let mine = |address: &Address| address_bucket(address, parts) == part;
        let mut changes = StateChanges::with_capacity_and_hasher(
            self.accounts.len() / parts + 1,
            Default::default(),
        );
        // The latest storage reset of each account that has one (slots written before it are gone).
        let mut resets: AddressMap<TxIdx> = AddressMap::default();
        // Accounts written without being read (lazy recipients) have no pre-block value yet: it is
        // loaded after the pass (loading stores it, which the pass's shared guards do not allow).
        let mut unloaded = Vec::new();
        for entry in self.accounts.iter() {
            if !entry.written_below(txs) || !mine(entry.key()) {
                continue;
            }
            if entry.base.is_none() {
                unloaded.push(*entry.key());
                continue;
            }
            let (change, reset) = entry.final_change(txs)?;
            if let Some(reset) = reset {
                resets.insert(*entry.key(), reset);
            }
            changes.insert(*entry.key(), change);
        }
        for address in unloaded {
            let (change, reset) =
                self.with_account(address, &load, |account| account.final_change(txs))??;
            if let Some(reset) = reset {
                resets.insert(address, reset);
            }
            changes.insert(address, change);
        }
        for item in self.slots.iter() {
            let (address, slot) = *item.key();
            if !mine(&address) {
                continue;
            }
            let Some((writer, value)) = item.writes.latest(txs)? else {
                continue;
            };
            let change = match changes.entry(address) {
                MapEntry::Occupied(entry) => entry.into_mut(),
                MapEntry::Vacant(entry) => {
                    let (change, reset) =
                        self.with_account(address, &load, |account| account.final_change(txs))??;
                    if let Some(reset) = reset {
                        resets.insert(address, reset);
                    }
                    entry.insert(change)
                }
            };
            if resets.get(&address).is_none_or(|reset| writer >= *reset) {
                change.storage.insert(slot, *value);
            }
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ReadValue;

    const ACCOUNT: Address = Address::repeat_byte(1);

    fn slot(index: u64) -> MemoryLocation {
        MemoryLocation::Storage(ACCOUNT, U256::from(index))
    }

    /// Slot `index` as tx `tx` reads it (pre-block value 7).
    fn read(mv: &MvMemory, index: u64, tx: TxIdx) -> U256 {
        mv.storage(ACCOUNT, U256::from(index), tx, |_, _| Ok(U256::from(7)))
            .expect("no estimate, no storage error")
    }

    /// `record`'s buffer contract: the caller's read set is swapped with the one it replaces,
    /// its write set emptied, and a location the previous incarnation wrote but this one does
    /// not is gone (readers see the pre-block value again).
    #[test]
    fn record_swaps_read_sets_and_replaces_written_locations() {
        let mv = MvMemory::new(2);
        let version = |incarnation| TxVersion {
            tx_idx: 0,
            incarnation,
        };
        let first_reads = vec![(slot(9), ReadValue::Storage(U256::ZERO))];
        let mut reads = first_reads.clone();
        let mut writes = vec![
            (slot(1), MemoryValue::Storage(U256::from(10))),
            (slot(2), MemoryValue::Storage(U256::from(20))),
        ];
        assert!(mv.record(version(0), &mut reads, &mut writes));
        assert!(reads.is_empty() && writes.is_empty());
        assert_eq!(
            (read(&mv, 1, 1), read(&mv, 2, 1)),
            (U256::from(10), U256::from(20))
        );

        let second_reads = vec![(slot(8), ReadValue::Storage(U256::from(3)))];
        let mut reads = second_reads.clone();
        let mut writes = vec![(slot(2), MemoryValue::Storage(U256::from(21)))];
        assert!(
            !mv.record(version(1), &mut reads, &mut writes),
            "no new location"
        );
        assert_eq!(reads, first_reads, "the replaced read set comes back");
        assert!(writes.is_empty());
        assert_eq!(
            (read(&mv, 1, 1), read(&mv, 2, 1)),
            (U256::from(7), U256::from(21))
        );
        mv.with_read_set(0, |read_set| assert_eq!(read_set, &second_reads));

        let mut writes = vec![(slot(3), MemoryValue::Storage(U256::from(30)))];
        assert!(
            mv.record(version(2), &mut Vec::new(), &mut writes),
            "a new location"
        );
        assert_eq!(
            (read(&mv, 2, 1), read(&mv, 3, 1)),
            (U256::from(7), U256::from(30))
        );
        assert_eq!(
            read(&mv, 3, 0),
            U256::from(7),
            "a tx sees only lower writers"
        );
        let written: Vec<_> = (mv.accesses(0).1.into_iter())
            .map(|(location, _)| location)
            .collect();
        assert_eq!(
            written,
            [slot(3)],
            "only the latest incarnation's locations are listed"
        );
    }

    /// After Block-STM gave way at `txs`, the output holds what the txs below wrote and nothing
    /// of what the txs from `txs` on wrote: an account or code written only by those is left to
    /// the sequential suffix (found on a 16-core machine at 4 threads: mainnet 11743952 listed an
    /// unchanged account a discarded incarnation had written).
    #[test]
    fn final_changes_leave_out_writes_from_the_given_tx_on() {
        let (early, late) = (Address::repeat_byte(2), Address::repeat_byte(3));
        let base = |_: &Address| {
            Ok(Some(AccountBasic {
                balance: U256::from(5),
                nonce: 1,
                code_hash: KECCAK_EMPTY,
            }))
        };
        let mv = MvMemory::new(3);
        // Both accounts are loaded (read), as an execution would.
        for address in [early, late] {
            mv.with_account(address, base, |account| account.balance(0))
                .unwrap()
                .unwrap();
        }
        let code = CodeValue {
            hash: alloy_primitives::keccak256([0x00]),
            code: Some(revm::bytecode::Bytecode::new_raw(vec![0x00].into())),
        };
        let writes = [
            vec![(
                MemoryLocation::Balance(early),
                MemoryValue::Balance(U256::from(9)),
            )],
            vec![
                (MemoryLocation::Code(early), MemoryValue::Code(code)),
                (
                    MemoryLocation::Balance(late),
                    MemoryValue::Balance(U256::from(8)),
                ),
            ],
            vec![(MemoryLocation::Nonce(late), MemoryValue::Nonce(4))],
        ];
        for (tx, mut writes) in writes.into_iter().enumerate() {
            let version = TxVersion {
                tx_idx: tx,
                incarnation: 0,
            };
            mv.record(version, &mut Vec::new(), &mut writes);
        }
        let changes = |txs| mv.final_changes(txs, (0, 1), base).unwrap();
        let first = changes(1);
        assert_eq!(first.len(), 1, "{first:?}");
        let info = first[&early].info.clone().unwrap();
        assert_eq!((info.balance, info.code), (U256::from(9), None));
        let all = changes(3);
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all[&early].info.as_ref().unwrap().code.is_some(), "{all:?}");
        assert_eq!(all[&late].info.as_ref().unwrap().nonce, 4);
    }
}
