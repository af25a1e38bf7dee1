//! The storage slots the pipeline's committer has written so far in a block, with their values,
//! for speculations to read instead of the pre-block state.
//!
//! A speculation reads the pre-block state, so a transaction that reads a slot an earlier one of
//! the block wrote was always rejected at commit and executed again by the committer, even when
//! its speculation started long after that write was committed (a swap on a pool swapped earlier
//! in the block). Reading the committed value instead makes such a speculation valid, unless the
//! slot is written again before its own commit: validation compares every value read with the
//! committed state, wherever it came from.
//!
//! One writer (the committer), any number of readers, no locks: an open-addressing table of
//! 64-bit keys (a hash of the slot's address and index, tagged with the block's epoch, so that
//! the entries of earlier blocks count as empty and nothing is cleared between blocks), each
//! value behind a sequence number (a seqlock) so that a reader never takes half of an update.
//! A reader that finds nothing, or meets a write in progress, reads the pre-block state, as
//! before. A hash collision can only give a wrong value, which validation rejects; a speculation
//! that read a committed value is validated without seeding the committed state with it (see
//! `pipeline::Read::CommittedStorage`).

use std::sync::atomic::Ordering;

use alloy_primitives::{Address, U256};

use crate::{
    sync::{AtomicU64, AtomicUsize},
    types::address_bucket,
};

/// Entries in the table: at most half of them are filled in an epoch (then the table starts over
/// in a new one: see [`CommittedSlots::publish`]). The 50 mainnet fixtures write 171 distinct
/// slots per block at the median, 1,310 at most (counted with a temporary print, twenty-second
/// session); the rest of the room is for bigger blocks, which publish only their hot
/// transactions' slots (`pipeline::publish_if_hot`). 768 KiB, reused from block to block.
const ENTRIES: usize = 1 << 14;

/// Address buckets of [`CommittedSlots::addresses`].
const ADDRESS_BUCKETS: usize = 1024;

/// The key bits that hold the block's epoch.
const EPOCH_BITS: u64 = 0xffff;

/// One published slot.
#[derive(Default)]
struct Entry {
    /// The slot's key with the epoch of the block that wrote it; 0 for never used.
    key: AtomicU64,
    /// Odd while the value is being written.
    sequence: AtomicU64,
    value: [AtomicU64; 4],
}

/// The committed slots of the current block (see the module documentation).
pub(crate) struct CommittedSlots {
    entries: Box<[Entry]>,
    /// The current epoch, 1 to [`EPOCH_BITS`]: a new one for each block, and a new one within a
    /// block once half the entries are filled (written by the committer only).
    epoch: AtomicU64,
    /// Entries filled in the current block (written by the committer only).
    filled: AtomicUsize,
    /// A bit per bucket of addresses (by [`address_bucket`]) set once a slot of one of them is
    /// published: a speculation reading a contract whose slots nobody wrote (a giant reading its
    /// own storage) skips the table.
    addresses: [AtomicU64; ADDRESS_BUCKETS / 64],
}

impl std::fmt::Debug for CommittedSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommittedSlots")
            .field("epoch", &self.epoch)
            .field("filled", &self.filled)
            .finish_non_exhaustive()
    }
}

impl Default for CommittedSlots {
    /// An empty table, allocated at its first block (a default one stands in for the
    /// executor's while a block runs: it must cost nothing).
    fn default() -> Self {
        Self {
            entries: Box::default(),
            epoch: AtomicU64::new(1),
            filled: AtomicUsize::new(0),
            addresses: Default::default(),
        }
    }
}

impl CommittedSlots {
    /// Empties the table for the next block: a new epoch (the table is cleared only when the
    /// epochs wrap around).
    pub(crate) fn next_block(&mut self) {
        if self.entries.is_empty() {
            self.entries = (0..ENTRIES).map(|_| Entry::default()).collect();
        }
        let epoch = self.epoch.get_mut();
        *epoch += 1;
        if *epoch > EPOCH_BITS {
            for entry in self.entries.iter_mut() {
                *entry.key.get_mut() = 0;
            }
            *epoch = 1;
        }
        *self.filled.get_mut() = 0;
        for bits in &mut self.addresses {
            *bits.get_mut() = 0;
        }
    }

