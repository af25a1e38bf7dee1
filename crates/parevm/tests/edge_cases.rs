//! Named EVM edge cases of parallel execution, each checked against sequential execution and
//! against the value the EVM rules require.

mod common;

use common::*;
use k256::ecdsa::SigningKey;
use parevm::{
    ChainSpec, ExecutionError, InMemoryStorage, MemoryLocation, WriteKind,
    alloy_consensus::{TxEnvelope, transaction::Recovered},
    alloy_eips::eip7702::{Authorization, SignedAuthorization},
    alloy_primitives::{Address, Bytes, Signature, TxKind, U256, keccak256},
    revm::{bytecode::Bytecode, primitives::hardfork::SpecId},
};

/// The fee a legacy transaction paid the beneficiary under `header(spec)`.
fn tip_per_gas(spec: SpecId) -> U256 {
    U256::from(10 * GWEI - header(spec).base_fee_per_gas.unwrap_or_default() as u128)
}

const READER: Address = Address::new([0xcb; 20]);

#[test]
fn transaction_reads_beneficiary_balance_mid_block() {
    let spec = SpecId::CANCUN;
    let accounts = senders(8);
    let mut storage = funded(spec, &accounts);
    fund(&mut storage, BENEFICIARY, ETH);
    deploy(&mut storage, READER, code::COINBASE_BALANCE);
    let mut txs: Vec<_> = accounts[..5]
        .iter()
        .map(|sender| {
            legacy_tx(
                *sender,
                0,
                TxKind::Call(Address::with_last_byte(1)),
                U256::from(1),
                Bytes::new(),
                21_000,
            )
        })
        .collect();
    txs.push(legacy_tx(
        accounts[5],
        0,
        TxKind::Call(READER),
        U256::ZERO,
        Bytes::new(),
        100_000,
    ));
    txs.extend(accounts[6..].iter().map(|sender| {
        legacy_tx(
            *sender,
            0,
            TxKind::Call(Address::with_last_byte(2)),
            U256::from(1),
            Bytes::new(),
            21_000,
        )
    }));
    let block = block(spec, txs);
    let output =
        assert_parallel_matches("coinbase read", &ChainSpec::fixed(spec), &block, &storage)
            .expect("block executes");
    let fees_before: u64 = output.receipts[..5]
        .iter()
        .map(|receipt| receipt.gas_used)
        .sum();
    let expected = U256::from(ETH) + U256::from(fees_before) * tip_per_gas(spec);
    assert_eq!(output.state_changes[&READER].storage[&U256::ZERO], expected);
    let all_fees: u64 = output.receipts.iter().map(|receipt| receipt.gas_used).sum();
    let final_balance = balance_of(&output, BENEFICIARY);
    assert_eq!(
        final_balance,
        U256::from(ETH) + U256::from(all_fees) * tip_per_gas(spec)
    );
}

#[test]
fn transfers_to_the_beneficiary() {
    let spec = SpecId::SHANGHAI;
    let accounts = senders(6);
    let storage = funded(spec, &accounts);
    let txs: Vec<_> = accounts
        .iter()
        .map(|sender| {
            legacy_tx(
                *sender,
                0,
                TxKind::Call(BENEFICIARY),
                U256::from(1_000),
                Bytes::new(),
                21_000,
            )
        })
        .collect();
    let block = block(spec, txs);
    let output =
        assert_parallel_matches("pay beneficiary", &ChainSpec::fixed(spec), &block, &storage)
            .expect("block executes");
    let fees = U256::from(6 * 21_000u64) * tip_per_gas(spec);
    let balance = balance_of(&output, BENEFICIARY);
    assert_eq!(balance, U256::from(6_000) + fees);
}

const FACTORY: Address = Address::new([0xfa; 20]);

fn phoenix_block(spec: SpecId) -> (parevm::BlockOutput, Address) {
    let accounts = senders(5);
    let mut storage = funded(spec, &accounts);
    deploy(&mut storage, FACTORY, code::FACTORY);
    let init = code::phoenix_init();
    let phoenix = create2_address(FACTORY, &init);
    let zero = calldata(&[U256::ZERO]);
    let one = calldata(&[U256::from(1)]);
    let txs = vec![
        legacy_tx(
            accounts[0],
            0,
            TxKind::Call(FACTORY),
            U256::ZERO,
            init.clone().into(),
            300_000,
        ),
        legacy_tx(
            accounts[1],
            0,
            TxKind::Call(phoenix),
            U256::ZERO,
            zero,
            100_000,
        ),
        legacy_tx(
            accounts[2],
            0,
            TxKind::Call(phoenix),
            U256::ZERO,
            one,
            100_000,
        ),
        legacy_tx(
            accounts[3],
            0,
            TxKind::Call(FACTORY),
            U256::ZERO,
            init.into(),
            300_000,
        ),
    ];
    let block = block(spec, txs);
    let output = assert_parallel_matches("phoenix", &ChainSpec::fixed(spec), &block, &storage)
        .expect("block executes");
    (output, phoenix)
}

#[test]
fn self_destruct_then_create2_redeploy_sees_fresh_storage() {
    let (output, phoenix) = phoenix_block(SpecId::SHANGHAI);
    assert!(output.receipts.iter().all(|receipt| receipt.success));
    let change = &output.state_changes[&phoenix];
    assert!(change.info.is_some(), "redeployed");
    assert!(change.storage_reset);
    // Slot 1 (set to 7 before the self-destruct) is gone; the constructor copied 0 into slot 2.
    assert_eq!(change.storage.get(&U256::from(1)), None);
    assert_eq!(change.storage.get(&U256::from(2)), None);
    assert_eq!(change.storage.get(&U256::ZERO), Some(&U256::from(1)));
    // The factory recorded the second deployment's address.
    let factory_slot = output.state_changes[&FACTORY].storage[&U256::ZERO];
    assert_eq!(factory_slot, U256::from_be_slice(phoenix.as_slice()));
}

#[test]
fn self_destruct_after_cancun_keeps_the_account() {
    let (output, phoenix) = phoenix_block(SpecId::CANCUN);
    let change = &output.state_changes[&phoenix];
    // EIP-6780: the contract was not created in the self-destructing tx, so it survives with its
    // storage, and the redeploy collides: CREATE2 burns the gas it forwarded and the factory's
    // transaction runs out of gas.
    assert!(change.info.is_some());
    assert_eq!(change.storage.get(&U256::from(1)), Some(&U256::from(7)));
    assert!(!output.receipts[3].success);
}

const ADDER: Address = Address::new([0xad; 20]);

fn key(byte: u8) -> (SigningKey, Address) {
    let key = SigningKey::from_slice(&[byte; 32]).unwrap();
    let point = key.verifying_key().to_encoded_point(false);
    let address = Address::from_slice(&keccak256(&point.as_bytes()[1..])[12..]);
    (key, address)
}

fn authorize(key: &SigningKey, delegate: Address, nonce: u64) -> SignedAuthorization {
    let authorization = Authorization {
        chain_id: U256::from(1),
        address: delegate,
        nonce,
    };
    let (signature, recovery) = key
        .sign_prehash_recoverable(authorization.signature_hash().as_slice())
        .unwrap();
    let bytes = signature.to_bytes();
    let signature = Signature::new(
        U256::from_be_slice(&bytes[..32]),
        U256::from_be_slice(&bytes[32..]),
        recovery.is_y_odd(),
    );
    authorization.into_signed(signature)
}

#[test]
fn delegation_set_in_one_transaction_is_used_by_a_later_one() {
    let spec = SpecId::PRAGUE;
    let accounts = senders(4);
    let (authority_key, authority) = key(7);
    let mut storage = funded(spec, &accounts);
    fund(&mut storage, authority, ETH);
    deploy(&mut storage, ADDER, code::ADDER);
    let words = calldata(&[U256::from(5), U256::from(9)]);
    let txs = vec![
        // Before the delegation, calling the authority runs no code.
        legacy_tx(
            accounts[0],
            0,
            TxKind::Call(authority),
            U256::ZERO,
            words.clone(),
            100_000,
        ),
        eip7702_tx(
            accounts[1],
            0,
            accounts[1],
            Bytes::new(),
            vec![authorize(&authority_key, ADDER, 0)],
        ),
        legacy_tx(
            accounts[2],
            0,
            TxKind::Call(authority),
            U256::ZERO,
            words,
            100_000,
        ),
    ];
    let block = block(spec, txs);
    let output =
        assert_parallel_matches("7702 later use", &ChainSpec::fixed(spec), &block, &storage)
            .expect("block executes");
    let change = &output.state_changes[&authority];
    assert_eq!(
        change.info.as_ref().unwrap().code_hash,
        keccak256(Bytecode::new_eip7702(ADDER).original_bytes())
    );
    assert_eq!(change.info.as_ref().unwrap().nonce, 1);
    assert_eq!(
        change.storage.get(&U256::from(5)),
        Some(&U256::from(9)),
        "delegated code ran once"
    );
}

