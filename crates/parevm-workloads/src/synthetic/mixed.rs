//! A mainnet-like mix of transfers, token transfers and swaps.

use parevm::alloy_primitives::{Address, Bytes};

use super::{
    ERC20_TRANSFER_GAS_USED, HOT_SWAP_GAS_USED, TRANSFER_GAS, Workload,
    builder::Builder,
    contracts::Erc20,
    erc20::{SYMBOLS, push_transfer, token_balance},
    ether, transfer_fee,
    transfers::{amount, recipient, sender_balance},
    uniswap::{Cluster, push_swap, swapper},
};

/// Relative weights of the four kinds of event: a raw transfer, an ERC-20 transfer, a swap, a
/// run of 2–6 transactions from one exchange hot wallet.
const EVENTS: [u64; 4] = [45, 30, 15, 10];
/// Relative popularity of the tokens (the first is the most used).
const TOKEN_WEIGHTS: [u64; 4] = [4, 3, 2, 1];
/// Relative popularity of the pools.
const POOL_WEIGHTS: [u64; 4] = [4, 2, 1, 1];
/// Exchange deposit addresses (hot recipients of ETH and tokens).
const DEPOSIT_ADDRESSES: usize = 3;
/// Exchange hot wallets (senders of same-sender runs).
const HOT_WALLETS: usize = 2;

/// The actors of the mix.
struct Mix {
    builder: Builder,
    tokens: Vec<Erc20>,
    pools: Vec<Cluster>,
    deposits: Vec<Address>,
    hot_wallets: Vec<Address>,
    spent: u64,
}

impl Mix {
    fn new(seed: u64) -> Self {
        let mut builder = Builder::new(seed);
        let mut tokens: Vec<Erc20> = SYMBOLS[..TOKEN_WEIGHTS.len()]
            .iter()
            .map(|symbol| Erc20::new(builder.address(), symbol))
            .collect();
        let pools = (0..POOL_WEIGHTS.len())
            .map(|_| Cluster::new(&mut builder))
            .collect();
        let deposits: Vec<Address> = (0..DEPOSIT_ADDRESSES)
            .map(|_| builder.eoa(ether(3)))
            .collect();
        let hot_wallets: Vec<Address> = (0..HOT_WALLETS)
            .map(|_| builder.eoa_with_nonce(ether(100_000), 1_000_000))
            .collect();
        for token in &mut tokens {
            for holder in deposits.iter().chain(&hot_wallets) {
                token.mint(*holder, ether(1_000_000));
            }
        }
        Self {
            builder,
            tokens,
            pools,
            deposits,
            hot_wallets,
            spent: 0,
        }
    }

    fn token(&mut self) -> usize {
        self.builder.rng.weighted(&TOKEN_WEIGHTS)
    }

    /// `from`'s ETH transfer to a deposit address (`to_deposit_percent`) or anyone.
    fn eth_transfer(&mut self, from: Address, to_deposit_percent: u64) {
        let to = if self.builder.rng.percent(to_deposit_percent) {
            self.deposits[self.builder.rng.below(DEPOSIT_ADDRESSES as u64) as usize]
        } else {
            recipient(&mut self.builder)
        };
        let value = amount(&mut self.builder);
        let fee = transfer_fee(&mut self.builder);
        self.builder
            .push_tx(from, to, value, Bytes::new(), TRANSFER_GAS, fee);
        self.spent += TRANSFER_GAS;
    }

    /// `from`'s transfer of `token` to a deposit address (`to_deposit_percent`) or a holder.
    fn token_transfer(&mut self, token: usize, from: Address, to_deposit_percent: u64) {
        let to = if self.builder.rng.percent(to_deposit_percent) {
            self.deposits[self.builder.rng.below(DEPOSIT_ADDRESSES as u64) as usize]
        } else {
            let to = self.builder.address();
            let balance = token_balance(&mut self.builder);
            self.tokens[token].mint(to, balance);
            to
        };
        push_transfer(&mut self.builder, self.tokens[token].address, from, to);
        self.spent += ERC20_TRANSFER_GAS_USED;
    }

    fn event(&mut self) {
        match self.builder.rng.weighted(&EVENTS) {
            0 => {
                let balance = sender_balance(&mut self.builder);
                let from = self.builder.eoa(balance);
                self.eth_transfer(from, 25);
            }
            1 => {
                let from = self.builder.eoa(ether(1));
                let token = self.token();
                let balance = token_balance(&mut self.builder);
                self.tokens[token].mint(from, balance);
                self.token_transfer(token, from, 20);
            }
            2 => {
                let pool = self.builder.rng.weighted(&POOL_WEIGHTS);
                let person = swapper(&mut self.builder);
                self.pools[pool].add_swapper(person);
                push_swap(&mut self.builder, person, self.pools[pool].single_swap);
                self.spent += HOT_SWAP_GAS_USED;
            }
            _ => {
                let wallet = self.hot_wallets[self.builder.rng.below(HOT_WALLETS as u64) as usize];
                for _ in 0..self.builder.rng.between(2, 6) {
                    if self.builder.rng.percent(50) {
                        self.eth_transfer(wallet, 0);
                    } else {
                        let token = self.token();
                        self.token_transfer(token, wallet, 0);
                    }
                }
            }
        }
    }

    fn finish(mut self, gas: u64) -> Workload {
        for token in self.tokens {
            token.install(&mut self.builder);
        }
        for pool in self.pools {
            pool.install(&mut self.builder);
        }
        self.builder.finish("mixed", gas)
    }
}

/// `mixed`: a mainnet-like block filled to `gas` by events drawn at random: ETH transfers (45%,
/// a quarter of them to three exchange deposit addresses), ERC-20 transfers (30%, on four tokens
/// of unequal popularity, a fifth of them to the deposit addresses), Uniswap V3 swaps (15%, by
/// distinct people on four pools of unequal popularity) and runs of 2–6 ETH or token transfers
/// from one of two exchange hot wallets (10%: same-sender nonce chains).
pub fn mixed(gas: u64, seed: u64) -> Workload {
    let mut mix = Mix::new(seed);
    while mix.spent < gas {
        mix.event();
    }
    mix.finish(gas)
}
