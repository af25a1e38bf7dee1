//! [`WorkerPool`]: the executor's persistent worker threads, and where they run
//! ([`WorkerPlacement`]).
//!
//! Measured on this project's 2-vCPU virtual machine (docs/benchmarks.md, "Ninth session"): a
//! worker woken after an idle spell is queued on the core of the thread that woke it, so a caller
//! that goes on working keeps it off the idle core until the kernel rebalances — a block run 20 ms
//! after the previous one (as a node meets every block) ran its first milliseconds on one thread.
//! A caller that only waits, with unbound workers, was worse still in `bench` (mainnet 1.14x ->
//! 0.93x; the two workers, we suppose, often shared one core). Workers bound each to its own
//! core, with the caller waiting, started within about 0.1 ms after 20 ms idle (a toy: 43 and
//! 87 us).
//!
//! On another host of the same kind (eighteenth session) a woken bound worker still took
//! 25-110 us to start while the caller waited: a 0.16-ms block ran at 0.85x sequential. The
//! caller now works share 0 from the start, on whatever core it is on, and wakes only the
//! workers bound to the other cores (the one bound to its own core sits the block out): what the
//! wake-up costs is no longer lost (mainnet geometric mean 1.18 -> 1.23). Waking the workers
//! while the block is still being planned (twenty-sixth session) cut the time from a job's
//! posting to a worker's share starting from 25-60 us to 1-9 us, and the blocks ran no faster
//! (mainnet, run by run in one process: geometric mean new/old 0.997-1.004); not kept.

use std::{
    any::Any,
    panic::{AssertUnwindSafe, catch_unwind, resume_unwind},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
};

use parking_lot::{Condvar, Mutex};

use crate::sync::SPIN_ROUNDS;

/// Where a [`ParallelExecutor`](crate::ParallelExecutor)'s worker threads run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkerPlacement {
    /// Each worker bound to its own core of those the process may run on (in order, round-robin
    /// when there are more workers than cores); the calling thread works a share of each block
    /// on the core it is on, whose worker sits that block out. Where threads cannot be bound
    /// (outside Linux, or when binding fails), as [`Self::Free`].
    #[default]
    Pinned,
    /// Workers wherever the operating system puts them, the calling thread working beside them
    /// (one pool thread fewer). For hosts where binding threads to cores is unwelcome.
    Free,
}

impl WorkerPlacement {
    /// Places the calling thread as this placement places pool worker `index`: [`Self::Pinned`]
    /// binds it to the `index`-th (modulo their number) of the CPUs the process may run on;
    /// [`Self::Free`] leaves it. Returns whether the thread was bound (false where threads
    /// cannot be bound). For threads that run beside the executor's, e.g. a benchmark's probe of
    /// the host.
    pub fn place_current_thread(self, index: usize) -> bool {
        self == Self::Pinned && bind_to_allowed_cpu(index).is_some()
    }
}

/// The pool's threads and how a block's work is spread over them: the caller always takes share
/// 0 and starts it at once; workers take the others. Pinned, the worker bound to the caller's
/// current core sits the block out, so the caller and the workers it wakes run on different
/// cores. Idle workers busy-wait [`SPIN_ROUNDS`] rounds after a block, then park on a condition
/// variable; nothing yields in a loop (rayon's idle workers, used before, yield 32 times before
/// they sleep, and the thread that ran a share was arbitrary).
pub(crate) struct WorkerPool {
    shared: Arc<PoolShared>,
    workers: Vec<JoinHandle<()>>,
    /// The CPU each worker is bound to, by worker (empty when they are not bound).
    cpus: Vec<usize>,
    /// One block at a time: a concurrent call waits for the running one.
    running: Mutex<()>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("workers", &self.workers.len())
            .field("cpus", &self.cpus)
            .finish()
    }
}

/// What the caller and the workers share.
struct PoolShared {
    state: Mutex<PoolState>,
    /// Workers wait here for a job (or the pool's end).
    posted: Condvar,
    /// The caller waits here for the workers' shares to end.
    done: Condvar,
    /// The latest job's generation, for idle workers to busy-wait on before they park.
    generation: AtomicU64,
}

struct PoolState {
    /// Bumped for every job posted.
    generation: u64,
    /// The latest job (valid while `running > 0`).
    job: Option<Job>,
    /// The workers' shares of the latest job that have not finished.
    running: usize,
    /// The first panic of a worker's share, resumed on the caller.
    panic: Option<Box<dyn Any + Send>>,
    /// Set when the pool is dropped: workers leave.
    shutdown: bool,
}

