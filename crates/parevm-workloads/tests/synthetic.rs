//! The synthetic workloads execute with every transaction successful (which is what proves the
//! pre-state layouts: a reverted ERC-20 transfer or swap means a wrong slot or immutable), use
//! their gas budget within 10%, have the expected number of transactions, are deterministic, and
//! give the sequential result in parallel. Each workload also gets a check of what it isolates.
#![allow(missing_docs)]

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    num::NonZeroUsize,
};

use parevm::{
    BlockOutput, ExecutorConfig, ParallelExecutor, Storage, Strategy,
    alloy_consensus::Transaction,
    alloy_primitives::{Address, B256, TxKind, U256, keccak256},
    execute_sequential,
    revm::{
        Context, ExecuteEvm, MainBuilder, MainContext,
        context::{CfgEnv, TxEnv},
        database::CacheDB,
        primitives::hardfork::SpecId,
    },
};
use parevm_workloads::baseline::StorageRef;
use parevm_workloads::synthetic::{
    self, BENEFICIARY, CLUSTER_TOKENS, ERC20_TRANSFER_GAS_LIMIT, ERC20_TRANSFER_GAS_USED,
    HOT_SWAP_GAS_USED, NAMES, SWAP_EVENT, SWAP_GAS_LIMIT, SWAP_GAS_USED, TRANSFER_GAS, Workload,
    workload,
};

/// The budget of most checks: 10 Mgas (476 transfers, 289 token transfers, 63–71 swaps).
const GAS: u64 = 10_000_000;
const SEED: u64 = 0x5eed;

/// Generates `name`, checks what every workload must satisfy and returns it with its output.
fn run(name: &str, gas: u64, expected_txs: Option<u64>) -> (Workload, BlockOutput) {
    let workload = workload(name, gas, SEED).expect("a known workload");
    assert_eq!(workload.name, name);
    let block = &workload.block;
    let txs = block.body.transactions.len() as u64;
    if let Some(expected) = expected_txs {
        assert_eq!(txs, expected, "{name}: number of transactions");
    }

    let header = &block.header;
    assert_eq!(
        workload.chain.spec_id(header.number, header.timestamp),
        SpecId::CANCUN
    );
    assert_eq!(header.beneficiary, BENEFICIARY);
    assert_eq!(header.excess_blob_gas, Some(0));
    assert!(header.parent_beacon_block_root.is_some());
    let gas_limits: u64 = block
        .body
        .transactions
        .iter()
        .map(|tx| tx.gas_limit())
        .sum();
    assert!(
        header.gas_limit >= gas.max(gas_limits),
        "{name}: block gas limit"
    );
    for tx in &block.body.transactions {
        assert_ne!(tx.signer(), BENEFICIARY);
        assert_ne!(tx.to(), Some(BENEFICIARY));
    }

    let output = execute_sequential(&workload.chain, block, &workload.storage)
        .unwrap_or_else(|error| panic!("{name} (seed {SEED}): {error}"));
    for (index, receipt) in output.receipts.iter().enumerate() {
        assert!(
            receipt.success,
            "{name} (seed {SEED}): transaction {index} reverted, gas used {}",
            receipt.gas_used
        );
    }
    let used = output.gas_used as f64;
    assert!(
        (used - gas as f64).abs() <= 0.1 * gas as f64,
        "{name}: used {used} gas of a {gas} budget"
    );

    let again = synthetic::workload(name, gas, SEED).unwrap();
    assert_eq!(again.block, workload.block, "{name}: same seed, same block");
    assert_eq!(
        again.storage.accounts(),
        workload.storage.accounts(),
        "{name}: same pre-state"
    );
    let other = synthetic::workload(name, gas, SEED + 1).unwrap();
    assert_ne!(other.block, workload.block, "{name}: the seed matters");

    let half = Strategy::HandOver(block.body.transactions.len() / 2);
    for (strategy, threads) in [
        (Strategy::BlockStm, 2),
        (Strategy::Pipeline, 2),
        (Strategy::Pipeline, 1),
        (half, 2),
        (Strategy::Auto, 2),
    ] {
        let executor = ParallelExecutor::new(ExecutorConfig {
            concurrency: NonZeroUsize::new(threads).unwrap(),
            strategy,
        });
        let (parallel, stats) =
            executor.execute_with_stats(&workload.chain, block, &workload.storage);
        if strategy != Strategy::Auto {
            assert_eq!(stats.strategy, strategy, "{name}: {strategy} ran");
            assert_eq!(
                stats.sequential_reason, None,
                "{name}: {strategy} fell back"
            );
        }
        if (strategy, threads) == (Strategy::Pipeline, 1) {
            // Alone, the pipeline speculates every transaction except a call to a destination
            // its sender called (or after a creation of its sender's) earlier in the block, or
            // one to a destination whose speculations were mostly rejected: each speculation
            // must be usable (validated at commit), or the speculative path would go untested
            // here.
            let mut earlier = HashMap::<_, Vec<Option<_>>>::new();
            let speculable = block
                .body
                .transactions
                .iter()
                .filter(|tx| {
                    let to = tx.kind().to().copied();
                    let before = earlier.entry(tx.signer()).or_default();
                    let speculable = before.is_empty()
                        || tx.input().is_empty()
                        || to.is_some_and(|to| {
                            (before.iter().rev().take(16))
                                .all(|was| was.is_some_and(|was| was != to))
                        });
                    before.push(to);
                    speculable
                })
                .count();
            assert_eq!(
                stats.validations + stats.left_to_committer,
                speculable,
                "{name}: unusable speculations"
            );
        }
        assert_eq!(
            parallel.as_ref().ok(),
            Some(&output),
            "{name}: {strategy} at {threads} threads differs"
        );
    }
    (workload, output)
}

