//! The automatic choice of engine per block (`Strategy::Auto`), judged from what is known before
//! running: each rule is shown by two blocks that differ only in what the rule looks at, and every
//! output still equals sequential execution's.

mod common;

use common::*;
use parevm::{
    ChainSpec, Strategy,
    alloy_consensus::{Block, TxEnvelope, transaction::Recovered},
    alloy_primitives::{Address, Bytes, TxKind, U256},
    revm::primitives::hardfork::SpecId,
};

const SPEC: SpecId = SpecId::CANCUN;

/// Each transaction's gas limit: 20 of them make a block heavy enough for Block-STM at 2 threads
/// (the planner counts three quarters of the limits when the header has no gas used).
const GAS_LIMIT: u64 = 500_000;

/// The strategy `Strategy::Auto` ran at `threads`, after checking the output against sequential
/// execution.
fn planned(
    block: &Block<Recovered<TxEnvelope>>,
    storage: &parevm::InMemoryStorage,
    threads: usize,
) -> Strategy {
    planned_under(SPEC, block, storage, threads)
}

/// [`planned`] under `spec`.
fn planned_under(
    spec: SpecId,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &parevm::InMemoryStorage,
    threads: usize,
) -> Strategy {
    planned_on(spec, block, storage, threads).0
}

/// The strategy and the number of threads `Strategy::Auto` with `threads` threads runs `block`
/// with under `spec` (its output checked against sequential execution).
fn planned_on(
    spec: SpecId,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &parevm::InMemoryStorage,
    threads: usize,
) -> (Strategy, usize) {
    let chain = ChainSpec::fixed(spec);
    let expected = parevm::execute_sequential(&chain, block, storage).expect("valid block");
    let (output, stats) =
        executor_with(Strategy::Auto, threads).execute_with_stats(&chain, block, storage);
    assert_eq!(output.expect("valid block"), expected);
    (stats.strategy, stats.threads)
}

/// Why `Strategy::Auto` at 2 threads runs `block` sequentially (it must).
fn sequential_reason_at_two_threads(
    block: &Block<Recovered<TxEnvelope>>,
    storage: &parevm::InMemoryStorage,
) -> String {
    parevm::ExecutorConfig {
        concurrency: std::num::NonZeroUsize::new(2).unwrap(),
        strategy: Strategy::Auto,
    }
    .sequential_reason(&ChainSpec::fixed(SPEC), block, storage)
    .expect("sequential")
}

/// A value transfer without input.
fn send(from: Address, nonce: u64, to: Address) -> Recovered<TxEnvelope> {
    legacy_tx(
        from,
        nonce,
        TxKind::Call(to),
        U256::from(1),
        Bytes::new(),
        GAS_LIMIT,
    )
}

/// A call adding 1 to slot `slot` of `adder`.
fn add(from: Address, nonce: u64, adder: Address, slot: u64) -> Recovered<TxEnvelope> {
    let input = calldata(&[U256::from(slot), U256::from(1)]);
    legacy_tx(
        from,
        nonce,
        TxKind::Call(adder),
        U256::ZERO,
        input,
        GAS_LIMIT,
    )
}

/// A heavy block of 20 transactions, `without_input` of them value transfers and the rest calls,
/// each from its own sender.
fn transfers_and_calls(
    without_input: usize,
) -> (Block<Recovered<TxEnvelope>>, parevm::InMemoryStorage) {
    let from = senders(20);
    let mut storage = funded(SPEC, &from);
    let adder = Address::with_last_byte(0xad);
    deploy(&mut storage, adder, code::ADDER);
    let txs = from
        .iter()
        .enumerate()
        .map(|(index, sender)| match index < without_input {
            true => send(*sender, 0, Address::with_last_byte(0xd0 + index as u8)),
            false => add(*sender, 0, adder, index as u64),
        })
        .collect();
    (block(SPEC, txs), storage)
}

