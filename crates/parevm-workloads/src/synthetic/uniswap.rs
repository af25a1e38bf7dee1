//! Uniswap V3 swaps through SingleSwap → SwapRouter → UniswapV3Pool, with the whole deployment
//! written into the pre-state as `contracts/README.md` lays it out.

use std::collections::HashMap;

use parevm::alloy_primitives::{Address, B256, Bytes, U256, hex, keccak256};

use super::{
    HOT_SWAP_GAS_USED, SWAP_GAS_LIMIT, SWAP_GAS_PRICE, SWAP_GAS_USED, Workload,
    builder::{Builder, Fee},
    contracts::{
        Erc20, FACTORY, POOL, POOL_FEE, POOL_INIT_CODE_HASH, ROUTER, SINGLE_SWAP, WETH9,
        address_word, calldata, int_word, mapping_slot, short_string,
    },
    ether,
};

/// The pool's liquidity (slot 4), all of it in one position over ticks −600,000..600,000.
const LIQUIDITY: u128 = 111_111_000_000_010_412_955_141;
/// slot0: sqrtPriceX96 = 2^96 (price 1, tick 0), observation cardinality 1 (next 1), unlocked.
const SLOT0: [u8; 32] = hex!("0001000001000100000000000000000000000001000000000000000000000000");
/// observations[0]: initialized, timestamp 1.
const OBSERVATION0: [u8; 32] =
    hex!("0100000000000000000000000000000000000000000000000000000000000001");
/// The position's liquidity (its first word).
const POSITION_LIQUIDITY: u128 = 0x178756e190b388651605;
/// The two initialized ticks and their four words each.
const TICKS: [(i64, [[u8; 32]; 4]); 2] = [
    (
        -600_000,
        [
            hex!("000000000000178756e190b388651605000000000000178756e190b388651605"),
            [0; 32],
            [0; 32],
            hex!("0100000001000000000000000000000000000000000000000000000000000000"),
        ],
    ),
    (
        600_000,
        [
            hex!("ffffffffffffe878a91e6f4c779ae9fb000000000000178756e190b388651605"),
            [0; 32],
            [0; 32],
            hex!("0100000000000000000000000000000000000000000000000000000000000000"),
        ],
    ),
];
const TICK_SPACING: i64 = 60;

/// Each token's balance in the pool.
fn pool_reserve() -> U256 {
    ether(111_111)
}

/// One Uniswap V3 deployment: WETH9, two tokens, the factory, one pool, the router and
/// SingleSwap, and the people who swap through it.
#[derive(Debug)]
pub(crate) struct Cluster {
    weth: Address,
    factory: Address,
    factory_owner: Address,
    router: Address,
    /// What people call.
    pub(crate) single_swap: Address,
    /// The pool.
    pub(crate) pool: Address,
    position_owner: Address,
    token0: Erc20,
    token1: Erc20,
}

impl Cluster {
    /// Fresh addresses for every contract of a cluster.
    pub(crate) fn new(builder: &mut Builder) -> Self {
        let (weth, factory, factory_owner, router, single_swap, position_owner) = (
            builder.address(),
            builder.address(),
            builder.address(),
            builder.address(),
            builder.address(),
            builder.address(),
        );
        let (token0, token1) = builder.ordered_pair();
        let mut salt = [0u8; 96];
        salt[..32].copy_from_slice(&address_word(token0).to_be_bytes::<32>());
        salt[32..64].copy_from_slice(&address_word(token1).to_be_bytes::<32>());
        salt[64..].copy_from_slice(&U256::from(POOL_FEE).to_be_bytes::<32>());
        let pool = factory.create2(keccak256(salt), POOL_INIT_CODE_HASH);
        let mut token0 = Erc20::new(token0, "TKA");
        let mut token1 = Erc20::new(token1, "TKB");
        token0.mint(pool, pool_reserve());
        token1.mint(pool, pool_reserve());
        Self {
            weth,
            factory,
            factory_owner,
            router,
            single_swap,
            pool,
            position_owner,
            token0,
            token1,
        }
    }

    /// Gives `person` 1 token of each side, approved for SingleSwap.
    pub(crate) fn add_swapper(&mut self, person: Address) {
        for token in [&mut self.token0, &mut self.token1] {
            token.mint(person, ether(1));
            token.approve(person, self.single_swap, ether(1));
        }
    }

    /// Writes every contract of the cluster into the pre-state.
    pub(crate) fn install(self, builder: &mut Builder) {
        let Self {
            weth,
            factory,
            factory_owner,
            router,
            single_swap,
            pool,
            position_owner,
            token0,
            token1,
        } = self;

        let weth_slots = HashMap::from([
            (U256::ZERO, short_string("Wrapped Ether")),
            (U256::from(1), short_string("WETH")),
            (U256::from(2), U256::from(18)),
        ]);
        builder.insert_contract(weth, WETH9.clone(), weth_slots);

        let mut factory_slots = HashMap::from([(U256::from(3), address_word(factory_owner))]);
        for (fee, spacing) in [(500u64, 10i64), (3000, 60), (10000, 200)] {
            factory_slots.insert(
                mapping_slot(U256::from(fee), U256::from(4)),
                int_word(spacing),
            );
        }
        for (a, b) in [
            (token0.address, token1.address),
            (token1.address, token0.address),
        ] {
            let outer = mapping_slot(address_word(a), U256::from(5));
            let inner = mapping_slot(address_word(b), outer);
            factory_slots.insert(
                mapping_slot(U256::from(POOL_FEE), inner),
                address_word(pool),
            );
        }
        builder.insert_contract(factory, FACTORY.fill(&[factory.as_slice()]), factory_slots);

        builder.insert_contract(
            pool,
            POOL.fill(&[
                token0.address.as_slice(),
                token1.address.as_slice(),
                factory.as_slice(),
                pool.as_slice(),
            ]),
            pool_slots(position_owner),
        );

        builder.insert_contract(
            router,
            ROUTER.fill(&[
                weth.as_slice(),
                factory.as_slice(),
                POOL_INIT_CODE_HASH.as_slice(),
            ]),
            HashMap::from([(U256::ZERO, U256::MAX)]),
        );

        let single_swap_slots = HashMap::from([
            (U256::ZERO, address_word(token0.address)),
            (
                U256::from(1),
                address_word(token1.address) | (U256::from(POOL_FEE) << 160),
            ),
        ]);
        builder.insert_contract(
            single_swap,
            SINGLE_SWAP.fill(&[router.as_slice()]),
            single_swap_slots,
        );

        token0.install(builder);
        token1.install(builder);
    }
}