/// A block's work, handed to the workers.
#[derive(Clone, Copy)]
struct Job {
    /// The work, its lifetime erased: [`WorkerPool::run`] does not return (nor unwind) before
    /// every worker's share has finished with it.
    work: *const (dyn Fn(usize) + Sync + 'static),
    /// Shares `0..threads` run.
    threads: usize,
    /// The worker that sits this job out: the one bound to the caller's core.
    idle_worker: Option<usize>,
}

impl Job {
    /// The share worker `worker` runs: the caller takes share 0, the workers the next ones in
    /// their order, skipping the idle one. `None`: none.
    fn share_of(&self, worker: usize) -> Option<usize> {
        let share = match self.idle_worker {
            Some(idle) if worker == idle => return None,
            Some(idle) if worker > idle => worker,
            _ => worker + 1,
        };
        (share < self.threads).then_some(share)
    }
}

// SAFETY: `work` points to a `Sync` closure, which may be called from any thread; it is only
// dereferenced while `WorkerPool::run` keeps it alive (see `Job::work`).
unsafe impl Send for Job {}

impl WorkerPool {
    /// A pool for `concurrency` threads of work placed as `placement`, or `None` when one thread
    /// is enough or the threads cannot be created.
    pub(crate) fn new(concurrency: usize, placement: WorkerPlacement) -> Option<Self> {
        if concurrency < 2 {
            return None;
        }
        let pinned = placement == WorkerPlacement::Pinned && cfg!(target_os = "linux");
        let shared = Arc::new(PoolShared {
            state: Mutex::new(PoolState {
                generation: 0,
                job: None,
                running: 0,
                panic: None,
                shutdown: false,
            }),
            posted: Condvar::new(),
            done: Condvar::new(),
            generation: AtomicU64::new(0),
        });
        // Pinned: `concurrency` workers, one per core, the one on the caller's core idle in each
        // block. Free: `concurrency - 1` workers.
        let count = if pinned { concurrency } else { concurrency - 1 };
        let (bound_tx, bound_rx) = mpsc::channel();
        let mut pool = Self {
            shared: Arc::clone(&shared),
            workers: Vec::with_capacity(count),
            cpus: Vec::new(),
            running: Mutex::new(()),
        };
        for index in 0..count {
            let (shared, bound_tx) = (Arc::clone(&shared), bound_tx.clone());
            let worker = std::thread::Builder::new()
                .name(format!("parevm-worker-{index}"))
                .spawn(move || {
                    let cpu = if pinned {
                        bind_to_allowed_cpu(index)
                    } else {
                        None
                    };
                    let _ = bound_tx.send((index, cpu));
                    drop(bound_tx);
                    work_shares(&shared, index);
                });
            match worker {
                Ok(worker) => pool.workers.push(worker),
                Err(_) => return None, // Dropping the pool stops the workers started.
            }
        }
        drop(bound_tx);
        if pinned {
            let mut cpus = vec![None; count];
            for (index, cpu) in bound_rx.iter().take(count) {
                cpus[index] = cpu;
            }
            let Some(cpus) = cpus.into_iter().collect::<Option<Vec<usize>>>() else {
                // A worker could not be bound: the pool is rebuilt free.
                drop(pool);
                return Self::new(concurrency, WorkerPlacement::Free);
            };
            pool.cpus = cpus;
        }
        Some(pool)
    }

