//! How much of two cores a block's own work gets on this host: the block executed sequentially
//! on one pinned thread, then two sequential executions of it at once on two threads pinned to
//! different cores, alternating, round after round. The capacity of a round is twice the time
//! alone over the time of the pair (2.0: the two ran as fast as one alone; 1.0: they ran one
//! after the other). Unlike the bench's `host_parallel_capacity`, an arithmetic kernel in
//! registers, this includes what the block's execution shares between cores: caches, memory
//! bandwidth, the allocator. Two copies write two states, where a parallel engine writes one:
//! a reference for speedups at two threads, not a bound.
//!
//! `cargo run --release -p parevm-cli --example pair_capacity -- [ROUNDS] TARGET...` (a mainnet
//! block directory, or a synthetic workload `@NAME[:GAS]`, 200 Mgas by default); prints, per
//! target, the medians of the time alone and of the pair's, and the quartiles of the rounds'
//! capacities.
#![allow(missing_docs)]

mod common;

use std::{
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{load_target, median};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let rounds: usize = match args.peek().and_then(|first| first.parse().ok()) {
        Some(rounds) => {
            args.next();
            rounds
        }
        None => 21,
    };
    let targets: Vec<String> = args.collect();
    assert!(!targets.is_empty(), "no target given");
    for target in targets {
        let (alone, pair, capacities) = measure(&target, rounds);
        println!(
            "{target:<45} alone {:>9.3} ms  pair {:>9.3} ms  capacity {:.2} (quartiles {:.2}-{:.2})",
            median(alone),
            median(pair),
            quartile(&capacities, 2),
            quartile(&capacities, 1),
            quartile(&capacities, 3),
        );
    }
}

/// The times alone and in pairs, and each round's capacity (after a warm-up round).
fn measure(target: &str, rounds: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (chain, block, storage) = load_target(target);
    let execute = || {
        let start = Instant::now();
        let _ = parevm::execute_sequential(&chain, &block, &storage);
        start.elapsed()
    };
    // Each thread, pinned, meets the other at a barrier before and after each run: thread 0 runs
    // every round, thread 1 every second round (the pairs). The barrier spins: a parked thread
    // woke 40-180 us late here, and would have started the pair's second run late.
    let barrier = SpinBarrier::default();
    let spans: [Mutex<Vec<Duration>>; 2] = Default::default();
    std::thread::scope(|scope| {
        for thread in 0..2 {
            let (barrier, spans, execute) = (&barrier, &spans, &execute);
            scope.spawn(move || {
                parevm::WorkerPlacement::Pinned.place_current_thread(thread);
                for round in 0..2 * (rounds + 1) {
                    barrier.wait();
                    let paired = round % 2 == 1;
                    if thread == 0 || paired {
                        spans[thread].lock().expect("a span list").push(execute());
                    }
                    barrier.wait();
                }
            });
        }
    });
    let [first, second] = spans.map(|spans| spans.into_inner().expect("a span list"));
    let millis = |duration: Duration| duration.as_secs_f64() * 1e3;
    let (mut alone, mut pair, mut capacities) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let single = millis(first[2 * round]);
        // The pair's time: the slower of the two (they start together at the barrier).
        let both = millis(first[2 * round + 1].max(second[round]));
        alone.push(single);
        pair.push(both);
        capacities.push(2.0 * single / both);
    }
    (alone, pair, capacities)
}

/// Two threads meeting, busy-waiting.
#[derive(Default)]
struct SpinBarrier {
    arrived: AtomicUsize,
}

impl SpinBarrier {
    /// Returns once both threads have called it as many times as this one.
    fn wait(&self) {
        let arrived = self.arrived.fetch_add(1, Ordering::AcqRel) + 1;
        let target = arrived.div_ceil(2) * 2;
        while self.arrived.load(Ordering::Acquire) < target {
            std::hint::spin_loop();
        }
    }
}

/// The `q`-th quartile (1-3) of `values` (nearest rank).
fn quartile(values: &[f64], q: usize) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[(sorted.len() - 1) * q / 4]
}
