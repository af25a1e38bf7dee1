//! Pre-Merge block and ommer rewards and the DAO fork's irregular state change.

use alloy_consensus::Header;
use alloy_primitives::{Address, U256};
use revm::primitives::hardfork::SpecId;

/// Mainnet block 1,920,000: the DAO fork drains the DAO accounts into a refund contract.
pub const DAO_FORK_BLOCK: u64 = 1_920_000;

/// The accounts the DAO fork drains.
pub fn dao_fork_accounts() -> &'static [Address] {
    &alloy_evm::eth::dao_fork::DAO_HARDFORK_ACCOUNTS
}

/// The refund contract receiving the DAO accounts' balances.
pub fn dao_fork_beneficiary() -> Address {
    alloy_evm::eth::dao_fork::DAO_HARDFORK_BENEFICIARY
}

/// The base block reward of a fork, in wei: 5 ETH (Frontier), 3 ETH (Byzantium), 2 ETH
/// (Constantinople), none from the Merge on.
pub fn block_reward(spec: SpecId) -> U256 {
    const ETH: u128 = 1_000_000_000_000_000_000;
    let eth = if spec.is_enabled_in(SpecId::MERGE) {
        0
    } else if spec.is_enabled_in(SpecId::PETERSBURG) {
        2
    } else if spec.is_enabled_in(SpecId::BYZANTIUM) {
        3
    } else {
        5
    };
    U256::from(eth * ETH)
}

/// The balance increments a pre-Merge block pays: the miner's reward (base plus 1/32 per ommer)
/// and each ommer miner's `(8 + ommer - number) / 8` of the base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRewards {
    /// (recipient, amount) in payment order: the miner first, then ommers.
    pub payments: Vec<(Address, U256)>,
}

impl BlockRewards {
    /// The rewards of a block with these ommer headers.
    pub fn new(spec: SpecId, header: &Header, ommers: &[Header]) -> Self {
        let base = block_reward(spec);
        if base.is_zero() {
            return Self {
                payments: Vec::new(),
            };
        }
        let miner = base + base / U256::from(32) * U256::from(ommers.len());
        let mut payments = vec![(header.beneficiary, miner)];
        for ommer in ommers {
            let eighths = (8 + ommer.number).saturating_sub(header.number);
            payments.push((
                ommer.beneficiary,
                base * U256::from(eighths) / U256::from(8),
            ));
        }
        Self { payments }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETH: u128 = 1_000_000_000_000_000_000;

    #[test]
    fn reward_per_fork() {
        assert_eq!(block_reward(SpecId::FRONTIER), U256::from(5 * ETH));
        assert_eq!(block_reward(SpecId::SPURIOUS_DRAGON), U256::from(5 * ETH));
        assert_eq!(block_reward(SpecId::BYZANTIUM), U256::from(3 * ETH));
        assert_eq!(block_reward(SpecId::PETERSBURG), U256::from(2 * ETH));
        assert_eq!(block_reward(SpecId::LONDON), U256::from(2 * ETH));
        assert_eq!(block_reward(SpecId::MERGE), U256::ZERO);
    }

    #[test]
    fn ommer_rewards() {
        let miner = Address::with_last_byte(1);
        let uncle_miner = Address::with_last_byte(2);
        let header = Header {
            number: 100,
            beneficiary: miner,
            ..Default::default()
        };
        let ommer = Header {
            number: 99,
            beneficiary: uncle_miner,
            ..Default::default()
        };
        let rewards = BlockRewards::new(SpecId::BYZANTIUM, &header, &[ommer]);
        let base = 3 * ETH;
        assert_eq!(
            rewards.payments,
            vec![
                (miner, U256::from(base + base / 32)),
                (uncle_miner, U256::from(base * 7 / 8))
            ]
        );
    }

    #[test]
    fn no_rewards_after_the_merge() {
        let rewards = BlockRewards::new(SpecId::MERGE, &Header::default(), &[Header::default()]);
        assert!(rewards.payments.is_empty());
    }

    #[test]
    fn dao_list() {
        assert_eq!(dao_fork_accounts().len(), 116);
    }
}