fn senders(workload: &Workload) -> Vec<Address> {
    workload
        .block
        .body
        .transactions
        .iter()
        .map(|tx| tx.signer())
        .collect()
}

fn recipients(workload: &Workload) -> Vec<Address> {
    workload
        .block
        .body
        .transactions
        .iter()
        .map(|tx| tx.to().expect("a call"))
        .collect()
}

fn distinct(addresses: &[Address]) -> usize {
    addresses.iter().collect::<HashSet<_>>().len()
}

fn balance(workload: &Workload, address: Address) -> U256 {
    workload
        .storage
        .basic(&address)
        .unwrap()
        .map(|account| account.balance)
        .unwrap_or_default()
}

#[test]
fn raw_transfers() {
    let (workload, _) = run("raw-transfers", GAS, Some(GAS / TRANSFER_GAS));
    let (from, to) = (senders(&workload), recipients(&workload));
    let mut everyone = from.clone();
    everyone.extend(&to);
    assert_eq!(
        distinct(&everyone),
        everyone.len(),
        "all senders and recipients distinct"
    );
}

#[test]
fn raw_transfers_hot() {
    let (workload, output) = run("raw-transfers-hot", GAS, Some(GAS / TRANSFER_GAS));
    let from = senders(&workload);
    assert_eq!(distinct(&from), from.len(), "distinct senders");
    let to = recipients(&workload);
    assert_eq!(distinct(&to), 1, "one recipient");
    let received: U256 = workload
        .block
        .body
        .transactions
        .iter()
        .map(|tx| tx.value())
        .sum();
    let after = output.state_changes[&to[0]].info.as_ref().unwrap().balance;
    assert_eq!(after, balance(&workload, to[0]) + received);
}

#[test]
fn raw_transfers_chain() {
    let (workload, _) = run("raw-transfers-chain", GAS, Some(GAS / TRANSFER_GAS));
    assert_eq!(distinct(&senders(&workload)), 1, "one sender");
    let nonces: Vec<u64> = workload
        .block
        .body
        .transactions
        .iter()
        .map(|tx| tx.nonce())
        .collect();
    assert_eq!(nonces, (0..nonces.len() as u64).collect::<Vec<_>>());
    let to = recipients(&workload);
    assert_eq!(distinct(&to), to.len(), "distinct recipients");
}

#[test]
fn erc20() {
    let (workload, output) = run("erc20", GAS, Some(GAS / ERC20_TRANSFER_GAS_USED));
    let txs = workload.block.body.transactions.len();
    assert_eq!(distinct(&senders(&workload)), txs, "distinct senders");
    let to = recipients(&workload);
    assert_eq!(distinct(&to), 1, "one token");
    assert!(
        workload
            .block
            .body
            .transactions
            .iter()
            .all(|tx| tx.gas_limit() == ERC20_TRANSFER_GAS_LIMIT)
    );
    // Every transfer moved two balances of its own.
    assert_eq!(output.state_changes[&to[0]].storage.len(), 2 * txs);
    for receipt in &output.receipts {
        assert!((34_500..=ERC20_TRANSFER_GAS_LIMIT).contains(&receipt.gas_used));
    }
}

