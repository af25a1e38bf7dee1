//! The baseline of the benchmarks: plain revm executing a block's transactions one after another
//! on a `CacheDB` holding the pre-state, with no parevm machinery (no system calls, no state
//! diff), so that the cost of parevm's sequential path is visible.

use parevm::{
    ChainSpec, InMemoryStorage,
    alloy_consensus::{Block, TxEnvelope, transaction::Recovered},
    alloy_primitives::U256,
    chain,
    revm::{
        Context, ExecuteCommitEvm, MainBuilder, MainContext,
        database::{CacheDB, EmptyDB},
        state::AccountInfo,
    },
};

/// A block ready for plain revm: the pre-state loaded into a `CacheDB` (not timed) and the
/// environments built.
pub struct RevmBaseline {
    db: CacheDB<EmptyDB>,
    block_env: parevm::revm::context::BlockEnv,
    cfg: parevm::revm::context::CfgEnv,
    txs: Vec<parevm::revm::context::TxEnv>,
}

impl RevmBaseline {
    /// Prepares `block` over `storage`.
    pub fn new(
        chain: &ChainSpec,
        block: &Block<Recovered<TxEnvelope>>,
        storage: &InMemoryStorage,
    ) -> Result<Self, parevm::ExecutionError> {
        let header = &block.header;
        let spec = chain.spec_id(header.number, header.timestamp);
        let mut db = CacheDB::new(EmptyDB::default());
        for (address, account) in storage.accounts() {
            let code = storage
                .code(&account.basic.code_hash)
                .map(parevm::revm::bytecode::Bytecode::new_raw);
            let info = AccountInfo {
                balance: account.basic.balance,
                nonce: account.basic.nonce,
                code_hash: account.basic.code_hash,
                code,
                account_id: None,
            };
            db.insert_account_info(*address, info);
            for (slot, value) in &account.storage {
                let _ = db.insert_account_storage(*address, *slot, *value);
            }
        }
        for (number, hash) in storage.block_hashes() {
            db.cache.block_hashes.insert(U256::from(*number), *hash);
        }
        let txs = block
            .body
            .transactions
            .iter()
            .enumerate()
            .map(|(index, tx)| chain::tx_env(index, tx))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            db,
            block_env: chain::block_env(header, spec)?,
            cfg: chain::cfg_env(chain, spec),
            txs,
        })
    }

    /// Executes every transaction with revm's mainnet handler, committing each; returns the gas
    /// used. Consumes the prepared state (prepare a new one per run).
    pub fn run(self) -> Result<u64, String> {
        let mut evm = Context::mainnet()
            .with_db(self.db)
            .with_block(self.block_env)
            .with_cfg(self.cfg)
            .build_mainnet();
        let mut gas_used = 0;
        for (index, tx) in self.txs.into_iter().enumerate() {
            let result = evm
                .transact_commit(tx)
                .map_err(|error| format!("transaction {index}: {error}"))?;
            gas_used += result.tx_gas_used();
        }
        Ok(gas_used)
    }
}
