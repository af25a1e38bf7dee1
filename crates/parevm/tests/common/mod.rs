//! Test support: block building, hand-assembled contracts and a seeded random generator.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::{collections::HashMap, num::NonZeroUsize};

use parevm::{
    BlockOutput, ChainSpec, ExecutionError, ExecutorConfig, InMemoryStorage, ParallelExecutor,
    alloy_consensus::{
        Block, BlockBody, Header, Signed, TxEip7702, TxEnvelope, TxLegacy, transaction::Recovered,
    },
    alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256, keccak256},
    revm::primitives::hardfork::SpecId,
};

pub const BENEFICIARY: Address = Address::new([0xbe; 20]);
pub const GWEI: u128 = 1_000_000_000;
pub const ETH: u128 = 1_000_000_000_000_000_000;

/// A tiny deterministic generator (SplitMix64): tests print the seed on failure.
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A header for `spec` with the fields that fork requires.
pub fn header(spec: SpecId) -> Header {
    let london = spec.is_enabled_in(SpecId::LONDON);
    let cancun = spec.is_enabled_in(SpecId::CANCUN);
    Header {
        number: 1_000,
        timestamp: 1_000_000,
        gas_limit: 1_000_000_000,
        beneficiary: BENEFICIARY,
        difficulty: U256::from(1u64),
        base_fee_per_gas: london.then_some(7),
        excess_blob_gas: cancun.then_some(0),
        blob_gas_used: cancun.then_some(0),
        parent_beacon_block_root: cancun.then_some(B256::repeat_byte(0x42)),
        mix_hash: B256::repeat_byte(0x11),
        ..Default::default()
    }
}

pub fn legacy_tx(
    sender: Address,
    nonce: u64,
    to: TxKind,
    value: U256,
    input: Bytes,
    gas_limit: u64,
) -> Recovered<TxEnvelope> {
    priced_legacy_tx(sender, nonce, to, value, input, gas_limit, 10 * GWEI)
}

/// [`legacy_tx`] at `gas_price` per gas.
pub fn priced_legacy_tx(
    sender: Address,
    nonce: u64,
    to: TxKind,
    value: U256,
    input: Bytes,
    gas_limit: u64,
    gas_price: u128,
) -> Recovered<TxEnvelope> {
    // Pre-EIP-155 form (no chain id): valid on every fork.
    let tx = TxLegacy {
        chain_id: None,
        nonce,
        gas_price,
        gas_limit,
        to,
        value,
        input,
    };
    let signed = Signed::new_unchecked(tx, Signature::test_signature(), B256::ZERO);
    Recovered::new_unchecked(TxEnvelope::Legacy(signed), sender)
}

pub fn eip7702_tx(
    sender: Address,
    nonce: u64,
    to: Address,
    input: Bytes,
    authorization_list: Vec<parevm::alloy_eips::eip7702::SignedAuthorization>,
) -> Recovered<TxEnvelope> {
    let tx = TxEip7702 {
        chain_id: 1,
        nonce,
        gas_limit: 500_000,
        max_fee_per_gas: 10 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to,
        value: U256::ZERO,
        access_list: Default::default(),
        authorization_list,
        input,
    };
    let signed = Signed::new_unchecked(tx, Signature::test_signature(), B256::ZERO);
    Recovered::new_unchecked(TxEnvelope::Eip7702(signed), sender)
}

pub fn block(
    spec: SpecId,
    transactions: Vec<Recovered<TxEnvelope>>,
) -> Block<Recovered<TxEnvelope>> {
    let shanghai = spec.is_enabled_in(SpecId::SHANGHAI);
    Block {
        header: header(spec),
        body: BlockBody {
            transactions,
            ommers: Vec::new(),
            withdrawals: shanghai.then(Default::default),
        },
    }
}

/// Pre-state with the system contracts a fork's block-level calls need (trivial code).
pub fn base_storage(spec: SpecId) -> InMemoryStorage {
    let mut storage = InMemoryStorage::new();
    if spec.is_enabled_in(SpecId::PRAGUE) {
        for address in [
            alloy_eips_addresses::WITHDRAWAL_REQUESTS,
            alloy_eips_addresses::CONSOLIDATION_REQUESTS,
        ] {
            storage.insert_account_with_code(
                address,
                U256::ZERO,
                1,
                Bytes::from_static(&[0x00]),
                HashMap::new(),
            );
        }
    }
    storage
}

mod alloy_eips_addresses {
    use parevm::alloy_primitives::{Address, address};
    pub const WITHDRAWAL_REQUESTS: Address = address!("0x00000961Ef480Eb55e80D19ad83579A64c007002");
    pub const CONSOLIDATION_REQUESTS: Address =
        address!("0x0000BBdDc7CE488642fb579F8B00f3a590007251");
}

/// `count` (at most 191) distinct externally owned accounts: 0x…41, 0x…42, …
pub fn senders(count: u8) -> Vec<Address> {
    (1..=count)
        .map(|i| Address::with_last_byte(0x40 + i))
        .collect()
}

