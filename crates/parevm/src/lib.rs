//! # parevm: a parallel EVM block executor
//!
//! parevm executes an Ethereum block on several threads and returns exactly what sequential
//! execution returns — receipts, gas used and state changes — whatever the interleaving.
//!
//! ## The algorithm (Block-STM, Gelashvili et al. 2022)
//!
//! Transactions are numbered `0..n` in block order. Each execution of tx `i` is an *incarnation*;
//! a *version* is `(i, incarnation)`. Worker threads take tasks from a collaborative scheduler:
//! *execute* tx `i` or *validate* tx `i`, lowest index first. An execution runs revm against the
//! multi-version memory ([`MemoryLocation`] → writes by tx index): a read returns the value written
//! by the highest tx below `i`, or the pre-block state, and is recorded in `i`'s [`ReadSet`]. The
//! finished incarnation publishes its [`WriteSet`]. Validation re-reads the read set; if any value
//! changed, the incarnation is aborted, its writes become ESTIMATE markers (a reader that meets one
//! waits for that tx rather than read a value about to change) and the tx is re-executed. The
//! block is done when every tx is executed and validated and nothing below changed since.
//!
//! ## The second engine: the pipeline
//!
//! For light blocks (and heavy ones whose calls rarely share a contract), Block-STM's per-transaction overhead (versioned reads,
//! publication, validation waves, folding the final state) eats the gain. The pipeline
//! ([`Strategy::Pipeline`]) speculates every transaction on any free thread against the
//! *pre-block* state, recording the values it read, and one thread at a time commits in block
//! order over the sequential executor's own state: a speculation whose every read still holds is
//! applied, a stale one is re-executed there directly. [`ExecutorConfig`] chooses per block
//! ([`Strategy::Auto`]): sequential, the pipeline or Block-STM, from what is known before running.
//! [`Strategy::HandOver`] runs the pipeline for a prefix of the block and Block-STM on top of it
//! for the rest, and [`Strategy::GiveWayAfter`] makes Block-STM give way to sequential execution
//! after a given number of executions (both forced only, for tests and measurements).
//!
//! ## What is EVM-specific
//!
//! - **Lazy balances.** Every tx pays the beneficiary, and many send to the same hot address.
//!   Those credits are written as deltas ([`MemoryValue::BalanceDelta`]) and folded in block order
//!   only when someone reads the balance exactly (`BALANCE` of the account, an account that may be
//!   empty). The fee is computed by a revm handler that skips revm's own beneficiary reward; a plain
//!   transfer's recipient without code is given a zero balance, which no code can observe; a
//!   contract's balance is read only as the bounds its code's outcome depends on
//!   ([`ReadValue::BalanceIn`]: WETH deposits and withdrawals do not conflict), and so are the
//!   beneficiary's and a sender's that can pay (only revm's funds check depends on it).
//! - **Same-sender chains** are known from the transaction list: tx `j` waits for the previous tx
//!   of its sender instead of discovering the nonce dependency by an abort; a block dominated by
//!   one chain runs sequentially. In the pipeline, a transaction that follows one of its
//!   sender's (or is sent by the beneficiary) is speculated with assumed funds — the nonce the
//!   chain implies, the balance its checks require — verified at commit and its balance change
//!   applied, unless its code observed that balance.
//! - **Granular, exact locations**: lifecycle (existence and storage resets), balance, nonce, code
//!   and each storage slot, compared by value. Self-destruct, CREATE/CREATE2 (a redeploy sees fresh
//!   storage), EIP-161 deletion and EIP-7702 delegation are versioned writes like any other.
//! - **Validation by value**: a read stays valid while re-reading gives the same value.
//! - **Mapping slots hashed once**: `KECCAK256` runs through a per-thread memo of the block's
//!   inputs (Solidity hashes a mapping entry's slot to read it and again to write it): 10% fewer
//!   instructions on mainnet blocks, in every engine and the sequential executor alike.
//!
//! ## Guarantees
//!
//! - [`ParallelExecutor::execute`] returns the same [`BlockOutput`] or the same [`ExecutionError`]
//!   as [`execute_sequential`], at any thread count.
//! - Bad input (an invalid transaction, a failing [`Storage`]) gives an error naming the
//!   transaction, never a panic or a hang. An internal invariant breach is answered with
//!   sequential re-execution and reported in [`ExecutionStats::sequential_reason`].
//!
//! ## Example
//!
//! ```
//! use std::collections::HashMap;
//!
//! use parevm::{
//!     ChainSpec, ExecutorConfig, InMemoryStorage, ParallelExecutor, execute_sequential,
//!     alloy_consensus::{Block, BlockBody, Header, Signed, TxEnvelope, TxLegacy, transaction::Recovered},
//!     alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256},
//!     revm::primitives::hardfork::SpecId,
//! };
//!
//! let mut storage = InMemoryStorage::new();
//! let senders: Vec<Address> = (1..=4).map(Address::with_last_byte).collect();
//! for sender in &senders {
//!     storage.insert_account_with_code(*sender, U256::from(10u128.pow(18)), 0, Bytes::new(), HashMap::new());
//! }
//! let transfer = |sender: Address| {
//!     let tx = TxLegacy {
//!         gas_price: 10,
//!         gas_limit: 21_000,
//!         to: TxKind::Call(Address::with_last_byte(0x77)),
//!         value: U256::from(1_000),
//!         ..Default::default()
//!     };
//!     let signed = Signed::new_unchecked(tx, Signature::test_signature(), B256::ZERO);
//!     Recovered::new_unchecked(TxEnvelope::Legacy(signed), sender)
//! };
//! let block = Block {
//!     header: Header { number: 1, gas_limit: 30_000_000, beneficiary: Address::with_last_byte(0xbe), ..Default::default() },
//!     body: BlockBody { transactions: senders.iter().copied().map(transfer).collect(), ommers: vec![], withdrawals: None },
//! };
//! let chain = ChainSpec::fixed(SpecId::BYZANTIUM);
//!
//! let executor = ParallelExecutor::new(ExecutorConfig::default());
//! let output = executor.execute(&chain, &block, &storage)?;
//! assert_eq!(output, execute_sequential(&chain, &block, &storage)?);
//! assert_eq!(output.gas_used, 4 * 21_000);
//! let hot = &output.state_changes[&Address::with_last_byte(0x77)];
//! assert_eq!(hot.info.as_ref().unwrap().balance, U256::from(4_000));
//! # Ok::<(), parevm::ExecutionError>(())
//! ```

