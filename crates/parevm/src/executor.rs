//! Public entry point of the parallel engine.

use std::num::NonZeroUsize;

use alloy_consensus::{Block, TxEnvelope, transaction::Recovered};

use crate::{BlockOutput, ChainSpec, ExecutionError, storage::Storage};

/// How the parallel executor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutorConfig {
    /// Number of worker threads.
    pub concurrency: NonZeroUsize,
    /// Run Block-STM even when the block looks better executed sequentially (tests use this to
    /// exercise the parallel path on every block).
    pub force_parallel: bool,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            concurrency: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            force_parallel: false,
        }
    }
}

/// Counters of one parallel execution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionStats {
    /// Transactions in the block.
    pub txs: usize,
    /// Worker threads used (1 when the block ran sequentially).
    pub threads: usize,
    /// Incarnations executed (≥ txs).
    pub executions: usize,
    /// Validations performed.
    pub validations: usize,
    /// Incarnations aborted by a failed validation or a dependency.
    pub aborts: usize,
    /// Why the block ran sequentially instead, if it did.
    pub sequential_reason: Option<String>,
}

/// The parallel block executor. Create one and reuse it across blocks.
#[derive(Debug)]
pub struct ParallelExecutor {
    config: ExecutorConfig,
}

impl ParallelExecutor {
    /// An executor with this configuration.
    pub fn new(config: ExecutorConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    /// Executes `block` on top of `storage`: the same result as [`crate::execute_sequential`].
    pub fn execute<S: Storage + ?Sized>(
        &self,
        chain: &ChainSpec,
        block: &Block<Recovered<TxEnvelope>>,
        storage: &S,
    ) -> Result<BlockOutput, ExecutionError> {
        self.execute_with_stats(chain, block, storage).0
    }

    /// Like [`Self::execute`], also returning execution counters.
    pub fn execute_with_stats<S: Storage + ?Sized>(
        &self,
        chain: &ChainSpec,
        block: &Block<Recovered<TxEnvelope>>,
        storage: &S,
    ) -> (Result<BlockOutput, ExecutionError>, ExecutionStats) {
        let stats = ExecutionStats {
            txs: block.body.transactions.len(),
            threads: 1,
            executions: block.body.transactions.len(),
            sequential_reason: Some("parallel engine not wired yet".into()),
            ..Default::default()
        };
        (crate::execute_sequential(chain, block, storage), stats)
    }
}