#[test]
fn erc20_clusters() {
    let (workload, output) = run("erc20-clusters", GAS, Some(GAS / ERC20_TRANSFER_GAS_USED));
    let to = recipients(&workload);
    assert_eq!(distinct(&to), CLUSTER_TOKENS);
    // Groups share balances: fewer slots change than two per transfer.
    let slots: usize = to
        .iter()
        .collect::<HashSet<_>>()
        .into_iter()
        .map(|token| output.state_changes[token].storage.len())
        .sum();
    assert!(
        slots < to.len(),
        "{slots} balance slots for {} transfers",
        to.len()
    );
}

/// Per pool, the sqrtPriceX96 of each Swap event, in block order.
fn swaps(workload: &Workload, output: &BlockOutput) -> BTreeMap<Address, Vec<U256>> {
    let mut prices: BTreeMap<Address, Vec<U256>> = BTreeMap::new();
    for (index, receipt) in output.receipts.iter().enumerate() {
        let events: Vec<_> = receipt
            .logs
            .iter()
            .filter(|log| log.topics().first() == Some(&SWAP_EVENT))
            .collect();
        assert_eq!(
            events.len(),
            1,
            "{}: transaction {index} swapped once",
            workload.name
        );
        let price = U256::from_be_slice(&events[0].data.data[64..96]);
        prices.entry(events[0].address).or_default().push(price);
    }
    // Each pool's slot0 changed.
    for pool in prices.keys() {
        let before = workload.storage.storage(pool, &U256::ZERO).unwrap();
        let after = output.state_changes[pool].storage.get(&U256::ZERO);
        assert!(
            after.is_some_and(|after| *after != before),
            "pool {pool}: slot0 unchanged"
        );
    }
    prices
}

#[test]
fn uniswap() {
    let (workload, output) = run("uniswap", GAS, Some(GAS / SWAP_GAS_USED));
    let prices = swaps(&workload, &output);
    assert_eq!(prices.len(), output.receipts.len(), "a pool per swap");
    assert_eq!(
        distinct(&recipients(&workload)),
        output.receipts.len(),
        "a SingleSwap per swap"
    );
    // Each swap moved its pool's price off 1 (sqrtPriceX96 = 2^96).
    assert!(
        prices
            .values()
            .all(|prices| prices[0] != U256::from(1) << 96)
    );
    // All four kinds of swap occur.
    let selectors: HashSet<_> = workload
        .block
        .body
        .transactions
        .iter()
        .map(|tx| tx.input()[..4].to_vec())
        .collect();
    assert_eq!(selectors.len(), 4);
}

#[test]
fn uniswap_hot_pool() {
    let (workload, output) = run("uniswap-hot-pool", GAS, Some(GAS / HOT_SWAP_GAS_USED));
    let prices = swaps(&workload, &output);
    assert_eq!(prices.len(), 1, "one pool");
    let prices = prices.into_values().next().unwrap();
    assert_eq!(prices.len(), output.receipts.len());
    for pair in prices.windows(2) {
        assert_ne!(pair[0], pair[1], "every swap moves the price");
    }
    let from = senders(&workload);
    assert_eq!(distinct(&from), from.len(), "distinct swappers");
}

/// Every swap of a hot pool depends on the one before: at three threads (not forced), Block-STM
/// gives way once conflicts dominate, keeps its committed prefix and runs the rest sequentially,
/// and the output is still the sequential one. Forced, it never gives way. (At two threads a
/// block this size runs the pipeline: its speculations read the slots committed before them.)
#[test]
fn conflict_heavy_block_gives_way_to_sequential_execution() {
    let workload = workload("uniswap-hot-pool", 60_000_000, 1).expect("known workload");
    let txs = workload.block.body.transactions.len();
    let expected = execute_sequential(&workload.chain, &workload.block, &workload.storage);
    let expected = expected.expect("sequential execution");
    let (mut gave_way, runs) = (0, 10);
    for force_parallel in [false, true] {
        let executor = ParallelExecutor::new(ExecutorConfig {
            concurrency: NonZeroUsize::new(3).unwrap(),
            strategy: if force_parallel {
                Strategy::BlockStm
            } else {
                Strategy::Auto
            },
        });
        for _ in 0..runs {
            let (output, stats) =
                executor.execute_with_stats(&workload.chain, &workload.block, &workload.storage);
            assert_eq!(output.expect("parallel execution"), expected);
            assert_eq!(stats.sequential_reason, None, "Block-STM ran");
            if let Some(from) = stats.sequential_from {
                assert!(!force_parallel, "forced Block-STM gave way");
                assert!(from < txs);
                gave_way += 1;
            }
        }
    }
    assert!(
        gave_way > 0,
        "Block-STM never gave way in {runs} runs of a hot pool"
    );
}

