//! Deterministic synthetic blocks, each filling a gas budget, with the pre-state written directly
//! into storage (nothing is deployed by a transaction). Each isolates one kind of contention:
//!
//! | name | what it isolates |
//! |---|---|
//! | `raw-transfers` | independent ETH transfers, every sender and recipient distinct |
//! | `raw-transfers-hot` | transfers from distinct senders to one hot recipient |
//! | `raw-transfers-chain` | one sender, consecutive nonces: a full dependency chain |
//! | `erc20` | transfers of one ERC-20 token between distinct holder pairs |
//! | `erc20-clusters` | several tokens, transfers inside small groups of holders |
//! | `uniswap` | Uniswap V3 swaps, each through its own pool |
//! | `uniswap-hot-pool` | all swaps through one pool: inherently sequential |
//! | `mixed` | raw transfers (some to hot addresses), ERC-20 on a few tokens, swaps on a few pools, some same-sender runs |
//!
//! Contract bytecode (public ERC-20 and Uniswap V3 runtime code) is embedded, so the workloads run
//! without the shared fixtures.

use std::collections::HashMap;

use parevm::{
    ChainSpec, InMemoryStorage,
    alloy_consensus::{
        Block, BlockBody, Header, Signed, TxEnvelope, TxLegacy, transaction::Recovered,
    },
    alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256, keccak256},
    revm::primitives::hardfork::SpecId,
};

/// The workload names, in the order `parevm bench` runs them.
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

/// A synthetic block with its chain and pre-state.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The workload's name.
    pub name: String,
    /// The chain (Cancun rules).
    pub chain: ChainSpec,
    /// The block.
    pub block: Block<Recovered<TxEnvelope>>,
    /// The state before it.
    pub storage: InMemoryStorage,
}

/// Builds workload `name` filling about `gas` gas, deterministically from `seed`.
pub fn workload(name: &str, gas: u64, seed: u64) -> Option<Workload> {
    let mut builder = Builder::new(seed);
    match name {
        "raw-transfers" => raw_transfers(&mut builder, gas, Recipients::Distinct),
        "raw-transfers-hot" => raw_transfers(&mut builder, gas, Recipients::Hot),
        "raw-transfers-chain" => raw_transfers(&mut builder, gas, Recipients::Chain),
        "erc20" => erc20(&mut builder, gas, 1, usize::MAX),
        "erc20-clusters" => erc20(&mut builder, gas, 16, 4),
        "uniswap" => uniswap(&mut builder, gas, Pools::OnePerSwap),
        "uniswap-hot-pool" => uniswap(&mut builder, gas, Pools::One),
        "mixed" => mixed(&mut builder, gas),
        _ => return None,
    }
    Some(builder.finish(name))
}

const GWEI: u128 = 1_000_000_000;
const ETHER: u128 = 1_000_000_000_000_000_000;
const BASE_FEE: u64 = GWEI as u64;
const GAS_PRICE: u128 = 2 * GWEI;
const TRANSFER_GAS: u64 = 21_000;
/// Measured: a transfer between two holders of the token (both balance slots non-zero).
const ERC20_GAS_USED: u64 = 34_550;
const ERC20_GAS_LIMIT: u64 = 45_000;
const SWAP_GAS_USED: u64 = 159_054;
/// The first swap of a pool needs about 239k gas before its refund: 200k is not enough.
const SWAP_GAS_LIMIT: u64 = 300_000;

/// A deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Accumulates a pre-state and transactions.
struct Builder {
    rng: Rng,
    storage: InMemoryStorage,
    txs: Vec<Recovered<TxEnvelope>>,
    nonces: HashMap<Address, u64>,
    next_address: u64,
    gas_limit: u64,
}

impl Builder {
    fn new(seed: u64) -> Self {
        Self {
            rng: Rng(seed),
            storage: InMemoryStorage::new(),
            txs: Vec::new(),
            nonces: HashMap::new(),
            next_address: seed.wrapping_mul(1 << 32),
            gas_limit: 0,
        }
    }

    /// A fresh address, unrelated to precompiles and system contracts.
    fn address(&mut self) -> Address {
        self.next_address += 1;
        Address::from_slice(&keccak256(self.next_address.to_be_bytes())[12..])
    }