/// An authorization valid only after its authority's own transaction earlier in the block (it
/// signs the nonce that transaction leaves): a speculation made on the pre-block state skips it,
/// having read the authority's nonce, which decides it. Not a payee read (see the payments test):
/// the pipeline on one thread rejects that speculation, and every engine gives the sequential
/// output, the delegated code running in the last transaction.
#[test]
fn authorization_valid_after_its_authority_sent_a_transaction() {
    let spec = SpecId::PRAGUE;
    let accounts = senders(4);
    let (authority_key, authority) = key(7);
    let mut storage = funded(spec, &accounts);
    fund(&mut storage, authority, ETH);
    deploy(&mut storage, ADDER, code::ADDER);
    let words = calldata(&[U256::from(5), U256::from(9)]);
    let txs = vec![
        legacy_tx(
            authority,
            0,
            TxKind::Call(accounts[3]),
            U256::from(1),
            Bytes::new(),
            21_000,
        ),
        eip7702_tx(
            accounts[1],
            0,
            accounts[1],
            Bytes::from_static(&[1]),
            vec![authorize(&authority_key, ADDER, 1)],
        ),
        legacy_tx(
            accounts[2],
            0,
            TxKind::Call(authority),
            U256::ZERO,
            words,
            100_000,
        ),
    ];
    let block = block(spec, txs);
    let chain = ChainSpec::fixed(spec);
    let output = assert_parallel_matches(
        "7702 after the authority's transaction",
        &chain,
        &block,
        &storage,
    )
    .expect("block executes");
    let change = &output.state_changes[&authority];
    assert_eq!(change.info.as_ref().unwrap().nonce, 2);
    assert_eq!(change.storage.get(&U256::from(5)), Some(&U256::from(9)));
    let (pipelined, stats) =
        executor_with(parevm::Strategy::Pipeline, 1).execute_with_stats(&chain, &block, &storage);
    assert_eq!(pipelined.as_ref().ok(), Some(&output));
    assert!(stats.aborts >= 1, "{stats:?}");
}

#[test]
fn self_sponsored_delegation_bumps_the_nonce_twice() {
    let spec = SpecId::PRAGUE;
    let (sponsor_key, sponsor) = key(9);
    let mut storage = base_storage(spec);
    fund(&mut storage, sponsor, ETH);
    deploy(&mut storage, ADDER, code::ADDER);
    let words = calldata(&[U256::from(3), U256::from(4)]);
    let txs = vec![eip7702_tx(
        sponsor,
        0,
        sponsor,
        words,
        vec![authorize(&sponsor_key, ADDER, 1)],
    )];
    let block = block(spec, txs);
    let output = assert_parallel_matches("7702 self", &ChainSpec::fixed(spec), &block, &storage)
        .expect("block executes");
    let change = &output.state_changes[&sponsor];
    assert_eq!(change.info.as_ref().unwrap().nonce, 2);
    assert_eq!(change.storage.get(&U256::from(3)), Some(&U256::from(4)));
}

#[test]
fn contract_deployed_in_one_transaction_is_called_by_a_later_one() {
    let spec = SpecId::LONDON;
    let accounts = senders(3);
    let storage = funded(spec, &accounts);
    let deployed = create_address(accounts[0], 0);
    let txs = vec![
        legacy_tx(
            accounts[1],
            0,
            TxKind::Call(deployed),
            U256::ZERO,
            calldata(&[U256::from(1), U256::from(1)]),
            100_000,
        ),
        legacy_tx(
            accounts[0],
            0,
            TxKind::Create,
            U256::ZERO,
            code::init_code(&[], code::ADDER).into(),
            200_000,
        ),
        legacy_tx(
            accounts[2],
            0,
            TxKind::Call(deployed),
            U256::ZERO,
            calldata(&[U256::from(1), U256::from(5)]),
            100_000,
        ),
    ];
    let block = block(spec, txs);
    let output = assert_parallel_matches(
        "deploy then call",
        &ChainSpec::fixed(spec),
        &block,
        &storage,
    )
    .expect("block executes");
    let change = &output.state_changes[&deployed];
    assert_eq!(
        change.info.as_ref().unwrap().code,
        Some(Bytes::from_static(code::ADDER))
    );
    assert_eq!(
        change.storage.get(&U256::from(1)),
        Some(&U256::from(5)),
        "only the later call ran code"
    );
}

#[test]
fn invalid_nonce_is_the_same_error_at_every_thread_count() {
    let spec = SpecId::CANCUN;
    let accounts = senders(4);
    let storage = funded(spec, &accounts);
    let mut txs: Vec<_> = accounts
        .iter()
        .map(|sender| {
            legacy_tx(
                *sender,
                0,
                TxKind::Call(Address::with_last_byte(1)),
                U256::from(1),
                Bytes::new(),
                21_000,
            )
        })
        .collect();
    txs.insert(
        2,
        legacy_tx(
            accounts[0],
            5,
            TxKind::Call(Address::with_last_byte(1)),
            U256::from(1),
            Bytes::new(),
            21_000,
        ),
    );
    let block = block(spec, txs);
    let result = assert_parallel_matches("nonce gap", &ChainSpec::fixed(spec), &block, &storage);
    assert!(
        matches!(
            result,
            Err(ExecutionError::InvalidTransaction { index: 2, .. })
        ),
        "{result:?}"
    );
}

#[test]
fn many_transfers_to_a_hot_recipient_keep_every_wei() {
    let spec = SpecId::CANCUN;
    let accounts: Vec<Address> = (0..200u64)
        .map(|i| Address::with_last_byte(3).create(i))
        .collect();
    let storage = funded(spec, &accounts);
    let hot = Address::new([0x77; 20]);
    let txs: Vec<_> = accounts
        .iter()
        .map(|sender| {
            legacy_tx(
                *sender,
                0,
                TxKind::Call(hot),
                U256::from(3),
                Bytes::new(),
                21_000,
            )
        })
        .collect();
    let block = block(spec, txs);
    let output =
        assert_parallel_matches("hot recipient", &ChainSpec::fixed(spec), &block, &storage)
            .expect("block executes");
    assert_eq!(
        output.state_changes[&hot].info.as_ref().unwrap().balance,
        U256::from(600)
    );
}

/// A block of valid transfers with one bad transaction at index 2, built by `bad`.
fn block_with_bad_tx(
    spec: SpecId,
    bad: impl FnOnce(
        Address,
    ) -> parevm::alloy_consensus::transaction::Recovered<
        parevm::alloy_consensus::TxEnvelope,
    >,
) -> (
    parevm::alloy_consensus::Block<
        parevm::alloy_consensus::transaction::Recovered<parevm::alloy_consensus::TxEnvelope>,
    >,
    InMemoryStorage,
) {
    let accounts = senders(4);
    let mut storage = funded(spec, &accounts);
    let poor = Address::with_last_byte(0x99);
    fund(&mut storage, poor, 1_000);
    let to = TxKind::Call(Address::repeat_byte(0x42));
    let mut txs: Vec<_> = accounts
        .iter()
        .map(|sender| legacy_tx(*sender, 0, to, U256::from(1), Bytes::new(), 21_000))
        .collect();
    txs.insert(2, bad(poor));
    (block(spec, txs), storage)
}