    /// Publishes `value` as the committed value of `slot` of `address`. The committer's only.
    /// With half the entries filled, the table starts over in a new epoch (a reader still
    /// probing in the old one finds its entries, or misses, or a value of another slot written
    /// over one of them: validation rejects whatever is stale or wrong); at the last epoch it
    /// only updates the slots it holds, until the next block wraps the epochs around.
    pub(crate) fn publish(&self, address: &Address, slot: &U256, value: &U256) {
        let bucket = address_bucket(address, ADDRESS_BUCKETS);
        self.addresses[bucket / 64].fetch_or(1 << (bucket % 64), Ordering::Relaxed);
        let mut epoch = self.epoch.load(Ordering::Relaxed);
        // Full: start over in a new epoch, or at the last one only update what the table holds.
        let mut insert = true;
        if self.filled.load(Ordering::Relaxed) >= ENTRIES / 2 {
            if epoch == EPOCH_BITS {
                insert = false;
            } else {
                epoch += 1;
                self.epoch.store(epoch, Ordering::Release);
                self.filled.store(0, Ordering::Relaxed);
            }
        }
        let key = key_of(address, slot, epoch);
        let mut index = start_of(key);
        loop {
            let entry = &self.entries[index];
            let stored = entry.key.load(Ordering::Relaxed);
            if stored == key {
                return write(entry, value);
            }
            if stored & EPOCH_BITS != epoch {
                if !insert {
                    return;
                }
                // Free in this epoch: the value first, then the key that makes it visible.
                self.filled.fetch_add(1, Ordering::Relaxed);
                write(entry, value);
                return entry.key.store(key, Ordering::Release);
            }
            index = (index + 1) % ENTRIES;
        }
    }

    /// The committed value of `slot` of `address` if one was published (and is not being
    /// rewritten at this moment).
    pub(crate) fn get(&self, address: &Address, slot: &U256) -> Option<U256> {
        let bucket = address_bucket(address, ADDRESS_BUCKETS);
        if self.addresses[bucket / 64].load(Ordering::Relaxed) & 1 << (bucket % 64) == 0 {
            return None;
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let key = key_of(address, slot, epoch);
        let mut index = start_of(key);
        loop {
            let entry = &self.entries[index];
            let stored = entry.key.load(Ordering::Acquire);
            if stored == key {
                let before = entry.sequence.load(Ordering::Acquire);
                let limbs = [0, 1, 2, 3].map(|limb| entry.value[limb].load(Ordering::Acquire));
                let after = entry.sequence.load(Ordering::Acquire);
                return (before == after && before.is_multiple_of(2))
                    .then(|| U256::from_limbs(limbs));
            }
            if stored & EPOCH_BITS != epoch {
                return None;
            }
            index = (index + 1) % ENTRIES;
        }
    }
}

/// A slot's key in `epoch`: a hash of its address and index, the epoch in its low bits.
fn key_of(address: &Address, slot: &U256, epoch: u64) -> u64 {
    let word = |at: usize| u64::from_le_bytes(address[at..at + 8].try_into().expect("8 bytes"));
    let limbs = slot.as_limbs();
    let mut z = word(0) ^ word(8).rotate_left(21) ^ word(12).rotate_left(42);
    for (limb, multiplier) in limbs.iter().zip([
        0x9e37_79b9_7f4a_7c15_u64,
        0xc2b2_ae3d_27d4_eb4f,
        0x1656_67b1_9e37_79f9,
        0x27d4_eb2f_1656_67c5,
    ]) {
        z = (z ^ limb).wrapping_mul(multiplier).rotate_left(31);
    }
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z & !EPOCH_BITS) | epoch
}

