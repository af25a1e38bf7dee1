//! Deterministic, seeded synthetic blocks, each filling a gas budget, with the pre-state written
//! directly into an [`InMemoryStorage`]: nothing is deployed by a transaction. Each workload
//! isolates one kind of contention:
//!
//! | name | what it isolates |
//! |---|---|
//! | `raw-transfers` | independent ETH transfers, every sender and recipient distinct |
//! | `raw-transfers-hot` | transfers from distinct senders to one hot recipient (an exchange deposit address) |
//! | `raw-transfers-chain` | one sender, consecutive nonces: a full dependency chain |
//! | `erc20` | transfers of one ERC-20 token between distinct holder pairs (distinct slots, one contract) |
//! | `erc20-clusters` | several tokens, transfers inside small groups of holders that share balances |
//! | `uniswap` | Uniswap V3 swaps, each through its own pool (each swap its own cluster of contracts) |
//! | `uniswap-hot-pool` | all swaps through one pool: inherently sequential |
//! | `mixed` | a mainnet-like mix: raw transfers (some to hot addresses), ERC-20 on a few tokens, swaps on a few pools, some same-sender runs |
//!
//! The number of transactions is the budget divided by a transaction's measured gas
//! ([`TRANSFER_GAS`], [`ERC20_TRANSFER_GAS_USED`], [`SWAP_GAS_USED`], [`HOT_SWAP_GAS_USED`]); `mixed`
//! draws events until their expected gas reaches the budget. The block is a Cancun mainnet-like
//! block ([`BLOCK_NUMBER`], [`TIMESTAMP`], [`BASE_FEE`], [`BENEFICIARY`]) whose gas limit holds
//! the budget and the sum of the transactions' gas limits. The beacon-root contract (EIP-4788)
//! is not in the pre-state, so its system call does nothing. Header roots and `gas_used` are left
//! empty: nothing here knows them without executing the block.
//!
//! The contract bytecode (an OpenZeppelin-style ERC-20, WETH9 and Uniswap V3's factory, pool and
//! SwapRouter, plus a SingleSwap caller) is embedded from `contracts/`, so the workloads need no
//! fixtures; its immutables and storage follow `contracts/README.md` of the shared fixtures.
//! Transactions carry a dummy signature and their sender directly.

mod builder;
mod contracts;
mod erc20;
mod mixed;
mod transfers;
mod uniswap;

use parevm::{
    ChainSpec, InMemoryStorage,
    alloy_consensus::{Block, TxEnvelope, transaction::Recovered},
    alloy_primitives::{Address, U256, address},
};

use builder::{Builder, Fee};
pub use erc20::{CLUSTER_TOKENS, GROUP_SIZE, TRANSFERS_PER_GROUP, erc20, erc20_clusters};
pub use mixed::mixed;
pub use transfers::{raw_transfers, raw_transfers_chain, raw_transfers_hot};
pub use uniswap::{SWAP_EVENT, uniswap, uniswap_hot_pool};

/// A synthetic block with its chain and pre-state.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The workload's name (one of [`NAMES`]).
    pub name: String,
    /// The chain: Cancun rules throughout, chain id 1.
    pub chain: ChainSpec,
    /// The block, with recovered senders.
    pub block: Block<Recovered<TxEnvelope>>,
    /// The state before the block.
    pub storage: InMemoryStorage,
}

/// The workload names, as the CLI spells them.
pub const NAMES: &[&str] = &[
    "raw-transfers",
    "raw-transfers-hot",
    "raw-transfers-chain",
    "erc20",
    "erc20-clusters",
    "uniswap",
    "uniswap-hot-pool",
    "mixed",
];

/// The default gas budget: one gigagas.
pub const DEFAULT_GAS: u64 = 1_000_000_000;

/// Builds the workload called `name` (one of [`NAMES`]), filling about `gas` gas,
/// deterministically from `seed`; `None` for an unknown name.
pub fn workload(name: &str, gas: u64, seed: u64) -> Option<Workload> {
    let generate = match name {
        "raw-transfers" => raw_transfers,
        "raw-transfers-hot" => raw_transfers_hot,
        "raw-transfers-chain" => raw_transfers_chain,
        "erc20" => erc20,
        "erc20-clusters" => erc20_clusters,
        "uniswap" => uniswap,
        "uniswap-hot-pool" => uniswap_hot_pool,
        "mixed" => mixed,
        _ => return None,
    };
    Some(generate(gas, seed))
}

/// The chain id of the transactions.
pub const CHAIN_ID: u64 = 1;
/// The block number (a Cancun-era mainnet height).
pub const BLOCK_NUMBER: u64 = 19_500_000;
/// The block timestamp (March 2024).
pub const TIMESTAMP: u64 = 1_711_267_000;
/// The block's base fee: 1 gwei.
pub const BASE_FEE: u64 = 1_000_000_000;
/// The block's beneficiary (a block builder's address, distinct from every generated one).
pub const BENEFICIARY: Address = address!("0x95222290dd7278aa3ddd389cc1e1d165cc4bafe5");

/// Gas of a plain ETH transfer (its limit and its use).
pub const TRANSFER_GAS: u64 = 21_000;
/// Gas limit of an ERC-20 transfer (`contracts/README.md`).
pub const ERC20_TRANSFER_GAS_LIMIT: u64 = 35_000;
/// Measured gas of an ERC-20 transfer between two holders, neither balance zero before or after:
/// 34,587 to 34,611 with the calldata's zero bytes. (The README's 29,738 is a transfer that
/// empties the sender's balance and earns the 4,800 clearing refund.)
pub const ERC20_TRANSFER_GAS_USED: u64 = 34_600;
/// Gas limit of a swap. The README's 200,000 is not enough here: a pool's first swap in the block
/// that pays token0 moves the tick (0 to −1), so it writes the oracle observation (the block's
/// timestamp differs from the observation's) and all of slot0, and needs 200k–220k before its
/// refunds: selling token0 and buying token1 run out of gas at 200,000.
pub const SWAP_GAS_LIMIT: u64 = 250_000;
/// Measured gas of a pool's first swap in the block, the four kinds averaged: sell token0
/// 159,054, sell token1 147,304, buy token0 159,007, buy token1 168,878.
pub const SWAP_GAS_USED: u64 = 158_561;
/// Measured gas of a later swap through a pool already swapped in the block, the four kinds
/// averaged (same order): 134,069, 133,624, 145,327 and 144,316.
pub const HOT_SWAP_GAS_USED: u64 = 139_334;
/// Legacy gas price of a swap (`contracts/README.md`): 3 gwei + 7 wei.
pub const SWAP_GAS_PRICE: u128 = 0xb2d0_5e07;

/// `n` ether in wei.
fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(1_000_000_000_000_000_000u128)
}

/// Fees of transfers: one in five legacy at 1.01–3 gwei, the rest EIP-1559 with a 3 gwei cap and
/// a 0.01–1 gwei tip.
fn transfer_fee(builder: &mut Builder) -> Fee {
    const GWEI: u128 = 1_000_000_000;
    if builder.rng.percent(20) {
        Fee::Legacy(u128::from(builder.rng.between(101, 300)) * GWEI / 100)
    } else {
        Fee::Eip1559 {
            max_fee: 3 * GWEI,
            priority_fee: u128::from(builder.rng.between(1, 100)) * GWEI / 100,
        }
    }
}
