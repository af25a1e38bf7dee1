//! Block-level Ethereum rules, observed through both executors: block environment from the
//! header, the EIP-4788 and EIP-2935 system calls before the transactions, withdrawals and the
//! EIP-7002/7251 request calls after them, pre-Merge rewards.

mod common;

use common::*;
use parevm::{
    ChainSpec, ExecutionError,
    alloy_eips::eip4895::Withdrawal,
    alloy_primitives::{Address, B256, Bytes, TxKind, U256, address},
    chain,
    revm::primitives::hardfork::SpecId,
};

const BEACON_ROOTS: Address = address!("0x000F3df6D732807Ef1319fB7B8bB8522d0Beac02");
const HISTORY: Address = parevm::alloy_eips::eip2935::HISTORY_STORAGE_ADDRESS;
const WITHDRAWAL_REQUESTS: Address = address!("0x00000961Ef480Eb55e80D19ad83579A64c007002");

/// `storage[number] = calldata[0..32]`: records what the system call passed.
const RECORDER: &[u8] = &[0x60, 0x00, 0x35, 0x43, 0x55, 0x00];
/// Stores what the EVM sees of the block: `NUMBER`, `BASEFEE`, `PREVRANDAO`, `BLOBBASEFEE` and
/// `COINBASE` in slots 0..4.
const ENV_READER: &[u8] = &[
    0x43, 0x60, 0x00, 0x55, // sstore(0, number)
    0x48, 0x60, 0x01, 0x55, // sstore(1, basefee)
    0x44, 0x60, 0x02, 0x55, // sstore(2, prevrandao)
    0x4a, 0x60, 0x03, 0x55, // sstore(3, blobbasefee)
    0x41, 0x60, 0x04, 0x55, // sstore(4, coinbase)
    0x00,
];

#[test]
fn block_environment_comes_from_the_header() {
    let spec = SpecId::CANCUN;
    let sender = Address::with_last_byte(0x41);
    let reader = Address::repeat_byte(0xe0);
    let mut storage = base_storage(spec);
    fund(&mut storage, sender, ETH);
    deploy(&mut storage, reader, ENV_READER);
    let mut block = block(
        spec,
        vec![legacy_tx(
            sender,
            0,
            TxKind::Call(reader),
            U256::ZERO,
            Bytes::new(),
            200_000,
        )],
    );
    block.header.excess_blob_gas = Some(10_000_000);
    let output = assert_parallel_matches("env", &ChainSpec::fixed(spec), &block, &storage).unwrap();
    let slots = &output.state_changes[&reader].storage;
    let header = &block.header;
    assert_eq!(slots[&U256::ZERO], U256::from(header.number));
    assert_eq!(
        slots[&U256::from(1)],
        U256::from(header.base_fee_per_gas.unwrap())
    );
    assert_eq!(
        slots[&U256::from(2)],
        U256::from_be_bytes(header.mix_hash.0)
    );
    // EIP-4844's formula, computed independently of the engine's block environment.
    let blob_price = parevm::alloy_eips::eip4844::calc_blob_gasprice(10_000_000);
    assert!(blob_price > 1, "excess blob gas raises the blob base fee");
    assert_eq!(slots[&U256::from(3)], U256::from(blob_price));
    assert_eq!(
        slots[&U256::from(4)],
        U256::from_be_slice(BENEFICIARY.as_slice())
    );
}

#[test]
fn header_fields_required_by_the_fork_are_checked() {
    let spec = SpecId::LONDON;
    let mut header = header(spec);
    header.base_fee_per_gas = None;
    assert!(matches!(
        chain::block_env(&header, spec),
        Err(ExecutionError::InvalidHeader(_))
    ));
    let mut header = common::header(SpecId::CANCUN);
    header.excess_blob_gas = None;
    assert!(matches!(
        chain::block_env(&header, SpecId::CANCUN),
        Err(ExecutionError::InvalidHeader(_))
    ));
    // Before the Merge, DIFFICULTY is the header's difficulty and there is no prevrandao.
    let env = chain::block_env(&common::header(SpecId::BERLIN), SpecId::BERLIN).unwrap();
    assert_eq!(env.prevrandao, None);
    assert_eq!(env.difficulty, U256::from(1u64));
}

