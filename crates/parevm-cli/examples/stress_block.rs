//! Runs one block in parallel many times and compares every output with the sequential one,
//! printing what differs on the first mismatch: a hunt for rare interleavings.
//! `cargo run --release -p parevm-cli --example stress_block -- DIR|@NAME [THREADS] [RUNS]`
//! (`PAREVM_STRATEGY=pipeline|auto|sequential|hand-over:TX|give-way:N` for another strategy
//! than Block-STM).
#![allow(missing_docs)]

mod common;

use std::num::NonZeroUsize;

use common::{load_target, strategy_from_env};

use parevm::{ExecutorConfig, ParallelExecutor};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("block dir or @workload");
    let threads: usize = args.next().map_or(4, |t| t.parse().unwrap());
    let runs: usize = args.next().map_or(1000, |r| r.parse().unwrap());
    let (chain, block, storage) = load_target(&target);
    let executor = ParallelExecutor::new(ExecutorConfig {
        concurrency: NonZeroUsize::new(threads).unwrap(),
        strategy: strategy_from_env(),
    });
    let expected = parevm::execute_sequential(&chain, &block, &storage).expect("sequential");
    for run in 0..runs {
        let (actual, stats) = executor.execute_with_stats(&chain, &block, &storage);
        let actual = actual.expect("parallel");
        if actual == expected {
            continue;
        }
        println!("run {run}: differs ({stats:?})");
        for (index, (a, e)) in actual.receipts.iter().zip(&expected.receipts).enumerate() {
            if a != e {
                println!("receipt {index}:\n  parallel   {a:?}\n  sequential {e:?}");
            }
        }
        for (address, e) in expected.sorted_state_changes() {
            match actual.state_changes.get(address) {
                Some(a) if a == e => {}
                a => println!("account {address}:\n  parallel   {a:?}\n  sequential {e:?}"),
            }
        }
        for (address, a) in &actual.state_changes {
            if !expected.state_changes.contains_key(address) {
                println!("account {address} only in parallel: {a:?}");
            }
        }
        std::process::exit(1);
    }
    println!("{runs} runs at {threads} threads: all equal to sequential");
}