    /// A fresh externally owned account holding `wei`.
    fn account(&mut self, wei: u128) -> Address {
        let address = self.address();
        self.storage.insert_account_with_code(
            address,
            U256::from(wei),
            0,
            Bytes::new(),
            HashMap::new(),
        );
        address
    }

    fn contract(&mut self, address: Address, code: Bytes, storage: HashMap<U256, U256>) {
        self.storage
            .insert_account_with_code(address, U256::ZERO, 1, code, storage);
    }

    fn tx(&mut self, from: Address, to: Address, value: U256, input: Bytes, gas_limit: u64) {
        let nonce = self.nonces.entry(from).or_default();
        let tx = TxLegacy {
            chain_id: Some(1),
            nonce: *nonce,
            gas_price: GAS_PRICE,
            gas_limit,
            to: TxKind::Call(to),
            value,
            input,
        };
        *nonce += 1;
        self.gas_limit += gas_limit;
        let signed = Signed::new_unchecked(tx, Signature::test_signature(), B256::ZERO);
        self.txs
            .push(Recovered::new_unchecked(TxEnvelope::Legacy(signed), from));
    }

    fn finish(self, name: &str) -> Workload {
        let header = Header {
            number: 20_000_000,
            timestamp: 1_720_000_000,
            gas_limit: self.gas_limit.max(30_000_000),
            beneficiary: Address::repeat_byte(0xbe),
            base_fee_per_gas: Some(BASE_FEE),
            excess_blob_gas: Some(0),
            blob_gas_used: Some(0),
            parent_beacon_block_root: Some(B256::repeat_byte(0x0b)),
            mix_hash: B256::repeat_byte(0x0a),
            ..Default::default()
        };
        Workload {
            name: name.to_string(),
            chain: ChainSpec::fixed(SpecId::CANCUN),
            block: Block {
                header,
                body: BlockBody {
                    transactions: self.txs,
                    ommers: Vec::new(),
                    withdrawals: Some(Default::default()),
                },
            },
            storage: self.storage,
        }
    }
}

enum Recipients {
    Distinct,
    Hot,
    Chain,
}

fn raw_transfers(builder: &mut Builder, gas: u64, recipients: Recipients) {
    let count = (gas / TRANSFER_GAS).max(1);
    let hot = builder.address();
    let chain_sender = builder.account(1_000_000 * ETHER);
    for _ in 0..count {
        let (from, to) = match recipients {
            Recipients::Distinct => (builder.account(ETHER), builder.address()),
            Recipients::Hot => (builder.account(ETHER), hot),
            Recipients::Chain => (chain_sender, builder.address()),
        };
        builder.tx(
            from,
            to,
            U256::from(1_000_000u64),
            Bytes::new(),
            TRANSFER_GAS,
        );
    }
}

fn word(value: U256) -> [u8; 32] {
    value.to_be_bytes()
}

fn address_word(address: Address) -> [u8; 32] {
    word(U256::from_be_slice(address.as_slice()))
}

/// The storage key of `mapping[key]` for a mapping at `slot` (Solidity layout).
fn mapping_slot(key: [u8; 32], slot: U256) -> U256 {
    let mut preimage = [0u8; 64];
    preimage[..32].copy_from_slice(&key);
    preimage[32..].copy_from_slice(&word(slot));
    U256::from_be_bytes(keccak256(preimage).0)
}

fn decode(hex_code: &str) -> Bytes {
    Bytes::from(
        parevm::alloy_primitives::hex::decode(hex_code.trim())
            .expect("embedded bytecode is valid hex"),
    )
}

/// Replaces every occurrence of a placeholder (lowercase hex, no 0x) in hex code.
fn patch(hex_code: &str, replacements: &[(&str, String)]) -> Bytes {
    let mut code = hex_code.trim().to_lowercase();
    for (placeholder, value) in replacements {
        code = code.replace(placeholder, value);
    }
    decode(&code)
}

fn hex_of(bytes: &[u8]) -> String {
    parevm::alloy_primitives::hex::encode(bytes)
}

const ERC20_CODE: &str = include_str!("../contracts/ERC20Token.hex");