#[test]
fn mixed() {
    let (workload, output) = run("mixed", GAS, None);
    let txs = &workload.block.body.transactions;
    let plain = txs.iter().filter(|tx| tx.input().is_empty()).count();
    let token = txs
        .iter()
        .filter(|tx| tx.input().starts_with(&[0xa9, 0x05, 0x9c, 0xbb]))
        .count();
    let swaps = txs
        .iter()
        .filter(|tx| tx.gas_limit() == SWAP_GAS_LIMIT)
        .count();
    assert_eq!(plain + token + swaps, txs.len());
    assert!(plain > txs.len() / 4 && token > txs.len() / 5 && swaps > txs.len() / 20);
    // A few pools and tokens, hot recipients and same-sender runs.
    let pools = output
        .receipts
        .iter()
        .flat_map(|receipt| &receipt.logs)
        .filter(|log| log.topics().first() == Some(&SWAP_EVENT))
        .map(|log| log.address)
        .collect::<HashSet<_>>();
    assert!((2..=4).contains(&pools.len()), "{} pools", pools.len());
    let to = recipients(&workload);
    assert!(distinct(&to) < to.len() * 9 / 10, "hot recipients");
    let runs = txs
        .windows(2)
        .filter(|pair| pair[0].signer() == pair[1].signer())
        .count();
    assert!(runs > 0, "same-sender runs");
}

/// An oracle independent of parevm's EVM: plain revm, which hashes every `KECCAK256` itself
/// (parevm's engines and sequential executor alike memoize it), gives each transaction the same
/// status, gas and logs on the workloads that hash mapping slots.
#[test]
fn receipts_equal_plain_revm_which_memoizes_no_keccak() {
    for name in [
        "erc20",
        "erc20-clusters",
        "uniswap",
        "uniswap-hot-pool",
        "mixed",
    ] {
        let workload = workload(name, GAS, SEED).expect("a known workload");
        let mut results = Vec::new();
        parevm_workloads::baseline::run_revm_with(
            &workload.chain,
            &workload.block,
            &workload.storage,
            |result| results.push(result),
        )
        .expect("plain revm executes the block");
        let output = execute_sequential(&workload.chain, &workload.block, &workload.storage)
            .expect("the sequential executor executes the block");
        assert_eq!(output.receipts.len(), results.len(), "{name}");
        for (tx, (receipt, result)) in output.receipts.iter().zip(&results).enumerate() {
            let expected = (result.is_success(), result.tx_gas_used(), result.logs());
            let actual = (receipt.success, receipt.gas_used, &receipt.logs[..]);
            assert_eq!(actual, expected, "{name}: transaction {tx}");
        }
    }
}

#[test]
fn every_name_resolves_and_a_tiny_budget_still_has_a_transaction() {
    assert_eq!(NAMES.len(), 8);
    for name in NAMES {
        let workload = workload(name, 1, 3).unwrap();
        assert_eq!(workload.name, *name);
        assert!(!workload.block.body.transactions.is_empty(), "{name}");
        let output =
            execute_sequential(&workload.chain, &workload.block, &workload.storage).unwrap();
        assert!(
            output.receipts.iter().all(|receipt| receipt.success),
            "{name}"
        );
    }
    assert!(workload("nope", GAS, 0).is_none());
}

/// Prints each workload's gas per kind of transaction (by selector), to re-measure the gas
/// constants: `cargo test -p parevm-workloads --test synthetic -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn measure_gas_per_transaction_kind() {
    for name in NAMES {
        let workload = workload(name, GAS, SEED).unwrap();
        let output =
            execute_sequential(&workload.chain, &workload.block, &workload.storage).unwrap();
        println!(
            "{name}: {} txs, {} gas",
            output.receipts.len(),
            output.gas_used
        );
        let mut kinds: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (tx, receipt) in workload
            .block
            .body
            .transactions
            .iter()
            .zip(&output.receipts)
        {
            let kind = match tx.input().get(..4) {
                Some(selector) => parevm::alloy_primitives::hex::encode(selector),
                None => "transfer".into(),
            };
            kinds.entry(kind).or_default().push(receipt.gas_used);
        }
        for (kind, gas) in kinds {
            let mean = gas.iter().sum::<u64>() / gas.len() as u64;
            let (min, max) = (gas.iter().min().unwrap(), gas.iter().max().unwrap());
            println!(
                "  {kind}: {} txs, first {}, min {min}, max {max}, mean {mean}",
                gas.len(),
                gas[0]
            );
        }
    }
}