mod account_diff;
pub mod analysis;
mod balance_observer;
mod block_stm;
pub mod chain;
mod committed_slots;
mod error;
mod executor;
mod keccak_memo;
#[cfg(test)]
mod model_tests;
mod mv_memory;
mod native_transfer;
mod output;
mod pipeline;
mod planner;
mod pre_state;
mod scheduler;
mod sequential;
mod shape;
pub mod storage;
mod sync;
mod types;
mod vm;
mod worker_pool;

pub use chain::ChainSpec;
pub use error::ExecutionError;
pub use executor::{ExecutionStats, ExecutorConfig, ParallelExecutor, Strategy};
pub use output::{AccountChange, AccountState, BlockOutput, SlotChanges, StateChanges, TxReceipt};
pub use sequential::execute_sequential;
pub use storage::{AccountBasic, InMemoryAccount, InMemoryStorage, Storage, StorageError};
pub use types::{
    CodeValue, Incarnation, Lifecycle, MemoryLocation, MemoryValue, ReadSet, ReadValue, TxIdx,
    TxVersion, WriteKind, WriteSet,
};
pub use worker_pool::WorkerPlacement;

/// Re-exported dependencies whose types appear in the API.
pub use {alloy_consensus, alloy_eips, alloy_primitives, revm};
