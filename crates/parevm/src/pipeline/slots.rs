//! Each transaction's place in the pipeline, kept from block to block: its status and its
//! speculation once made ([`Slots`]).

use crate::{
    committed_slots::CommittedSlots,
    sync::{AtomicU8, Mutex},
};

use super::{READY, UNCLAIMED, speculation::Speculation};

/// Each transaction's place in the pipeline, kept from block to block (emptied, not freed): its
/// status, and its speculation once made. A speculation is inline (over a kilobyte), so a
/// block's speculations span a kilobyte and more per transaction, and fresh ones were fresh
/// pages: on a gigagas block of plain transfers, the kernel zeroing the 60 MB of its 47,619
/// slots took a seventh of the parallel run (`perf`). The statuses lie apart, one byte each:
/// the committer walks them in order, and they are reset for the next block in one sweep.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    pub(super) statuses: Vec<AtomicU8>,
    pub(super) speculations: Vec<Mutex<Option<Speculation>>>,
    /// The slots committed so far, for speculations to read (see
    /// [`PUBLISH_MAX_TXS`](super::PUBLISH_MAX_TXS)).
    pub(super) committed: CommittedSlots,
}

impl Slots {
    /// Exactly `txs` slots, every one unclaimed and empty (as [`Slots::empty`] left them).
    pub(super) fn prepare(&mut self, txs: usize) -> &Self {
        self.statuses.truncate(txs);
        self.statuses.resize_with(txs, || AtomicU8::new(UNCLAIMED));
        self.speculations.truncate(txs);
        self.speculations.resize_with(txs, || Mutex::new(None));
        self.committed.next_block();
        self
    }

    /// The slots' number.
    pub(super) fn len(&self) -> usize {
        self.statuses.len()
    }

    /// Drops what a block left in its slots (speculations still `READY`: past a failed
    /// transaction or the hand-over; the committer dropped the others) and marks them unclaimed
    /// for the next block.
    pub(crate) fn empty(&mut self) {
        for (status, speculation) in self.statuses.iter_mut().zip(&mut self.speculations) {
            if *status.get_mut() == READY {
                *speculation.get_mut() = None;
            }
            *status.get_mut() = UNCLAIMED;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::pipeline::{COMMITTED, READY, TAKEN, speculation::tests::speculation};

    /// Emptied, every slot is unclaimed and holds no speculation, whatever the block left in it
    /// (a speculation past a failed transaction is still `READY`), and the slots are reused at
    /// another length.
    #[test]
    fn emptied_slots_are_unclaimed_and_hold_nothing() {
        let mut slots = Slots::default();
        slots.prepare(4);
        let left = [UNCLAIMED, TAKEN, COMMITTED, READY];
        for (tx, status) in left.into_iter().enumerate() {
            slots.statuses[tx].store(status, Ordering::Relaxed);
        }
        *slots.speculations[3].lock() = Some(speculation());
        slots.empty();
        for tx in 0..4 {
            assert_eq!(
                slots.statuses[tx].load(Ordering::Relaxed),
                UNCLAIMED,
                "{tx}"
            );
            assert!(slots.speculations[tx].lock().is_none(), "{tx}");
        }
        assert_eq!(slots.prepare(6).len(), 6);
        assert_eq!(slots.prepare(2).len(), 2);
    }
}
