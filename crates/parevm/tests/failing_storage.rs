//! A `Storage` that fails at its k-th read, for every k, on generated blocks: both executors
//! return either the correct output or the storage error — never a panic, a hang or a wrong
//! result. And one that panics at its k-th read: an internal error naming the panic, never a hang.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{random::random_block, *};
use parevm::{
    ExecutionError, InMemoryStorage, Storage, StorageError,
    alloy_primitives::{Address, B256, U256},
    revm::bytecode::Bytecode,
    storage::AccountBasic,
};

/// Fails every read from the `fail_at`-th on (1-based), counting reads across threads: with an
/// error, or, when `panics`, with a panic.
struct FailingStorage<'a> {
    inner: &'a InMemoryStorage,
    reads: AtomicUsize,
    fail_at: usize,
    panics: bool,
}

impl FailingStorage<'_> {
    fn check(&self, what: &str) -> Result<(), StorageError> {
        let read = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(
            !self.panics || read < self.fail_at,
            "injected panic at read {read}"
        );
        if read >= self.fail_at {
            return Err(StorageError::new(
                what.to_string(),
                format!("injected failure at read {read}"),
            ));
        }
        Ok(())
    }
}

impl Storage for FailingStorage<'_> {
    fn basic(&self, address: &Address) -> Result<Option<AccountBasic>, StorageError> {
        self.check("account")?;
        self.inner.basic(address)
    }
    fn code_by_hash(&self, code_hash: &B256) -> Result<Bytecode, StorageError> {
        self.check("code")?;
        self.inner.code_by_hash(code_hash)
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StorageError> {
        self.check("slot")?;
        self.inner.storage(address, slot)
    }
    fn block_hash(&self, number: u64) -> Result<B256, StorageError> {
        self.check("block hash")?;
        self.inner.block_hash(number)
    }
}

#[test]
fn failing_storage_gives_the_error_or_the_right_answer() {
    let mut runs = 0;
    let mut errors = 0;
    for seed in 0..6u64 {
        let (chain, block, storage) = random_block(seed);
        let Ok(expected) = parevm::execute_sequential(&chain, &block, &storage) else {
            continue;
        };
        let counting = FailingStorage {
            inner: &storage,
            reads: AtomicUsize::new(0),
            fail_at: usize::MAX,
            panics: false,
        };
        parevm::execute_sequential(&chain, &block, &counting).expect("no failure injected");
        let total_reads = counting.reads.load(Ordering::SeqCst);
        for fail_at in 1..=total_reads + 2 {
            let runs_of_engines = engines(&block)
                .into_iter()
                .flat_map(|strategy| [1, 2, 8].map(|threads| (Some(strategy), threads)));
            for (strategy, threads) in [(None, 0)].into_iter().chain(runs_of_engines) {
                let failing = FailingStorage {
                    inner: &storage,
                    reads: AtomicUsize::new(0),
                    fail_at,
                    panics: false,
                };
                let result = match strategy {
                    None => parevm::execute_sequential(&chain, &block, &failing),
                    Some(strategy) => {
                        executor_with(strategy, threads).execute(&chain, &block, &failing)
                    }
                };
                runs += 1;
                match result {
                    Ok(output) => assert_eq!(
                        output, expected,
                        "seed {seed}, fail at read {fail_at}, {threads} threads: wrong output"
                    ),
                    Err(ExecutionError::Storage { source, .. }) => {
                        errors += 1;
                        assert!(source.source.to_string().contains("injected failure"));
                    }
                    Err(other) => panic!(
                        "seed {seed}, fail at read {fail_at}, {threads} threads: unexpected {other}"
                    ),
                }
            }
        }
    }
    assert!(
        errors > runs / 2,
        "only {errors} of {runs} runs hit the injected failure"
    );
}

/// A storage that panics, on any thread at any point of the block (a worker speculating while
/// the committer waits for it, the committer itself): the executor returns an internal error
/// naming the panic, or the right output when the panic was not reached — never a hang (a
/// watchdog fails the test after two minutes; the runs take about a second).
#[test]
fn panicking_storage_gives_an_internal_error_not_a_hang() {
    let (finished, watchdog) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        run_panicking_storage_blocks();
        finished.send(()).ok();
    });
    match watchdog.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("an execution hangs"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("the runs failed"),
    }
}

fn run_panicking_storage_blocks() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.to_string().contains("injected panic") {
            default_hook(info);
        }
    }));
    let mut runs = 0;
    let mut internal = 0;
    for seed in 0..3u64 {
        let (chain, block, storage) = random_block(seed);
        let Ok(expected) = parevm::execute_sequential(&chain, &block, &storage) else {
            continue;
        };
        let counting = FailingStorage {
            inner: &storage,
            reads: AtomicUsize::new(0),
            fail_at: usize::MAX,
            panics: true,
        };
        parevm::execute_sequential(&chain, &block, &counting).expect("no panic injected");
        let total_reads = counting.reads.load(Ordering::SeqCst);
        for panic_at in (1..=total_reads + 2).step_by(total_reads.div_ceil(16).max(1)) {
            for strategy in engines(&block) {
                for threads in [2, 8] {
                    let panicking = FailingStorage {
                        inner: &storage,
                        reads: AtomicUsize::new(0),
                        fail_at: panic_at,
                        panics: true,
                    };
                    let result =
                        executor_with(strategy, threads).execute(&chain, &block, &panicking);
                    runs += 1;
                    let context = format!(
                        "seed {seed}, panic at read {panic_at}, {strategy:?}, {threads} threads"
                    );
                    match result {
                        Ok(output) => assert_eq!(output, expected, "{context}: wrong output"),
                        Err(ExecutionError::Internal(message)) => {
                            internal += 1;
                            assert!(message.contains("injected panic"), "{context}: {message}");
                        }
                        Err(other) => panic!("{context}: unexpected {other}"),
                    }
                }
            }
        }
    }
    assert!(
        internal > runs / 2,
        "only {internal} of {runs} runs hit the injected panic"
    );
}