/// Calls `signature` on `to` with word arguments against the pre-state; the returned words, or
/// `None` if the call reverts.
fn view(
    workload: &Workload,
    to: Address,
    signature: &str,
    arguments: &[U256],
) -> Option<Vec<U256>> {
    let mut input = keccak256(signature)[..4].to_vec();
    for argument in arguments {
        input.extend_from_slice(&argument.to_be_bytes::<32>());
    }
    let mut evm = Context::mainnet()
        .with_db(CacheDB::new(StorageRef(&workload.storage)))
        .with_cfg(CfgEnv::new_with_spec(SpecId::CANCUN))
        .build_mainnet();
    let tx = TxEnv::builder()
        .caller(Address::repeat_byte(0xca))
        .kind(TxKind::Call(to))
        .data(input.into())
        .gas_limit(1_000_000)
        .build()
        .unwrap();
    let result = evm.transact(tx).unwrap().result;
    if !result.is_success() {
        return None;
    }
    let output = result.output().unwrap();
    Some(output.chunks(32).map(U256::from_be_slice).collect())
}

/// The ABI-decoded string a getter returned.
fn string(words: &[U256]) -> String {
    let length = words[1].to::<usize>();
    let bytes: Vec<u8> = words[2..]
        .iter()
        .flat_map(|word| word.to_be_bytes::<32>())
        .collect();
    String::from_utf8(bytes[..length].to_vec()).unwrap()
}

fn address_of(word: U256) -> Address {
    Address::from_word(B256::from(word))
}

fn signed(value: i64) -> U256 {
    let magnitude = U256::from(value.unsigned_abs());
    if value < 0 {
        U256::ZERO - magnitude
    } else {
        magnitude
    }
}

/// The pre-state read back through the contracts' own getters: a successful swap proves the
/// slots it uses, not the ticks, the bitmap, the factory or WETH9.
#[test]
fn uniswap_pre_state_reads_back_through_the_getters() {
    let (workload, output) = run("uniswap-hot-pool", 1_000_000, None);
    let call = |to: Address, signature: &str, arguments: &[U256]| {
        view(&workload, to, signature, arguments)
            .unwrap_or_else(|| panic!("{to}.{signature} reverted"))
    };
    let one = |to: Address, signature: &str, arguments: &[U256]| call(to, signature, arguments)[0];
    let ether = |n: u64| U256::from(n) * U256::from(10u64).pow(U256::from(18));
    let pool = output.receipts[0]
        .logs
        .iter()
        .find(|log| log.topics()[0] == SWAP_EVENT)
        .unwrap()
        .address;
    let single_swap = recipients(&workload)[0];
    let people = senders(&workload);

    let token0 = address_of(one(pool, "token0()", &[]));
    let token1 = address_of(one(pool, "token1()", &[]));
    assert!(token0 < token1);
    let factory = address_of(one(pool, "factory()", &[]));
    let router = address_of(one(single_swap, "swapRouter()", &[]));
    assert_eq!(address_of(one(router, "factory()", &[])), factory);
    let weth = address_of(one(router, "WETH9()", &[]));

    assert_eq!(string(&call(weth, "name()", &[])), "Wrapped Ether");
    assert_eq!(string(&call(weth, "symbol()", &[])), "WETH");
    assert_eq!(one(weth, "decimals()", &[]), U256::from(18));

    assert_ne!(one(factory, "owner()", &[]), U256::ZERO);
    for (fee, spacing) in [(500u64, 10u64), (3000, 60), (10000, 200)] {
        let got = one(factory, "feeAmountTickSpacing(uint24)", &[U256::from(fee)]);
        assert_eq!(got, U256::from(spacing));
    }
    for (a, b) in [(token0, token1), (token1, token0)] {
        let arguments = [a.into_word().into(), b.into_word().into(), U256::from(3000)];
        let got = one(factory, "getPool(address,address,uint24)", &arguments);
        assert_eq!(address_of(got), pool);
    }

    assert_eq!(one(pool, "fee()", &[]), U256::from(3000));
    assert_eq!(one(pool, "tickSpacing()", &[]), U256::from(60));
    // sqrtPriceX96 2^96, tick 0, observation index 0, cardinality 1, next 1, no fee, unlocked.
    let mut expected_slot0 = [0u64, 0, 0, 1, 1, 0, 1].map(U256::from);
    expected_slot0[0] = U256::from(1) << 96;
    assert_eq!(call(pool, "slot0()", &[]), expected_slot0);
    let liquidity = U256::from(111_111_000_000_010_412_955_141u128);
    assert_eq!(one(pool, "liquidity()", &[]), liquidity);
    let gross = U256::from(0x178756e190b388651605u128);
    for (tick, net, seconds_outside) in [(-600_000, gross, 1u64), (600_000, U256::ZERO - gross, 0)]
    {
        let info = call(pool, "ticks(int24)", &[signed(tick)]);
        let expected = [gross, net, U256::ZERO, U256::ZERO, U256::ZERO, U256::ZERO];
        assert_eq!(info[..6], expected, "tick {tick}");
        assert_eq!(
            info[6..],
            [U256::from(seconds_outside), U256::from(1)],
            "tick {tick}"
        );
    }
    assert_eq!(
        one(pool, "tickBitmap(int16)", &[signed(39)]),
        U256::from(1) << 16
    );
    assert_eq!(
        one(pool, "tickBitmap(int16)", &[signed(-40)]),
        U256::from(1) << 240
    );
    let observation = call(pool, "observations(uint256)", &[U256::ZERO]);
    assert_eq!(observation, [1u64, 0, 0, 1].map(U256::from));
    // Requires both ticks initialized.
    call(
        pool,
        "snapshotCumulativesInside(int24,int24)",
        &[signed(-600_000), signed(600_000)],
    );

    for token in [token0, token1] {
        assert_eq!(one(token, "decimals()", &[]), U256::from(18));
        assert_eq!(
            one(token, "balanceOf(address)", &[pool.into_word().into()]),
            ether(111_111)
        );
        for person in &people {
            let person: U256 = person.into_word().into();
            assert_eq!(one(token, "balanceOf(address)", &[person]), ether(1));
            let spender: U256 = single_swap.into_word().into();
            assert_eq!(
                one(token, "allowance(address,address)", &[person, spender]),
                ether(1)
            );
        }
        let supply = ether(111_111) + ether(people.len() as u64);
        assert_eq!(one(token, "totalSupply()", &[]), supply);
    }
}