#[test]
fn beacon_root_and_history_calls_run_before_the_transactions() {
    let spec = SpecId::PRAGUE;
    let mut storage = base_storage(spec);
    deploy(&mut storage, BEACON_ROOTS, RECORDER);
    deploy(&mut storage, HISTORY, RECORDER);
    let mut block = block(spec, vec![]);
    block.header.parent_hash = B256::repeat_byte(0x99);
    let output =
        assert_parallel_matches("system calls", &ChainSpec::fixed(spec), &block, &storage).unwrap();
    let number = U256::from(block.header.number);
    assert_eq!(
        output.state_changes[&BEACON_ROOTS].storage[&number],
        U256::from_be_bytes(block.header.parent_beacon_block_root.unwrap().0)
    );
    assert_eq!(
        output.state_changes[&HISTORY].storage[&number],
        U256::from_be_bytes([0x99; 32])
    );
    // Cancun: the beacon root call, not yet the history call.
    let cancun = SpecId::CANCUN;
    let block = common::block(cancun, vec![]);
    let output = parevm::execute_sequential(&ChainSpec::fixed(cancun), &block, &storage).unwrap();
    assert!(output.state_changes.contains_key(&BEACON_ROOTS));
    assert!(!output.state_changes.contains_key(&HISTORY));
    // Cancun requires the parent beacon root in the header.
    let mut block = common::block(cancun, vec![]);
    block.header.parent_beacon_block_root = None;
    let result = parevm::execute_sequential(&ChainSpec::fixed(cancun), &block, &storage);
    assert!(
        matches!(result, Err(ExecutionError::InvalidHeader(_))),
        "{result:?}"
    );
}

#[test]
fn withdrawals_are_credited_in_gwei_after_the_transactions() {
    let spec = SpecId::SHANGHAI;
    let sender = Address::with_last_byte(0x41);
    let validator = Address::with_last_byte(0x42);
    let mut storage = base_storage(spec);
    fund(&mut storage, sender, ETH);
    // The sender sends its whole balance minus fees: only a withdrawal credited *after* the
    // transaction keeps this valid and leaves exactly the withdrawal.
    let value = U256::from(ETH - 21_000 * 10 * GWEI);
    let mut block = block(
        spec,
        vec![legacy_tx(
            sender,
            0,
            TxKind::Call(validator),
            value,
            Bytes::new(),
            21_000,
        )],
    );
    block.body.withdrawals = Some(
        vec![
            Withdrawal {
                index: 0,
                validator_index: 1,
                address: sender,
                amount: 5,
            },
            Withdrawal {
                index: 1,
                validator_index: 2,
                address: validator,
                amount: 7,
            },
        ]
        .into(),
    );
    let output =
        assert_parallel_matches("withdrawals", &ChainSpec::fixed(spec), &block, &storage).unwrap();
    let balance = |address: &Address| output.state_changes[address].info.as_ref().unwrap().balance;
    assert_eq!(balance(&sender), U256::from(5 * GWEI));
    assert_eq!(balance(&validator), value + U256::from(7 * GWEI));
}

#[test]
fn request_calls_need_their_contracts() {
    let spec = SpecId::PRAGUE;
    let mut storage = parevm::InMemoryStorage::new();
    let block = block(spec, vec![]);
    let result = parevm::execute_sequential(&ChainSpec::fixed(spec), &block, &storage);
    assert!(
        matches!(result, Err(ExecutionError::SystemCall { address, .. }) if address == WITHDRAWAL_REQUESTS),
        "{result:?}"
    );
    storage = base_storage(spec);
    assert!(parevm::execute_sequential(&ChainSpec::fixed(spec), &block, &storage).is_ok());
}

#[test]
fn mainnet_pays_block_rewards_before_the_merge_and_state_test_chains_do_not() {
    let mut block = block(SpecId::BYZANTIUM, vec![]);
    block.header.number = 5_000_000;
    let storage = parevm::InMemoryStorage::new();
    let output = parevm::execute_sequential(&ChainSpec::mainnet(), &block, &storage).unwrap();
    let reward = output.state_changes[&BENEFICIARY]
        .info
        .as_ref()
        .unwrap()
        .balance;
    assert_eq!(reward, U256::from(3 * ETH));
    let output =
        parevm::execute_sequential(&ChainSpec::fixed(SpecId::BYZANTIUM), &block, &storage).unwrap();
    assert!(!output.state_changes.contains_key(&BENEFICIARY));
}
