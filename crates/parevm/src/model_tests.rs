//! Model tests of the Block-STM core: the real [`Scheduler`] (with its worker loop) and
//! [`MvMemory`] driven by a mock VM whose transactions read and write abstract slots (scripted per
//! seed, with random delays), at 1 to 16 threads. Every final value and every read of every
//! transaction's final incarnation must equal a sequential run's.
//!
//! Under the `shuttle` feature the same mock blocks run on shuttle's threads instead, which
//! explores the scheduler's interleavings (see `interleavings`).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use alloy_primitives::{Address, U256};

use crate::{
    mv_memory::{Blocked, MvMemory, ReadError},
    scheduler::{Scheduler, Task},
    types::{MemoryLocation, MemoryValue, ReadValue, TxIdx, TxVersion},
};

/// The one account whose slots the mock transactions use.
const ACCOUNT: Address = Address::ZERO;

/// A scripted transaction: the slots it reads, then the slots it writes (each written value
/// depends on everything read and on the tx), slots it writes only when what it read sums to an
/// odd value (so that incarnations write different locations), and a busy-wait to vary
/// interleavings.
#[derive(Debug, Clone)]
struct MockTx {
    reads: Vec<u64>,
    writes: Vec<u64>,
    writes_if_odd: Vec<u64>,
    spin: u32,
}

impl MockTx {
    /// The slots written after reading `values`.
    fn written_slots(&self, values: &[U256]) -> Vec<u64> {
        let odd = values
            .iter()
            .fold(U256::ZERO, |sum, value| sum.wrapping_add(*value))
            .bit(0);
        let mut slots = self.writes.clone();
        if odd {
            slots.extend(
                self.writes_if_odd
                    .iter()
                    .filter(|slot| !self.writes.contains(slot)),
            );
        }
        slots
    }
}

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn block(seed: u64) -> Vec<MockTx> {
    let mut rng = SplitMix(seed);
    let slots = rng.below(30) + 1;
    (0..rng.below(40) + 1)
        .map(|_| {
            // Now and then a big write set: 20 distinct slots, beyond the 16 locations up to
            // which `MvMemory::record` compares write sets pairwise.
            let mut writes_if_odd: Vec<u64> = if rng.below(8) == 0 {
                let space = slots.max(20);
                let start = rng.below(space);
                (0..20).map(|i| (start + i) % space).collect()
            } else {
                (0..rng.below(3)).map(|_| rng.below(slots)).collect()
            };
            writes_if_odd.sort_unstable();
            writes_if_odd.dedup();
            MockTx {
                reads: (0..rng.below(4)).map(|_| rng.below(slots)).collect(),
                writes: (0..rng.below(3)).map(|_| rng.below(slots)).collect(),
                writes_if_odd,
                spin: if rng.below(4) == 0 {
                    rng.below(2_000) as u32
                } else {
                    0
                },
            }
        })
        .collect()
}

fn base(slot: u64) -> U256 {
    U256::from(slot * 1_000)
}

/// The value tx `tx` writes to `slot` after reading `values`.
fn written(tx: TxIdx, slot: u64, values: &[U256]) -> U256 {
    values
        .iter()
        .fold(U256::from(tx * 7 + slot as usize + 1), |acc, value| {
            acc.wrapping_mul(U256::from(31)).wrapping_add(*value)
        })
}

/// Sequential execution: the reads each tx observes, and the final slots.
fn sequential(txs: &[MockTx]) -> (Vec<Vec<U256>>, HashMap<u64, U256>) {
    let mut state: HashMap<u64, U256> = HashMap::new();
    let mut observed = Vec::new();
    for (tx, mock) in txs.iter().enumerate() {
        let values: Vec<U256> = mock
            .reads
            .iter()
            .map(|slot| *state.get(slot).unwrap_or(&base(*slot)))
            .collect();
        for slot in mock.written_slots(&values) {
            state.insert(slot, written(tx, slot, &values));
        }
        observed.push(values);
    }
    (observed, state)
}

fn location(slot: u64) -> MemoryLocation {
    MemoryLocation::Storage(ACCOUNT, U256::from(slot))
}

fn read(mv: &MvMemory, slot: u64, tx: TxIdx) -> Result<U256, Blocked> {
    match mv.storage(ACCOUNT, U256::from(slot), tx, |_, slot| {
        Ok(base(slot.to::<u64>()))
    }) {
        Ok(value) => Ok(value),
        Err(ReadError::Blocked(blocking)) => Err(Blocked(blocking)),
        Err(ReadError::Storage(error)) => panic!("mock storage cannot fail: {error}"),
    }
}

