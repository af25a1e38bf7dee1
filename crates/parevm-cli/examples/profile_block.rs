//! Repeats one block sequentially and in parallel (Block-STM forced) and prints median times and
//! counters: a mainnet block directory, or a synthetic workload name (`@NAME[:GAS]`, 200 Mgas by default), for
//! profilers. `cargo run --release -p parevm-cli --example profile_block -- DIR|@NAME [THREADS]
//! [REPEAT] [par|seq]` (`par`: skip the sequential runs, `seq`: the parallel ones; `PAREVM_STRATEGY=pipeline|auto|sequential|hand-over:TX|give-way:N` for another
//! strategy than Block-STM; `PROFILE_TRACE=1` also prints every run's time in order).
#![allow(missing_docs)]

mod common;

use std::time::Instant;

use common::{executor_from_env, load_target};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("block dir or @workload");
    let threads: usize = args.next().map_or(2, |t| t.parse().unwrap());
    let repeat: usize = args.next().map_or(20, |r| r.parse().unwrap());
    let mode = args.next();
    let parallel_only = mode.as_deref() == Some("par");
    let sequential_only = mode.as_deref() == Some("seq");
    let (chain, block, storage) = load_target(&target);
    let executor = executor_from_env(threads);
    let (mut seq, mut par) = (Vec::new(), Vec::new());
    let mut stats = None;
    for _ in 0..repeat {
        if !parallel_only {
            let start = Instant::now();
            let _ = parevm::execute_sequential(&chain, &block, &storage);
            seq.push(start.elapsed().as_secs_f64() * 1e3);
        }
        if sequential_only {
            continue;
        }
        let start = Instant::now();
        let (_, s) = executor.execute_with_stats(&chain, &block, &storage);
        par.push(start.elapsed().as_secs_f64() * 1e3);
        stats = Some(s);
    }
    if std::env::var_os("PROFILE_TRACE").is_some() {
        // Every run's time in order, 20 to a line (drift and phases within one process).
        for (name, times) in [("seq", &seq), ("par", &par)] {
            for (line, chunk) in times.chunks(20).enumerate() {
                let times: Vec<String> = chunk.iter().map(|ms| format!("{ms:.2}")).collect();
                println!("{name} {:>5}: {}", line * 20, times.join(" "));
            }
        }
    }
    seq.sort_by(f64::total_cmp);
    par.sort_by(f64::total_cmp);
    let (s, p) = (
        seq.get(repeat / 2).copied().unwrap_or(f64::NAN),
        par.get(repeat / 2).copied().unwrap_or(f64::NAN),
    );
    println!(
        "seq {s:.3} ms  par {p:.3} ms  speedup {:.2}  {:?}",
        s / p,
        stats
    );
    if let (Some(fastest), Some(slowest)) = (par.first(), par.last()) {
        println!(
            "par fastest {fastest:.3} ms  slowest {slowest:.3} ms; seq slowest {:.3} ms",
            seq.last().copied().unwrap_or(f64::NAN)
        );
    }
}