#[test]
fn invalid_transactions_give_the_same_error_at_every_thread_count() {
    use parevm::revm::context::result::InvalidTransaction;
    let spec = SpecId::CANCUN;
    let to = TxKind::Call(Address::repeat_byte(0x42));
    let first = senders(1)[0];
    type Check = fn(&ExecutionError) -> bool;
    type BadTx = Box<dyn Fn(Address) -> Recovered<TxEnvelope>>;
    let cases: Vec<(&str, BadTx, Check)> = vec![
        (
            "nonce too low",
            Box::new(move |_| legacy_tx(first, 0, to, U256::from(1), Bytes::new(), 21_000)),
            |error| {
                matches!(
                    error,
                    ExecutionError::InvalidTransaction {
                        index: 2,
                        source: InvalidTransaction::NonceTooLow { .. }
                    }
                )
            },
        ),
        (
            "sender cannot pay",
            Box::new(move |poor| legacy_tx(poor, 0, to, U256::from(1), Bytes::new(), 21_000)),
            |error| {
                matches!(
                    error,
                    ExecutionError::InvalidTransaction {
                        index: 2,
                        source: InvalidTransaction::LackOfFundForMaxFee { .. }
                    }
                )
            },
        ),
        (
            "intrinsic gas too low",
            Box::new(move |poor| legacy_tx(poor, 0, to, U256::ZERO, Bytes::new(), 20_000)),
            |error| {
                matches!(
                    error,
                    ExecutionError::InvalidTransaction {
                        index: 2,
                        source: InvalidTransaction::CallGasCostMoreThanGasLimit { .. }
                    }
                )
            },
        ),
        (
            "gas limit above the block's",
            Box::new(move |poor| legacy_tx(poor, 0, to, U256::ZERO, Bytes::new(), 2_000_000_000)),
            |error| {
                matches!(
                    error,
                    ExecutionError::TxGasLimitAboveRemaining { index: 2, .. }
                )
            },
        ),
    ];
    for (name, bad, expected) in cases {
        let (block, storage) = block_with_bad_tx(spec, bad);
        let result = assert_parallel_matches(name, &ChainSpec::fixed(spec), &block, &storage);
        match result {
            Err(error) => assert!(expected(&error), "{name}: unexpected {error:?}"),
            Ok(_) => panic!("{name}: the block executed"),
        }
    }
}

/// A gas limit above what is left in the block is the block's error, at the transaction where it
/// happens; and the first error in block order wins over a later transaction revm cannot even
/// take (an empty 7702 authorization list), although the parallel engine converts every
/// transaction before running any.
#[test]
fn gas_limit_above_what_is_left_in_the_block_is_rejected() {
    let spec = SpecId::PRAGUE;
    let accounts = senders(3);
    let storage = funded(spec, &accounts);
    let to = TxKind::Call(Address::repeat_byte(0x42));
    let transfer = |sender| legacy_tx(sender, 0, to, U256::from(1), Bytes::new(), 30_000);
    let unconvertible = eip7702_tx(accounts[2], 0, accounts[0], Bytes::new(), vec![]);
    let cases = [
        // Two transfers of 21,000 gas leave 18,000 for the third.
        ("remaining gas", transfer(accounts[2]), 60_000, 2, 18_000),
        // One leaves 29,000 for the second; the third cannot be converted.
        ("first error", unconvertible, 50_000, 1, 29_000),
    ];
    for (name, third, block_gas_limit, index, remaining) in cases {
        let mut block = block(
            spec,
            vec![transfer(accounts[0]), transfer(accounts[1]), third],
        );
        block.header.gas_limit = block_gas_limit;
        let result = assert_parallel_matches(name, &ChainSpec::fixed(spec), &block, &storage);
        let expected = ExecutionError::TxGasLimitAboveRemaining {
            index,
            gas_limit: 30_000,
            remaining,
        };
        assert!(
            matches!(&result, Err(error) if error.to_string() == expected.to_string()),
            "{name}: {result:?}"
        );
    }
}

#[test]
fn eip7702_authorization_rules() {
    use parevm::revm::context::result::InvalidTransaction;
    let spec = SpecId::PRAGUE;
    let accounts = senders(2);
    let (authority_key, authority) = key(11);
    let mut storage = funded(spec, &accounts);
    fund(&mut storage, authority, ETH);
    deploy(&mut storage, ADDER, code::ADDER);
    let chain = ChainSpec::fixed(spec);

    // An empty authorization list makes the transaction invalid (revm's transaction builder
    // already refuses it).
    let empty = vec![eip7702_tx(
        accounts[0],
        0,
        accounts[1],
        Bytes::new(),
        vec![],
    )];
    let result = assert_parallel_matches("7702 empty list", &chain, &block(spec, empty), &storage);
    let rejected = match &result {
        Err(ExecutionError::InvalidTransaction { index: 0, source }) => {
            *source == InvalidTransaction::EmptyAuthorizationList
        }
        Err(ExecutionError::UnsupportedTransaction { index: 0, .. }) => true,
        _ => false,
    };
    assert!(rejected, "{result:?}");

    // An authorization for another chain, or with a wrong nonce, is skipped: the transaction
    // executes and the authority gets no code.
    let mut wrong_chain = Authorization {
        chain_id: U256::from(5),
        address: ADDER,
        nonce: 0,
    };
    let (signature, recovery) = authority_key
        .sign_prehash_recoverable(wrong_chain.signature_hash().as_slice())
        .unwrap();
    let bytes = signature.to_bytes();
    let signed = {
        wrong_chain.nonce = 0;
        wrong_chain.into_signed(Signature::new(
            U256::from_be_slice(&bytes[..32]),
            U256::from_be_slice(&bytes[32..]),
            recovery.is_y_odd(),
        ))
    };
    let wrong_nonce = authorize(&authority_key, ADDER, 7);
    let txs = vec![eip7702_tx(
        accounts[0],
        0,
        accounts[1],
        Bytes::new(),
        vec![signed, wrong_nonce],
    )];
    let output = assert_parallel_matches("7702 skipped", &chain, &block(spec, txs), &storage)
        .expect("the transaction executes");
    assert!(output.receipts[0].success);
    assert!(
        !output.state_changes.contains_key(&authority),
        "no delegation was set"
    );
}

#[test]
fn missing_block_hash_is_a_storage_error_naming_the_transaction() {
    let spec = SpecId::CANCUN;
    let accounts = senders(3);
    let mut storage = funded(spec, &accounts);
    // `storage[0] = blockhash(number - 1)`.
    let reader = Address::repeat_byte(0xbb);
    deploy(
        &mut storage,
        reader,
        &[0x60, 0x01, 0x43, 0x03, 0x40, 0x60, 0x00, 0x55, 0x00],
    );
    let to = TxKind::Call(Address::repeat_byte(0x42));
    let txs = vec![
        legacy_tx(accounts[0], 0, to, U256::from(1), Bytes::new(), 21_000),
        legacy_tx(
            accounts[1],
            0,
            TxKind::Call(reader),
            U256::ZERO,
            Bytes::new(),
            100_000,
        ),
        legacy_tx(accounts[2], 0, to, U256::from(1), Bytes::new(), 21_000),
    ];
    let block = block(spec, txs);
    let result = assert_parallel_matches(
        "missing block hash",
        &ChainSpec::fixed(spec),
        &block,
        &storage,
    );
    match result {
        Err(ExecutionError::Storage {
            index: Some(1),
            source,
        }) => {
            assert!(source.what.contains("block hash"), "{source}")
        }
        other => panic!("expected a storage error of transaction 1, got {other:?}"),
    }
    // With the hash provided, the block executes and stores it.
    storage.insert_block_hash(
        block.header.number - 1,
        parevm::alloy_primitives::B256::repeat_byte(0x77),
    );
    let output =
        assert_parallel_matches("block hash", &ChainSpec::fixed(spec), &block, &storage).unwrap();
    assert_eq!(
        output.state_changes[&reader].storage[&U256::ZERO],
        U256::from_be_bytes([0x77; 32])
    );
}

/// The cost of a 21,000-gas legacy transfer of `value` wei (gas price 10 gwei).
fn transfer_cost(value: u128) -> u128 {
    21_000 * 10 * GWEI + value
}

/// A sender's chain of plain transfers whose funds run out mid-chain: the pipeline speculates
/// the followers with assumed funds, and the commit-time check must turn the one it cannot pay
/// into the sequential error (the same transaction, the same reason), at every thread count.
#[test]
fn sender_chain_running_out_of_funds_is_the_sequential_error() {
    let spec = SpecId::CANCUN;
    let others = senders(20);
    let mut storage = funded(spec, &others);
    let payer = Address::with_last_byte(0x99);
    // Enough for exactly three transfers of 1 ETH.
    fund(&mut storage, payer, 3 * transfer_cost(ETH));
    let mut txs = Vec::new();
    for (index, other) in others.iter().enumerate() {
        txs.push(transfer(
            *other,
            0,
            Address::with_last_byte(0xd0 + index as u8),
        ));
        if index % 4 == 0 {
            let nonce = txs.iter().filter(|tx| tx.signer() == payer).count() as u64;
            txs.push(legacy_tx(
                payer,
                nonce,
                TxKind::Call(Address::with_last_byte(0xe0 + index as u8)),
                U256::from(ETH),
                Bytes::new(),
                21_000,
            ));
        }
    }
    let block = block(spec, txs);
    let result = assert_parallel_matches("payer", &ChainSpec::fixed(spec), &block, &storage);
    let Err(ExecutionError::InvalidTransaction { index, .. }) = result else {
        panic!("the fourth transfer of the payer cannot be paid: {result:?}");
    };
    assert_eq!(block.body.transactions[index].signer(), payer);
}