/// A heavy block of 20 calls, the first `chained` + 1 from one sender (a nonce chain), the rest
/// each from its own; the chain's calls go to `contracts` contracts in turn (one: a run of calls
/// to one contract, which the pipeline speculates each on the one before).
fn chained_calls(
    chained: usize,
    contracts: u8,
) -> (Block<Recovered<TxEnvelope>>, parevm::InMemoryStorage) {
    let from = senders(20);
    let mut storage = funded(SPEC, &from);
    let adders: Vec<Address> = (0..contracts)
        .map(|index| Address::with_last_byte(0xad + index))
        .collect();
    for adder in &adders {
        deploy(&mut storage, *adder, code::ADDER);
    }
    let txs = (0..20)
        .map(|index| match index <= chained {
            true => add(
                from[0],
                index as u64,
                adders[index % adders.len()],
                index as u64,
            ),
            false => add(from[index], 0, adders[0], index as u64),
        })
        .collect();
    (block(SPEC, txs), storage)
}

/// A heavy block of value transfers runs the pipeline, not Block-STM, at 2 threads and at 8;
/// with 9 calls of 20 to one contract, Block-STM at 8 threads, and the pipeline at 2 (its
/// speculations read the slots committed before them).
#[test]
fn heavy_block_of_value_transfers_runs_the_pipeline() {
    let (block, storage) = transfers_and_calls(18);
    for threads in [2, 8] {
        assert_eq!(planned(&block, &storage, threads), Strategy::Pipeline);
    }
    let (block, storage) = transfers_and_calls(11);
    assert_eq!(planned(&block, &storage, 8), Strategy::BlockStm);
    assert_eq!(planned(&block, &storage, 2), Strategy::Pipeline);
}

/// A heavy block of 20 calls each to its own contract (none shares one) runs the pipeline at 2
/// threads and at 8; the same calls with 9 of them to one contract (45%) run the pipeline at 2
/// threads too (its speculations read the slots committed before them: a block of at most 4,096
/// transactions); above 2 threads, 2 of them to one contract (10%) already run Block-STM.
#[test]
fn heavy_calls_that_rarely_share_contracts_run_the_pipeline() {
    let calls = |sharing: usize| {
        let from = senders(20);
        let mut storage = funded(SPEC, &from);
        let adders: Vec<Address> = (0..20u8)
            .map(|index| Address::with_last_byte(0x60 + index))
            .collect();
        for adder in &adders {
            deploy(&mut storage, *adder, code::ADDER);
        }
        let txs = (from.iter().enumerate())
            .map(|(index, sender)| {
                let adder = adders[if index < sharing { 0 } else { index }];
                add(*sender, 0, adder, index as u64)
            })
            .collect();
        (block(SPEC, txs), storage)
    };
    let (block, storage) = calls(0);
    for threads in [2, 4, 8] {
        assert_eq!(planned(&block, &storage, threads), Strategy::Pipeline);
    }
    let (block, storage) = calls(8);
    assert_eq!(planned(&block, &storage, 2), Strategy::Pipeline);
    let (block, storage) = calls(9);
    assert_eq!(planned(&block, &storage, 2), Strategy::Pipeline);
    let (block, storage) = calls(2);
    assert_eq!(planned(&block, &storage, 2), Strategy::Pipeline);
    for threads in [3, 8] {
        assert_eq!(planned(&block, &storage, threads), Strategy::BlockStm);
    }
}

