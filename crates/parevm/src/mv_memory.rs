//! The multi-version memory: for every [`MemoryLocation`], the values written by each transaction's
//! latest incarnation, ordered by transaction index, so that a reader at tx `j` sees the write of
//! the highest tx below `j` (or the pre-block state when there is none).

use std::collections::BTreeMap;

use alloy_primitives::{Address, U256, map::DefaultHashBuilder};
use dashmap::DashMap;
use parking_lot::Mutex;

use crate::types::{
    CodeValue, Lifecycle, MemoryLocation, MemoryValue, ReadSet, TxIdx, TxVersion, WriteSet,
};

/// One transaction's entry at one location.
#[derive(Debug, Clone)]
enum Entry {
    /// The value written by the tx's latest incarnation.
    Data(MemoryValue),
    /// The tx was aborted: its write here is likely to be repeated; readers must wait for it.
    Estimate,
}

/// A read that must wait: the tx whose entry is an ESTIMATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blocked(pub(crate) TxIdx);

/// A balance as seen by a reader: the latest exact value below it (`None`: the pre-block value)
/// plus the lazy increments written since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BalanceView {
    pub(crate) base: Option<U256>,
    pub(crate) delta: U256,
}

/// The multi-version data structure of Block-STM.
pub(crate) struct MvMemory {
    data: DashMap<MemoryLocation, BTreeMap<TxIdx, Entry>, DefaultHashBuilder>,
    /// Per tx, the locations its latest incarnation wrote.
    last_written: Vec<Mutex<Vec<MemoryLocation>>>,
    /// Per tx, what its latest incarnation read.
    last_read: Vec<Mutex<ReadSet>>,
}