/// The same chain funded by a transfer earlier in the block: the followers' assumed funds are
/// covered only by what the block itself credited.
#[test]
fn sender_chain_funded_within_the_block() {
    let spec = SpecId::CANCUN;
    let others = senders(12);
    let storage = funded(spec, &others);
    let payer = Address::with_last_byte(0x99);
    let mut txs = vec![legacy_tx(
        others[0],
        0,
        TxKind::Call(payer),
        U256::from(10 * ETH),
        Bytes::new(),
        21_000,
    )];
    for (nonce, other) in others[1..].iter().enumerate() {
        txs.push(transfer(
            *other,
            0,
            Address::with_last_byte(0xd0 + nonce as u8),
        ));
        txs.push(legacy_tx(
            payer,
            nonce as u64,
            TxKind::Call(Address::with_last_byte(0xe0 + nonce as u8)),
            U256::from(ETH / 2),
            Bytes::new(),
            21_000,
        ));
    }
    let block = block(spec, txs);
    let output = assert_parallel_matches("funded payer", &ChainSpec::fixed(spec), &block, &storage)
        .expect("every transfer is paid");
    let payer_state = output.state_changes[&payer].info.as_ref().expect("exists");
    assert_eq!(payer_state.nonce, 11);
    assert_eq!(
        payer_state.balance,
        U256::from(10 * ETH - 11 * transfer_cost(ETH / 2))
    );
}

/// A sender whose funds an earlier transaction of the block changes. Block-STM reads the balance
/// of a sender that can pay as bounds (from what the transaction can spend at most: the trace
/// leaves the read out), and the balance of one that cannot exactly: a sender that a slow earlier
/// transaction funds, run meanwhile, fails its funds check and must be re-executed once funded.
/// Reading that sender as bounds from zero fails this at 2 threads.
#[test]
fn a_sender_reads_its_balance_as_bounds_only_when_it_can_pay() {
    let spec = SpecId::CANCUN;
    let accounts = senders(4);
    let mut storage = funded(spec, &accounts);
    let (poor, rich) = (Address::with_last_byte(0x90), Address::with_last_byte(0x91));
    fund(&mut storage, poor, transfer_cost(1) - 1);
    fund(&mut storage, rich, 10 * ETH);
    let forwarder = Address::with_last_byte(0xf5);
    deploy(&mut storage, forwarder, &code::slow_forwarder(poor));
    let pay = |from: Address, nonce: u64, to: u8| {
        legacy_tx(
            from,
            nonce,
            TxKind::Call(Address::with_last_byte(to)),
            U256::from(1),
            Bytes::new(),
            21_000,
        )
    };
    let send_eth = |from: Address, to: Address, gas_limit: u64| {
        legacy_tx(
            from,
            0,
            TxKind::Call(to),
            U256::from(ETH),
            Bytes::new(),
            gas_limit,
        )
    };
    let txs = vec![
        send_eth(accounts[0], forwarder, 1_000_000),
        pay(poor, 0, 0xd0),
        send_eth(accounts[1], rich, 21_000),
        pay(rich, 0, 0xd1),
        pay(poor, 1, 0xd2),
    ];
    let block = block(spec, txs);
    let chain = ChainSpec::fixed(spec);
    let output = assert_parallel_matches("funded sender", &chain, &block, &storage)
        .expect("every sender can pay once funded");
    let balance = |address: Address| balance_of(&output, address);
    assert_eq!(
        balance(poor),
        U256::from(ETH + transfer_cost(1) - 1 - 2 * transfer_cost(1))
    );
    assert_eq!(balance(rich), U256::from(11 * ETH - transfer_cost(1)));
    let trace = parevm::analysis::trace_block(&chain, &block, &storage).expect("traced");
    let reads_balance =
        |tx: usize, of: Address| trace.txs[tx].reads.contains(&MemoryLocation::Balance(of));
    assert!(!reads_balance(3, rich), "a sender that can pay: bounds");
    assert!(!reads_balance(4, poor), "funded by then: bounds");
}

/// A sender whose own code (an EIP-7702 delegation) sends value: its bounds are narrowed by that
/// send's check like a contract's. The send of 1 ETH fails on its pre-block balance and succeeds
/// once a slow earlier transaction has paid it; a run that saw it fail must not validate after
/// the payment (without the narrowing, Block-STM at 2 threads keeps the failed send).
#[test]
fn a_delegated_sender_sending_value_is_bounded_by_its_send() {
    let spec = SpecId::PRAGUE;
    let accounts = senders(1);
    let mut storage = funded(spec, &accounts);
    let (sender, delegate) = (Address::with_last_byte(0x70), Address::with_last_byte(0x71));
    let recipient = Address::with_last_byte(0x72);
    // Paid (a call with value): accepts. Otherwise `storage[0] = call(gas, recipient, 1 ether,
    // 0, 0, 0, 0)`.
    let mut sends = vec![
        0x34, 0x60, 0x30, 0x57, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x67, 0x0d, 0xe0,
        0xb6, 0xb3, 0xa7, 0x64, 0x00, 0x00, 0x73,
    ];
    sends.extend_from_slice(recipient.as_slice());
    sends.extend_from_slice(&[0x5a, 0xf1, 0x60, 0x00, 0x55, 0x00, 0x5b, 0x00]);
    assert_eq!(sends[0x30], 0x5b, "the jump lands on its JUMPDEST");
    deploy(&mut storage, delegate, &sends);
    let designator = Bytecode::new_eip7702(delegate).original_bytes();
    storage.insert_account_with_code(sender, U256::from(ETH / 2), 0, designator, []);
    let forwarder = Address::with_last_byte(0xf5);
    deploy(&mut storage, forwarder, &code::slow_forwarder(sender));
    let txs = vec![
        legacy_tx(
            accounts[0],
            0,
            TxKind::Call(forwarder),
            U256::from(ETH),
            Bytes::new(),
            1_000_000,
        ),
        legacy_tx(
            sender,
            0,
            TxKind::Call(sender),
            U256::ZERO,
            Bytes::new(),
            100_000,
        ),
    ];
    let block = block(spec, txs);
    let output = assert_parallel_matches(
        "delegated sender",
        &ChainSpec::fixed(spec),
        &block,
        &storage,
    )
    .expect("executes");
    assert_eq!(
        output.state_changes[&sender].storage[&U256::ZERO],
        U256::from(1),
        "the send succeeds once paid"
    );
}

/// The beneficiary pays out in the block it collects fees in (a pool's payout block): its
/// transfers are affordable only with the fees of the transactions before them.
#[test]
fn beneficiary_pays_out_from_the_fees_of_its_block() {
    let spec = SpecId::CANCUN;
    let others = senders(16);
    let mut storage = funded(spec, &others);
    // Less than one transfer's cost before the block.
    fund(&mut storage, BENEFICIARY, transfer_cost(0) / 2);
    let mut txs = Vec::new();
    let mut nonce = 0;
    for (index, other) in others.iter().enumerate() {
        txs.push(transfer(
            *other,
            0,
            Address::with_last_byte(0xd0 + index as u8),
        ));
        if index % 2 == 1 {
            txs.push(legacy_tx(
                BENEFICIARY,
                nonce,
                TxKind::Call(Address::with_last_byte(0xe0 + index as u8)),
                U256::from(1),
                Bytes::new(),
                21_000,
            ));
            nonce += 1;
        }
    }
    let block = block(spec, txs);
    let output = assert_parallel_matches("payouts", &ChainSpec::fixed(spec), &block, &storage)
        .expect("every payout is covered by earlier fees");
    assert_eq!(
        output.state_changes[&BENEFICIARY]
            .info
            .as_ref()
            .unwrap()
            .nonce,
        nonce
    );
}

/// A sender's chain of transfers to itself: no lazy credit applies to them, so the pipeline must
/// not speculate the followers (a speculation would run with the sender's pre-block nonce and
/// fail): each transaction executes once, and the output is sequential's.
#[test]
fn self_transfer_chain_is_not_speculated_to_fail() {
    let spec = SpecId::CANCUN;
    let others = senders(8);
    let payer = Address::with_last_byte(0x99);
    let mut storage = funded(spec, &others);
    fund(&mut storage, payer, 10 * ETH);
    let mut txs = Vec::new();
    for (nonce, other) in others.iter().enumerate() {
        txs.push(transfer(
            *other,
            0,
            Address::with_last_byte(0xd0 + nonce as u8),
        ));
        txs.push(legacy_tx(
            payer,
            nonce as u64,
            TxKind::Call(payer),
            U256::from(ETH),
            Bytes::new(),
            21_000,
        ));
    }
    let block = block(spec, txs);
    let chain = ChainSpec::fixed(spec);
    assert_parallel_matches("self transfers", &chain, &block, &storage).expect("every one paid");
    let (_, stats) =
        executor_with(parevm::Strategy::Pipeline, 1).execute_with_stats(&chain, &block, &storage);
    assert_eq!(
        (stats.executions, stats.aborts),
        (block.body.transactions.len(), 0),
        "wasted speculations: {stats:?}"
    );
}