fn execute(
    mv: &MvMemory,
    scheduler: &Scheduler,
    txs: &[MockTx],
    version: TxVersion,
    deadline: Instant,
) -> Option<Task> {
    let tx = version.tx_idx;
    let mock = &txs[tx];
    loop {
        if Instant::now() > deadline {
            scheduler.halt();
            panic!("tx {tx} kept reading an ESTIMATE of a finished tx (hang)");
        }
        let values: Result<Vec<U256>, Blocked> =
            mock.reads.iter().map(|slot| read(mv, *slot, tx)).collect();
        for _ in 0..mock.spin {
            std::hint::spin_loop();
        }
        match values {
            Err(Blocked(blocking)) => {
                if scheduler.add_dependency(tx, blocking) {
                    return None;
                }
            }
            Ok(values) => {
                let mut read_set = mock
                    .reads
                    .iter()
                    .zip(&values)
                    .map(|(slot, value)| (location(*slot), ReadValue::Storage(*value)))
                    .collect();
                let mut write_set = mock
                    .written_slots(&values)
                    .into_iter()
                    .map(|slot| {
                        (
                            location(slot),
                            MemoryValue::Storage(written(tx, slot, &values)),
                        )
                    })
                    .collect();
                let wrote_new_location = mv.record(version, &mut read_set, &mut write_set);
                return scheduler.finish_execution(version, wrote_new_location);
            }
        }
    }
}

fn validate(mv: &MvMemory, scheduler: &Scheduler, version: TxVersion) -> Option<Task> {
    let tx = version.tx_idx;
    let valid =
        mv.with_read_set(tx, |read_set| {
            read_set.iter().all(|(location, value)| {
            let MemoryLocation::Storage(_, slot) = location else { return false };
            matches!(read(mv, slot.to::<u64>(), tx), Ok(now) if ReadValue::Storage(now) == *value)
        })
        });
    let aborted = !valid && scheduler.try_validation_abort(version);
    if aborted {
        mv.convert_writes_to_estimates(tx);
    }
    scheduler.finish_validation(tx, aborted)
}

/// Runs one worker of Block-STM over the mock block.
fn run_worker(mv: &MvMemory, scheduler: &Scheduler, txs: &[MockTx], deadline: Instant) {
    scheduler.run_worker(
        |version| execute(mv, scheduler, txs, version, deadline),
        |version| validate(mv, scheduler, version),
    );
}

/// The final reads of every tx and the final slots, once the block is done.
fn outcome(mv: &MvMemory, txs: &[MockTx]) -> (Vec<Vec<U256>>, HashMap<u64, U256>) {
    let observed = (0..txs.len())
        .map(|tx| {
            mv.with_read_set(tx, |read_set| {
                read_set
                    .iter()
                    .map(|(_, value)| match value {
                        ReadValue::Storage(value) => *value,
                        other => panic!("unexpected read {other:?}"),
                    })
                    .collect()
            })
        })
        .collect();
    // Every slot any incarnation may have written, at the end of the block.
    let state = candidate_slots(txs)
        .into_iter()
        .map(|slot| {
            (
                slot,
                read(mv, slot, txs.len()).expect("no ESTIMATE after the block"),
            )
        })
        .collect();
    (observed, state)
}

/// The sequential outcome the parallel runs must reproduce: every tx's reads, and the final
/// value of every slot some incarnation may write.
fn expected(txs: &[MockTx]) -> (Vec<Vec<U256>>, HashMap<u64, U256>) {
    let (reads, written) = sequential(txs);
    // Slots the sequential run did not write keep their pre-block value.
    let state = candidate_slots(txs)
        .into_iter()
        .map(|slot| (slot, written.get(&slot).copied().unwrap_or(base(slot))))
        .collect();
    (reads, state)
}

/// Every slot some incarnation of the block may write.
fn candidate_slots(txs: &[MockTx]) -> Vec<u64> {
    let mut slots: Vec<u64> = txs
        .iter()
        .flat_map(|mock| mock.writes.iter().chain(&mock.writes_if_odd).copied())
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots
}

/// Block-STM over the mock block on OS threads, with a watchdog that halts a hung block.
#[cfg(not(feature = "shuttle"))]
fn parallel(txs: &[MockTx], threads: usize) -> (Vec<Vec<U256>>, HashMap<u64, U256>) {
    let mv = MvMemory::new(txs.len());
    let scheduler = Scheduler::new(txs.len());
    let deadline = Instant::now() + Duration::from_secs(20);
    let stuck = std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| run_worker(&mv, &scheduler, txs, deadline));
        }
        while !scheduler.done() {
            if Instant::now() > deadline {
                scheduler.halt();
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    });
    assert!(!stuck, "the scheduler did not finish (hang)");
    outcome(&mv, txs)
}

