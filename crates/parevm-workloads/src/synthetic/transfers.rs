//! Plain ETH transfers: independent, to one hot recipient, and one sender's nonce chain.

use parevm::alloy_primitives::{Address, Bytes, U256};

use super::{TRANSFER_GAS, Workload, builder::Builder, ether, transfer_fee};

/// A recipient that usually exists already (three in four), with some ETH and history.
pub(crate) fn recipient(builder: &mut Builder) -> Address {
    let to = builder.address();
    if builder.rng.percent(75) {
        let balance = U256::from(builder.rng.between(1, 1_000_000_000)) * U256::from(1_000_000_000);
        let nonce = builder.rng.below(100);
        builder.insert_eoa(to, balance, nonce);
    }
    to
}

/// A transfer amount between 0.001 and 1 ETH (or 18-decimal token).
pub(crate) fn amount(builder: &mut Builder) -> U256 {
    U256::from(builder.rng.between(1_000, 1_000_000)) * U256::from(1_000_000_000_000u64)
}

/// Enough ETH for a few transfers and their gas.
pub(crate) fn sender_balance(builder: &mut Builder) -> U256 {
    ether(builder.rng.between(2, 50))
}

fn transfers(
    name: &str,
    gas: u64,
    seed: u64,
    mut pick: impl FnMut(&mut Builder) -> (Address, Address),
) -> Workload {
    let mut builder = Builder::new(seed);
    for _ in 0..(gas / TRANSFER_GAS).max(1) {
        let (from, to) = pick(&mut builder);
        let value = amount(&mut builder);
        let fee = transfer_fee(&mut builder);
        builder.push_tx(from, to, value, Bytes::new(), TRANSFER_GAS, fee);
    }
    builder.finish(name, gas)
}

/// `raw-transfers`: `gas / 21,000` ETH transfers, every sender and every recipient distinct
/// (three recipients in four exist before the block): no two transactions conflict except
/// through the beneficiary's fee.
pub fn raw_transfers(gas: u64, seed: u64) -> Workload {
    transfers("raw-transfers", gas, seed, |builder| {
        let balance = sender_balance(builder);
        let from = builder.eoa(balance);
        (from, recipient(builder))
    })
}

/// `raw-transfers-hot`: `gas / 21,000` ETH transfers from distinct senders to one existing
/// recipient (an exchange deposit address): every transaction credits the same balance.
pub fn raw_transfers_hot(gas: u64, seed: u64) -> Workload {
    let mut hot = None;
    transfers("raw-transfers-hot", gas, seed, |builder| {
        let to = *hot.get_or_insert_with(|| {
            let address = builder.address();
            builder.insert_eoa(address, ether(1_000), 0);
            address
        });
        let balance = sender_balance(builder);
        (builder.eoa(balance), to)
    })
}

/// `raw-transfers-chain`: `gas / 21,000` ETH transfers from one sender with consecutive nonces
/// (to distinct recipients): each transaction depends on the one before.
pub fn raw_transfers_chain(gas: u64, seed: u64) -> Workload {
    let mut sender = None;
    transfers("raw-transfers-chain", gas, seed, |builder| {
        let from = *sender.get_or_insert_with(|| builder.eoa(ether(100_000_000)));
        (from, recipient(builder))
    })
}
