//! Times the planner alone (`ExecutorConfig::strategy_for`: the pass over the transaction list
//! the executor makes before any thread starts) on blocks: medians of REPEAT runs each.
//! `cargo run --release -p parevm-cli --example plan_time -- [THREADS] [REPEAT] TARGET...`
//! (a mainnet block directory, or a synthetic workload `@NAME[:GAS]`).
#![allow(missing_docs)]

mod common;

use std::time::Instant;

use common::{config, load_target, median};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().map_or(2, |t| t.parse().expect("threads"));
    let repeat: usize = args.next().map_or(50, |r| r.parse().expect("repeat"));
    let config = config(threads, parevm::Strategy::Auto);
    for target in args {
        let (chain, block, storage) = load_target(&target);
        let mut times = Vec::with_capacity(repeat);
        let mut strategy = None;
        for _ in 0..repeat {
            let start = Instant::now();
            strategy = Some(config.strategy_for(&chain, &block, &storage));
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let txs = block.body.transactions.len();
        let ms = median(times);
        println!(
            "{target:<32} {txs:>6} txs  plan {ms:8.3} ms  {:6.1} ns/tx  {strategy:?}",
            ms * 1e6 / txs as f64
        );
    }
}