#[cfg(not(feature = "shuttle"))]
#[test]
fn scheduler_and_memory_match_sequential_read_by_read() {
    let mut final_reads = 0usize;
    for seed in 0..2_000u64 {
        let txs = block(seed);
        let (expected_reads, expected_state) = expected(&txs);
        for threads in [1, 2, 3, 4, 8, 16] {
            if seed % 8 != 0 && threads > 4 {
                continue; // the many-thread runs are slow on 2 cores: every 8th seed
            }
            let (reads, state) = parallel(&txs, threads);
            assert_eq!(
                reads, expected_reads,
                "seed {seed}, {threads} threads: reads differ"
            );
            assert_eq!(
                state, expected_state,
                "seed {seed}, {threads} threads: final state differs"
            );
            final_reads += reads.iter().map(Vec::len).sum::<usize>();
        }
    }
    assert!(final_reads > 10_000, "the generated blocks read too little");
}

/// The mock blocks under shuttle, which runs the threads one at a time and picks which one
/// goes next at every lock, atomic and spin: each test explores many interleavings of the
/// scheduler per block. Its condition variable never times out, so a lost wake-up is a deadlock
/// here, and shuttle reports a deadlock or a run past its step bound as a failure.
#[cfg(feature = "shuttle")]
mod interleavings {
    use std::sync::Arc;

    use ::shuttle::{
        Config, MaxSteps, Runner,
        scheduler::{DfsScheduler, PctScheduler, RandomScheduler, Scheduler as Exploration},
    };

    use super::*;

    /// A small mock block: up to `max_txs` transactions, without busy-waits (shuttle decides the
    /// interleaving).
    fn small_block(seed: u64, max_txs: usize) -> Vec<MockTx> {
        let mut txs = block(seed);
        txs.truncate(max_txs);
        for tx in &mut txs {
            tx.spin = 0;
        }
        txs
    }

    /// Explores `threads` workers on the block of `seed` with `exploration`, checking every run
    /// against the sequential outcome.
    fn explore(seed: u64, max_txs: usize, threads: usize, exploration: impl Exploration + 'static) {
        let txs = Arc::new(small_block(seed, max_txs));
        let expected = Arc::new(expected(&txs));
        let mut config = Config::new();
        config.max_steps = MaxSteps::FailAfter(200_000);
        Runner::new(exploration, config).run(move || {
            let mv = Arc::new(MvMemory::new(txs.len()));
            let scheduler = Arc::new(Scheduler::new(txs.len()));
            let deadline = Instant::now() + Duration::from_secs(60);
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (mv, scheduler, txs) = (mv.clone(), scheduler.clone(), txs.clone());
                    ::shuttle::thread::spawn(move || run_worker(&mv, &scheduler, &txs, deadline))
                })
                .collect();
            for worker in workers {
                worker.join().expect("a worker panicked");
            }
            assert!(
                scheduler.done(),
                "seed {seed}: workers returned before the block was done"
            );
            assert_eq!(
                outcome(&mv, &txs),
                *expected,
                "seed {seed}, {threads} threads: outcome differs from sequential"
            );
        });
    }

    /// A recorded random schedule (shuttle's seed) under which, on 19 of these 31 blocks, both
    /// workers parked with the block finished: one of them checked for the end while the other
    /// held a claim past the end of an index, which the other then released and parked without
    /// checking again (`Scheduler::release_claim_past_the_end`). Another change to the
    /// scheduler's atomics changes the interleaving this seed gives; the random exploration
    /// below found it (about one run in twelve).
    #[test]
    fn shuttle_recorded_schedule_that_parked_both_workers() {
        for seed in (0..92).step_by(3) {
            let schedule = RandomScheduler::new_from_seed(5_931_949_883_787_351_842, 1);
            explore(seed, 8, 2, schedule);
        }
    }

    #[test]
    fn shuttle_random_interleavings_match_sequential() {
        for seed in 0..300 {
            explore(seed, 8, 2 + (seed % 3) as usize, RandomScheduler::new(400));
        }
    }

    #[test]
    fn shuttle_priority_interleavings_match_sequential() {
        for seed in 0..150 {
            explore(seed, 6, 3, PctScheduler::new(3, 40));
        }
    }

    #[test]
    fn shuttle_dfs_explores_tiny_blocks() {
        for seed in 0..40 {
            explore(seed, 3, 2, DfsScheduler::new(Some(500), false));
        }
    }
}
