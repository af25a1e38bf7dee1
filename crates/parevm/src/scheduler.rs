//! The collaborative scheduler of Block-STM: hands out execution and validation tasks in
//! transaction order, tracks each transaction's status and incarnation, and parks transactions
//! that read an ESTIMATE until the transaction they depend on finishes executing.

use std::sync::atomic::Ordering;

use crossbeam_utils::CachePadded;

use crate::{
    sync::{AtomicBool, AtomicUsize, Condvar, Mutex, PARK_TIMEOUT, SPIN_ROUNDS, spin_loop},
    types::{Incarnation, TxIdx, TxVersion},
};

/// Where a transaction is in its life.
///
/// ```text
///                  try_incarnate              finish_execution
/// ReadyToExecute(i) ───────────► Executing(i) ────────────────► Executed(i)
///        ▲                           │                               │
///        │ resume (i+1)              │ add_dependency                │ try_validation_abort
///        │                           ▼                               ▼
///        └──────────────────── Aborting(i) ◄─────────────────────────┘
///                     (set_ready_status after a failed validation: i+1)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    ReadyToExecute,
    Executing,
    Executed,
    Aborting,
}

#[derive(Debug)]
struct TxState {
    incarnation: Incarnation,
    status: Status,
}

/// A unit of work for a worker thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    /// Execute this incarnation.
    Execute(TxVersion),
    /// Validate the read set of this incarnation.
    Validate(TxVersion),
}

/// The shared scheduler of one block.
pub(crate) struct Scheduler {
    txs: usize,
    /// Next tx to try executing. Ordering: SeqCst, as in the paper's proofs, for every counter.
    execution_idx: CachePadded<AtomicUsize>,
    /// Next tx to try validating.
    validation_idx: CachePadded<AtomicUsize>,
    /// Bumped whenever an index is decreased, so `check_done` can detect a concurrent decrease.
    decrease_cnt: CachePadded<AtomicUsize>,
    /// Tasks handed out and not yet finished.
    num_active_tasks: CachePadded<AtomicUsize>,
    /// Set once every tx is executed and validated.
    done_marker: CachePadded<AtomicBool>,
    /// Per tx: status and incarnation.
    states: Vec<CachePadded<Mutex<TxState>>>,
    /// Per tx: the txs waiting for it to finish executing.
    dependents: Vec<Mutex<Vec<TxIdx>>>,
    /// Workers with nothing to do sleep here until a task may have appeared.
    idle: Mutex<()>,
    wake: Condvar,
    /// Workers in `park`. SeqCst with the indices and `done_marker`: a worker counts itself
    /// before it checks for work, and a notifier publishes work before it checks for sleepers, so
    /// one of the two always sees the other.
    sleepers: AtomicUsize,
}

impl Scheduler {
    pub(crate) fn new(txs: usize) -> Self {
        Self {
            txs,
            execution_idx: CachePadded::new(AtomicUsize::new(0)),
            validation_idx: CachePadded::new(AtomicUsize::new(0)),
            decrease_cnt: CachePadded::new(AtomicUsize::new(0)),
            num_active_tasks: CachePadded::new(AtomicUsize::new(0)),
            done_marker: CachePadded::new(AtomicBool::new(txs == 0)),
            states: (0..txs)
                .map(|_| {
                    CachePadded::new(Mutex::new(TxState {
                        incarnation: 0,
                        status: Status::ReadyToExecute,
                    }))
                })
                .collect(),
            dependents: (0..txs).map(|_| Mutex::new(Vec::new())).collect(),
            idle: Mutex::new(()),
            wake: Condvar::new(),
            sleepers: AtomicUsize::new(0),
        }
    }

    /// Runs one worker until the block is done: takes tasks from the scheduler, and hands each to
    /// `execute` or `validate`, which return the follow-up task they claimed, if any. With nothing
    /// to do, the worker busy-waits a few rounds and then parks.
    pub(crate) fn run_worker(
        &self,
        mut execute: impl FnMut(TxVersion) -> Option<Task>,
        mut validate: impl FnMut(TxVersion) -> Option<Task>,
    ) {
        let mut task: Option<Task> = None;
        let mut idle_rounds = 0u32;
        while !self.done() {
            task = match task {
                Some(Task::Execute(version)) => execute(version),
                Some(Task::Validate(version)) => validate(version),
                None => {
                    let next = self.next_task();
                    if next.is_some() {
                        idle_rounds = 0;
                    } else if idle_rounds < SPIN_ROUNDS {
                        idle_rounds += 1;
                        spin_loop();
                    } else {
                        self.park();
                    }
                    next
                }
            };
        }
    }

