//! Ethereum rules around the transactions: fork schedule, block environment, transaction
//! conversion, rewards, withdrawals, the DAO fork and system calls.

mod block_rewards;
mod fork;
mod system_calls;
mod transaction;

use alloy_consensus::Header;
use revm::{
    Database, MainBuilder,
    context::{BlockEnv, CfgEnv},
    context_interface::block::BlobExcessGasAndPrice,
    handler::{MainnetContext, MainnetEvm},
    primitives::hardfork::SpecId,
};

use crate::{
    ExecutionError,
    keccak_memo::{memoize_keccak, start_generation},
};

pub use block_rewards::{
    BlockRewards, DAO_FORK_BLOCK, block_reward, dao_fork_accounts, dao_fork_beneficiary,
};
pub use fork::ForkSchedule;
pub(crate) use system_calls::{post_block_changes, pre_block_changes};
pub use transaction::tx_env;

/// The chain a block belongs to: its id, fork schedule and whether blocks pay mining rewards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainSpec {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Which fork rules apply to a block.
    pub forks: ForkSchedule,
    /// Whether pre-Merge blocks pay the block and ommer rewards (state tests do not).
    pub block_rewards: bool,
}

impl ChainSpec {
    /// Ethereum mainnet.
    pub const fn mainnet() -> Self {
        Self {
            chain_id: 1,
            forks: ForkSchedule::Mainnet,
            block_rewards: true,
        }
    }

    /// A chain with id 1 where every block follows `spec` and pays no block reward, as in
    /// ethereum/tests state tests.
    pub const fn fixed(spec: SpecId) -> Self {
        Self {
            chain_id: 1,
            forks: ForkSchedule::Fixed(spec),
            block_rewards: false,
        }
    }

    /// The fork rules for a block.
    pub fn spec_id(&self, number: u64, timestamp: u64) -> SpecId {
        self.forks.spec_id(number, timestamp)
    }

    /// Whether this chain applies mainnet's irregular state changes (the DAO fork).
    pub(crate) fn is_mainnet_schedule(&self) -> bool {
        matches!(self.forks, ForkSchedule::Mainnet)
    }
}

/// The EVM configuration for a block of this chain, with the fork's blob limit per transaction
/// (EIP-4844: 6, EIP-7691: 9, EIP-7594: 6).
pub fn cfg_env(chain: &ChainSpec, spec: SpecId) -> CfgEnv {
    let mut cfg = CfgEnv::new_with_spec(spec);
    cfg.chain_id = chain.chain_id;
    if spec.is_enabled_in(SpecId::OSAKA) {
        cfg.set_max_blobs_per_tx(6);
    } else if spec.is_enabled_in(SpecId::PRAGUE) {
        cfg.set_max_blobs_per_tx(9);
    } else if spec.is_enabled_in(SpecId::CANCUN) {
        cfg.set_max_blobs_per_tx(6);
    }
    cfg
}

/// The EVM block environment from a header, checking the fields the fork requires.
pub fn block_env(header: &Header, spec: SpecId) -> Result<BlockEnv, ExecutionError> {
    let basefee = if spec.is_enabled_in(SpecId::LONDON) {
        header.base_fee_per_gas.ok_or_else(|| {
            ExecutionError::InvalidHeader("base fee missing from a London+ block".into())
        })?
    } else {
        0
    };
    let prevrandao = if spec.is_enabled_in(SpecId::MERGE) {
        Some(header.mix_hash)
    } else {
        None
    };
    let blob_excess_gas_and_price = if spec.is_enabled_in(SpecId::CANCUN) {
        let excess = header.excess_blob_gas.ok_or_else(|| {
            ExecutionError::InvalidHeader("excess blob gas missing from a Cancun+ block".into())
        })?;
        Some(BlobExcessGasAndPrice::new_with_spec(excess, spec))
    } else {
        None
    };
    Ok(BlockEnv {
        number: alloy_primitives::U256::from(header.number),
        beneficiary: header.beneficiary,
        timestamp: alloy_primitives::U256::from(header.timestamp),
        gas_limit: header.gas_limit,
        basefee,
        difficulty: header.difficulty,
        prevrandao,
        blob_excess_gas_and_price,
        ..Default::default()
    })
}

/// A mainnet revm instance over `db` for one block, its `KECCAK256` memoized
/// ([`crate::keccak_memo`]: a new generation of this thread's memo).
pub(crate) fn build_evm<DB: Database>(
    db: DB,
    block_env: BlockEnv,
    cfg: CfgEnv,
) -> MainnetEvm<MainnetContext<DB>> {
    start_generation();
    let mut evm = MainnetContext::new(db, cfg.spec)
        .with_block(block_env)
        .with_cfg(cfg)
        .build_mainnet();
    memoize_keccak(evm.instruction.instruction_table_mut());
    evm
}