/// The base pre-state of `spec` with 100 ETH in each of `accounts`.
pub fn funded(spec: SpecId, accounts: &[Address]) -> InMemoryStorage {
    let mut storage = base_storage(spec);
    for account in accounts {
        fund(&mut storage, *account, 100 * ETH);
    }
    storage
}

/// A 1-wei transfer from `from` (at `nonce`) to `to`.
pub fn transfer(from: Address, nonce: u64, to: Address) -> Recovered<TxEnvelope> {
    legacy_tx(
        from,
        nonce,
        TxKind::Call(to),
        U256::from(1),
        Bytes::new(),
        21_000,
    )
}

/// The balance `address` ends the block with (it must be in the changes).
pub fn balance_of(output: &BlockOutput, address: Address) -> U256 {
    (output.state_changes[&address].info.as_ref())
        .expect("the account exists after the block")
        .balance
}

pub fn fund(storage: &mut InMemoryStorage, address: Address, wei: u128) {
    storage.insert_account_with_code(address, U256::from(wei), 0, Bytes::new(), HashMap::new());
}

pub fn deploy(storage: &mut InMemoryStorage, address: Address, code: &[u8]) {
    storage.insert_account_with_code(
        address,
        U256::ZERO,
        1,
        Bytes::copy_from_slice(code),
        HashMap::new(),
    );
}

/// Contracts, hand-assembled.
pub mod code {
    /// `slot = calldata[0..32]; storage[slot] += calldata[32..64]`.
    pub const ADDER: &[u8] = &[
        0x60, 0x00, 0x35, // PUSH1 0 CALLDATALOAD            [slot]
        0x80, 0x54, // DUP1 SLOAD                            [slot, value]
        0x60, 0x20, 0x35, // PUSH1 32 CALLDATALOAD          [slot, value, add]
        0x01, // ADD                                         [slot, value+add]
        0x90, 0x55, // SWAP1 SSTORE
        0x00, // STOP
    ];
    /// `storage[0] += 1`, whatever the call (a sale counting deposits).
    pub const COUNTER: &[u8] = &[
        0x60, 0x00, 0x54, // PUSH1 0 SLOAD
        0x60, 0x01, 0x01, // PUSH1 1 ADD
        0x60, 0x00, 0x55, // PUSH1 0 SSTORE
        0x00, // STOP
    ];
    /// Writes slot 0, then reverts.
    pub const REVERTER: &[u8] = &[0x60, 0x01, 0x60, 0x00, 0x55, 0x60, 0x00, 0x60, 0x00, 0xfd];
    /// Loops until out of gas.
    pub const BURNER: &[u8] = &[0x5b, 0x60, 0x00, 0x56];
    /// `storage[0] = balance(coinbase)`.
    pub const COINBASE_BALANCE: &[u8] = &[0x41, 0x31, 0x60, 0x00, 0x55, 0x00];
    /// `storage[0] = balance(origin)`.
    pub const ORIGIN_BALANCE: &[u8] = &[0x32, 0x31, 0x60, 0x00, 0x55, 0x00];
    /// `selfdestruct(caller)`.
    pub const SUICIDE: &[u8] = &[0x33, 0xff];
    /// `storage[0] = create2(value 0, calldata as init code, salt 0)`.
    pub const FACTORY: &[u8] = &[
        0x36, 0x60, 0x00, 0x60, 0x00, 0x37, // CALLDATACOPY(0, 0, CALLDATASIZE)
        0x60, 0x00, 0x36, 0x60, 0x00, 0x60, 0x00, 0xf5, // CREATE2(0, 0, size, salt 0)
        0x60, 0x00, 0x55, 0x00, // SSTORE(0, address) STOP
    ];
    /// Forwards its call value to the address in calldata[12..32].
    pub const FORWARDER: &[u8] = &[
        0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60,
        0x00, // retSize retOffset argsSize argsOffset
        0x34, // CALLVALUE
        0x60, 0x00, 0x35, // PUSH1 0 CALLDATALOAD (to)
        0x5a, // GAS
        0xf1, 0x50, 0x00, // CALL POP STOP
    ];

    /// Init code deploying `runtime` (≤ 255 bytes) after running `constructor`.
    pub fn init_code(constructor: &[u8], runtime: &[u8]) -> Vec<u8> {
        let mut code = constructor.to_vec();
        let prefix_len = code.len() + 12;
        code.extend_from_slice(&[
            0x60,
            runtime.len() as u8, // PUSH1 len
            0x80,                // DUP1
            0x60,
            prefix_len as u8, // PUSH1 offset of runtime
            0x60,
            0x00, // PUSH1 0
            0x39, // CODECOPY(0, offset, len)
            0x60,
            0x00, // PUSH1 0
            0xf3, // RETURN(0, len)
            0x00, // padding so that the runtime starts at prefix_len
        ]);
        debug_assert_eq!(code.len(), prefix_len);
        code.extend_from_slice(runtime);
        code
    }

