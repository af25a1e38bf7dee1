//! The baseline of the benchmarks: plain revm executing a block's transactions one after another
//! with revm's own `CacheDB` in front of the same [`Storage`] parevm reads, and nothing else — no
//! system calls, no receipts, no state diff — so that the cost of parevm's sequential path is
//! visible. Everything, transaction conversion included, is inside the timed run.

use parevm::{
    ChainSpec, Storage, StorageError,
    alloy_consensus::{Block, TxEnvelope, transaction::Recovered},
    alloy_primitives::{Address, B256, U256},
    chain,
    revm::{
        Context, DatabaseRef, ExecuteCommitEvm, MainBuilder, MainContext, bytecode::Bytecode,
        context::result::ExecutionResult, database::CacheDB, state::AccountInfo,
    },
};

/// revm's read-only database view of a [`Storage`] (wrap it in revm's `CacheDB` to execute).
pub struct StorageRef<'a, S: ?Sized>(pub &'a S);

impl<S: Storage + ?Sized> DatabaseRef for StorageRef<'_, S> {
    type Error = StorageError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StorageError> {
        Ok(self.0.basic(&address)?.map(|basic| AccountInfo {
            balance: basic.balance,
            nonce: basic.nonce,
            code_hash: basic.code_hash,
            code: None,
            account_id: None,
        }))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StorageError> {
        self.0.code_by_hash(&code_hash)
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StorageError> {
        self.0.storage(&address, &index)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, StorageError> {
        self.0.block_hash(number)
    }
}

/// Executes every transaction of `block` with revm's mainnet handler over `storage`, committing
/// each to a `CacheDB`; returns the gas used.
pub fn run_revm<S: Storage + ?Sized>(
    chain: &ChainSpec,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
) -> Result<u64, String> {
    run_revm_with(chain, block, storage, drop)
}

/// [`run_revm`], handing each transaction's result to `each` (which may keep it, as a block
/// executor's output keeps the receipts' logs) instead of dropping it.
pub fn run_revm_with<S: Storage + ?Sized>(
    chain: &ChainSpec,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
    mut each: impl FnMut(ExecutionResult),
) -> Result<u64, String> {
    let header = &block.header;
    let spec = chain.spec_id(header.number, header.timestamp);
    let block_env = chain::block_env(header, spec).map_err(|error| error.to_string())?;
    let mut evm = Context::mainnet()
        .with_db(CacheDB::new(StorageRef(storage)))
        .with_block(block_env)
        .with_cfg(chain::cfg_env(chain, spec))
        .build_mainnet();
    let mut gas_used = 0;
    for (index, tx) in block.body.transactions.iter().enumerate() {
        let tx_env = chain::tx_env(index, tx).map_err(|error| error.to_string())?;
        let result = evm
            .transact_commit(tx_env)
            .map_err(|error| format!("transaction {index}: {error}"))?;
        gas_used += result.tx_gas_used();
        each(result);
    }
    Ok(gas_used)
}
