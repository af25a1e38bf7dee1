//! `parevm::analysis` on built blocks whose dependency structure is known: the EVM-aware edge
//! rules, the critical path, and the simulation against what the engine does.

mod common;

use common::*;
use parevm::{
    ChainSpec, InMemoryStorage, MemoryLocation,
    alloy_consensus::{TxEnvelope, transaction::Recovered},
    alloy_primitives::{Address, TxKind, U256},
    analysis::{CostModel, DependencyGraph, simulate, trace_block},
    revm::primitives::hardfork::SpecId,
};

const SPEC: SpecId = SpecId::CANCUN;
const HOT: Address = Address::new([0xaa; 20]);
const COUNTER: Address = Address::new([0xc0; 20]);

/// The chain rules of `SPEC` at every height (the mainnet schedule would make the test blocks'
/// height Frontier).
const CHAIN: ChainSpec = ChainSpec::fixed(SPEC);

fn graph_of(
    transactions: Vec<Recovered<TxEnvelope>>,
    storage: &InMemoryStorage,
) -> DependencyGraph {
    let block = block(SPEC, transactions);
    let trace = trace_block(&CHAIN, &block, storage).expect("traced");
    let sequential = parevm::execute_sequential(&CHAIN, &block, storage).unwrap();
    let gas: Vec<u64> = trace.txs.iter().map(|tx| tx.gas_used).collect();
    let expected: Vec<u64> = sequential
        .receipts
        .iter()
        .map(|receipt| receipt.gas_used)
        .collect();
    assert_eq!(gas, expected, "traced gas differs from the receipts");
    DependencyGraph::new(&trace)
}

#[test]
fn lazy_credits_make_no_edges() {
    // Independent senders paying one hot, codeless recipient and the beneficiary: both are lazy
    // increments, so nothing depends on anything.
    let accounts = senders(32);
    let storage = funded(SPEC, &accounts);
    let graph = graph_of(
        accounts
            .iter()
            .map(|sender| transfer(*sender, 0, HOT))
            .collect(),
        &storage,
    );
    assert_eq!(graph.edges(), 0);
    assert_eq!(graph.txs(), 32);
    assert!((graph.ideal_speedup() - 32.0).abs() < 1e-9);
    assert!(graph.hot_locations(3).is_empty());
}

#[test]
fn a_sender_chain_is_a_chain_of_nonce_and_balance_edges() {
    let sender = senders(1)[0];
    let storage = funded(SPEC, &[sender]);
    let graph = graph_of(
        (0..20).map(|nonce| transfer(sender, nonce, HOT)).collect(),
        &storage,
    );
    assert_eq!(graph.edges(), 19);
    for tx in 1..20 {
        assert_eq!(graph.previous_of_sender(tx), Some(tx - 1));
        let dependency = &graph.dependencies(tx)[0];
        assert_eq!(dependency.tx, tx - 1);
        assert!(
            dependency
                .locations
                .contains(&MemoryLocation::Nonce(sender))
        );
    }
    let critical = graph.critical_path();
    assert_eq!(critical.txs, (0..20).collect::<Vec<_>>());
    assert_eq!(critical.gas, graph.total_gas());
    assert!((graph.ideal_speedup() - 1.0).abs() < 1e-9);
    assert!(simulate(&graph, 8, &CostModel::default()).unwrap().speedup < 1.0);
}

#[test]
fn reading_an_exact_balance_depends_on_every_lazy_credit_before_it() {
    // Txs 0..8 credit HOT lazily; tx 8 stores `BALANCE(HOT)`, which reads it exactly; tx 9 is
    // sent by HOT, which can pay without them: its balance is read as bounds, no dependency.
    let accounts = senders(9);
    let mut storage = funded(SPEC, &accounts);
    fund(&mut storage, HOT, ETH);
    let reader = Address::with_last_byte(0xbb);
    let mut code = vec![0x73];
    code.extend_from_slice(HOT.as_slice());
    code.extend_from_slice(&[0x31, 0x60, 0x00, 0x55, 0x00]);
    deploy(&mut storage, reader, &code);
    let mut transactions: Vec<_> = accounts[..8]
        .iter()
        .map(|sender| transfer(*sender, 0, HOT))
        .collect();
    transactions.push(legacy_tx(
        accounts[8],
        0,
        TxKind::Call(reader),
        U256::ZERO,
        Default::default(),
        100_000,
    ));
    transactions.push(transfer(HOT, 0, accounts[0]));
    let graph = graph_of(transactions, &storage);
    let writers: Vec<usize> = graph.dependencies(8).iter().map(|d| d.tx).collect();
    assert_eq!(writers, (0..8).collect::<Vec<_>>());
    assert!(
        graph
            .dependencies(8)
            .iter()
            .all(|d| d.locations == [MemoryLocation::Balance(HOT)])
    );
    assert!(
        graph.dependencies(9).is_empty(),
        "{:?}",
        graph.dependencies(9)
    );
    assert_eq!(
        graph.hot_locations(1)[0].location,
        MemoryLocation::Balance(HOT)
    );
    assert_eq!(graph.hot_locations(1)[0].edges, 8);
}

#[test]
fn storage_conflicts_are_named_and_simulated() {
    // Even txs add to one counter slot (a chain), odd ones to slots of their own.
    let accounts = senders(24);
    let mut storage = funded(SPEC, &accounts);
    deploy(&mut storage, COUNTER, code::ADDER);
    let transactions = (0..24u64)
        .map(|i| {
            let slot = if i % 2 == 0 { 0 } else { 100 + i };
            legacy_tx(
                accounts[i as usize],
                0,
                TxKind::Call(COUNTER),
                U256::ZERO,
                calldata(&[U256::from(slot), U256::from(1)]),
                100_000,
            )
        })
        .collect();
    let graph = graph_of(transactions, &storage);
    assert_eq!(graph.edges(), 11);
    let hot = &graph.hot_locations(1)[0];
    assert_eq!(hot.location, MemoryLocation::Storage(COUNTER, U256::ZERO));
    assert_eq!(hot.edges, 11);
    assert_eq!(
        graph.critical_path().txs,
        (0..24).step_by(2).collect::<Vec<_>>()
    );
    let dot = graph.to_dot("counter");
    assert!(dot.starts_with("digraph \"counter\""));
    assert!(dot.contains("tx0 -> tx2 [label=\"slot 0x0 of"));
    assert!(dot.contains("color=red"));
    // Half the block is a chain: more threads help, up to about 2x.
    let one = simulate(&graph, 1, &CostModel::default()).unwrap();
    let four = simulate(&graph, 4, &CostModel::default()).unwrap();
    assert!(one.speedup < 1.0 && one.executions_per_tx == 1.0, "{one:?}");
    assert!(four.speedup > one.speedup && four.speedup < 2.1, "{four:?}");
    // The chain's conflicts are mostly foreseen as ESTIMATE waits, not repeated executions.
    assert!(four.executions_per_tx < 2.0, "{four:?}");
}

#[test]
fn invalid_blocks_fail_the_trace_like_the_executors() {
    let sender = senders(1)[0];
    let storage = funded(SPEC, &[sender]);
    let block = block(
        SPEC,
        vec![transfer(sender, 0, HOT), transfer(sender, 5, HOT)],
    );
    let error = trace_block(&CHAIN, &block, &storage).unwrap_err();
    let expected = parevm::execute_sequential(&CHAIN, &block, &storage).unwrap_err();
    assert_eq!(error.to_string(), expected.to_string());
}
