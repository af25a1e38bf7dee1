//! # parevm
//!
//! A parallel EVM block executor: Block-STM on revm.
#![doc = include_str!("../README.md")]

mod account_diff;
pub mod chain;
mod error;
mod executor;
mod mv_memory;
mod output;
mod pre_state;
mod scheduler;
mod sequential;
pub mod storage;
mod types;
mod vm;

pub use chain::ChainSpec;
pub use error::ExecutionError;
pub use executor::{ExecutionStats, ExecutorConfig, ParallelExecutor};
pub use output::{AccountChange, AccountState, BlockOutput, StateChanges, TxReceipt};
pub use sequential::execute_sequential;
pub use storage::{AccountBasic, InMemoryAccount, InMemoryStorage, Storage, StorageError};
pub use types::{
    CodeValue, Incarnation, Lifecycle, MemoryLocation, MemoryValue, ReadSet, ReadValue, TxIdx,
    TxVersion, WriteSet,
};

/// Re-exported dependencies whose types appear in the API.
pub use {alloy_consensus, alloy_eips, alloy_primitives, revm};