fn transfer_call(to: Address, amount: U256) -> Bytes {
    let mut input = vec![0xa9, 0x05, 0x9c, 0xbb];
    input.extend_from_slice(&address_word(to));
    input.extend_from_slice(&word(amount));
    input.into()
}

/// Deploys an ERC-20 at a fresh address with the given balances and allowances.
fn deploy_token(
    builder: &mut Builder,
    balances: &[(Address, U256)],
    allowances: &[(Address, Address, U256)],
) -> Address {
    let token = builder.address();
    let mut slots = HashMap::new();
    let mut supply = U256::ZERO;
    for (holder, amount) in balances {
        slots.insert(mapping_slot(address_word(*holder), U256::ZERO), *amount);
        supply += *amount;
    }
    for (owner, spender, amount) in allowances {
        let inner = mapping_slot(address_word(*owner), U256::from(1));
        slots.insert(mapping_slot(address_word(*spender), inner), *amount);
    }
    slots.insert(U256::from(2), supply);
    slots.insert(U256::from(5), U256::from(18));
    builder.contract(token, decode(ERC20_CODE), slots);
    token
}

/// ERC-20 transfers on `tokens` tokens; holders in groups of `group` share balances (transfers
/// stay inside a group); `usize::MAX` gives every transfer its own sender and recipient.
fn erc20(builder: &mut Builder, gas: u64, tokens: usize, group: usize) {
    let count = (gas / ERC20_GAS_USED).max(1) as usize;
    let amount = U256::from(1_000u64);
    if group == usize::MAX {
        // Recipients already hold tokens: a fresh balance slot would cost 20,000 more gas.
        let pairs: Vec<(Address, Address)> = (0..count)
            .map(|_| (builder.account(ETHER), builder.address()))
            .collect();
        let balances: Vec<_> = pairs
            .iter()
            .flat_map(|(from, to)| [(*from, U256::from(ETHER)), (*to, U256::from(ETHER))])
            .collect();
        let token = deploy_token(builder, &balances, &[]);
        for (from, to) in pairs {
            builder.tx(
                from,
                token,
                U256::ZERO,
                transfer_call(to, amount),
                ERC20_GAS_LIMIT,
            );
        }
        return;
    }
    let groups_per_token = (count / (tokens * group)).max(1);
    let mut clusters = Vec::new();
    for _ in 0..tokens {
        let members: Vec<Vec<Address>> = (0..groups_per_token)
            .map(|_| (0..group).map(|_| builder.account(ETHER)).collect())
            .collect();
        let balances: Vec<_> = members
            .iter()
            .flatten()
            .map(|holder| (*holder, U256::from(ETHER)))
            .collect();
        let token = deploy_token(builder, &balances, &[]);
        clusters.push((token, members));
    }
    for index in 0..count {
        let (token, members) = &clusters[index % tokens];
        let members = &members[builder.rng.below(members.len())];
        let from = members[builder.rng.below(group)];
        let to = members[builder.rng.below(group)];
        let token = *token;
        builder.tx(
            from,
            token,
            U256::ZERO,
            transfer_call(to, amount),
            ERC20_GAS_LIMIT,
        );
    }
}

const WETH9_CODE: &str = include_str!("../contracts/WETH9.hex");
const FACTORY_CODE: &str = include_str!("../contracts/UniswapV3Factory.hex");
const POOL_CODE: &str = include_str!("../contracts/UniswapV3Pool.hex");
const ROUTER_CODE: &str = include_str!("../contracts/SwapRouter.hex");
const SINGLE_SWAP_CODE: &str = include_str!("../contracts/SingleSwap.hex");

/// The contracts every pool shares: WETH9, the factory, the router and SingleSwap's code.
struct UniswapShared {
    factory: Address,
    router: Address,
    single_swap_code: Bytes,
    init_code_hash: B256,
}

fn short_string(text: &str) -> U256 {
    let mut bytes = [0u8; 32];
    bytes[..text.len()].copy_from_slice(text.as_bytes());
    bytes[31] = (text.len() * 2) as u8;
    U256::from_be_bytes(bytes)
}