    /// Runs `work(0)` .. `work(threads - 1)` at once, one per thread, and returns when all have;
    /// a panic in any share is resumed here once every share has ended. `threads` is at most the
    /// pool's concurrency.
    pub(crate) fn run(&self, threads: usize, work: impl Fn(usize) + Sync) {
        let _one_block = self.running.lock();
        let work: &(dyn Fn(usize) + Sync) = &work;
        let on_workers = threads.saturating_sub(1);
        if on_workers > 0 {
            let idle_worker =
                current_cpu().and_then(|cpu| self.cpus.iter().position(|&bound| bound == cpu));
            // SAFETY: only the lifetime is erased; this function waits below, before returning
            // or unwinding (the caller's share is run under `catch_unwind`), until every worker
            // running a share of this job has finished calling it.
            let work = unsafe {
                std::mem::transmute::<
                    *const (dyn Fn(usize) + Sync + '_),
                    *const (dyn Fn(usize) + Sync + 'static),
                >(work)
            };
            let mut state = self.shared.state.lock();
            state.generation += 1;
            state.job = Some(Job {
                work,
                threads,
                idle_worker,
            });
            state.running = on_workers;
            self.shared
                .generation
                .store(state.generation, Ordering::Release);
            self.shared.posted.notify_all();
        }
        let caller = (threads > 0).then(|| catch_unwind(AssertUnwindSafe(|| work(0))));
        let worker_panic = (on_workers > 0).then(|| {
            let mut state = self.shared.state.lock();
            while state.running > 0 {
                self.shared.done.wait(&mut state);
            }
            state.job = None;
            state.panic.take()
        });
        if let Some(Err(panic)) = caller {
            resume_unwind(panic);
        }
        if let Some(Some(panic)) = worker_panic {
            resume_unwind(panic);
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.shared.state.lock().shutdown = true;
        self.shared.posted.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// A worker's life: waits for each job (busy-waiting a few rounds, then parked) and runs its
/// share of it ([`Job::share_of`]), until the pool is dropped.
fn work_shares(shared: &PoolShared, worker: usize) {
    let mut seen = 0;
    loop {
        for _ in 0..SPIN_ROUNDS {
            if shared.generation.load(Ordering::Acquire) != seen {
                break;
            }
            std::hint::spin_loop();
        }
        let job = {
            let mut state = shared.state.lock();
            while state.generation == seen && !state.shutdown {
                shared.posted.wait(&mut state);
            }
            if state.shutdown {
                return;
            }
            seen = state.generation;
            state.job
        };
        // A worker past the job's shares skips it (it may even skip a later job's generation:
        // it takes part in none of them, and the job's caller does not wait for it).
        let Some((job, share)) = job.and_then(|job| Some((job, job.share_of(worker)?))) else {
            continue;
        };
        // SAFETY: the job is the latest and this worker's share of it has not finished, so its
        // caller is still waiting in `WorkerPool::run` and the closure is alive.
        let work = unsafe { &*job.work };
        let outcome = catch_unwind(AssertUnwindSafe(|| work(share)));
        let mut state = shared.state.lock();
        if let Err(panic) = outcome {
            state.panic.get_or_insert(panic);
        }
        state.running -= 1;
        if state.running == 0 {
            shared.done.notify_all();
        }
    }
}

/// Binds the calling thread to the `index`-th (modulo their number) of the CPUs this process may
/// run on. Returns the CPU, or `None` where it could not.
#[cfg(target_os = "linux")]
fn bind_to_allowed_cpu(index: usize) -> Option<usize> {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `cpu_set_t` is plain data, valid when zeroed; both calls get a pointer to one and
    // its exact size, and pid 0 names the calling thread. The CPU_* helpers index within the set
    // (`cpu` ranges over `0..CPU_SETSIZE`).
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0 {
            return None;
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &allowed))
            .collect();
        let &cpu = cpus.get(index % cpus.len().max(1))?;
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        (libc::sched_setaffinity(0, size, &one) == 0).then_some(cpu)
    }
}

/// The CPU the calling thread is running on (it may move at any time after).
#[cfg(target_os = "linux")]
fn current_cpu() -> Option<usize> {
    // SAFETY: no arguments; it returns -1 on failure.
    usize::try_from(unsafe { libc::sched_getcpu() }).ok()
}

#[cfg(not(target_os = "linux"))]
fn bind_to_allowed_cpu(_index: usize) -> Option<usize> {
    None
}

#[cfg(not(target_os = "linux"))]
fn current_cpu() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn every_index_runs_once_whatever_the_placement() {
        for placement in [WorkerPlacement::Pinned, WorkerPlacement::Free] {
            for concurrency in [2, 3, 8] {
                let pool = WorkerPool::new(concurrency, placement).expect("pool");
                for threads in 1..=concurrency {
                    let ran = Mutex::new(Vec::new());
                    pool.run(threads, |index| ran.lock().unwrap().push(index));
                    let mut ran = ran.into_inner().unwrap();
                    ran.sort_unstable();
                    assert_eq!(ran, (0..threads).collect::<Vec<_>>(), "{placement:?}");
                }
            }
        }
        assert!(WorkerPool::new(1, WorkerPlacement::Pinned).is_none());
    }

    /// A panicking share is resumed on the caller after every other share ended, and the pool
    /// keeps working.
    #[test]
    fn a_panicking_share_reaches_the_caller_and_the_pool_goes_on() {
        for placement in [WorkerPlacement::Pinned, WorkerPlacement::Free] {
            let pool = WorkerPool::new(3, placement).expect("pool");
            for panicking in 0..3 {
                let ran = Mutex::new(Vec::new());
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    pool.run(3, |index| {
                        if index == panicking {
                            panic!("share {index}");
                        }
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        ran.lock().unwrap().push(index);
                    })
                }));
                let message = *outcome.expect_err("panic").downcast::<String>().unwrap();
                assert_eq!(message, format!("share {panicking}"));
                // The other shares had finished (they sleep first) when the panic came back.
                assert_eq!(ran.into_inner().unwrap().len(), 2, "{placement:?}");
                let count = std::sync::atomic::AtomicUsize::new(0);
                pool.run(3, |_| {
                    count.fetch_add(1, Ordering::Relaxed);
                });
                assert_eq!(count.into_inner(), 3);
            }
        }
    }