    /// Sleeps until another worker publishes work or the block is done, unless there may be work
    /// now. Idle workers park instead of spinning or yielding, which schedulers such as Linux's
    /// EEVDF punish.
    fn park(&self) {
        let guard = self.idle.lock();
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        if !self.done() && !self.has_unclaimed_indices() {
            drop(self.wake.wait_timeout(guard, PARK_TIMEOUT));
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes parked workers: new tasks may be available, or the block is done.
    fn notify(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.idle.lock();
            self.wake.notify_all();
        }
    }

    /// Whether every transaction is executed and validated.
    pub(crate) fn done(&self) -> bool {
        self.done_marker.load(Ordering::SeqCst)
    }

    /// Whether `tx`'s latest incarnation finished executing and has not been aborted since (its
    /// result and writes belong together).
    pub(crate) fn is_executed(&self, tx: TxIdx) -> bool {
        self.states[tx].lock().status == Status::Executed
    }

    /// Stops the block early (a worker failed, or Block-STM gives way to sequential execution):
    /// every worker returns from `run_worker` after its current task.
    pub(crate) fn halt(&self) {
        self.done_marker.store(true, Ordering::SeqCst);
        self.notify();
    }

    fn decrease_execution_idx(&self, target: TxIdx) {
        self.execution_idx.fetch_min(target, Ordering::SeqCst);
        self.decrease_cnt.fetch_add(1, Ordering::SeqCst);
        self.notify();
    }

    fn decrease_validation_idx(&self, target: TxIdx) {
        self.validation_idx.fetch_min(target, Ordering::SeqCst);
        self.decrease_cnt.fetch_add(1, Ordering::SeqCst);
        self.notify();
    }

    fn check_done(&self) {
        let observed = self.decrease_cnt.load(Ordering::SeqCst);
        if self
            .execution_idx
            .load(Ordering::SeqCst)
            .min(self.validation_idx.load(Ordering::SeqCst))
            >= self.txs
            && self.num_active_tasks.load(Ordering::SeqCst) == 0
            && observed == self.decrease_cnt.load(Ordering::SeqCst)
        {
            self.done_marker.store(true, Ordering::SeqCst);
            self.notify();
        }
    }

    fn try_incarnate(&self, tx: TxIdx) -> Option<TxVersion> {
        if tx >= self.txs {
            self.release_claim_past_the_end();
            return None;
        }
        let mut state = self.states[tx].lock();
        if state.status == Status::ReadyToExecute {
            state.status = Status::Executing;
            return Some(TxVersion {
                tx_idx: tx,
                incarnation: state.incarnation,
            });
        }
        drop(state);
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }

    fn next_version_to_execute(&self) -> Option<TxVersion> {
        if self.execution_idx.load(Ordering::SeqCst) >= self.txs {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, Ordering::SeqCst);
        let tx = self.execution_idx.fetch_add(1, Ordering::SeqCst);
        self.try_incarnate(tx)
    }

    fn next_version_to_validate(&self) -> Option<TxVersion> {
        if self.validation_idx.load(Ordering::SeqCst) >= self.txs {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, Ordering::SeqCst);
        let tx = self.validation_idx.fetch_add(1, Ordering::SeqCst);
        if tx >= self.txs {
            self.release_claim_past_the_end();
            return None;
        }
        let state = self.states[tx].lock();
        if state.status == Status::Executed {
            return Some(TxVersion {
                tx_idx: tx,
                incarnation: state.incarnation,
            });
        }
        drop(state);
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }

    /// Releases a claim whose index was past the end of the block (another worker took the last
    /// one meanwhile), then checks whether the block is done, as a worker that read the index
    /// past the end does. The claim counted as an active task: a worker that checked meanwhile
    /// did not mark the block done, and may be parked by now; without this check, both workers
    /// could park with the block finished (a deadlock under shuttle's random scheduler, where
    /// parking never times out; a stall of `PARK_TIMEOUT` on OS threads).
    fn release_claim_past_the_end(&self) {
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        self.check_done();
    }

    /// The next task, or `None` when there is nothing to do right now (or the block is done).
    pub(crate) fn next_task(&self) -> Option<Task> {
        if self.done() {
            return None;
        }
        if self.validation_idx.load(Ordering::SeqCst) < self.execution_idx.load(Ordering::SeqCst) {
            self.next_version_to_validate().map(Task::Validate)
        } else {
            self.next_version_to_execute().map(Task::Execute)
        }
    }

    /// Whether an index still points inside the block, so that `next_task` may find work
    /// without waiting for a task to finish (a `None` from it can be spurious then).
    pub(crate) fn has_unclaimed_indices(&self) -> bool {
        self.execution_idx.load(Ordering::SeqCst) < self.txs
            || self.validation_idx.load(Ordering::SeqCst) < self.txs
    }

    /// Parks `tx` until `blocking` finishes executing. Returns `false` when `blocking` already has
    /// (the caller re-executes right away).
    ///
    /// # Panics
    ///
    /// If `blocking` is not below `tx`: such a wait could never end, and the block would be
    /// declared done without `tx` (a parked transaction is no active task). The panic becomes the
    /// block's internal error.
    pub(crate) fn add_dependency(&self, tx: TxIdx, blocking: TxIdx) -> bool {
        assert!(
            blocking < tx,
            "tx {tx} would wait for tx {blocking}, not below it"
        );
        let mut dependents = self.dependents[blocking].lock();
        if self.states[blocking].lock().status == Status::Executed {
            return false;
        }
        self.states[tx].lock().status = Status::Aborting;
        dependents.push(tx);
        drop(dependents);
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        true
    }

    fn set_ready_status(&self, tx: TxIdx) {
        let mut state = self.states[tx].lock();
        debug_assert_eq!(state.status, Status::Aborting);
        state.incarnation += 1;
        state.status = Status::ReadyToExecute;
    }

    /// Records that `version` finished executing; `wrote_new_location` says whether its write set
    /// has a location the previous incarnation lacked. May hand back the validation of `version`.
    pub(crate) fn finish_execution(
        &self,
        version: TxVersion,
        wrote_new_location: bool,
    ) -> Option<Task> {
        let tx = version.tx_idx;
        self.states[tx].lock().status = Status::Executed;
        let dependents = std::mem::take(&mut *self.dependents[tx].lock());
        if let Some(min_dependent) = dependents.iter().min().copied() {
            for dependent in dependents {
                self.set_ready_status(dependent);
            }
            self.decrease_execution_idx(min_dependent);
        }
        if self.validation_idx.load(Ordering::SeqCst) > tx {
            if wrote_new_location {
                self.decrease_validation_idx(tx);
            } else {
                return Some(Task::Validate(version));
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }

    /// Claims the abort of `version` after its validation failed: `false` when another worker
    /// already aborted it (or it was re-executed).
    pub(crate) fn try_validation_abort(&self, version: TxVersion) -> bool {
        let mut state = self.states[version.tx_idx].lock();
        if state.incarnation == version.incarnation && state.status == Status::Executed {
            state.status = Status::Aborting;
            return true;
        }
        false
    }

    /// Records a finished validation. After an abort, higher txs must be re-validated and the
    /// aborted tx re-executed (possibly right away by this worker).
    pub(crate) fn finish_validation(&self, tx: TxIdx, aborted: bool) -> Option<Task> {
        if aborted {
            self.set_ready_status(tx);
            self.decrease_validation_idx(tx + 1);
            if self.execution_idx.load(Ordering::SeqCst) > tx {
                // The validation task becomes the re-execution; `try_incarnate` releases it when
                // another worker got there first.
                return self.try_incarnate(tx).map(Task::Execute);
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wait that could never end (on the transaction itself or a later one) is refused loudly
    /// instead of parking the transaction for good.
    #[test]
    #[should_panic(expected = "not below it")]
    fn a_wait_on_itself_or_a_later_transaction_is_refused() {
        Scheduler::new(3).add_dependency(1, 2);
    }
}