    /// Counts 8,192 down (some 250,000 gas: a transaction that is still running when the ones
    /// after it start), then forwards its call value to `to`.
    pub fn slow_forwarder(to: super::Address) -> Vec<u8> {
        let mut code = vec![
            0x61, 0x20, 0x00, // PUSH2 8192                  [n]
            0x5b, 0x60, 0x01, 0x90, 0x03, // JUMPDEST PUSH1 1 SWAP1 SUB   [n-1]
            0x80, 0x60, 0x03, 0x57, // DUP1 PUSH1 3 JUMPI   (n-1 != 0: loop)
            0x50, // POP
            0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60,
            0x00, // retSize retOffset argsSize argsOffset
            0x34, 0x73, // CALLVALUE PUSH20 to
        ];
        code.extend_from_slice(to.as_slice());
        code.extend_from_slice(&[0x5a, 0xf1, 0x50, 0x00]); // GAS CALL POP STOP
        code
    }

    /// A child whose constructor copies slot 1 into slot 2 and sets slot 0; its runtime sets
    /// slot 1 to 7 when called with a zero word, and self-destructs otherwise.
    pub fn phoenix_init() -> Vec<u8> {
        let constructor = [
            0x60, 0x01, 0x54, 0x60, 0x02, 0x55, 0x60, 0x01, 0x60, 0x00, 0x55,
        ];
        let runtime = [
            0x60, 0x00, 0x35, 0x60, 0x0c, 0x57, // calldata[0] != 0 → jump to 12
            0x60, 0x07, 0x60, 0x01, 0x55, 0x00, // sstore(1, 7) stop
            0x5b, 0x33, 0xff, // JUMPDEST selfdestruct(caller)
        ];
        init_code(&constructor, &runtime)
    }
}

pub fn word(value: u64) -> [u8; 32] {
    U256::from(value).to_be_bytes()
}

pub fn calldata(words: &[U256]) -> Bytes {
    words
        .iter()
        .flat_map(|word| word.to_be_bytes::<32>())
        .collect::<Vec<u8>>()
        .into()
}

pub fn create_address(sender: Address, nonce: u64) -> Address {
    sender.create(nonce)
}

pub fn create2_address(factory: Address, init_code: &[u8]) -> Address {
    factory.create2(B256::ZERO, keccak256(init_code))
}

pub fn executor(threads: usize) -> ParallelExecutor {
    executor_with(parevm::Strategy::BlockStm, threads)
}

pub fn executor_with(strategy: parevm::Strategy, threads: usize) -> ParallelExecutor {
    ParallelExecutor::new(ExecutorConfig {
        concurrency: NonZeroUsize::new(threads).unwrap(),
        strategy,
    })
}

/// The parallel engines every check runs on `block`: Block-STM, the pipeline, the pipeline
/// handing over to Block-STM half-way, and Block-STM giving way to sequential execution after
/// half as many executions as transactions.
pub fn engines(block: &Block<Recovered<TxEnvelope>>) -> [parevm::Strategy; 4] {
    let txs = block.body.transactions.len();
    [
        parevm::Strategy::BlockStm,
        parevm::Strategy::Pipeline,
        parevm::Strategy::HandOver(txs / 2),
        parevm::Strategy::GiveWayAfter(txs / 2),
    ]
}

/// Executes sequentially and with each engine at 1, 2, 4, 8 and 16 threads; asserts equality and
/// returns the sequential result.
pub fn assert_parallel_matches(
    context: &str,
    chain: &ChainSpec,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &InMemoryStorage,
) -> Result<BlockOutput, ExecutionError> {
    let sequential = parevm::execute_sequential(chain, block, storage);
    for strategy in engines(block) {
        for threads in [1, 2, 4, 8, 16] {
            // Strict: an engine's internal failure is an error, not its sequential re-execution.
            let parallel = executor_with(strategy, threads)
                .execute_strict(chain, block, storage)
                .0;
            if let Some(difference) = first_difference(&sequential, &parallel) {
                panic!(
                    "{context}: {strategy} at {threads} threads differs from sequential: \
                     {difference}"
                );
            }
        }
    }
    sequential
}

/// The first difference between two results, described briefly.
pub fn first_difference(
    expected: &Result<BlockOutput, ExecutionError>,
    actual: &Result<BlockOutput, ExecutionError>,
) -> Option<String> {
    match (expected, actual) {
        (Ok(expected), Ok(actual)) => expected.first_difference(actual),
        (expected, actual) => {
            let (e, a) = (format!("{expected:?}"), format!("{actual:?}"));
            (e != a).then(|| format!("sequential {:.300}, parallel {:.300}", e, a))
        }
    }
}

/// Random blocks over a small world of accounts and contracts: transfers among few or many
/// accounts, a hot recipient, same-sender runs, contracts that read and write shared slots, reads
/// of the beneficiary's balance, creates, CREATE2 redeploys and self-destructs, reverts and
/// out-of-gas, on a random fork.
pub mod random {
    use std::collections::HashMap;

    use super::*;

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
    pub fn random_block(
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
}