/// A sender's calls that follow one of its transactions are speculated with its nonce and funds
/// assumed (checked at commit): a contract paying the sender more than the call costs (5 ETH,
/// its whole balance) leaves the sender above its assumed funds; a contract
/// storing the sender's balance observes the assumed funds, so its speculation is not used; and a
/// second call to a contract the sender already called in the block is left to the committer.
/// Checked against sequential on every engine, and the counts on one thread.
#[test]
fn sender_calls_after_its_transactions_are_speculated_with_assumed_funds() {
    /// `call(gas, caller, 5 ETH)`: a payout to the caller (not a self-destruct, which observes
    /// its beneficiary's balance).
    const PAY_CALLER_5_ETH: &[u8] = &[
        0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60,
        0x00, // retSize retOffset argsSize argsOffset
        0x67, 0x45, 0x63, 0x91, 0x82, 0x44, 0xf4, 0x00, 0x00, // PUSH8 5 ETH
        0x33, 0x5a, 0xf1, 0x50, 0x00, // CALLER GAS CALL POP STOP
    ];
    let spec = SpecId::CANCUN;
    let others = senders(8);
    let mut storage = funded(spec, &others);
    let payer = Address::with_last_byte(0x99);
    fund(&mut storage, payer, 10 * ETH);
    let (payback, reader) = (Address::with_last_byte(0xa1), Address::with_last_byte(0xa2));
    storage.insert_account_with_code(
        payback,
        U256::from(5 * ETH),
        1,
        Bytes::from_static(PAY_CALLER_5_ETH),
        [],
    );
    deploy(&mut storage, reader, code::ORIGIN_BALANCE);
    let call = |nonce, to| {
        legacy_tx(
            payer,
            nonce,
            TxKind::Call(to),
            U256::ZERO,
            Bytes::new(),
            100_000,
        )
    };
    let payer_txs = [
        transfer(payer, 0, Address::with_last_byte(0xe0)),
        call(1, payback),
        transfer(payer, 2, Address::with_last_byte(0xe1)),
        call(3, reader),
        call(4, payback),
    ];
    let mut txs = Vec::new();
    for (other, payer_tx) in others.iter().zip(payer_txs) {
        txs.push(transfer(*other, 0, Address::with_last_byte(0xd0)));
        txs.push(payer_tx);
    }
    let block = block(spec, txs);
    let chain = ChainSpec::fixed(spec);
    let output =
        assert_parallel_matches("payer calls", &chain, &block, &storage).expect("all succeed");
    let gas: u64 = (output.receipts.iter().zip(&block.body.transactions))
        .filter(|(_, tx)| tx.signer() == payer)
        .map(|(receipt, _)| receipt.gas_used)
        .sum();
    let payer_state = output.state_changes[&payer].info.as_ref().expect("exists");
    assert_eq!(
        payer_state.balance,
        U256::from(15 * ETH - 2 - u128::from(gas) * 10 * GWEI)
    );
    // One thread speculates every transaction it would hand to other threads, then commits it:
    // the reader's speculation is run and not used, the second call to `payback` not run.
    let (_, stats) =
        executor_with(parevm::Strategy::Pipeline, 1).execute_with_stats(&chain, &block, &storage);
    let txs = block.body.transactions.len();
    assert_eq!(
        (stats.executions, stats.aborts, stats.validations),
        (txs + 1, 0, txs - 2),
        "{stats:?}"
    );
}

/// Value sent without input to a contract that counts deposits, by one in three transactions
/// between plain transfers: the pipeline leaves every deposit to the committer from the start
/// (a contract called so often without input is hot before anything runs) instead of learning
/// it from rejected speculations. Checked on one thread (deterministic counts).
#[test]
fn pipeline_leaves_deposits_to_a_contract_to_the_committer_from_the_start() {
    let spec = SpecId::CANCUN;
    let callers = senders(24);
    let mut storage = funded(spec, &callers);
    let sale = Address::with_last_byte(0xa0);
    deploy(&mut storage, sale, code::COUNTER);
    let txs = callers
        .iter()
        .enumerate()
        .map(|(index, from)| {
            let to = if index % 3 == 0 {
                sale
            } else {
                Address::with_last_byte(0xd0 + index as u8)
            };
            legacy_tx(
                *from,
                0,
                TxKind::Call(to),
                U256::from(ETH),
                Bytes::new(),
                100_000,
            )
        })
        .collect();
    let block = block(spec, txs);
    let chain = ChainSpec::fixed(spec);
    assert_parallel_matches("deposits", &chain, &block, &storage).expect("all succeed");
    // The output was checked above (every engine, 1-16 threads): the counts of one thread's run.
    let (_, stats) =
        executor_with(parevm::Strategy::Pipeline, 1).execute_with_stats(&chain, &block, &storage);
    // Learnt at run time instead: 3 deposits speculated, 2 of them rejected, 5 left.
    assert_eq!(
        (stats.left_to_committer, stats.aborts, stats.validations),
        (8, 0, 16),
        "{stats:?}"
    );
}

/// Calls to a contract that every call changes (one shared counter) interleaved with calls to
/// one that no two calls change (a slot each): the pipeline stops speculating calls to the first
/// once its speculations are mostly rejected, and keeps speculating the others. Checked on one
/// thread, where every speculation is validated right after it runs (deterministic counts).
#[test]
fn pipeline_leaves_a_hot_destination_to_the_committer() {
    let spec = SpecId::CANCUN;
    let callers = senders(24);
    let mut storage = funded(spec, &callers);
    let (hot, cold) = (Address::with_last_byte(0xa0), Address::with_last_byte(0xc0));
    deploy(&mut storage, hot, code::ADDER);
    deploy(&mut storage, cold, code::ADDER);
    let call = |from: Address, to: Address, slot: u64| {
        let input = calldata(&[U256::from(slot), U256::from(1)]);
        legacy_tx(from, 0, TxKind::Call(to), U256::ZERO, input, 100_000)
    };
    let txs = callers
        .chunks(2)
        .enumerate()
        .flat_map(|(index, pair)| [call(pair[0], hot, 0), call(pair[1], cold, index as u64)])
        .collect();
    let block = block(spec, txs);
    let chain = ChainSpec::fixed(spec);
    assert_parallel_matches("hot destination", &chain, &block, &storage).expect("all succeed");
    // The output was checked above (every engine, 1-16 threads): the counts of one thread's run.
    let (_, stats) =
        executor_with(parevm::Strategy::Pipeline, 1).execute_with_stats(&chain, &block, &storage);
    // Without the rule: 11 of the 12 calls to `hot` rejected, 24 validations (12 of them cold).
    assert!(stats.aborts <= 2, "hot calls still speculated: {stats:?}");
    assert!(
        stats.validations > 12,
        "cold calls not speculated: {stats:?}"
    );
    assert_eq!(stats.executions, 24 + stats.aborts, "{stats:?}");
    assert_eq!(
        stats.validations + stats.left_to_committer,
        24,
        "every call speculated or left to the committer: {stats:?}"
    );
}

/// A switch: called with input, it burns ~1.7M gas and then sets its slot 0; called without, it
/// forwards its call value to `SWITCHED_TO` while slot 0 is still unset.
fn switch_code() -> Vec<u8> {
    let mut code = vec![
        0x36, 0x60, 0x2d, 0x57, // CALLDATASIZE PUSH1 setter JUMPI
        0x60, 0x00, 0x54, 0x60, 0x2b, 0x57, // SLOAD(0) PUSH1 end JUMPI
        0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60,
        0x00, // retSize retOffset argsSize argsOffset
        0x34, 0x73, // CALLVALUE PUSH20
    ];
    code.extend_from_slice(SWITCHED_TO.as_slice());
    code.extend_from_slice(&[
        0x5a, 0xf1, 0x50, // GAS CALL POP
        0x5b, 0x00, // end: JUMPDEST STOP
        0x5b, 0x61, 0xff, 0xff, // setter: JUMPDEST PUSH2 0xffff
        0x5b, 0x60, 0x01, 0x90, 0x03, 0x80, 0x60, 0x31, 0x57,
        0x50, // loop: n -= 1 while n != 0
        0x60, 0x01, 0x60, 0x00, 0x55, 0x00, // SSTORE(0, 1) STOP
    ]);
    code
}

