//! Property tests: random blocks (seeded) executed in parallel at 1–8 threads equal sequential
//! execution on every output — receipts, gas, state changes, or the error.

mod common;

use std::collections::HashMap;

use common::*;
use parevm::{
    ChainSpec,
    alloy_primitives::{Address, Bytes, TxKind, U256},
    revm::primitives::hardfork::SpecId,
};
use proptest::prelude::*;

const SPECS: [SpecId; 11] = [
    SpecId::FRONTIER,
    SpecId::HOMESTEAD,
    SpecId::TANGERINE,
    SpecId::SPURIOUS_DRAGON,
    SpecId::BYZANTIUM,
    SpecId::ISTANBUL,
    SpecId::BERLIN,
    SpecId::LONDON,
    SpecId::SHANGHAI,
    SpecId::CANCUN,
    SpecId::PRAGUE,
];

const ADDER: Address = Address::new([0xad; 20]);
const REVERTER: Address = Address::new([0x2e; 20]);
const BURNER: Address = Address::new([0xb0; 20]);
const READER: Address = Address::new([0xcb; 20]);
const FACTORY: Address = Address::new([0xfa; 20]);
const FORWARDER: Address = Address::new([0xf0; 20]);
const HOT: Address = Address::new([0x77; 20]);

fn suicide(index: u64) -> Address {
    Address::with_last_byte(0xd0 + index as u8)
}

/// A random block over a small world of accounts and contracts.
fn random_block(
    seed: u64,
) -> (
    ChainSpec,
    parevm::alloy_consensus::Block<
        parevm::alloy_consensus::transaction::Recovered<parevm::alloy_consensus::TxEnvelope>,
    >,
    parevm::InMemoryStorage,
) {
    let mut rng = SeededRng::new(seed);
    let spec = SPECS[rng.below(SPECS.len() as u64) as usize];
    let mut storage = base_storage(spec);
    let accounts: Vec<Address> = (0..if rng.chance(50) { 3 } else { 30 })
        .map(|i| Address::with_last_byte(0x10).create(i))
        .collect();
    for account in &accounts {
        fund(&mut storage, *account, 100 * ETH);
    }
    if rng.chance(50) {
        fund(&mut storage, BENEFICIARY, ETH);
    }
    deploy(&mut storage, ADDER, code::ADDER);
    deploy(&mut storage, REVERTER, code::REVERTER);
    deploy(&mut storage, BURNER, code::BURNER);
    deploy(&mut storage, READER, code::COINBASE_BALANCE);
    deploy(&mut storage, FACTORY, code::FACTORY);
    deploy(&mut storage, FORWARDER, code::FORWARDER);
    for index in 0..3 {
        deploy(&mut storage, suicide(index), code::SUICIDE);
    }
    let phoenix_init = code::phoenix_init();
    let phoenix = create2_address(FACTORY, &phoenix_init);

    let mut nonces: HashMap<Address, u64> = HashMap::new();
    let mut transactions = Vec::new();
    let mut sender = accounts[0];
    for _ in 0..rng.below(60) + 2 {
        if !rng.chance(30) {
            sender = accounts[rng.below(accounts.len() as u64) as usize];
        }
        let nonce = nonces.entry(sender).or_default();
        let random_account = accounts[rng.below(accounts.len() as u64) as usize];
        let value = U256::from(rng.below(1_000_000));
        let (to, value, input, gas) = match rng.below(14) {
            0 => (TxKind::Call(random_account), value, Bytes::new(), 21_000),
            1 => (
                TxKind::Call(HOT),
                value + U256::from(1),
                Bytes::new(),
                21_000,
            ),
            2 => (
                TxKind::Call(Address::left_padding_from(&rng.next_u64().to_be_bytes())),
                value,
                Bytes::new(),
                21_000,
            ),
            3 => (TxKind::Call(BENEFICIARY), value, Bytes::new(), 21_000),
            4 => {
                let words = [U256::from(rng.below(3)), U256::from(rng.below(100) + 1)];
                (TxKind::Call(ADDER), U256::ZERO, calldata(&words), 100_000)
            }
            5 => (TxKind::Call(REVERTER), U256::ZERO, Bytes::new(), 100_000),
            6 => (TxKind::Call(BURNER), U256::ZERO, Bytes::new(), 50_000),
            7 => (TxKind::Call(READER), U256::ZERO, Bytes::new(), 100_000),
            8 => (
                TxKind::Call(suicide(rng.below(3))),
                value,
                Bytes::new(),
                100_000,
            ),
            9 => (
                TxKind::Call(FACTORY),
                U256::ZERO,
                phoenix_init.clone().into(),
                300_000,
            ),
            10 => {
                let word = U256::from(rng.below(2));
                (
                    TxKind::Call(phoenix),
                    U256::ZERO,
                    calldata(&[word]),
                    100_000,
                )
            }
            11 => {
                let init = code::init_code(&[], code::ADDER);
                (TxKind::Create, value, init.into(), 200_000)
            }
            12 => {
                let target = U256::from_be_slice(random_account.as_slice());
                (TxKind::Call(FORWARDER), value, calldata(&[target]), 100_000)
            }
            _ => (
                TxKind::Call(Address::with_last_byte(0x99)),
                U256::ZERO,
                Bytes::new(),
                21_000,
            ),
        };
        transactions.push(legacy_tx(sender, *nonce, to, value, input, gas));
        *nonce += 1;
    }
    (ChainSpec::fixed(spec), block(spec, transactions), storage)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn parallel_equals_sequential(seed in any::<u64>()) {
        let (chain, block, storage) = random_block(seed);
        let _ = assert_parallel_matches(&format!("seed {seed}"), &chain, &block, &storage);
    }
}

/// Blocks where most transactions succeed (the generator is not degenerate).
#[test]
fn generated_blocks_mostly_execute() {
    let mut executed = 0;
    for seed in 0..20 {
        let (chain, block, storage) = random_block(seed);
        if let Ok(output) = parevm::execute_sequential(&chain, &block, &storage) {
            executed += 1;
            assert_eq!(output.receipts.len(), block.body.transactions.len());
        }
    }
    assert!(
        executed >= 18,
        "only {executed} of 20 generated blocks executed"
    );
}
