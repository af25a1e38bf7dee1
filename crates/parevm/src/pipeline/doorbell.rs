//! The doorbell that wakes a parked committer when the speculation it waits for is published.

use std::sync::atomic::Ordering;

use crate::sync::{
    AtomicBool, COMMITTER_SPIN, Condvar, Mutex, PARK_TIMEOUT, SPIN_ROUNDS, spin_loop,
};

/// Wakes the committer when the speculation it waits for is published.
pub(super) struct Doorbell {
    /// Whether the committer is parked (or about to). SeqCst with the slots' status: the
    /// committer marks itself parked before it checks the slot, a thread publishes a speculation
    /// before it checks for the committer, so one of the two always sees the other.
    parked: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Doorbell {
    pub(super) fn new() -> Self {
        Self {
            parked: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// Busy-waits for `ready` up to [`COMMITTER_SPIN`], then parks until it holds.
    pub(super) fn wait_until(&self, ready: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        loop {
            for _ in 0..SPIN_ROUNDS {
                if ready() {
                    return;
                }
                spin_loop();
            }
            if start.elapsed() >= COMMITTER_SPIN {
                break;
            }
        }
        while !ready() {
            let guard = self.lock.lock();
            self.parked.store(true, Ordering::SeqCst);
            if !ready() {
                drop(self.wake.wait_timeout(guard, PARK_TIMEOUT));
            }
            self.parked.store(false, Ordering::SeqCst);
        }
    }

    /// Wakes the committer if it is parked.
    pub(super) fn ring(&self) {
        if self.parked.load(Ordering::SeqCst) {
            let _guard = self.lock.lock();
            self.wake.notify_all();
        }
    }
}