/// The pool's storage: slot0, liquidity, the two ticks, their bitmap words, the position and
/// the first observation.
fn pool_slots(position_owner: Address) -> HashMap<U256, U256> {
    let mut slots = HashMap::from([
        (U256::ZERO, U256::from_be_bytes(SLOT0)),
        (U256::from(4), U256::from(LIQUIDITY)),
        (U256::from(8), U256::from_be_bytes(OBSERVATION0)),
    ]);
    for (tick, words) in TICKS {
        let base = mapping_slot(int_word(tick), U256::from(5));
        for (offset, word) in words.iter().enumerate() {
            let word = U256::from_be_bytes(*word);
            if !word.is_zero() {
                slots.insert(base + U256::from(offset), word);
            }
        }
        let compressed = tick / TICK_SPACING;
        let bitmap_word = mapping_slot(int_word(compressed >> 8), U256::from(6));
        *slots.entry(bitmap_word).or_default() |= U256::from(1) << (compressed & 0xff) as usize;
    }
    let mut key = [0u8; 26];
    key[..20].copy_from_slice(position_owner.as_slice());
    key[20..23].copy_from_slice(&(-600_000i32).to_be_bytes()[1..]);
    key[23..].copy_from_slice(&600_000i32.to_be_bytes()[1..]);
    let position = mapping_slot(U256::from_be_bytes(keccak256(key).0), U256::from(7));
    slots.insert(position, U256::from(POSITION_LIQUIDITY));
    slots
}

/// SingleSwap's calldata for a swapper's transaction with `nonce`: by `nonce % 4`, sell 2,000
/// token0, sell 2,000 token1, buy 1,000 token0 for at most 2,000 token1, buy 1,000 token1 for at
/// most 2,000 token0 (in the tokens' smallest unit).
pub(crate) fn swap_calldata(nonce: u64) -> Bytes {
    let (small, large) = (U256::from(1_000), U256::from(2_000));
    match nonce % 4 {
        0 => calldata(hex!("c92b0891"), &[large]),
        1 => calldata(hex!("6b055260"), &[large]),
        2 => calldata(hex!("8dc33f82"), &[small, large]),
        _ => calldata(hex!("b2db18a2"), &[small, large]),
    }
}

/// Appends `person`'s swap through `single_swap` (its kind set by the person's nonce).
pub(crate) fn push_swap(builder: &mut Builder, person: Address, single_swap: Address) {
    let input = swap_calldata(builder.next_nonce(person));
    builder.push_tx(
        person,
        single_swap,
        U256::ZERO,
        input,
        SWAP_GAS_LIMIT,
        Fee::Legacy(SWAP_GAS_PRICE),
    );
}

/// A person who swaps: 4,567 ETH, and a nonce from 0 to 3 so that the four kinds of swap mix.
pub(crate) fn swapper(builder: &mut Builder) -> Address {
    let nonce = builder.rng.below(4);
    builder.eoa_with_nonce(ether(4_567), nonce)
}

/// `uniswap`: `gas / SWAP_GAS_USED` swaps, each by its own person through its own cluster
/// (WETH9, two tokens, factory, pool, router, SingleSwap): independent swaps of real contract
/// code. Each swap is its pool's first in the block.
pub fn uniswap(gas: u64, seed: u64) -> Workload {
    let mut builder = Builder::new(seed);
    for _ in 0..(gas / SWAP_GAS_USED).max(1) {
        let mut cluster = Cluster::new(&mut builder);
        let person = swapper(&mut builder);
        cluster.add_swapper(person);
        push_swap(&mut builder, person, cluster.single_swap);
        cluster.install(&mut builder);
    }
    builder.finish("uniswap", gas)
}

/// `uniswap-hot-pool`: `gas / HOT_SWAP_GAS_USED` swaps by distinct people through one pool:
/// each reads and writes the pool's price, so the block is inherently sequential.
pub fn uniswap_hot_pool(gas: u64, seed: u64) -> Workload {
    let mut builder = Builder::new(seed);
    let mut cluster = Cluster::new(&mut builder);
    for _ in 0..(gas / HOT_SWAP_GAS_USED).max(1) {
        let person = swapper(&mut builder);
        cluster.add_swapper(person);
        push_swap(&mut builder, person, cluster.single_swap);
    }
    cluster.install(&mut builder);
    builder.finish("uniswap-hot-pool", gas)
}

/// The Swap event's topic: `Swap(address,address,int256,int256,uint160,uint128,int24)`.
pub const SWAP_EVENT: B256 = B256::new(hex!(
    "c42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67"
));
