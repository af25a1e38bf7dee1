//! Which fork's rules apply to a block.

use revm::primitives::hardfork::SpecId;

/// How a chain picks the fork rules of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkSchedule {
    /// Ethereum mainnet's activation blocks and timestamps, Frontier to Osaka.
    Mainnet,
    /// One fork for every block.
    Fixed(SpecId),
}

/// Mainnet forks activated by block number, newest last.
const MAINNET_BY_NUMBER: [(u64, SpecId); 10] = [
    (0, SpecId::FRONTIER),
    (1_150_000, SpecId::HOMESTEAD),
    (2_463_000, SpecId::TANGERINE),
    (2_675_000, SpecId::SPURIOUS_DRAGON),
    (4_370_000, SpecId::BYZANTIUM),
    // Constantinople and Petersburg activated together on mainnet.
    (7_280_000, SpecId::PETERSBURG),
    (9_069_000, SpecId::ISTANBUL),
    (12_244_000, SpecId::BERLIN),
    (12_965_000, SpecId::LONDON),
    // The first proof-of-stake block (the terminal total difficulty was reached by 15,537,393).
    (15_537_394, SpecId::MERGE),
];

/// Mainnet forks activated by timestamp, newest last.
const MAINNET_BY_TIMESTAMP: [(u64, SpecId); 4] = [
    (1_681_338_455, SpecId::SHANGHAI),
    (1_710_338_135, SpecId::CANCUN),
    (1_746_612_311, SpecId::PRAGUE),
    (1_764_798_551, SpecId::OSAKA),
];

impl ForkSchedule {
    /// The fork rules for block `number` at `timestamp`.
    pub fn spec_id(&self, number: u64, timestamp: u64) -> SpecId {
        match self {
            Self::Fixed(spec) => *spec,
            Self::Mainnet => {
                if let Some((_, spec)) = MAINNET_BY_TIMESTAMP
                    .iter()
                    .rev()
                    .find(|(at, _)| timestamp >= *at)
                {
                    return *spec;
                }
                MAINNET_BY_NUMBER
                    .iter()
                    .rev()
                    .find(|(at, _)| number >= *at)
                    .map(|(_, spec)| *spec)
                    .unwrap_or(SpecId::FRONTIER)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainnet_boundaries() {
        let mainnet = ForkSchedule::Mainnet;
        let cases = [
            (0, 0, SpecId::FRONTIER),
            (1_149_999, 0, SpecId::FRONTIER),
            (1_150_000, 0, SpecId::HOMESTEAD),
            (2_462_999, 0, SpecId::HOMESTEAD),
            (2_463_000, 0, SpecId::TANGERINE),
            (2_675_000, 0, SpecId::SPURIOUS_DRAGON),
            (4_369_999, 0, SpecId::SPURIOUS_DRAGON),
            (4_370_000, 0, SpecId::BYZANTIUM),
            (7_280_000, 0, SpecId::PETERSBURG),
            (9_069_000, 0, SpecId::ISTANBUL),
            (12_244_000, 0, SpecId::BERLIN),
            (12_965_000, 0, SpecId::LONDON),
            (15_537_393, 1_663_224_162, SpecId::LONDON),
            (15_537_394, 1_663_224_179, SpecId::MERGE),
            (17_034_869, 1_681_338_455, SpecId::SHANGHAI),
            (19_426_586, 1_710_338_123, SpecId::SHANGHAI),
            (19_426_587, 1_710_338_135, SpecId::CANCUN),
            (22_431_084, 1_746_612_311, SpecId::PRAGUE),
            (23_935_694, 1_764_798_551, SpecId::OSAKA),
        ];
        for (number, timestamp, spec) in cases {
            assert_eq!(
                mainnet.spec_id(number, timestamp),
                spec,
                "block {number} at {timestamp}"
            );
        }
    }

    #[test]
    fn fixed_ignores_the_block() {
        assert_eq!(
            ForkSchedule::Fixed(SpecId::BERLIN).spec_id(20_000_000, u64::MAX),
            SpecId::BERLIN
        );
    }
}