/// The share of calls to a shared contract that sends a block to Block-STM does not depend on
/// their gas: at 8 threads, 80 calls, 7 to one contract (under 10%), run the pipeline at 75,000
/// gas each (three quarters of their limits) and at 375,000; 9 (over 10%) run Block-STM at both.
/// At 2 threads, 36 of them (45%) run the pipeline at both (committed slots).
#[test]
fn heavy_calls_share_contracts_alike_whatever_their_gas() {
    let calls = |sharing: usize, gas_limit: u64| {
        let from = senders(80);
        let mut storage = funded(SPEC, &from);
        let adders: Vec<Address> = (0..80u8)
            .map(|index| Address::with_last_byte(0xa0 + index))
            .collect();
        for adder in &adders {
            deploy(&mut storage, *adder, code::ADDER);
        }
        let txs = (from.iter().enumerate())
            .map(|(index, sender)| {
                let adder = adders[if index < sharing { 0 } else { index }];
                let input = calldata(&[U256::from(index), U256::from(1)]);
                legacy_tx(
                    *sender,
                    0,
                    TxKind::Call(adder),
                    U256::ZERO,
                    input,
                    gas_limit,
                )
            })
            .collect();
        (block(SPEC, txs), storage)
    };
    for gas_limit in [100_000, GAS_LIMIT] {
        let (block, storage) = calls(7, gas_limit);
        assert_eq!(planned(&block, &storage, 8), Strategy::Pipeline);
        let (block, storage) = calls(9, gas_limit);
        assert_eq!(planned(&block, &storage, 8), Strategy::BlockStm);
        let (block, storage) = calls(36, gas_limit);
        assert_eq!(planned(&block, &storage, 2), Strategy::Pipeline);
    }
}

/// Above 4,096 transactions nothing is published for speculations to read, and at 2 threads the
/// share of calls sharing a contract decides as before: of 4,100 heavy calls from distinct
/// senders, 1,845 (45%) to one contract run Block-STM, 1,640 (40%) the pipeline. A block of 20
/// calls, 9 to one contract, runs Block-STM when one call dominates it (a gas limit of at least
/// two thirds of the block's expected gas), the pipeline when that call is smaller.
#[test]
fn big_blocks_and_dominated_ones_share_contracts_as_before_at_two_threads() {
    let calls = |count: u16, sharing: u16, gas_limits: &dyn Fn(u16) -> u64| {
        let address = |prefix: u8, index: u16| {
            let [high, low] = index.to_be_bytes();
            Address::from_slice(&[[prefix; 17].as_slice(), &[0, high, low]].concat())
        };
        // Calls with input to accounts without code: valid, and all the planner looks at.
        let from: Vec<Address> = (0..count).map(|index| address(0x5e, index)).collect();
        let storage = funded(SPEC, &from);
        let txs = (from.iter().zip(0..))
            .map(|(sender, index)| {
                let to = address(0xc0, if index < sharing { 0 } else { index });
                let input = calldata(&[U256::from(index), U256::from(1)]);
                legacy_tx(
                    *sender,
                    0,
                    TxKind::Call(to),
                    U256::ZERO,
                    input,
                    gas_limits(index),
                )
            })
            .collect();
        (block(SPEC, txs), storage)
    };
    let (block, storage) = calls(4_100, 1_845, &|_| 60_000);
    assert_eq!(planned(&block, &storage, 2), Strategy::BlockStm);
    let (block, storage) = calls(4_100, 1_640, &|_| 60_000);
    assert_eq!(planned(&block, &storage, 2), Strategy::Pipeline);
    // 19 calls of 500,000 gas and one of 20,000,000: 22.1 Mgas counted (three quarters of the
    // limits), the big one's limit above two thirds of it; with 8,000,000, 13.1 Mgas, below.
    let dominated = |limit| move |index: u16| if index == 10 { limit } else { 500_000 };
    for (limit, expected) in [
        (20_000_000, Strategy::BlockStm),
        (8_000_000, Strategy::Pipeline),
    ] {
        let (mut block, storage) = calls(20, 9, &dominated(limit));
        // A mainnet-like limit: the big call is a giant (above an eighth of it).
        block.header.gas_limit = 30_000_000;
        assert_eq!(planned(&block, &storage, 2), expected, "{limit}");
    }
}