const SWITCH: Address = Address::new([0x5c; 20]);
const SWITCHED_TO: Address = Address::new([0x5d; 20]);

/// Block-STM giving way keeps only what its committed prefix wrote. Tx 0 slowly sets the switch;
/// tx 1, executed beside it, reads it unset and pays `SWITCHED_TO`, a write its sequential
/// re-execution (the switch set) does not repeat. Giving way after those two executions commits
/// tx 0 alone: the account must not appear in the output (it did, on 16 cores, in mainnet
/// 11743952 before the fix).
#[test]
fn giving_way_drops_what_discarded_incarnations_wrote() {
    let spec = SpecId::CANCUN;
    let accounts = senders(2);
    let mut storage = funded(spec, &accounts);
    deploy(&mut storage, SWITCH, &switch_code());
    let call = |sender: Address, value: u64, input: &[u8]| {
        let input = Bytes::copy_from_slice(input);
        legacy_tx(
            sender,
            0,
            TxKind::Call(SWITCH),
            U256::from(value),
            input,
            3_000_000,
        )
    };
    let block = block(
        spec,
        vec![call(accounts[0], 0, &[1]), call(accounts[1], 5, &[])],
    );
    let chain = ChainSpec::fixed(spec);
    let expected = parevm::execute_sequential(&chain, &block, &storage).expect("valid block");
    assert!(!expected.state_changes.contains_key(&SWITCHED_TO));
    let switch_balance = balance_of(&expected, SWITCH);
    assert_eq!(
        switch_balance,
        U256::from(5),
        "the set switch keeps the value"
    );
    // Two threads: one per transaction (more would not be used).
    let executor = executor_with(parevm::Strategy::GiveWayAfter(2), 2);
    for run in 0..40 {
        let (output, stats) = executor.execute_with_stats(&chain, &block, &storage);
        assert_eq!(
            output.expect("valid block"),
            expected,
            "run {run} ({stats:?})"
        );
        assert!(stats.sequential_from.is_some(), "it gave way");
    }
}

/// Value sent to contracts early in the block, then calls that read them: a call whose code does
/// not observe the contract's balance keeps its speculation (the pipeline validates an account
/// with code without its balance unless its code observed it, and credits what it received); one
/// that observes it — `SELFBALANCE`, `BALANCE` — is re-executed. Every engine at every thread
/// count gives the sequential output, and the observed balances are the ones sequential execution
/// leaves.
#[test]
fn value_sent_to_a_contract_conflicts_only_where_its_balance_is_observed() {
    let spec = SpecId::CANCUN;
    let accounts = senders(8);
    let mut storage = funded(spec, &accounts);
    let adder = Address::with_last_byte(0xad);
    deploy(&mut storage, adder, code::ADDER);
    // `storage[calldata[0]] = selfbalance()`.
    let own_balance = Address::with_last_byte(0xab);
    deploy(
        &mut storage,
        own_balance,
        &[0x47, 0x60, 0x00, 0x35, 0x55, 0x00],
    );
    // `storage[calldata[0]] = balance(adder)`.
    let mut reader = vec![0x73];
    reader.extend_from_slice(adder.as_slice());
    reader.extend_from_slice(&[0x31, 0x60, 0x00, 0x35, 0x55, 0x00]);
    let balance_reader = Address::with_last_byte(0xbb);
    deploy(&mut storage, balance_reader, &reader);
    // An adder holding 2^200 wei: its balance could decide whether a credit overflows, so it
    // counts as observed.
    let rich_adder = Address::with_last_byte(0xae);
    storage.insert_account_with_code(
        rich_adder,
        U256::from(1) << 200,
        1,
        Bytes::from_static(code::ADDER),
        [],
    );
    let call = |from: usize, to: Address, value: u64, slot: u64| {
        legacy_tx(
            accounts[from],
            0,
            TxKind::Call(to),
            U256::from(value),
            calldata(&[U256::from(slot), U256::from(1)]),
            100_000,
        )
    };
    let block = block(
        spec,
        vec![
            call(0, adder, 7, 1),
            call(1, own_balance, 11, 1),
            // The adder's balance changed; this call does not observe it.
            call(2, adder, 0, 2),
            // Observes the balance the previous value transfer changed.
            call(3, own_balance, 0, 2),
            call(4, balance_reader, 0, 1),
            call(5, adder, 5, 3),
            call(6, rich_adder, 3, 1),
            call(7, rich_adder, 0, 2),
        ],
    );
    let chain = ChainSpec::fixed(spec);
    let output =
        assert_parallel_matches("value to contracts", &chain, &block, &storage).expect("executes");
    let slot =
        |address: Address, slot: u64| output.state_changes[&address].storage[&U256::from(slot)];
    assert_eq!(
        slot(own_balance, 2),
        U256::from(11),
        "SELFBALANCE sees the deposit"
    );
    assert_eq!(
        slot(balance_reader, 1),
        U256::from(7),
        "BALANCE sees the deposit"
    );
    let balance = |address: Address| balance_of(&output, address);
    assert_eq!(balance(adder), U256::from(12));
    assert_eq!(balance(rich_adder), (U256::from(1) << 200) + U256::from(3));
    // The pipeline on one thread speculates every transaction before committing it: only the two
    // that observed a changed balance are rejected, and the call to the rich adder.
    let (pipelined, stats) =
        executor_with(parevm::Strategy::Pipeline, 1).execute_with_stats(&chain, &block, &storage);
    assert_eq!(pipelined.as_ref().ok(), Some(&output));
    assert_eq!(stats.validations, 8);
    assert_eq!(stats.aborts, 3, "{stats:?}");
    // Block-STM reads such a contract's balance as any balance below 2^200 (the trace leaves
    // those reads out) and writes what it received as an increment; an observed balance, or a
    // rich contract's, is read and written exactly.
    let trace = parevm::analysis::trace_block(&chain, &block, &storage).expect("traced");
    let reads_balance =
        |tx: usize, of: Address| trace.txs[tx].reads.contains(&MemoryLocation::Balance(of));
    let balance_write = |tx: usize, of: Address| {
        (trace.txs[tx].writes.iter())
            .find(|(location, _)| *location == MemoryLocation::Balance(of))
            .map(|(_, kind)| *kind)
    };
    for (tx, contract) in [(0, adder), (2, adder), (5, adder)] {
        assert!(!reads_balance(tx, contract), "tx {tx}");
    }
    for (tx, contract) in [
        (3, own_balance),
        (4, adder),
        (6, rich_adder),
        (7, rich_adder),
    ] {
        assert!(reads_balance(tx, contract), "tx {tx}");
    }
    assert_eq!(balance_write(0, adder), Some(WriteKind::Delta));
    assert_eq!(balance_write(2, adder), None);
    assert_eq!(balance_write(5, adder), Some(WriteKind::Delta));
    assert_eq!(balance_write(6, rich_adder), Some(WriteKind::Exact));
}

