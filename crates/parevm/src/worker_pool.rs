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

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

/// Where a [`ParallelExecutor`](crate::ParallelExecutor)'s worker threads run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkerPlacement {
    /// Each worker bound to its own core of those the process may run on (in order, round-robin
    /// when there are more workers than cores); the calling thread waits while they run a block.
    /// Where threads cannot be bound (outside Linux, or when binding fails), as [`Self::Free`].
    #[default]
    Pinned,
    /// Workers wherever the operating system puts them, the calling thread working beside them
    /// (one pool thread fewer). For hosts where binding threads to cores is unwelcome.
    Free,
}

/// The pool's threads and how a block's work is spread over them.
#[derive(Debug)]
pub(crate) struct WorkerPool {
    pool: rayon::ThreadPool,
    /// Whether the calling thread takes a share of the work (free placement, or a worker could
    /// not be bound).
    caller_works: bool,
    /// Set by a worker that could not be bound to its core.
    unbound: Arc<AtomicBool>,
}

impl WorkerPool {
    /// A pool for `concurrency` threads of work placed as `placement`, or `None` when one thread
    /// is enough or the threads cannot be created.
    pub(crate) fn new(concurrency: usize, placement: WorkerPlacement) -> Option<Self> {
        if concurrency < 2 {
            return None;
        }
        let pinned = placement == WorkerPlacement::Pinned && cfg!(target_os = "linux");
        let unbound = Arc::new(AtomicBool::new(false));
        let builder =
            rayon::ThreadPoolBuilder::new().thread_name(|index| format!("parevm-worker-{index}"));
        let pool = if pinned {
            let unbound = Arc::clone(&unbound);
            builder
                .num_threads(concurrency)
                .start_handler(move |index| {
                    if !bind_to_allowed_cpu(index) {
                        unbound.store(true, Ordering::Relaxed);
                    }
                })
                .build()
        } else {
            builder.num_threads(concurrency - 1).build()
        };
        Some(Self {
            pool: pool.ok()?,
            caller_works: !pinned,
            unbound,
        })
    }

    /// Runs `work(0)` .. `work(threads - 1)` at once, one per thread, and returns when all have.
    /// `threads` is at most the pool's concurrency.
    pub(crate) fn run(&self, threads: usize, work: impl Fn(usize) + Sync) {
        let work = &work;
        // A worker that could not be bound makes the pool free: the caller works beside the
        // others (the pool then has one thread more than needed, which stays idle).
        let caller_works = self.caller_works || self.unbound.load(Ordering::Relaxed);
        let first_spawned = usize::from(caller_works);
        self.pool.in_place_scope(|scope| {
            for index in first_spawned..threads {
                scope.spawn(move |_| work(index));
            }
            if caller_works {
                work(0);
            }
        });
    }
}

/// Binds the calling thread to the `index`-th (modulo their number) of the CPUs this process may
/// run on. Returns whether it did.
#[cfg(target_os = "linux")]
fn bind_to_allowed_cpu(index: usize) -> bool {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `cpu_set_t` is plain data, valid when zeroed; both calls get a pointer to one and
    // its exact size, and pid 0 names the calling thread. The CPU_* helpers index within the set
    // (`cpu` ranges over `0..CPU_SETSIZE`).
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0 {
            return false;
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &allowed))
            .collect();
        let Some(&cpu) = cpus.get(index % cpus.len().max(1)) else {
            return false;
        };
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        libc::sched_setaffinity(0, size, &one) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn bind_to_allowed_cpu(_index: usize) -> bool {
    false
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

    /// Pinned: every share runs on a pool thread bound to one CPU, none on the caller. Free: share
    /// 0 runs on the caller.
    #[cfg(target_os = "linux")]
    #[test]
    fn pinned_workers_are_bound_and_the_caller_only_waits() {
        let caller = std::thread::current().id();
        for (placement, concurrency) in [(WorkerPlacement::Pinned, 2), (WorkerPlacement::Free, 3)] {
            let pool = WorkerPool::new(concurrency, placement).expect("pool");
            let ran = Mutex::new(Vec::new());
            pool.run(concurrency, |index| {
                let on_caller = std::thread::current().id() == caller;
                ran.lock().unwrap().push((index, on_caller, allowed_cpus()));
            });
            for (index, on_caller, cpus) in ran.into_inner().unwrap() {
                match placement {
                    WorkerPlacement::Pinned => {
                        assert!(!on_caller, "share {index} ran on the caller");
                        assert_eq!(cpus, 1, "share {index} ran on an unbound thread");
                    }
                    WorkerPlacement::Free => assert_eq!(on_caller, index == 0, "share {index}"),
                }
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
            assert!(bind_to_allowed_cpu(1));
            let mut after: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut after) }, 0);
            assert_eq!(count(&after), 1);
            let cpu = (0..libc::CPU_SETSIZE as usize)
                .find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &after) })
                .unwrap();
            assert!(unsafe { libc::CPU_ISSET(cpu, &before) });
        })
        .join()
        .unwrap();
    }
}