/// A heavy block where more than 2 in 5 transactions follow one of their sender's does not run
/// Block-STM: with those followers calls that the pipeline leaves to its committer (each calls
/// what its sender called two transactions before), it runs sequentially; with 8 followers of 20
/// it runs Block-STM. A run of calls to one contract, which the pipeline speculates each on the
/// one before, runs the pipeline.
#[test]
fn heavy_block_of_chained_calls_avoids_block_stm() {
    let (block, storage) = chained_calls(9, 2);
    for threads in [2, 8] {
        assert_eq!(planned(&block, &storage, threads), Strategy::Sequential);
    }
    let reason = sequential_reason_at_two_threads(&block, &storage);
    assert!(
        reason.contains("8 of 20 transactions call what their sender called"),
        "{reason}"
    );
    let (block, storage) = chained_calls(8, 2);
    assert_eq!(planned(&block, &storage, 2), Strategy::BlockStm);
    let (block, storage) = chained_calls(9, 1);
    for threads in [2, 8] {
        assert_eq!(planned(&block, &storage, threads), Strategy::Pipeline);
    }
}

/// From Berlin on, a block of 1.5-5 Mgas whose transactions are heavy runs Block-STM; before
/// Berlin, under 1.5 Mgas, or with light transactions, it runs sequentially.
#[test]
fn small_heavy_block_runs_block_stm_from_berlin_on() {
    let calls = |spec: SpecId, count: u8, gas_limit: u64| {
        let from = senders(count);
        let mut storage = funded(spec, &from);
        let adder = Address::with_last_byte(0xad);
        deploy(&mut storage, adder, code::ADDER);
        let txs = from
            .iter()
            .enumerate()
            .map(|(index, sender)| {
                let input = calldata(&[U256::from(index), U256::from(1)]);
                legacy_tx(
                    *sender,
                    0,
                    TxKind::Call(adder),
                    U256::ZERO,
                    input,
                    gas_limit,
                )
            })
            .collect();
        (block(spec, txs), storage)
    };
    let cases = [
        // 20 transactions of 200,000 gas: 3 Mgas counted, 150,000 per transaction.
        (SpecId::BERLIN, 20, 200_000, Strategy::BlockStm),
        (SpecId::ISTANBUL, 20, 200_000, Strategy::Sequential),
        // 20 transactions of 110,000 and 90,000 gas: 1.65 and 1.35 Mgas counted, above and
        // under the Berlin minimum.
        (SpecId::BERLIN, 20, 110_000, Strategy::BlockStm),
        (SpecId::BERLIN, 20, 90_000, Strategy::Sequential),
        // 100 transactions of 50,000 gas: 3.75 Mgas counted, 37,500 per transaction (light).
        (SpecId::BERLIN, 100, 50_000, Strategy::Sequential),
    ];
    for (spec, count, gas_limit, expected) in cases {
        let (block, storage) = calls(spec, count, gas_limit);
        assert_eq!(
            planned_under(spec, &block, &storage, 2),
            expected,
            "{spec:?}, {count} transactions of {gas_limit} gas"
        );
    }
}

