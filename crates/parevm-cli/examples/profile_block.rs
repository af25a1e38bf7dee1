//! Repeats one mainnet block sequentially and in parallel and prints median times and counters.
//! `cargo run --release -p parevm-cli --example profile_block -- DIR [THREADS] [REPEAT]`
#![allow(missing_docs)]

use std::{num::NonZeroUsize, path::PathBuf, time::Instant};

use parevm::{ExecutorConfig, ParallelExecutor};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("block dir"));
    let threads: usize = args.next().map_or(2, |t| t.parse().unwrap());
    let repeat: usize = args.next().map_or(20, |r| r.parse().unwrap());
    let block = parevm_workloads::mainnet::load_block(&dir).expect("load");
    let chain = parevm::ChainSpec::mainnet();
    let executor = ParallelExecutor::new(ExecutorConfig {
        concurrency: NonZeroUsize::new(threads).unwrap(),
        force_parallel: true,
    });
    let (mut seq, mut par) = (Vec::new(), Vec::new());
    let mut stats = None;
    for _ in 0..repeat {
        let start = Instant::now();
        let _ = parevm::execute_sequential(&chain, &block.block, &block.storage);
        seq.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        let (_, s) = executor.execute_with_stats(&chain, &block.block, &block.storage);
        par.push(start.elapsed().as_secs_f64() * 1e3);
        stats = Some(s);
    }
    seq.sort_by(f64::total_cmp);
    par.sort_by(f64::total_cmp);
    let (s, p) = (seq[repeat / 2], par[repeat / 2]);
    println!(
        "seq {s:.3} ms  par {p:.3} ms  speedup {:.2}  {:?}",
        s / p,
        stats.unwrap()
    );
}