/// The same for a token of `erc20`.
#[test]
fn erc20_pre_state_reads_back_through_the_getters() {
    let (workload, _) = run("erc20", 1_000_000, None);
    let token = recipients(&workload)[0];
    let call =
        |signature: &str, arguments: &[U256]| view(&workload, token, signature, arguments).unwrap();
    assert_eq!(string(&call("name()", &[])), "USDT");
    assert_eq!(string(&call("symbol()", &[])), "USDT");
    assert_eq!(call("decimals()", &[])[0], U256::from(18));
    let sender: U256 = senders(&workload)[0].into_word().into();
    let balance = call("balanceOf(address)", &[sender])[0];
    assert!(balance >= U256::from(100u64) * U256::from(10u64).pow(U256::from(18)));
    assert!(call("totalSupply()", &[])[0] > balance);
}

/// A block too big to publish every slot its committer writes (more than 4,096 transactions)
/// publishes the slots of transactions to hot destinations, its table starting over when half
/// full, and speculates a hot destination's transactions once ripe: `mixed` at 400 Mgas (some
/// 10,000 transactions, four pools swapped hundreds of times each) through the pipeline at 2
/// and 4 threads, five runs each, gives the sequential output, and the planner gives it the
/// pipeline at 2 threads (Block-STM to a block as big whose swaps all go through one pool).
#[test]
fn big_blocks_with_hot_pools_match_sequential_through_the_pipeline() {
    let mixed = workload("mixed", 400_000_000, SEED).expect("a known workload");
    assert!(mixed.block.body.transactions.len() > 4096);
    let expected =
        execute_sequential(&mixed.chain, &mixed.block, &mixed.storage).expect("the block runs");
    for threads in [2, 4] {
        let executor = ParallelExecutor::new(ExecutorConfig {
            concurrency: NonZeroUsize::new(threads).unwrap(),
            strategy: Strategy::Pipeline,
        });
        for run in 0..5 {
            let (output, stats) =
                executor.execute_with_stats(&mixed.chain, &mixed.block, &mixed.storage);
            assert!(
                output.as_ref().ok() == Some(&expected),
                "run {run} at {threads} threads differs"
            );
            assert!(stats.validations > 0, "run {run}: nothing speculated");
        }
    }
    let planned = |name, gas| {
        let block = workload(name, gas, SEED).expect("a known workload");
        assert!(block.block.body.transactions.len() > 4096);
        ExecutorConfig {
            concurrency: NonZeroUsize::new(2).unwrap(),
            strategy: Strategy::Auto,
        }
        .strategy_for(&block.chain, &block.block, &block.storage)
    };
    assert_eq!(planned("mixed", 400_000_000), Strategy::Pipeline);
    assert_eq!(
        planned("uniswap-hot-pool", 1_000_000_000),
        Strategy::BlockStm
    );
}

