//! Criterion: the shared mainnet blocks (`$PAREVM_FIXTURES`, default `../shared/fixtures` from
//! the repository root), in block-number order, `sequential` vs `parallel/{threads}`, with gas throughput.
#![allow(missing_docs)]

use std::{num::NonZeroUsize, path::PathBuf};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use parevm::{ChainSpec, ExecutorConfig, ParallelExecutor, execute_sequential};

fn bench_mainnet(c: &mut Criterion) {
    let fixtures = std::env::var_os("PAREVM_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        });
    let Ok(entries) = std::fs::read_dir(fixtures.join("mainnet/blocks")) else {
        eprintln!(
            "mainnet benches skipped: no fixtures under {}",
            fixtures.display()
        );
        return;
    };
    // Block directories are named by block number; anything else is not a fixture.
    let mut dirs: Vec<(u64, PathBuf)> = entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let number = path.file_name()?.to_str()?.parse().ok()?;
            Some((number, path))
        })
        .collect();
    dirs.sort();
    let chain = ChainSpec::mainnet();
    let threads = std::thread::available_parallelism()
        .map_or(2, NonZeroUsize::get)
        .max(2);
    let executor = ParallelExecutor::new(ExecutorConfig {
        concurrency: NonZeroUsize::new(threads).unwrap(),
        strategy: parevm::Strategy::Auto,
    });
    let mut group = c.benchmark_group("mainnet");
    group.sample_size(10);
    for (_, dir) in dirs {
        let block = parevm_workloads::mainnet::load_block(&dir).expect("fixture loads");
        let number = block.block.header.number;
        group.throughput(Throughput::Elements(block.block.header.gas_used.max(1)));
        group.bench_with_input(
            BenchmarkId::new("sequential", number),
            &block,
            |b, block| b.iter(|| execute_sequential(&chain, &block.block, &block.storage).unwrap()),
        );
        group.bench_with_input(
            BenchmarkId::new(format!("parallel/{threads}"), number),
            &block,
            |b, block| {
                b.iter(|| {
                    executor
                        .execute(&chain, &block.block, &block.storage)
                        .unwrap()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_mainnet);
criterion_main!(benches);
