//! ERC-20 transfers: one token between distinct pairs, and several tokens within small groups.

use parevm::alloy_primitives::{Address, U256};

use super::{
    ERC20_TRANSFER_GAS_LIMIT, ERC20_TRANSFER_GAS_USED, Workload,
    builder::Builder,
    contracts::{Erc20, erc20_transfer},
    ether, transfer_fee,
    transfers::amount,
};

/// Token symbols, for the tokens' name and symbol slots.
pub(crate) const SYMBOLS: [&str; 8] =
    ["USDT", "USDC", "DAI", "LINK", "UNI", "SHIB", "PEPE", "WBTC"];

/// A holder's initial token balance: 100 to 10,000 tokens (18 decimals).
pub(crate) fn token_balance(builder: &mut Builder) -> U256 {
    ether(builder.rng.between(100, 10_000))
}

/// Appends `from`'s transfer of `token` to `to`.
pub(crate) fn push_transfer(builder: &mut Builder, token: Address, from: Address, to: Address) {
    // 0.001 to 1 token: never enough to empty a holder (an emptied balance would earn a refund
    // and change the gas used).
    let amount = amount(builder);
    let fee = transfer_fee(builder);
    builder.push_tx(
        from,
        token,
        U256::ZERO,
        erc20_transfer(to, amount),
        ERC20_TRANSFER_GAS_LIMIT,
        fee,
    );
}

fn count(gas: u64) -> u64 {
    (gas / ERC20_TRANSFER_GAS_USED).max(1)
}

/// `erc20`: `gas / ERC20_TRANSFER_GAS_USED` transfers of one token, each between its own pair of
/// holders (both already hold tokens): one contract, but every transaction touches its own two
/// balance slots.
pub fn erc20(gas: u64, seed: u64) -> Workload {
    let mut builder = Builder::new(seed);
    let mut token = Erc20::new(builder.address(), SYMBOLS[0]);
    for _ in 0..count(gas) {
        let from = builder.eoa(ether(1));
        let to = builder.address();
        let (from_balance, to_balance) = (token_balance(&mut builder), token_balance(&mut builder));
        token.mint(from, from_balance);
        token.mint(to, to_balance);
        push_transfer(&mut builder, token.address, from, to);
    }
    token.install(&mut builder);
    builder.finish("erc20", gas)
}

/// Tokens of `erc20-clusters`.
pub const CLUSTER_TOKENS: usize = 8;
/// Holders per group of `erc20-clusters`.
pub const GROUP_SIZE: usize = 4;
/// Transfers per group of `erc20-clusters` (on average; the last groups may get one less).
pub const TRANSFERS_PER_GROUP: u64 = 8;

/// `erc20-clusters`: `gas / ERC20_TRANSFER_GAS_USED` transfers on [`CLUSTER_TOKENS`] tokens,
/// each inside a group of [`GROUP_SIZE`] holders of one token, about [`TRANSFERS_PER_GROUP`] per
/// group, in a shuffled order: transfers of a group share balance slots (and, when a holder sends
/// twice, a nonce chain); groups are independent.
pub fn erc20_clusters(gas: u64, seed: u64) -> Workload {
    let mut builder = Builder::new(seed);
    let count = count(gas);
    let groups = count.div_ceil(TRANSFERS_PER_GROUP) as usize;
    let mut tokens: Vec<Erc20> = SYMBOLS[..CLUSTER_TOKENS]
        .iter()
        .map(|symbol| Erc20::new(builder.address(), symbol))
        .collect();
    let members: Vec<Vec<Address>> = (0..groups)
        .map(|group| {
            (0..GROUP_SIZE)
                .map(|_| {
                    let holder = builder.eoa(ether(1));
                    let balance = token_balance(&mut builder);
                    tokens[group % CLUSTER_TOKENS].mint(holder, balance);
                    holder
                })
                .collect()
        })
        .collect();
    let mut plan: Vec<usize> = (0..count as usize).map(|index| index % groups).collect();
    builder.rng.shuffle(&mut plan);
    for group in plan {
        let from = builder.rng.below(GROUP_SIZE as u64) as usize;
        let to = (from + builder.rng.between(1, GROUP_SIZE as u64 - 1) as usize) % GROUP_SIZE;
        let token = tokens[group % CLUSTER_TOKENS].address;
        push_transfer(
            &mut builder,
            token,
            members[group][from],
            members[group][to],
        );
    }
    for token in tokens {
        token.install(&mut builder);
    }
    builder.finish("erc20-clusters", gas)
}
