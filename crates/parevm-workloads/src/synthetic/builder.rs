//! The machinery shared by the generators: a seeded random source, fresh addresses, a pre-state
//! and the transaction list, and the block around them.

use std::collections::HashMap;

use parevm::{
    ChainSpec, InMemoryStorage,
    alloy_consensus::{
        Block, BlockBody, EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH, Header, SignableTransaction,
        TxEip1559, TxEnvelope, TxLegacy, transaction::Recovered,
    },
    alloy_primitives::{Address, Bytes, Signature, TxKind, U256, keccak256},
    revm::primitives::hardfork::SpecId,
};

use super::{BASE_FEE, BENEFICIARY, BLOCK_NUMBER, CHAIN_ID, TIMESTAMP, Workload};

/// SplitMix64: small, fast and fully determined by its seed.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `range` (inclusive bounds).
    pub(crate) fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// True with probability `percent` / 100.
    pub(crate) fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// An index drawn with the given relative weights.
    pub(crate) fn weighted(&mut self, weights: &[u64]) -> usize {
        let mut roll = self.below(weights.iter().sum());
        for (index, weight) in weights.iter().enumerate() {
            if roll < *weight {
                return index;
            }
            roll -= weight;
        }
        weights.len() - 1
    }

    /// Fisher-Yates.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// How a transaction pays for its gas.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fee {
    /// A legacy (EIP-155) transaction at this gas price.
    Legacy(u128),
    /// An EIP-1559 transaction.
    Eip1559 { max_fee: u128, priority_fee: u128 },
}

/// A pre-state and a transaction list in the making.
#[derive(Debug)]
pub(crate) struct Builder {
    pub(crate) rng: Rng,
    seed: u64,
    addresses: u64,
    pub(crate) storage: InMemoryStorage,
    txs: Vec<Recovered<TxEnvelope>>,
    nonces: HashMap<Address, u64>,
    gas_limits: u64,
}

impl Builder {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            seed,
            addresses: 0,
            storage: InMemoryStorage::new(),
            txs: Vec::new(),
            nonces: HashMap::new(),
            gas_limits: 0,
        }
    }

    /// A fresh address: a hash of the seed and a counter, so it is distinct from every other one,
    /// from the precompiles, the system contracts and [`BENEFICIARY`].
    pub(crate) fn address(&mut self) -> Address {
        self.addresses += 1;
        let mut preimage = [0u8; 32];
        preimage[..16].copy_from_slice(b"parevm synthetic");
        preimage[16..24].copy_from_slice(&self.seed.to_be_bytes());
        preimage[24..].copy_from_slice(&self.addresses.to_be_bytes());
        Address::from_slice(&keccak256(preimage)[12..])
    }

    /// Two fresh addresses, the lower first.
    pub(crate) fn ordered_pair(&mut self) -> (Address, Address) {
        let (a, b) = (self.address(), self.address());
        if a < b { (a, b) } else { (b, a) }
    }

    /// A fresh externally owned account with `balance` wei and `nonce`.
    pub(crate) fn eoa_with_nonce(&mut self, balance: U256, nonce: u64) -> Address {
        let address = self.address();
        self.insert_eoa(address, balance, nonce);
        address
    }

    /// A fresh externally owned account with `balance` wei, nonce 0.
    pub(crate) fn eoa(&mut self, balance: U256) -> Address {
        self.eoa_with_nonce(balance, 0)
    }

    /// Writes an externally owned account at `address`; its next transaction uses `nonce`.
    pub(crate) fn insert_eoa(&mut self, address: Address, balance: U256, nonce: u64) {
        self.storage.insert_account_with_code(
            address,
            balance,
            nonce,
            Bytes::new(),
            HashMap::new(),
        );
        self.nonces.insert(address, nonce);
    }

    /// Writes a contract (nonce 1, as EIP-161 deploys it) with its runtime code and storage.
    pub(crate) fn insert_contract(
        &mut self,
        address: Address,
        code: Bytes,
        storage: HashMap<U256, U256>,
    ) {
        self.storage
            .insert_account_with_code(address, U256::ZERO, 1, code, storage);
    }

    /// The nonce `from`'s next transaction will carry.
    pub(crate) fn next_nonce(&self, from: Address) -> u64 {
        self.nonces.get(&from).copied().unwrap_or_default()
    }

    /// Appends a call (or a plain transfer when `input` is empty and `to` has no code) from `from`
    /// with its next nonce.
    pub(crate) fn push_tx(
        &mut self,
        from: Address,
        to: Address,
        value: U256,
        input: Bytes,
        gas_limit: u64,
        fee: Fee,
    ) {
        let nonce = self.nonces.entry(from).or_default();
        let signature = Signature::new(U256::from(1), U256::from(1), false);
        let to = TxKind::Call(to);
        let envelope = match fee {
            Fee::Legacy(gas_price) => TxEnvelope::Legacy(
                TxLegacy {
                    chain_id: Some(CHAIN_ID),
                    nonce: *nonce,
                    gas_price,
                    gas_limit,
                    to,
                    value,
                    input,
                }
                .into_signed(signature),
            ),
            Fee::Eip1559 {
                max_fee,
                priority_fee,
            } => TxEnvelope::Eip1559(
                TxEip1559 {
                    chain_id: CHAIN_ID,
                    nonce: *nonce,
                    gas_limit,
                    max_fee_per_gas: max_fee,
                    max_priority_fee_per_gas: priority_fee,
                    to,
                    value,
                    access_list: Default::default(),
                    input,
                }
                .into_signed(signature),
            ),
        };
        *nonce += 1;
        self.gas_limits += gas_limit;
        self.txs.push(Recovered::new_unchecked(envelope, from));
    }

    /// The workload: a Cancun block whose gas limit holds the budget and every transaction's gas
    /// limit.
    pub(crate) fn finish(self, name: &str, gas: u64) -> Workload {
        let mut parent_hash = [0u8; 32];
        parent_hash[..8].copy_from_slice(&self.seed.to_be_bytes());
        let header = Header {
            parent_hash: keccak256(parent_hash),
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: BENEFICIARY,
            withdrawals_root: Some(EMPTY_ROOT_HASH),
            number: BLOCK_NUMBER,
            gas_limit: gas.max(self.gas_limits),
            timestamp: TIMESTAMP,
            mix_hash: keccak256(b"parevm synthetic prevrandao"),
            base_fee_per_gas: Some(BASE_FEE),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(keccak256(b"parevm synthetic beacon root")),
            ..Default::default()
        };
        Workload {
            name: name.to_owned(),
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
