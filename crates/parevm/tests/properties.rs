//! Property tests: random blocks (seeded) executed in parallel at 1–8 threads equal sequential
//! execution on every output — receipts, gas, state changes, or the error.

mod common;

use common::{random::random_block, *};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn parallel_equals_sequential(seed in any::<u64>()) {
        let (chain, block, storage) = random_block(seed);
        let _ = assert_parallel_matches(&format!("seed {seed}"), &chain, &block, &storage);
    }
}

/// Blocks where most transactions succeed (the generator is not degenerate).
#[test]
fn generated_blocks_mostly_execute() {
    let mut executed = 0;
    for seed in 0..20 {
        let (chain, block, storage) = random_block(seed);
        if let Ok(output) = parevm::execute_sequential(&chain, &block, &storage) {
            executed += 1;
            assert_eq!(output.receipts.len(), block.body.transactions.len());
        }
    }
    assert!(
        executed >= 18,
        "only {executed} of 20 generated blocks executed"
    );
}