/// Where `key`'s probe starts (from its hash bits, above the epoch).
fn start_of(key: u64) -> usize {
    (key >> 16) as usize % ENTRIES
}

/// Writes `value` into `entry` behind its sequence number (odd while writing).
fn write(entry: &Entry, value: &U256) {
    let sequence = entry.sequence.load(Ordering::Relaxed);
    entry.sequence.store(sequence + 1, Ordering::Relaxed);
    for (word, limb) in entry.value.iter().zip(value.as_limbs()) {
        word.store(*limb, Ordering::Release);
    }
    entry.sequence.store(sequence + 2, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published values are found, updated in place, and gone in the next block; a slot never
    /// published is not found.
    #[test]
    fn published_slots_are_found_until_the_next_block() {
        let mut slots = CommittedSlots::default();
        slots.next_block();
        let (a, b) = (Address::with_last_byte(1), Address::with_last_byte(2));
        slots.publish(&a, &U256::from(7), &U256::from(70));
        slots.publish(&b, &U256::from(7), &U256::from(700));
        assert_eq!(slots.get(&a, &U256::from(7)), Some(U256::from(70)));
        assert_eq!(slots.get(&b, &U256::from(7)), Some(U256::from(700)));
        assert_eq!(slots.get(&a, &U256::from(8)), None);
        slots.publish(&a, &U256::from(7), &U256::MAX);
        assert_eq!(slots.get(&a, &U256::from(7)), Some(U256::MAX));
        slots.next_block();
        assert_eq!(slots.get(&a, &U256::from(7)), None);
        slots.publish(&a, &U256::from(8), &U256::from(80));
        assert_eq!(slots.get(&a, &U256::from(8)), Some(U256::from(80)));
        assert_eq!(slots.get(&b, &U256::from(7)), None);
    }

    /// Filled to half, the table starts over in a new epoch: what it held is gone (readers
    /// read the pre-block state), the slot that did not fit is found, and so is what is
    /// published next. At the last epoch a full table takes no new slot, but still updates the
    /// slots it holds. The epochs wrap around to an emptied table.
    #[test]
    fn a_half_full_table_starts_over_and_epochs_wrap() {
        let mut slots = CommittedSlots::default();
        slots.next_block();
        let address = Address::with_last_byte(9);
        let fill = |slots: &CommittedSlots| {
            for slot in 0..ENTRIES / 2 {
                slots.publish(&address, &U256::from(slot), &U256::from(slot + 1));
            }
        };
        fill(&slots);
        assert_eq!(slots.get(&address, &U256::from(0)), Some(U256::from(1)));
        let over = U256::from(ENTRIES / 2);
        slots.publish(&address, &over, &U256::from(7));
        assert_eq!(slots.get(&address, &U256::from(0)), None);
        assert_eq!(slots.get(&address, &over), Some(U256::from(7)));
        slots.publish(&address, &U256::from(0), &U256::from(5));
        assert_eq!(slots.get(&address, &U256::from(0)), Some(U256::from(5)));
        // The last epoch, full: updates only.
        while *slots.epoch.get_mut() < EPOCH_BITS {
            slots.next_block();
        }
        fill(&slots);
        slots.publish(&address, &over, &U256::from(7));
        assert_eq!(slots.get(&address, &over), None);
        slots.publish(&address, &U256::from(0), &U256::from(5));
        assert_eq!(slots.get(&address, &U256::from(0)), Some(U256::from(5)));
        slots.next_block();
        let epoch = *slots.epoch.get_mut();
        assert_eq!(epoch, 1);
        assert_eq!(slots.get(&address, &U256::from(0)), None);
        assert!(slots.entries.iter().all(|entry| {
            let key = entry.key.load(Ordering::Relaxed);
            key == 0 || key & EPOCH_BITS != epoch
        }));
    }
}
