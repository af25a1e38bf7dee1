//! Fuzzing with proptest (the toolchain is stable, so no `cargo fuzz`): mutated and truncated
//! inputs to the block/pre-state loader and to the state-test runner give errors, never panics;
//! whatever still loads executes identically in parallel and sequentially.
#![allow(missing_docs)]

use std::{
    num::NonZeroUsize,
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
};

use parevm::{ChainSpec, ExecutorConfig, ParallelExecutor, execute_sequential};
use parevm_workloads::{
    mainnet::load_block,
    statetest::{SkipList, run_file},
};
use proptest::prelude::*;

fn fixtures_dir() -> PathBuf {
    std::env::var_os("PAREVM_FIXTURES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
        PathBuf::from,
    )
}

fn fixture(relative: &str) -> Vec<u8> {
    let path = fixtures_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "{}: {error}; set PAREVM_FIXTURES to the shared fixtures directory",
            path.display()
        )
    })
}

/// A fresh scratch directory.
fn scratch() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "parevm-fuzz-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Truncates `bytes` to `keep` per mille of its length and overwrites some positions.
fn mutate(mut bytes: Vec<u8>, keep: usize, edits: &[(usize, u8)]) -> Vec<u8> {
    let len = bytes.len() * keep.min(1000) / 1000;
    bytes.truncate(len.max(1));
    for (position, byte) in edits {
        let index = position % bytes.len();
        bytes[index] = *byte;
    }
    bytes
}

fn executor() -> ParallelExecutor {
    ParallelExecutor::new(ExecutorConfig {
        concurrency: NonZeroUsize::new(2).unwrap(),
        strategy: parevm::Strategy::BlockStm,
    })
}

/// Printable JSON-ish bytes make more interesting mutations than arbitrary ones.
fn edit() -> impl Strategy<Value = (usize, u8)> {
    (
        any::<usize>(),
        prop::sample::select(b"0123456789abcdefx\"{}[],:-. nulltrue".to_vec()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn block_loader_never_panics(
        target in 0usize..4,
        keep in prop_oneof![Just(1000usize), 0usize..1000],
        edits in prop::collection::vec(edit(), 0..6),
    ) {
        let root = scratch();
        let dir = root.join("blocks/46147");
        std::fs::create_dir_all(&dir).unwrap();
        let mut files = [
            ("block.json", dir.join("block.json"), fixture("mainnet/blocks/46147/block.json")),
            ("pre_state.json", dir.join("pre_state.json"), fixture("mainnet/blocks/46147/pre_state.json")),
            ("bytecodes.json", root.join("bytecodes.json"), b"{}".to_vec()),
            ("block_hashes.json", root.join("block_hashes.json"), b"{}".to_vec()),
        ];
        files[target].2 = mutate(files[target].2.clone(), keep, &edits);
        for (_, path, bytes) in &files {
            std::fs::write(path, bytes).unwrap();
        }
        match load_block(&dir) {
            Err(error) => {
                // The error names a file.
                let message = error.to_string();
                prop_assert!(message.contains(".json") || message.contains(&*dir.to_string_lossy()), "{message}");
            }
            Ok(block) => {
                let chain = ChainSpec::mainnet();
                let sequential = execute_sequential(&chain, &block.block, &block.storage);
                let parallel = executor().execute(&chain, &block.block, &block.storage);
                prop_assert_eq!(format!("{parallel:?}"), format!("{sequential:?}"));
            }
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn state_test_runner_never_panics(
        keep in prop_oneof![Just(1000usize), 0usize..1000],
        edits in prop::collection::vec(edit(), 0..6),
    ) {
        let root = scratch();
        let path = root.join("case.json");
        let bytes = fixture("ethereum-tests/GeneralStateTests/stExample/add11.json");
        std::fs::write(&path, mutate(bytes, keep, &edits)).unwrap();
        let executor = executor();
        let execute = |chain: &ChainSpec, block: &_, storage: &_| executor.execute(chain, block, storage);
        let report = run_file(&path, &SkipList::default(), &execute);
        for line in report.failure_lines() {
            prop_assert!(!line.contains("panicked"), "{line}");
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