fn deploy_uniswap_shared(builder: &mut Builder) -> UniswapShared {
    let weth = builder.address();
    let factory = builder.address();
    let router = builder.address();
    let init_code_hash = keccak256(b"parevm synthetic pool init code");
    let weth_slots = HashMap::from([
        (U256::ZERO, short_string("Wrapped Ether")),
        (U256::from(1), short_string("WETH")),
        (U256::from(2), U256::from(18)),
    ]);
    builder.contract(weth, decode(WETH9_CODE), weth_slots);
    let factory_code = patch(
        FACTORY_CODE,
        &[(
            "0b748751e6f8b1a38c9386a19d9f8966b3593a9e",
            hex_of(factory.as_slice()),
        )],
    );
    let mut factory_slots =
        HashMap::from([(U256::from(3), U256::from_be_slice(factory.as_slice()))]);
    for (fee, spacing) in [(500u64, 10u64), (3000, 60), (10000, 200)] {
        factory_slots.insert(
            mapping_slot(word(U256::from(fee)), U256::from(4)),
            U256::from(spacing),
        );
    }
    builder.contract(factory, factory_code, factory_slots);
    let router_code = patch(
        ROUTER_CODE,
        &[
            (
                "6509f2a854ba7441039fce3b959d5badd2ffcfcd",
                hex_of(weth.as_slice()),
            ),
            (
                "d787a42ee3ac477c46dd6c912e7af795d44453d5",
                hex_of(factory.as_slice()),
            ),
            (
                "636fcf59d7fdf3a03833dba1c6d936c9d7c6730057c8c4c8e5059feaeab60e04",
                hex_of(init_code_hash.as_slice()),
            ),
        ],
    );
    builder.contract(
        router,
        router_code,
        HashMap::from([(U256::ZERO, U256::MAX)]),
    );
    let single_swap_code = patch(
        SINGLE_SWAP_CODE,
        &[(
            "e7cfcccb38ce07ba9d8d13431afe8cf6172de031",
            hex_of(router.as_slice()),
        )],
    );
    UniswapShared {
        factory,
        router,
        single_swap_code,
        init_code_hash,
    }
}

/// Two's-complement 256-bit word of a signed integer.
fn int_word(value: i64) -> [u8; 32] {
    let mut bytes = if value < 0 { [0xff; 32] } else { [0u8; 32] };
    bytes[24..].copy_from_slice(&value.to_be_bytes());
    bytes
}

fn word_hex(text: &str) -> U256 {
    U256::from_str_radix(text.trim_start_matches("0x"), 16).expect("valid constant")
}

