//! The synchronization primitives of the [`Scheduler`](crate::scheduler::Scheduler) and of the
//! pipeline's hand-over: `parking_lot` and `std` normally, and shuttle's instrumented ones under
//! the test-only `shuttle` feature, so that the shuttle tests can explore their interleavings (a
//! shuttle build's scheduler and pipeline work only inside a shuttle test).

#[cfg(not(feature = "shuttle"))]
mod imp {
    use std::time::Duration;

    pub(crate) use parking_lot::{Mutex, MutexGuard};
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize};

    /// A condition variable whose timed wait hands the guard back.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        /// Waits for a notification or `timeout`, whichever comes first.
        pub(crate) fn wait_timeout<'a, T>(
            &self,
            mut guard: MutexGuard<'a, T>,
            timeout: Duration,
        ) -> MutexGuard<'a, T> {
            self.0.wait_for(&mut guard, timeout);
            guard
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// A hint for one round of a busy-wait.
    pub(crate) fn spin_loop() {
        std::hint::spin_loop();
    }
}

#[cfg(feature = "shuttle")]
mod imp {
    use std::{sync::PoisonError, time::Duration};

    pub(crate) use shuttle::sync::{
        MutexGuard,
        atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize},
    };

    /// shuttle's mutex behind `parking_lot`'s API (no poisoning).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(shuttle::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(guard) => Some(guard),
                Err(shuttle::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(shuttle::sync::TryLockError::WouldBlock) => None,
            }
        }

        pub(crate) fn into_inner(self) -> T {
            self.0.into_inner().unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// shuttle's condition variable. Its timed wait never times out, so a lost wake-up shows as a
    /// deadlock in the shuttle tests instead of being hidden by the timeout.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(shuttle::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        pub(crate) fn wait_timeout<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            timeout: Duration,
        ) -> MutexGuard<'a, T> {
            match self.0.wait_timeout(guard, timeout) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            }
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// A busy-wait round is a yield point for shuttle.
    pub(crate) fn spin_loop() {
        shuttle::thread::yield_now();
    }
}

pub(crate) use imp::*;

/// Idle rounds a thread busy-waits before it parks.
#[cfg(not(feature = "shuttle"))]
pub(crate) const SPIN_ROUNDS: u32 = 64;
/// Under shuttle, every round is a yield point: park soon, so that the explored interleavings
/// reach the parking paths.
#[cfg(feature = "shuttle")]
pub(crate) const SPIN_ROUNDS: u32 = 1;

/// How long the pipeline's committer busy-waits for the speculation it needs before it parks:
/// parked, it took 20-60 us to resume after the other thread rang (an event trace of mainnet
/// blocks, 2-3% of 19426587, 6137495 and 7279999), while its core, the block's, had nothing else
/// to run (`docs/benchmarks.md`, twenty-third session).
#[cfg(not(feature = "shuttle"))]
pub(crate) const COMMITTER_SPIN: std::time::Duration = std::time::Duration::from_micros(200);
/// Under shuttle: one round of [`SPIN_ROUNDS`], as before.
#[cfg(feature = "shuttle")]
pub(crate) const COMMITTER_SPIN: std::time::Duration = std::time::Duration::ZERO;

/// The longest a parked thread sleeps without a notification. Wake-ups are not lost (the shuttle
/// tests run without this timeout); it only bounds the cost of a bug there.
pub(crate) const PARK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1);