    /// Blocks run from several threads at once on one pool take turns: each runs every share
    /// once, on its own data.
    #[test]
    fn concurrent_runs_take_turns() {
        let pool = WorkerPool::new(2, WorkerPlacement::Pinned).expect("pool");
        std::thread::scope(|scope| {
            for caller in 0..4 {
                let pool = &pool;
                scope.spawn(move || {
                    for round in 0..200 {
                        let sum = std::sync::atomic::AtomicUsize::new(0);
                        pool.run(2, |index| {
                            sum.fetch_add(caller * 1000 + round + index, Ordering::Relaxed);
                        });
                        assert_eq!(sum.into_inner(), 2 * (caller * 1000 + round) + 1);
                    }
                });
            }
        });
    }

    /// Share 0 runs on the caller, the others on pool threads: pinned, each bound to one CPU,
    /// never the caller's (with two CPUs or more), whichever CPU the caller is on.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_caller_takes_share_0_and_pinned_workers_run_beside_it() {
        let distinct = allowed_cpus() >= 2;
        for (placement, concurrency) in [(WorkerPlacement::Pinned, 2), (WorkerPlacement::Free, 3)] {
            let pool = WorkerPool::new(concurrency, placement).expect("pool");
            for caller_index in 0..2 {
                std::thread::scope(|scope| {
                    scope.spawn(|| {
                        let caller = std::thread::current().id();
                        assert!(WorkerPlacement::Pinned.place_current_thread(caller_index));
                        let caller_cpu = current_cpu().expect("a CPU");
                        let ran = Mutex::new(Vec::new());
                        for _ in 0..5 {
                            pool.run(concurrency, |index| {
                                let thread = std::thread::current().id();
                                let cpu = current_cpu().expect("a CPU");
                                ran.lock()
                                    .unwrap()
                                    .push((index, thread, cpu, allowed_cpus()));
                            });
                        }
                        for (index, thread, cpu, cpus) in ran.into_inner().unwrap() {
                            assert_eq!(thread == caller, index == 0, "share {index}");
                            if placement == WorkerPlacement::Pinned && index > 0 {
                                assert_eq!(cpus, 1, "share {index} ran on an unbound thread");
                                if distinct {
                                    assert_ne!(cpu, caller_cpu, "share {index} beside the caller");
                                }
                            }
                        }
                    });
                });
            }
        }
    }

    /// How many CPUs the calling thread may run on.
    #[cfg(target_os = "linux")]
    fn allowed_cpus() -> usize {
        // SAFETY: as in `bind_to_allowed_cpu`.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(
                libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
                0
            );
            libc::CPU_COUNT(&set) as usize
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_bound_thread_runs_on_one_allowed_cpu() {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: as in `bind_to_allowed_cpu`.
        let count = |set: &libc::cpu_set_t| unsafe {
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&cpu| libc::CPU_ISSET(cpu, set))
                .count()
        };
        std::thread::spawn(move || {
            // SAFETY: as in `bind_to_allowed_cpu`.
            let mut before: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut before) }, 0);
            let bound = bind_to_allowed_cpu(1).expect("bound");
            let mut after: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut after) }, 0);
            assert_eq!(count(&after), 1);
            let cpu = (0..libc::CPU_SETSIZE as usize)
                .find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &after) })
                .unwrap();
            assert!(unsafe { libc::CPU_ISSET(cpu, &before) });
            assert_eq!(cpu, bound);
            assert_eq!(current_cpu(), Some(cpu));
        })
        .join()
        .unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn placing_the_calling_thread_binds_it_only_when_pinned() {
        std::thread::spawn(|| {
            let before = allowed_cpus();
            assert!(!WorkerPlacement::Free.place_current_thread(0));
            assert_eq!(allowed_cpus(), before);
            assert!(WorkerPlacement::Pinned.place_current_thread(0));
            assert_eq!(allowed_cpus(), 1);
        })
        .join()
        .unwrap();
    }
}