/// A contract that pays 1 wei back to every caller, empty at first, then paid and drained by turns:
/// whether each send succeeds depends on what earlier transactions paid it. Block-STM reads its
/// balance only as bounds (the trace leaves those reads out) — at least what the sends that
/// succeeded needed, less than what the failed ones needed — and writes its net change as a
/// delta, a decrease too; every engine at every thread count gives the sequential output.
#[test]
fn a_contract_sending_value_is_read_as_bounds_on_its_balance() {
    let spec = SpecId::CANCUN;
    let accounts = senders(6);
    let mut storage = funded(spec, &accounts);
    // `storage[caller] = call(gas, caller, 1, 0, 0, 0, 0)`: each caller is paid back 1 wei.
    let code = [
        0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x01, 0x33, 0x5a, 0xf1, 0x33, 0x55,
        0x00,
    ];
    let payer = Address::with_last_byte(0xfa);
    deploy(&mut storage, payer, &code);
    let call = |from: usize, value: u64| {
        legacy_tx(
            accounts[from],
            0,
            TxKind::Call(payer),
            U256::from(value),
            // Some input, which the code ignores: calls without input to one contract would be
            // left to the pipeline's committer from the start.
            Bytes::from_static(&[1]),
            100_000,
        )
    };
    // Balance before each send: 0 (fails), 3, 2, 1, 0 (fails), 5.
    let block_of = block;
    let block = block_of(
        spec,
        vec![
            call(0, 0),
            call(1, 3),
            call(2, 0),
            call(3, 0),
            call(4, 0),
            call(5, 5),
        ],
    );
    let chain = ChainSpec::fixed(spec);
    let output =
        assert_parallel_matches("a paying contract", &chain, &block, &storage).expect("executes");
    // A failed send stores zero over zero: no change listed.
    let sent = |from: usize| {
        let slot = accounts[from].into_word().into();
        (output.state_changes[&payer].storage.get(&slot).copied()).unwrap_or_default()
    };
    let outcomes: Vec<_> = (0..6).map(sent).collect();
    let [failed, succeeded] = [U256::ZERO, U256::from(1)];
    assert_eq!(
        outcomes,
        [failed, succeeded, succeeded, succeeded, failed, succeeded]
    );
    let balance = output.state_changes[&payer].info.as_ref().unwrap().balance;
    assert_eq!(balance, U256::from(4));
    // Interleavings vary: a wrong bound shows in some runs only.
    for _ in 0..100 {
        let parallel =
            executor_with(parevm::Strategy::BlockStm, 4).execute(&chain, &block, &storage);
        assert_eq!(parallel.as_ref().ok(), Some(&output));
    }
    let trace = parevm::analysis::trace_block(&chain, &block, &storage).expect("traced");
    for (tx, traced) in trace.txs.iter().enumerate() {
        assert!(
            !traced.reads.contains(&MemoryLocation::Balance(payer)),
            "tx {tx} reads the balance exactly"
        );
        let write = (traced.writes.iter())
            .find(|(location, _)| *location == MemoryLocation::Balance(payer));
        // Transactions 0 and 4 leave it unchanged.
        let expected = (![0, 4].contains(&tx)).then_some(WriteKind::Delta);
        assert_eq!(write.map(|(_, kind)| *kind), expected, "tx {tx}");
    }
    // Funded, so that every send succeeds whatever was paid before: the pipeline on one thread
    // (every transaction speculated on the pre-block state, then validated) keeps every
    // speculation, the contract's balance checked against its bounds and its net change applied.
    let mut storage = storage;
    storage.insert_account_with_code(payer, U256::from(10), 1, Bytes::copy_from_slice(&code), []);
    let block = block_of(spec, vec![call(0, 5), call(1, 0), call(2, 0), call(3, 0)]);
    let output = assert_parallel_matches("a funded paying contract", &chain, &block, &storage)
        .expect("executes");
    let balance = output.state_changes[&payer].info.as_ref().unwrap().balance;
    assert_eq!(balance, U256::from(11));
    let (pipelined, stats) =
        executor_with(parevm::Strategy::Pipeline, 1).execute_with_stats(&chain, &block, &storage);
    assert_eq!(pipelined.as_ref().ok(), Some(&output));
    assert_eq!(stats.aborts, 0, "{stats:?}");
}

/// Contracts that pay 1 wei to an account without code on every call. The payee's balance and
/// nonce decide nothing a payment does (only whether it exists, before EIP-161, or is empty,
/// since): the pipeline validates a non-empty payee without them and credits what it received, so
/// payments keep their speculations although the payee sent a transaction and was paid before
/// them. A call that observes the payee's balance (`BALANCE`) is re-executed, and so is a
/// payment to an account that was absent or empty before the block (the first payment created it
/// or made it non-empty, which changes the second's gas: 25,000 for a new account). Every engine
/// at every thread count gives the sequential output.
#[test]
fn payments_to_an_account_without_code_conflict_only_where_they_must() {
    let spec = SpecId::CANCUN;
    let accounts = senders(9);
    let mut storage = funded(spec, &accounts);
    let payee = accounts[0];
    let (absent, empty) = (Address::with_last_byte(0xe0), Address::with_last_byte(0xe1));
    storage.insert_account_with_code(empty, U256::ZERO, 0, Bytes::new(), []);
    // `call(gas, to, 1, 0, 0, 0, 0)`.
    let pays = |to: Address| {
        let mut code = vec![
            0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x01, 0x73,
        ];
        code.extend_from_slice(to.as_slice());
        code.extend_from_slice(&[0x5a, 0xf1, 0x50, 0x00]);
        code
    };
    let payers = [(0xf0, payee), (0xf1, absent), (0xf2, empty)].map(|(byte, to)| {
        let payer = Address::with_last_byte(byte);
        storage.insert_account_with_code(payer, U256::from(100), 1, Bytes::from(pays(to)), []);
        payer
    });
    // `storage[0] = balance(payee)`.
    let mut reader = vec![0x73];
    reader.extend_from_slice(payee.as_slice());
    reader.extend_from_slice(&[0x31, 0x60, 0x00, 0x55, 0x00]);
    let balance_reader = Address::with_last_byte(0xbb);
    deploy(&mut storage, balance_reader, &reader);
    // Some input, which the code ignores: calls without input to one contract would be left to
    // the pipeline's committer from the start.
    let call = |from: usize, to: Address| {
        legacy_tx(
            accounts[from],
            0,
            TxKind::Call(to),
            U256::ZERO,
            Bytes::from_static(&[1]),
            100_000,
        )
    };
    let sent_by_payee = legacy_tx(
        payee,
        0,
        TxKind::Call(Address::with_last_byte(0x99)),
        U256::from(5),
        Bytes::new(),
        21_000,
    );
    let block = block(
        spec,
        vec![
            sent_by_payee,
            call(1, payers[0]),
            call(2, payers[0]),
            call(3, payers[0]),
            // Observes the balance the payments changed.
            call(4, balance_reader),
            call(5, payers[1]),
            // The account the previous payment created.
            call(6, payers[1]),
            call(7, payers[2]),
            // The account the previous payment made non-empty.
            call(8, payers[2]),
        ],
    );
    let chain = ChainSpec::fixed(spec);
    let output = assert_parallel_matches("payments", &chain, &block, &storage).expect("executes");
    let balance = |address: Address| balance_of(&output, address);
    assert_eq!(balance(absent), U256::from(2));
    assert_eq!(balance(empty), U256::from(2));
    let paid = output.state_changes[&balance_reader].storage[&U256::ZERO];
    assert_eq!(paid, balance(payee), "BALANCE sees every payment");
    let gas = |tx: usize| {
        output.receipts[tx].cumulative_gas_used - output.receipts[tx - 1].cumulative_gas_used
    };
    assert_eq!(
        gas(5) - gas(6),
        25_000,
        "the first payment creates the account"
    );
    assert_eq!(
        gas(7) - gas(8),
        25_000,
        "the first payment makes the account non-empty"
    );
    // The pipeline on one thread speculates every transaction before committing it: only the
    // balance reader and the second payments to the absent and the empty account are rejected.
    let (pipelined, stats) =
        executor_with(parevm::Strategy::Pipeline, 1).execute_with_stats(&chain, &block, &storage);
    assert_eq!(pipelined.as_ref().ok(), Some(&output));
    assert_eq!(stats.validations, 9);
    assert_eq!(stats.aborts, 3, "{stats:?}");
}

