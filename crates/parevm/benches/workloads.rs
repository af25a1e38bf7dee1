//! Criterion: one group per synthetic workload, `sequential` vs `parallel/{threads}`, with gas
//! throughput. `PAREVM_BENCH_GAS` sets the block size (default 100 million gas).
#![allow(missing_docs)]

use std::num::NonZeroUsize;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use parevm::{ExecutorConfig, ParallelExecutor, execute_sequential};
use parevm_workloads::synthetic::{NAMES, workload};

fn bench_workloads(c: &mut Criterion) {
    let gas: u64 = std::env::var("PAREVM_BENCH_GAS")
        .ok()
        .and_then(|gas| gas.parse().ok())
        .unwrap_or(100_000_000);
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    for name in NAMES {
        let workload = workload(name, gas, 1).expect("known workload");
        let output = execute_sequential(&workload.chain, &workload.block, &workload.storage)
            .expect("executes");
        let mut group = c.benchmark_group(*name);
        group.sample_size(10);
        group.throughput(Throughput::Elements(output.gas_used));
        group.bench_function("sequential", |b| {
            b.iter(|| {
                execute_sequential(&workload.chain, &workload.block, &workload.storage).unwrap()
            })
        });
        let mut threads = 2;
        while threads <= cores.max(2) {
            let executor = ParallelExecutor::new(ExecutorConfig {
                concurrency: NonZeroUsize::new(threads).unwrap(),
                strategy: parevm::Strategy::Auto,
            });
            group.bench_with_input(BenchmarkId::new("parallel", threads), &threads, |b, _| {
                b.iter(|| {
                    executor
                        .execute(&workload.chain, &workload.block, &workload.storage)
                        .unwrap()
                })
            });
            threads *= 2;
        }
        group.finish();
    }
}

criterion_group!(benches, bench_workloads);
criterion_main!(benches);
