//! Memory stays bounded when one executor runs thousands of blocks. Alone in its test binary, so
//! that no concurrent test moves the resident size.
#![allow(missing_docs)]

use parevm::{ExecutorConfig, ParallelExecutor};
use parevm_workloads::synthetic::workload;

/// Resident memory of this process in bytes (Linux), if known.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Thousands of blocks through one executor: memory does not grow per block.
#[test]
fn memory_stays_bounded_over_thousands_of_blocks() {
    let executor = ParallelExecutor::new(ExecutorConfig {
        concurrency: std::num::NonZeroUsize::new(2).unwrap(),
        strategy: parevm::Strategy::BlockStm,
    });
    let workload = workload("mixed", 3_000_000, 9).expect("known workload");
    let run = |count: usize| {
        for _ in 0..count {
            executor
                .execute(&workload.chain, &workload.block, &workload.storage)
                .unwrap();
        }
    };
    run(300);
    let Some(after_warm_up) = resident_bytes() else {
        eprintln!("no /proc/self/statm: memory check skipped");
        return;
    };
    run(3_000);
    let after = resident_bytes().unwrap();
    let growth = after.saturating_sub(after_warm_up);
    println!("resident after 300 blocks: {after_warm_up} bytes, after 3,300: {after} bytes");
    assert!(
        growth < 32 << 20,
        "resident memory grew by {growth} bytes over 3,000 blocks"
    );
}