/// One pool with its two tokens and SingleSwap instance, funded for `people`; returns the
/// SingleSwap address.
fn deploy_pool(builder: &mut Builder, shared: &UniswapShared, people: &[Address]) -> Address {
    let single_swap = builder.address();
    let (mut token0, mut token1) = (builder.address(), builder.address());
    if token0 > token1 {
        std::mem::swap(&mut token0, &mut token1);
    }
    let mut salt_preimage = Vec::with_capacity(96);
    salt_preimage.extend_from_slice(&address_word(token0));
    salt_preimage.extend_from_slice(&address_word(token1));
    salt_preimage.extend_from_slice(&word(U256::from(3000)));
    let pool = shared
        .factory
        .create2(keccak256(&salt_preimage), shared.init_code_hash);

    let pool_reserve = U256::from(111_111u64) * U256::from(ETHER);
    let person_balance = U256::from(ETHER);
    for token in [token0, token1] {
        let mut slots = HashMap::new();
        slots.insert(mapping_slot(address_word(pool), U256::ZERO), pool_reserve);
        for person in people {
            slots.insert(
                mapping_slot(address_word(*person), U256::ZERO),
                person_balance,
            );
            let inner = mapping_slot(address_word(*person), U256::from(1));
            slots.insert(
                mapping_slot(address_word(single_swap), inner),
                person_balance,
            );
        }
        slots.insert(U256::from(2), U256::from(222_222u64) * U256::from(ETHER));
        slots.insert(U256::from(5), U256::from(18));
        builder.contract(token, decode(ERC20_CODE), slots);
    }

    // The factory knows the pool in both token orders.
    let getpool = |a: Address, b: Address| {
        let outer = mapping_slot(address_word(a), U256::from(5));
        let middle = mapping_slot(address_word(b), outer);
        mapping_slot(word(U256::from(3000)), middle)
    };
    if let Some(factory) = builder.storage.account_mut(&shared.factory) {
        let pool_word = U256::from_be_slice(pool.as_slice());
        factory.storage.insert(getpool(token0, token1), pool_word);
        factory.storage.insert(getpool(token1, token0), pool_word);
    }

    let pool_code = patch(
        POOL_CODE,
        &[
            (
                "261d8c5e9742e6f7f1076fa1f560894524e19cad",
                hex_of(token0.as_slice()),
            ),
            (
                "ce3478a9e0167a6bc5716dc39dbbbfac38f27623",
                hex_of(token1.as_slice()),
            ),
            (
                "cba6b9a951749b8735c603e7ffc5151849248772",
                hex_of(shared.factory.as_slice()),
            ),
            (
                "d495d5e5cab2567777fff988c4fcd71328b17c9d",
                hex_of(pool.as_slice()),
            ),
        ],
    );
    let mut slots = HashMap::new();
    slots.insert(
        U256::ZERO,
        word_hex("0x0001000001000100000000000000000000000001000000000000000000000000"),
    );
    slots.insert(
        U256::from(4),
        U256::from(111_111_000_000_010_412_955_141u128),
    );
    slots.insert(
        U256::from(8),
        word_hex("0x0100000000000000000000000000000000000000000000000000000000000001"),
    );
    let ticks = [
        (
            -600_000i64,
            [
                "0x000000000000178756e190b388651605000000000000178756e190b388651605",
                "0x0",
                "0x0",
                "0x0100000001000000000000000000000000000000000000000000000000000000",
            ],
        ),
        (
            600_000i64,
            [
                "0xffffffffffffe878a91e6f4c779ae9fb000000000000178756e190b388651605",
                "0x0",
                "0x0",
                "0x0100000000000000000000000000000000000000000000000000000000000000",
            ],
        ),
    ];
    for (tick, words) in ticks {
        let base = mapping_slot(int_word(tick), U256::from(5));
        for (offset, value) in words.iter().enumerate() {
            let value = word_hex(value);
            if !value.is_zero() {
                slots.insert(base + U256::from(offset), value);
            }
        }
        let compressed = tick / 60;
        let bitmap_key = mapping_slot(int_word(compressed >> 8), U256::from(6));
        let bit = U256::from(1) << ((compressed & 0xff) as usize);
        let entry = slots.entry(bitmap_key).or_insert(U256::ZERO);
        *entry |= bit;
    }
    let owner = shared.router;
    let mut position_key = Vec::with_capacity(26);
    position_key.extend_from_slice(owner.as_slice());
    position_key.extend_from_slice(&(-600_000i32).to_be_bytes()[1..]);
    position_key.extend_from_slice(&600_000i32.to_be_bytes()[1..]);
    let position = mapping_slot(keccak256(&position_key).0, U256::from(7));
    slots.insert(position, word_hex("0x178756e190b388651605"));
    builder.contract(pool, pool_code, slots);

    let single_slots = HashMap::from([
        (U256::ZERO, U256::from_be_slice(token0.as_slice())),
        (
            U256::from(1),
            U256::from_be_slice(token1.as_slice()) | (U256::from(3000) << 160),
        ),
    ]);
    builder.contract(single_swap, shared.single_swap_code.clone(), single_slots);
    single_swap
}

/// The calldata of a person's `nonce`-th swap.
fn swap_call(nonce: u64) -> Bytes {
    let (selector, arguments): ([u8; 4], &[u64]) = match nonce % 4 {
        0 => ([0xc9, 0x2b, 0x08, 0x91], &[2000]),
        1 => ([0x6b, 0x05, 0x52, 0x60], &[2000]),
        2 => ([0x8d, 0xc3, 0x3f, 0x82], &[1000, 2000]),
        _ => ([0xb2, 0xdb, 0x18, 0xa2], &[1000, 2000]),
    };
    let mut input = selector.to_vec();
    for argument in arguments {
        input.extend_from_slice(&word(U256::from(*argument)));
    }
    input.into()
}

