//! Runs one synthetic workload with plain revm and with parevm's sequential executor, alternating,
//! and prints the median of each (for profiling the difference): `seq_vs_revm NAME GAS [RUNS]
//! [revm|seq]` (the last argument runs only that one; a NAME with a `/` is a mainnet block
//! directory, GAS then ignored). Beside them, revm keeping every
//! transaction's result (`revm+results`: the receipts' logs stay alive, as any block executor's
//! output holds them), which splits the gap into the cost of the output and the rest.
#![allow(missing_docs)]

mod common;

use std::time::Instant;

use common::{load_target, median};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "raw-transfers".into());
    let gas: u64 = args.next().map_or(20_000_000, |gas| gas.parse().unwrap());
    let runs: usize = args.next().map_or(1, |runs| runs.parse().unwrap());
    let only = args.next();
    let (chain, block, storage) = match name.contains('/') {
        true => load_target(&name),
        false => load_target(&format!("@{name}:{gas}")),
    };
    let (mut revm_ms, mut kept_ms, mut seq_ms) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        if only.as_deref() != Some("seq") {
            let start = Instant::now();
            let revm = parevm_workloads::baseline::run_revm(&chain, &block, &storage);
            revm_ms.push(start.elapsed().as_secs_f64() * 1e3);
            revm.expect("revm");
            let mut results = Vec::with_capacity(block.body.transactions.len());
            let start = Instant::now();
            let kept =
                parevm_workloads::baseline::run_revm_with(&chain, &block, &storage, |result| {
                    results.push(result)
                });
            kept_ms.push(start.elapsed().as_secs_f64() * 1e3);
            kept.expect("revm");
            drop(results);
        }
        if only.as_deref() != Some("revm") {
            let start = Instant::now();
            let seq = parevm::execute_sequential(&chain, &block, &storage);
            seq_ms.push(start.elapsed().as_secs_f64() * 1e3);
            drop(seq.unwrap());
        }
    }
    let (revm, kept, seq) = (median(revm_ms), median(kept_ms), median(seq_ms));
    println!(
        "revm {revm:.3} ms  revm+results {kept:.3} ms  seq {seq:.3} ms  seq/revm {:.3}  \
         seq/(revm+results) {:.3}",
        seq / revm,
        seq / kept
    );
}
