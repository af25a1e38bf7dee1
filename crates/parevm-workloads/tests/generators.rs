//! Every synthetic workload executes with every transaction successful (which proves the
//! pre-state layouts: a reverted ERC-20 transfer or swap means a wrong slot), fills its gas
//! budget, is deterministic, and runs in parallel to the sequential result.
#![allow(missing_docs)]

use std::num::NonZeroUsize;

use parevm::{ExecutorConfig, ParallelExecutor, execute_sequential};
use parevm_workloads::generators::{NAMES, workload};

const GAS: u64 = 10_000_000;

#[test]
fn every_workload_succeeds_fills_its_budget_and_matches_in_parallel() {
    let executor = ParallelExecutor::new(ExecutorConfig {
        concurrency: NonZeroUsize::new(2).unwrap(),
        force_parallel: true,
    });
    for name in NAMES {
        let workload = workload(name, GAS, 7).expect("known workload");
        let output = execute_sequential(&workload.chain, &workload.block, &workload.storage)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        for (index, receipt) in output.receipts.iter().enumerate() {
            assert!(receipt.success, "{name}: transaction {index} failed");
        }
        let gas = output.gas_used as f64;
        assert!(
            (gas - GAS as f64).abs() / (GAS as f64) < 0.1,
            "{name}: used {gas} gas"
        );
        let parallel = executor.execute(&workload.chain, &workload.block, &workload.storage);
        assert_eq!(
            parallel.as_ref().ok(),
            Some(&output),
            "{name}: parallel differs"
        );
    }
}

#[test]
fn swaps_move_the_pool() {
    for name in ["uniswap", "uniswap-hot-pool"] {
        let workload = workload(name, 2_000_000, 1).unwrap();
        let output =
            execute_sequential(&workload.chain, &workload.block, &workload.storage).unwrap();
        let slot0_changes = output
            .state_changes
            .values()
            .filter(|change| {
                change
                    .storage
                    .contains_key(&parevm::alloy_primitives::U256::ZERO)
            })
            .count();
        assert!(slot0_changes >= 1, "{name}: no pool's slot0 changed");
        assert!(
            output
                .receipts
                .iter()
                .all(|receipt| receipt.gas_used > 100_000),
            "{name}: swaps did nothing"
        );
    }
}

#[test]
fn generators_are_deterministic() {
    for name in NAMES {
        let a = workload(name, 3_000_000, 42).unwrap();
        let b = workload(name, 3_000_000, 42).unwrap();
        assert_eq!(a.block, b.block, "{name}");
    }
}