enum Pools {
    OnePerSwap,
    One,
}

fn swap(builder: &mut Builder, person: Address, single_swap: Address) {
    let nonce = builder.nonces.get(&person).copied().unwrap_or_default();
    builder.tx(
        person,
        single_swap,
        U256::ZERO,
        swap_call(nonce),
        SWAP_GAS_LIMIT,
    );
}

fn uniswap(builder: &mut Builder, gas: u64, pools: Pools) {
    // Measured: a swap through a fresh pool, and through a pool already swapped in this block.
    let per_swap = match pools {
        Pools::OnePerSwap => SWAP_GAS_USED,
        Pools::One => 134_800,
    };
    let count = (gas / per_swap).max(1) as usize;
    let shared = deploy_uniswap_shared(builder);
    match pools {
        Pools::OnePerSwap => {
            for _ in 0..count {
                let person = builder.account(4_567 * ETHER);
                let single_swap = deploy_pool(builder, &shared, &[person]);
                swap(builder, person, single_swap);
            }
        }
        Pools::One => {
            let people: Vec<Address> = (0..count).map(|_| builder.account(4_567 * ETHER)).collect();
            let single_swap = deploy_pool(builder, &shared, &people);
            for person in people {
                swap(builder, person, single_swap);
            }
        }
    }
}

/// A mainnet-like mix by gas: 30% raw transfers (a quarter of them to three hot addresses), 40%
/// ERC-20 transfers on four tokens, 20% swaps on four pools, 10% same-sender runs of transfers.
fn mixed(builder: &mut Builder, gas: u64) {
    let shared = deploy_uniswap_shared(builder);
    let swappers: Vec<Vec<Address>> = (0..4)
        .map(|_| {
            (0..((gas / 5 / SWAP_GAS_USED / 4) as usize + 1))
                .map(|_| builder.account(4_567 * ETHER))
                .collect()
        })
        .collect();
    let pools: Vec<Address> = swappers
        .iter()
        .map(|people| deploy_pool(builder, &shared, people))
        .collect();
    let holders: Vec<Address> = (0..2_000).map(|_| builder.account(ETHER)).collect();
    let balances: Vec<_> = holders
        .iter()
        .map(|holder| (*holder, U256::from(ETHER)))
        .collect();
    let tokens: Vec<Address> = (0..4)
        .map(|_| deploy_token(builder, &balances, &[]))
        .collect();
    let hot: Vec<Address> = (0..3).map(|_| builder.address()).collect();
    let runners: Vec<Address> = (0..8).map(|_| builder.account(1_000 * ETHER)).collect();
    let mut next_swapper = vec![0usize; pools.len()];
    let mut spent = 0u64;
    while spent < gas {
        let roll = builder.rng.below(100);
        if roll < 30 {
            let from = builder.account(ETHER);
            let to = if builder.rng.below(4) == 0 {
                hot[builder.rng.below(hot.len())]
            } else {
                builder.address()
            };
            builder.tx(from, to, U256::from(1_000u64), Bytes::new(), TRANSFER_GAS);
            spent += TRANSFER_GAS;
        } else if roll < 70 {
            let token = tokens[builder.rng.below(tokens.len())];
            let from = holders[builder.rng.below(holders.len())];
            let to = holders[builder.rng.below(holders.len())];
            builder.tx(
                from,
                token,
                U256::ZERO,
                transfer_call(to, U256::from(1u64)),
                ERC20_GAS_LIMIT,
            );
            spent += ERC20_GAS_USED;
        } else if roll < 90 {
            let pool = builder.rng.below(pools.len());
            let people = &swappers[pool];
            let person = people[next_swapper[pool] % people.len()];
            next_swapper[pool] += 1;
            swap(builder, person, pools[pool]);
            spent += SWAP_GAS_USED;
        } else {
            let from = runners[builder.rng.below(runners.len())];
            for _ in 0..4 {
                let to = builder.address();
                builder.tx(from, to, U256::from(1_000u64), Bytes::new(), TRANSFER_GAS);
                spent += TRANSFER_GAS;
            }
        }
    }
}