/// Code paying the builder (a CALL with value to the beneficiary) and revm's touch of the
/// beneficiary when a transaction pays no priority fee, with the beneficiary absent, empty and
/// funded at first: every engine gives the sequential output, and Block-STM reads the balance of a
/// beneficiary it can tell is not empty only as bounds (the trace leaves those reads out). Then an
/// empty beneficiary that a slow first transaction's fee makes non-empty: a payment that saw it
/// empty (and paid for a new account) must fail validation; reading an empty beneficiary as
/// bounds too fails this at 2 threads.
#[test]
fn the_beneficiary_paid_by_code_and_touched_without_a_fee() {
    let spec = SpecId::CANCUN;
    let accounts = senders(8);
    let base_fee = u128::from(header(spec).base_fee_per_gas.expect("London on"));
    // `call(gas, coinbase, 1, 0, 0, 0, 0)`.
    let pays_builder = [
        0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x01, 0x41, 0x5a, 0xf1, 0x50, 0x00,
    ];
    let (payer, idle) = (Address::with_last_byte(0xf0), Address::with_last_byte(0xf1));
    // 100 wei to pay with.
    let deploy_payer = |storage: &mut InMemoryStorage| {
        storage.insert_account_with_code(
            payer,
            U256::from(100),
            1,
            Bytes::copy_from_slice(&pays_builder),
            [],
        )
    };
    let call = |from: usize, to: Address, gas_price: u128| {
        priced_legacy_tx(
            accounts[from],
            0,
            TxKind::Call(to),
            U256::ZERO,
            Bytes::from_static(&[1]),
            100_000,
            gas_price,
        )
    };
    let tipped = 10 * GWEI;
    let txs = vec![
        call(0, idle, base_fee),
        call(1, idle, tipped),
        call(2, payer, tipped),
        call(3, payer, base_fee),
        call(4, idle, base_fee),
        call(5, READER, tipped),
        call(6, idle, tipped),
        call(7, payer, base_fee),
    ];
    let block = block(spec, txs);
    let chain = ChainSpec::fixed(spec);
    for start in ["absent", "empty", "funded"] {
        let mut storage = funded(spec, &accounts);
        match start {
            "empty" => {
                storage.insert_account_with_code(BENEFICIARY, U256::ZERO, 0, Bytes::new(), [])
            }
            "funded" => fund(&mut storage, BENEFICIARY, ETH),
            _ => {}
        }
        deploy_payer(&mut storage);
        deploy(&mut storage, idle, &[0x00]);
        deploy(&mut storage, READER, code::COINBASE_BALANCE);
        let output = assert_parallel_matches(start, &chain, &block, &storage).expect("executes");
        let gas = |tx: usize| {
            output.receipts[tx].cumulative_gas_used
                - tx.checked_sub(1)
                    .map_or(0, |previous| output.receipts[previous].cumulative_gas_used)
        };
        let tip = U256::from(tipped - base_fee);
        let initial = if start == "funded" {
            U256::from(ETH)
        } else {
            U256::ZERO
        };
        let seen = initial + U256::from(1 + 1) + U256::from(gas(1) + gas(2)) * tip;
        assert_eq!(
            output.state_changes[&READER].storage[&U256::ZERO],
            seen,
            "{start}: COINBASE BALANCE sees the payments and the fees"
        );
        let trace = parevm::analysis::trace_block(&chain, &block, &storage).expect("traced");
        let reads_balance =
            |tx: usize| (trace.txs[tx].reads).contains(&MemoryLocation::Balance(BENEFICIARY));
        assert!(reads_balance(5), "{start}: BALANCE reads it exactly");
        for tx in [3, 4, 7] {
            assert!(!reads_balance(tx), "{start}: tx {tx} reads it as bounds");
        }
    }
    // An empty beneficiary made non-empty by a slow first transaction's fee: a payment running
    // meanwhile sees it empty (a new account, 25,000 gas more), and must not pass validation.
    let mut storage = funded(spec, &accounts);
    storage.insert_account_with_code(BENEFICIARY, U256::ZERO, 0, Bytes::new(), []);
    deploy_payer(&mut storage);
    deploy(&mut storage, idle, code::BURNER);
    let slow_fee = priced_legacy_tx(
        accounts[0],
        0,
        TxKind::Call(idle),
        U256::ZERO,
        Bytes::new(),
        5_000_000,
        tipped,
    );
    let slow_block = common::block(spec, vec![slow_fee, call(1, payer, base_fee)]);
    assert_parallel_matches("slow fee", &chain, &slow_block, &storage).expect("executes");
}

/// Calls that each add to the slot the call before wrote: a speculation reads the slots
/// committed before it started (published by the committer) instead of their pre-block values,
/// so on one thread, where each speculation runs right after the commits before it, none is
/// rejected (each was before). Checked against sequential on every engine.
#[test]
fn speculations_read_the_slots_committed_before_them() {
    let spec = SpecId::CANCUN;
    let callers = senders(12);
    let mut storage = funded(spec, &callers);
    let adder = Address::with_last_byte(0xad);
    deploy(&mut storage, adder, code::ADDER);
    let txs: Vec<_> = (callers.iter().enumerate())
        .map(|(index, from)| {
            let input = calldata(&[U256::ZERO, U256::from(index + 1)]);
            legacy_tx(*from, 0, TxKind::Call(adder), U256::ZERO, input, 100_000)
        })
        .collect();
    let block = block(spec, txs);
    let chain = ChainSpec::fixed(spec);
    let output =
        assert_parallel_matches("chained adds", &chain, &block, &storage).expect("all succeed");
    assert_eq!(
        output.state_changes[&adder].storage[&U256::ZERO],
        U256::from(78),
        "1 + 2 + ... + 12"
    );
    let (_, stats) =
        executor_with(parevm::Strategy::Pipeline, 1).execute_with_stats(&chain, &block, &storage);
    let txs = block.body.transactions.len();
    assert_eq!(
        (stats.executions, stats.aborts, stats.validations),
        (txs, 0, txs),
        "{stats:?}"
    );
}

/// Deposits of several tokens into one exchange (mainnet 8889776): each call adds to slot 0 of
/// one of four contracts, in turn, from distinct senders, so that each depends on the one four
/// before it. The pipeline's speculating thread refreshes speculations gone stale and speculates
/// the calls to contracts turned hot once the one before is committed; the output is the
/// sequential one on every engine and thread count.
#[test]
fn interleaved_deposits_into_one_slot_per_contract_match_sequential() {
    let spec = SpecId::CANCUN;
    let callers = senders(64);
    let mut storage = funded(spec, &callers);
    let tokens: Vec<Address> = (0..4).map(|n| Address::with_last_byte(0xd0 + n)).collect();
    for &token in &tokens {
        deploy(&mut storage, token, code::ADDER);
    }
    let txs: Vec<_> = (callers.iter().enumerate())
        .map(|(index, from)| {
            let input = calldata(&[U256::ZERO, U256::from(index + 1)]);
            let to = TxKind::Call(tokens[index % 4]);
            legacy_tx(*from, 0, to, U256::ZERO, input, 100_000)
        })
        .collect();
    let block = block(spec, txs);
    let chain = ChainSpec::fixed(spec);
    let output =
        assert_parallel_matches("deposits", &chain, &block, &storage).expect("all succeed");
    for (n, token) in tokens.iter().enumerate() {
        // Token n got 1 + n, 5 + n, ..., 61 + n: 16 deposits.
        let total: usize = (0..16).map(|k| 4 * k + n + 1).sum();
        assert_eq!(
            output.state_changes[token].storage[&U256::ZERO],
            U256::from(total),
            "token {n}"
        );
    }
}

/// A sender's run of calls that each add to one slot, which the pipeline speculates each on the
/// one before (a long chain), with another sender's call to the same slot in the middle of it:
/// the speculations after that call read what the chain wrote, not what that call left, and
/// must be rejected. Also a run through an account it pays exactly (the chain stops there) and
/// a nonce gap that makes a follower invalid. Checked against sequential on every engine. Calls
/// that burn their gas come first: the committer is busy with them while a speculating thread
/// speculates the chains (their heads first).
#[test]
fn chains_of_calls_speculated_each_on_the_one_before_match_sequential() {
    let spec = SpecId::CANCUN;
    let callers = senders(16);
    let mut storage = funded(spec, &callers);
    let adder = Address::with_last_byte(0xad);
    deploy(&mut storage, adder, code::ADDER);
    let burner = Address::with_last_byte(0xb0);
    deploy(&mut storage, burner, code::BURNER);
    let burn = |from: Address| {
        legacy_tx(
            from,
            0,
            TxKind::Call(burner),
            U256::ZERO,
            Bytes::new(),
            300_000,
        )
    };
    let add = |from: Address, nonce: u64, amount: u64, value: u64| {
        let input = calldata(&[U256::ZERO, U256::from(amount)]);
        legacy_tx(
            from,
            nonce,
            TxKind::Call(adder),
            U256::from(value),
            input,
            100_000,
        )
    };
    let (chained, other) = (callers[0], callers[1]);
    let mut txs: Vec<_> = callers[4..].iter().map(|from| burn(*from)).collect();
    txs.extend((0..6).map(|nonce| add(chained, nonce, 1, 0)));
    txs.insert(12 + 3, add(other, 0, 100, 0));
    // A second run, paying the contract (its balance written exactly: the chain stops there).
    txs.extend((0..6).map(|nonce| add(callers[2], nonce, 1_000, u64::from(nonce == 2))));
    let block_ok = block(spec, txs.clone());
    let chain = ChainSpec::fixed(spec);
    let output = assert_parallel_matches("chains", &chain, &block_ok, &storage).expect("valid");
    assert_eq!(
        output.state_changes[&adder].storage[&U256::ZERO],
        U256::from(6 + 100 + 6_000)
    );
    // A follower with a nonce gap: the block is invalid, whichever engine runs it.
    txs.push(add(callers[3], 0, 1, 0));
    txs.extend((2..7).map(|nonce| add(callers[3], nonce, 1, 0)));
    let gap = block(spec, txs);
    let error = assert_parallel_matches("nonce gap", &chain, &gap, &storage)
        .expect_err("a nonce gap is invalid");
    assert!(error.to_string().contains("nonce"), "{error}");
}
