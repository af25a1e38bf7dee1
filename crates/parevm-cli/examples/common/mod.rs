//! What the measuring examples share: loading a block to run, the executor to run it with, and a
//! median.

use std::path::Path;

use parevm::{
    ChainSpec, InMemoryStorage,
    alloy_consensus::{Block, TxEnvelope, transaction::Recovered},
};

/// A block to run, its chain and its pre-state: `target` is a mainnet block directory, or a
/// synthetic workload `@NAME[:GAS]` (200 Mgas by default).
#[allow(dead_code)] // not every example loads targets
pub(crate) fn load_target(
    target: &str,
) -> (ChainSpec, Block<Recovered<TxEnvelope>>, InMemoryStorage) {
    match target.strip_prefix('@') {
        Some(name) => {
            let (name, gas) = name
                .split_once(':')
                .map_or((name, 200_000_000), |(name, gas)| {
                    (name, gas.parse().expect("gas"))
                });
            let workload = parevm_workloads::synthetic::workload(name, gas, 1).expect("workload");
            (workload.chain, workload.block, workload.storage)
        }
        None => {
            let loaded = parevm_workloads::mainnet::load_block(Path::new(target)).expect("load");
            (ChainSpec::mainnet(), loaded.block, loaded.storage)
        }
    }
}

/// The median of `times` (the upper one for an even count; NaN when empty).
#[allow(dead_code)] // not every example takes medians this way
pub(crate) fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The configuration of `threads` workers running `strategy`.
#[allow(dead_code)] // not every example configures one
pub(crate) fn config(threads: usize, strategy: parevm::Strategy) -> parevm::ExecutorConfig {
    parevm::ExecutorConfig {
        concurrency: std::num::NonZeroUsize::new(threads).expect("at least one thread"),
        strategy,
    }
}

/// A parallel executor of `threads` workers running the strategy `PAREVM_STRATEGY` names.
#[allow(dead_code)] // not every example runs one
pub(crate) fn executor_from_env(threads: usize) -> parevm::ParallelExecutor {
    parevm::ParallelExecutor::new(config(threads, strategy_from_env()))
}

/// The strategy named by `PAREVM_STRATEGY` (`pipeline`, `auto`, `sequential`, `hand-over:TX`,
/// `give-way:EXECUTIONS`); Block-STM when unset.
#[allow(dead_code)] // not every example runs a strategy
fn strategy_from_env() -> parevm::Strategy {
    let number = |text: &str| text.parse().expect("a number after the colon");
    match std::env::var("PAREVM_STRATEGY").as_deref() {
        Ok("pipeline") => parevm::Strategy::Pipeline,
        Ok("auto") => parevm::Strategy::Auto,
        Ok("sequential") => parevm::Strategy::Sequential,
        Ok(other) if other.starts_with("hand-over:") => {
            parevm::Strategy::HandOver(number(&other["hand-over:".len()..]))
        }
        Ok(other) if other.starts_with("give-way:") => {
            parevm::Strategy::GiveWayAfter(number(&other["give-way:".len()..]))
        }
        _ => parevm::Strategy::BlockStm,
    }
}