/// A block of plain transfers from one sender (a nonce chain covering it) runs the pipeline, on
/// every thread from 5 Mgas on and on one below; so does one with two calls to a contract among
/// its transfers (the first is speculated, the second left to the committer), but not with three
/// (two left: more than one in 20); the same chain of calls runs sequentially.
#[test]
fn chain_of_plain_transfers_runs_the_pipeline() {
    let chain_block = |gas_limit: u64, calls: usize| {
        let from = senders(1);
        let mut storage = funded(SPEC, &from);
        let adder = Address::with_last_byte(0xad);
        deploy(&mut storage, adder, code::ADDER);
        let txs = (0..20u64)
            .map(|nonce| {
                // The last `calls` transactions call a contract.
                let (to, input) = match nonce + calls as u64 >= 20 {
                    true => (adder, calldata(&[U256::from(nonce), U256::from(1)])),
                    false => (Address::with_last_byte(0xd0 + nonce as u8), Bytes::new()),
                };
                legacy_tx(
                    from[0],
                    nonce,
                    TxKind::Call(to),
                    U256::from(1),
                    input,
                    gas_limit,
                )
            })
            .collect();
        (block(SPEC, txs), storage)
    };
    // 20 transactions, three quarters of their gas limits counted: 15 and 4.5 Mgas.
    let (big, storage) = chain_block(1_000_000, 0);
    assert_eq!(planned_on(SPEC, &big, &storage, 2), (Strategy::Pipeline, 2));
    // Two calls to one contract among them (one left to the committer: at most one in 20
    // tolerated), or three.
    let (two_calls, storage) = chain_block(1_000_000, 2);
    assert_eq!(planned(&two_calls, &storage, 2), Strategy::Pipeline);
    let (three_calls, storage) = chain_block(1_000_000, 3);
    assert_eq!(planned(&three_calls, &storage, 2), Strategy::Sequential);
    let (small, storage) = chain_block(300_000, 0);
    assert_eq!(
        planned_on(SPEC, &small, &storage, 2),
        (Strategy::Pipeline, 1)
    );
    let (small_with_calls, storage) = chain_block(300_000, 3);
    assert_eq!(
        planned(&small_with_calls, &storage, 2),
        Strategy::Sequential
    );
    let calls = chain_block(2_000_000, 20);
    assert_eq!(planned(&calls.0, &calls.1, 2), Strategy::Sequential);
    // Both for the chain (a chain of calls would otherwise meet the later "too chained" rule).
    for (block, storage) in [(&small_with_calls, &storage), (&calls.0, &calls.1)] {
        let reason = sequential_reason_at_two_threads(block, storage);
        assert!(reason.contains("nonce chain covers 20 of 20"), "{reason}");
    }
}

/// A block whose transactions mostly send value to one contract (a sale counting its deposits:
/// each such call changes it, and the pipeline leaves them to its committer, one after another)
/// runs sequentially at 2 threads when more than two thirds of them pay it; with 13 of 20 paying
/// it, or all paying one account without code (credited lazily), it runs the pipeline.
#[test]
fn block_mostly_paying_one_contract_runs_sequentially() {
    let block_of = |paying: usize, with_code: bool| {
        let from = senders(20);
        let mut storage = funded(SPEC, &from);
        let sale = Address::with_last_byte(0x5a);
        if with_code {
            deploy(&mut storage, sale, code::COUNTER);
        }
        let txs = from
            .iter()
            .enumerate()
            .map(|(index, sender)| match index < paying {
                true => send(*sender, 0, sale),
                false => send(*sender, 0, Address::with_last_byte(0xd0 + index as u8)),
            })
            .collect();
        (block(SPEC, txs), storage)
    };
    let (block, storage) = block_of(14, true);
    assert_eq!(planned(&block, &storage, 2), Strategy::Sequential);
    let reason = sequential_reason_at_two_threads(&block, &storage);
    assert!(
        reason.contains("14 of 20 transactions call without input contracts"),
        "{reason}"
    );
    let (block, storage) = block_of(13, true);
    assert_eq!(planned(&block, &storage, 2), Strategy::Pipeline);
    let (block, storage) = block_of(20, false);
    assert_eq!(planned(&block, &storage, 2), Strategy::Pipeline);
}

/// A small block of plain transfers runs the pipeline alone only if they go to accounts without
/// code: those it speculates natively, the others it executes directly, as sequentially. The
/// planner looks at the first 16 plain transfers: 5 of them into contracts (wallets), alone; 6,
/// sequentially.
#[test]
fn small_block_of_plain_transfers_into_contracts_runs_sequentially() {
    let block_into_code = |into_code: usize| {
        let from = senders(144);
        let mut storage = funded(SPEC, &from);
        let txs = (from.iter().enumerate())
            .map(|(index, sender)| {
                let to = Address::with_last_byte(0xd0).create(index as u64);
                if index < into_code {
                    deploy(&mut storage, to, &[0x00]);
                }
                transfer(*sender, 0, to)
            })
            .collect();
        (block(SPEC, txs), storage)
    };
    let (wallets, storage) = block_into_code(5);
    assert_eq!(
        planned_on(SPEC, &wallets, &storage, 2),
        (Strategy::Pipeline, 1)
    );
    let (wallets, storage) = block_into_code(6);
    assert_eq!(planned(&wallets, &storage, 2), Strategy::Sequential);
    let reason = sequential_reason_at_two_threads(&wallets, &storage);
    assert!(reason.contains("less than 5000000"), "{reason}");
}