impl MvMemory {
    pub(crate) fn new(txs: usize) -> Self {
        Self {
            data: DashMap::default(),
            last_written: (0..txs).map(|_| Mutex::new(Vec::new())).collect(),
            last_read: (0..txs).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// Publishes an incarnation's reads and writes. Returns whether it wrote a location the
    /// previous incarnation did not (then higher txs must be re-validated).
    pub(crate) fn record(
        &self,
        version: TxVersion,
        read_set: ReadSet,
        write_set: WriteSet,
    ) -> bool {
        let tx = version.tx_idx;
        let new_locations: Vec<MemoryLocation> =
            write_set.iter().map(|(location, _)| *location).collect();
        for (location, value) in write_set {
            self.data
                .entry(location)
                .or_default()
                .insert(tx, Entry::Data(value));
        }
        let previous = std::mem::replace(&mut *self.last_written[tx].lock(), new_locations.clone());
        let mut wrote_new_location = false;
        for location in &new_locations {
            if !previous.contains(location) {
                wrote_new_location = true;
                break;
            }
        }
        for location in previous {
            if !new_locations.contains(&location)
                && let Some(mut entries) = self.data.get_mut(&location)
            {
                entries.remove(&tx);
            }
        }
        *self.last_read[tx].lock() = read_set;
        wrote_new_location
    }

    /// Marks every write of `tx`'s latest incarnation as an ESTIMATE (the tx was aborted).
    pub(crate) fn convert_writes_to_estimates(&self, tx: TxIdx) {
        for location in self.last_written[tx].lock().iter() {
            if let Some(mut entries) = self.data.get_mut(location) {
                entries.insert(tx, Entry::Estimate);
            }
        }
    }

    /// Runs `f` on the read set of `tx`'s latest incarnation.
    pub(crate) fn with_read_set<R>(&self, tx: TxIdx, f: impl FnOnce(&ReadSet) -> R) -> R {
        f(&self.last_read[tx].lock())
    }

    /// The latest entry below `tx` at `location`: `Ok(None)` when no lower tx wrote it.
    fn latest(&self, location: &MemoryLocation, tx: TxIdx) -> Result<Option<MemoryValue>, Blocked> {
        let Some(entries) = self.data.get(location) else {
            return Ok(None);
        };
        match entries.range(..tx).next_back() {
            None => Ok(None),
            Some((writer, Entry::Estimate)) => Err(Blocked(*writer)),
            Some((_, Entry::Data(value))) => Ok(Some(value.clone())),
        }
    }

    /// The latest lifecycle event of `address` below `tx`, with the tx that wrote it.
    pub(crate) fn lifecycle_at(
        &self,
        address: Address,
        tx: TxIdx,
    ) -> Result<Option<(TxIdx, Lifecycle)>, Blocked> {
        let Some(entries) = self.data.get(&MemoryLocation::Lifecycle(address)) else {
            return Ok(None);
        };
        match entries.range(..tx).next_back() {
            None => Ok(None),
            Some((writer, Entry::Estimate)) => Err(Blocked(*writer)),
            Some((writer, Entry::Data(MemoryValue::Lifecycle(lifecycle)))) => {
                Ok(Some((*writer, *lifecycle)))
            }
            Some((_, Entry::Data(_))) => Ok(None),
        }
    }

    /// Whether a lazy balance increment of `address` was written by a tx in `after+1..tx` (all
    /// txs below `tx` when `after` is `None`): such an increment brings the account into existence.
    pub(crate) fn has_delta(
        &self,
        address: Address,
        after: Option<TxIdx>,
        tx: TxIdx,
    ) -> Result<bool, Blocked> {
        let Some(entries) = self.data.get(&MemoryLocation::Balance(address)) else {
            return Ok(false);
        };
        let start = after.map_or(0, |after| after + 1);
        for (writer, entry) in entries.range(start..tx).rev() {
            match entry {
                Entry::Estimate => return Err(Blocked(*writer)),
                Entry::Data(MemoryValue::BalanceDelta(_)) => return Ok(true),
                Entry::Data(_) => {}
            }
        }
        Ok(false)
    }

    /// The balance of `address` seen at `tx`, lazy increments folded.
    pub(crate) fn balance(&self, address: Address, tx: TxIdx) -> Result<BalanceView, Blocked> {
        let mut delta = U256::ZERO;
        let Some(entries) = self.data.get(&MemoryLocation::Balance(address)) else {
            return Ok(BalanceView { base: None, delta });
        };
        for (writer, entry) in entries.range(..tx).rev() {
            match entry {
                Entry::Estimate => return Err(Blocked(*writer)),
                Entry::Data(MemoryValue::BalanceDelta(increment)) => {
                    delta = delta.wrapping_add(*increment)
                }
                Entry::Data(MemoryValue::Balance(balance)) => {
                    return Ok(BalanceView {
                        base: Some(*balance),
                        delta,
                    });
                }
                Entry::Data(_) => {}
            }
        }
        Ok(BalanceView { base: None, delta })
    }

    /// The nonce of `address` seen at `tx`, if a lower tx wrote it.
    pub(crate) fn nonce(&self, address: Address, tx: TxIdx) -> Result<Option<u64>, Blocked> {
        Ok(match self.latest(&MemoryLocation::Nonce(address), tx)? {
            Some(MemoryValue::Nonce(nonce)) => Some(nonce),
            _ => None,
        })
    }

    /// The code of `address` seen at `tx`, if a lower tx wrote it.
    pub(crate) fn code(&self, address: Address, tx: TxIdx) -> Result<Option<CodeValue>, Blocked> {
        Ok(match self.latest(&MemoryLocation::Code(address), tx)? {
            Some(MemoryValue::Code(code)) => Some(code),
            _ => None,
        })
    }

    /// A storage slot seen at `tx`: `Some(value)` when a lower tx wrote it or reset the account's
    /// storage since (then zero), `None` for the pre-block value.
    pub(crate) fn storage(
        &self,
        address: Address,
        slot: U256,
        tx: TxIdx,
    ) -> Result<Option<U256>, Blocked> {
        let location = MemoryLocation::Storage(address, slot);
        let written = match self.data.get(&location) {
            None => None,
            Some(entries) => match entries.range(..tx).next_back() {
                None => None,
                Some((writer, Entry::Estimate)) => return Err(Blocked(*writer)),
                Some((writer, Entry::Data(MemoryValue::Storage(value)))) => Some((*writer, *value)),
                Some((_, Entry::Data(_))) => None,
            },
        };
        let since = written.map_or(0, |(writer, _)| writer);
        if let Some(entries) = self.data.get(&MemoryLocation::Lifecycle(address)) {
            // A reset by a higher tx than the slot's writer (or by the writer itself, when it
            // destroyed the account) shadows the write.
            for (writer, entry) in entries.range(since..tx).rev() {
                match entry {
                    Entry::Estimate => return Err(Blocked(*writer)),
                    Entry::Data(MemoryValue::Lifecycle(lifecycle))
                        if lifecycle.resets_storage() =>
                    {
                        let shadows = written.is_none_or(|(slot_writer, _)| {
                            *writer > slot_writer || *lifecycle == Lifecycle::Destroyed
                        });
                        if shadows {
                            return Ok(Some(U256::ZERO));
                        }
                    }
                    Entry::Data(_) => {}
                }
            }
        }
        Ok(written.map(|(_, value)| value))
    }

    /// Every address with at least one write, with its written locations.
    pub(crate) fn written_accounts(&self) -> BTreeMap<Address, Vec<MemoryLocation>> {
        let mut accounts: BTreeMap<Address, Vec<MemoryLocation>> = BTreeMap::new();
        for item in self.data.iter() {
            if !item.value().is_empty() {
                accounts
                    .entry(item.key().address())
                    .or_default()
                    .push(*item.key());
            }
        }
        accounts
    }

    /// The index of the latest storage reset of `address` (below `tx`).
    pub(crate) fn last_storage_reset(&self, address: Address, tx: TxIdx) -> Option<TxIdx> {
        let entries = self.data.get(&MemoryLocation::Lifecycle(address))?;
        entries
            .range(..tx)
            .rev()
            .find_map(|(writer, entry)| match entry {
                Entry::Data(MemoryValue::Lifecycle(lifecycle)) if lifecycle.resets_storage() => {
                    Some(*writer)
                }
                _ => None,
            })
    }

    /// The index of the latest writer of `location` below `tx`.
    pub(crate) fn last_writer(&self, location: &MemoryLocation, tx: TxIdx) -> Option<TxIdx> {
        let entries = self.data.get(location)?;
        entries.range(..tx).next_back().map(|(writer, _)| *writer)
    }
}
