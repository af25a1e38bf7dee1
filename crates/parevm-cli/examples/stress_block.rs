//! Runs one block in parallel many times and compares every output with the sequential one,
//! printing the first difference of the first mismatch, or the engine's internal error (no
//! sequential re-execution covers it): a hunt for rare interleavings.
//! `cargo run --release -p parevm-cli --example stress_block -- DIR|@NAME [THREADS] [RUNS]`
//! (`PAREVM_STRATEGY=pipeline|auto|sequential|hand-over:TX|give-way:N` for another strategy
//! than Block-STM).
#![allow(missing_docs)]

mod common;

use common::{executor_from_env, load_target};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("block dir or @workload");
    let threads: usize = args.next().map_or(4, |t| t.parse().unwrap());
    let runs: usize = args.next().map_or(1000, |r| r.parse().unwrap());
    let (chain, block, storage) = load_target(&target);
    let executor = executor_from_env(threads);
    let expected = parevm::execute_sequential(&chain, &block, &storage).expect("sequential");
    for run in 0..runs {
        let (actual, stats) = executor.execute_strict(&chain, &block, &storage);
        let actual = match actual {
            Ok(actual) => actual,
            Err(error) => {
                println!("run {run}: {error} ({stats:?})");
                std::process::exit(1);
            }
        };
        if let Some(difference) = expected.first_difference(&actual) {
            println!("run {run}: differs ({stats:?})\n{difference}");
            std::process::exit(1);
        }
    }
    println!("{runs} runs at {threads} threads: all equal to sequential");
}