/// A small block of plain transfers (from 16 transactions on) runs the pipeline on one thread
/// (each transfer speculated natively, cheaply), whatever the executor's threads; with more than
/// one call in 20 among them, sequentially. A big one runs the pipeline on every thread.
#[test]
fn small_block_of_plain_transfers_runs_the_pipeline_alone() {
    let transfers_block = |count: u8, calls: usize| {
        let from = senders(count);
        let mut storage = funded(SPEC, &from);
        // Not among the senders (0x…41 to 0x…d1).
        let adder = Address::repeat_byte(0xad);
        deploy(&mut storage, adder, code::ADDER);
        let txs = (from.iter().enumerate())
            .map(|(index, sender)| {
                // The last `calls` transactions call a contract.
                let (to, input, gas_limit) = match index + calls >= usize::from(count) {
                    true => (adder, calldata(&[U256::from(index), U256::from(1)]), 60_000),
                    false => (Address::repeat_byte(0xd0), Bytes::new(), 21_000),
                };
                legacy_tx(
                    *sender,
                    0,
                    TxKind::Call(to),
                    U256::from(1),
                    input,
                    gas_limit,
                )
            })
            .collect();
        (block(SPEC, txs), storage)
    };
    // Three quarters of 144 x 21,000 gas: 2.3 Mgas, below `MIN_PARALLEL_GAS`.
    // Up to a quarter of calls (executed directly).
    for (count, calls) in [(16, 0), (144, 0), (144, 7), (144, 36)] {
        let (block, storage) = transfers_block(count, calls);
        for threads in [2, 8] {
            let planned = planned_on(SPEC, &block, &storage, threads);
            assert_eq!(planned, (Strategy::Pipeline, 1), "{count}, {calls}");
        }
    }
    // Alone, only the transfers are speculated (and validated); the calls run once, directly.
    let (mixed, storage) = transfers_block(144, 36);
    let (_, stats) = executor_with(Strategy::Auto, 2).execute_with_stats(
        &ChainSpec::fixed(SPEC),
        &mixed,
        &storage,
    );
    assert_eq!((stats.validations, stats.executions), (108, 144));
    let (calls, storage) = transfers_block(144, 37);
    assert_eq!(planned(&calls, &storage, 2), Strategy::Sequential);
    let reason = sequential_reason_at_two_threads(&calls, &storage);
    assert!(reason.contains("less than 5000000"), "{reason}");
    // One sender's chain of them too (below 5 Mgas a chain ran sequentially).
    let chain_block = |count: u64| {
        let from = senders(1);
        let storage = funded(SPEC, &from);
        let txs = (0..count)
            .map(|nonce| transfer(from[0], nonce, Address::repeat_byte(0xd0)))
            .collect();
        (block(SPEC, txs), storage)
    };
    let (chain, storage) = chain_block(16);
    assert_eq!(
        planned_on(SPEC, &chain, &storage, 2),
        (Strategy::Pipeline, 1)
    );
    // 400 x 15,750: 6.3 Mgas, alone; 900: 14.2 Mgas, on two threads.
    let (chain, storage) = chain_block(400);
    assert_eq!(
        planned_on(SPEC, &chain, &storage, 2),
        (Strategy::Pipeline, 1)
    );
    let (chain, storage) = chain_block(900);
    assert_eq!(
        planned_on(SPEC, &chain, &storage, 2),
        (Strategy::Pipeline, 2)
    );
}