/// Every workload executed 50 times at 2, 4, 8 and 16 threads by each engine gives
/// byte-identical output: the `Debug` rendering of every run equals the sequential one.
#[test]
fn every_workload_is_deterministic_at_every_thread_count() {
    for name in NAMES {
        let workload = workload(name, 2_000_000, 3).expect("known workload");
        let expected = format!(
            "{:?}",
            execute_sequential(&workload.chain, &workload.block, &workload.storage)
        );
        for strategy in [Strategy::BlockStm, Strategy::Pipeline] {
            for threads in [2, 4, 8, 16] {
                let executor = ParallelExecutor::new(ExecutorConfig {
                    concurrency: std::num::NonZeroUsize::new(threads).unwrap(),
                    strategy,
                });
                for run in 0..50 {
                    let actual = format!(
                        "{:?}",
                        executor.execute(&workload.chain, &workload.block, &workload.storage)
                    );
                    assert!(
                        actual == expected,
                        "{name}: {strategy} run {run} at {threads} threads differs"
                    );
                }
            }
        }
    }
}

/// One executor runs different blocks one after another, growing and shrinking (it keeps its
/// multi-version memory across blocks; planned, it switches engines): each output is still the
/// sequential one.
#[test]
fn one_executor_across_different_blocks() {
    for strategy in [Strategy::BlockStm, Strategy::Auto] {
        one_executor_across_blocks(strategy);
    }
}

fn one_executor_across_blocks(strategy: Strategy) {
    let executor = ParallelExecutor::new(ExecutorConfig {
        concurrency: NonZeroUsize::new(2).unwrap(),
        strategy,
    });
    let sizes = [3_000_000, 300_000, 6_000_000];
    for (round, gas) in sizes.into_iter().enumerate() {
        for name in NAMES {
            let workload = workload(name, gas, round as u64 + 1).expect("known workload");
            let expected = execute_sequential(&workload.chain, &workload.block, &workload.storage);
            let actual = executor.execute(&workload.chain, &workload.block, &workload.storage);
            assert_eq!(
                format!("{actual:?}"),
                format!("{expected:?}"),
                "{name} at {gas} gas after other blocks ({strategy})"
            );
        }
    }
}

/// Blocks of 10,000+ transactions run to the sequential result without unbounded re-execution.
#[test]
fn ten_thousand_transactions_with_bounded_re_execution() {
    let executor = ParallelExecutor::new(ExecutorConfig {
        concurrency: std::num::NonZeroUsize::new(2).unwrap(),
        strategy: parevm::Strategy::BlockStm,
    });
    for (name, gas) in [
        ("raw-transfers-hot", 220_000_000),
        ("erc20-clusters", 360_000_000),
    ] {
        let workload = workload(name, gas, 5).expect("known workload");
        let txs = workload.block.body.transactions.len();
        assert!(txs >= 10_000, "{name}: only {txs} transactions");
        let expected = execute_sequential(&workload.chain, &workload.block, &workload.storage)
            .unwrap_or_else(|error| panic!("{name}: sequential execution failed: {error}"));
        let (actual, stats) =
            executor.execute_with_stats(&workload.chain, &workload.block, &workload.storage);
        let actual =
            actual.unwrap_or_else(|error| panic!("{name}: parallel execution failed: {error}"));
        assert!(actual == expected, "{name}: parallel differs");
        let per_tx = stats.executions as f64 / txs as f64;
        println!("{name}: {txs} txs, {per_tx:.3} executions per tx, {stats:?}");
        assert!(
            per_tx < 1.5,
            "{name}: {per_tx:.3} executions per transaction"
        );
    }
}

