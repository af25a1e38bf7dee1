//! Runs blocks with each strategy forced — sequential, the pipeline, Block-STM — alternating in one
//! process, and prints the medians side by side with the strategy the planner picks (for
//! calibrating `plan_block`): `strategies THREADS REPEAT TARGET...`, where a target is a mainnet
//! block directory, or a synthetic workload `@NAME[:GAS]` (200 Mgas by default).
#![allow(missing_docs)]

mod common;

use std::time::Instant;

use common::{config, load_target, median};
use parevm::{ParallelExecutor, Strategy};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().map_or(2, |t| t.parse().expect("threads"));
    let repeat: usize = args.next().map_or(20, |r| r.parse().expect("repeat"));
    let executor = |strategy| ParallelExecutor::new(config(threads, strategy));
    let (auto, pipeline, block_stm) = (
        executor(Strategy::Auto),
        executor(Strategy::Pipeline),
        executor(Strategy::BlockStm),
    );
    println!(
        "{:<24} {:>5} {:>10} {:>9} {:>9} {:>9} {:>11}",
        "target", "txs", "seq ms", "pipeline", "block-stm", "auto", "auto picks"
    );
    for target in args {
        let (chain, block, storage) = load_target(&target);
        let mut times = [(); 4].map(|()| Vec::with_capacity(repeat));
        let mut picked = None;
        let mut last_stats = [None, None];
        let mut gas_used = 0;
        for _ in 0..repeat {
            let start = Instant::now();
            let output = parevm::execute_sequential(&chain, &block, &storage);
            gas_used = output.map_or(0, |output| output.gas_used);
            times[0].push(start.elapsed().as_secs_f64() * 1e3);
            for (index, executor) in [&pipeline, &block_stm, &auto].into_iter().enumerate() {
                let start = Instant::now();
                let (_, stats) = executor.execute_with_stats(&chain, &block, &storage);
                times[index + 1].push(start.elapsed().as_secs_f64() * 1e3);
                if index == 2 {
                    picked = Some(stats.strategy);
                } else {
                    last_stats[index] = Some(stats);
                }
            }
        }
        let [seq, pipeline, block_stm, auto] = times.map(median);
        let name = target.rsplit('/').next().unwrap_or(&target);
        let txs = block.body.transactions.len();
        // Per transaction: the pipeline's rejected speculations and direct executions, Block-STM's
        // executions and aborts (of the last run).
        let per_tx = |count: usize| count as f64 / txs.max(1) as f64;
        let [pipeline_stats, block_stm_stats] = last_stats.map(|stats| stats.expect("ran"));
        println!(
            "{name:<24} {txs:>5} {seq:>10.3} {:>9.3} {:>9.3} {:>9.3} {:>11?}  \
             pipe rej {:.2} left {:.2} | bstm exec {:.2} abort {:.2} wait {:.2} | gas/tx {}",
            seq / pipeline,
            seq / block_stm,
            seq / auto,
            picked.expect("ran"),
            per_tx(pipeline_stats.aborts),
            per_tx(pipeline_stats.left_to_committer),
            per_tx(block_stm_stats.executions),
            per_tx(block_stm_stats.aborts),
            per_tx(block_stm_stats.dependency_waits),
            gas_used / txs.max(1) as u64,
        );
    }
}