/// The planner's choice per workload at 2 and 8 threads (judged before running): light blocks
/// take the pipeline, heavy ones Block-STM — except swaps through distinct pools (no two calls
/// share a contract), which take the pipeline, and at 2 threads blocks of at most 4,096
/// transactions, whose speculations read the slots committed before them —, one sender's chain
/// of plain transfers (30 Mgas) the pipeline, at both thread counts (measured on 16 cores:
/// `docs/benchmarks.md`, fourteenth session), and `strategy_for` agrees with what the executor
/// reports running.
#[test]
fn the_planner_chooses_by_weight_sharing_and_chains() {
    let expectations = [
        ("raw-transfers", Strategy::Pipeline, Strategy::Pipeline),
        ("raw-transfers-hot", Strategy::Pipeline, Strategy::Pipeline),
        (
            "raw-transfers-chain",
            Strategy::Pipeline,
            Strategy::Pipeline,
        ),
        ("erc20", Strategy::Pipeline, Strategy::Pipeline),
        ("uniswap", Strategy::Pipeline, Strategy::Pipeline),
        ("mixed", Strategy::Pipeline, Strategy::BlockStm),
    ];
    for (name, at_two, at_eight) in expectations {
        let workload = workload(name, 30_000_000, 1).expect("known workload");
        for (threads, expected) in [(2, at_two), (8, at_eight)] {
            let config = ExecutorConfig {
                concurrency: NonZeroUsize::new(threads).unwrap(),
                strategy: Strategy::Auto,
            };
            assert_eq!(
                config.strategy_for(&workload.chain, &workload.block, &workload.storage),
                expected,
                "{name} at {threads} threads"
            );
            assert_eq!(
                config
                    .sequential_reason(&workload.chain, &workload.block, &workload.storage)
                    .is_some(),
                expected == Strategy::Sequential,
                "{name} at {threads} threads"
            );
            let (output, stats) = ParallelExecutor::new(config).execute_with_stats(
                &workload.chain,
                &workload.block,
                &workload.storage,
            );
            assert_eq!(stats.strategy, expected, "{name} at {threads} threads ran");
            assert_eq!(
                output.ok(),
                execute_sequential(&workload.chain, &workload.block, &workload.storage).ok()
            );
        }
    }
}

/// A forced hand-over half-way through independent transfers: the pipeline executes the first
/// half exactly once each and nothing after the hand-over, Block-STM the second half once each,
/// and the stats say so; handed over at the block's end, the pipeline runs it all.
#[test]
fn hand_over_half_way_executes_every_transaction_once() {
    let workload = workload("raw-transfers", 20_000_000, 1).expect("known workload");
    let txs = workload.block.body.transactions.len();
    let expected = execute_sequential(&workload.chain, &workload.block, &workload.storage)
        .expect("sequential execution");
    for (at, reported) in [
        (txs / 2, Strategy::HandOver(txs / 2)),
        (txs, Strategy::Pipeline),
    ] {
        let executor = ParallelExecutor::new(ExecutorConfig {
            concurrency: NonZeroUsize::new(2).unwrap(),
            strategy: Strategy::HandOver(at),
        });
        for run in 0..5 {
            let (output, stats) =
                executor.execute_with_stats(&workload.chain, &workload.block, &workload.storage);
            assert_eq!(output.expect("parallel execution"), expected);
            assert_eq!(stats.strategy, reported, "hand-over at {at}");
            assert_eq!(
                stats.executions, txs,
                "hand-over at {at} of {txs}, run {run}: {stats:?}"
            );
        }
    }
}

/// Every swap of a hot pool reads what the one before wrote: the pipeline's speculations are
/// rejected, so once rejections dominate its threads stop speculating and the committer executes
/// the rest directly — few wasted executions, and still the sequential output.
#[test]
fn pipeline_stops_speculating_when_rejections_dominate() {
    let workload = workload("uniswap-hot-pool", 60_000_000, 1).expect("known workload");
    let txs = workload.block.body.transactions.len();
    let expected = execute_sequential(&workload.chain, &workload.block, &workload.storage)
        .expect("sequential execution");
    let executor = ParallelExecutor::new(ExecutorConfig {
        concurrency: NonZeroUsize::new(2).unwrap(),
        strategy: Strategy::Pipeline,
    });
    let (output, stats) =
        executor.execute_with_stats(&workload.chain, &workload.block, &workload.storage);
    assert_eq!(output.expect("pipeline"), expected);
    assert_eq!(stats.strategy, Strategy::Pipeline);
    assert!(
        stats.executions < txs + txs / 4,
        "{} executions for {txs} transactions: speculation did not stop",
        stats.executions
    );
}

/// A block whose multi-version memory is large (60 Mgas of swaps: several thousand accounts and
/// slots) has its output assembled on every thread, each taking a partition of the accounts: at
/// 2, 3 and 4 threads the output must still be the sequential one (an account or slot lost or
/// duplicated between partitions would show).
#[test]
fn large_output_assembled_on_every_thread_matches_sequential() {
    let workload = workload("uniswap", 60_000_000, 1).expect("known workload");
    let expected = execute_sequential(&workload.chain, &workload.block, &workload.storage)
        .expect("sequential execution");
    for threads in [2, 3, 4] {
        let executor = ParallelExecutor::new(ExecutorConfig {
            concurrency: NonZeroUsize::new(threads).unwrap(),
            strategy: Strategy::BlockStm,
        });
        let output = executor
            .execute(&workload.chain, &workload.block, &workload.storage)
            .expect("parallel execution");
        assert_eq!(output, expected, "{threads} threads");
    }
}
