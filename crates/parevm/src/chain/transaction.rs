//! Turning an alloy transaction into revm's [`TxEnv`].

use alloy_consensus::{Transaction, TxEnvelope, transaction::Recovered};
use alloy_eips::Typed2718;
use revm::context::{TxEnv, either::Either};

use crate::{ExecutionError, TxIdx};

/// The EVM transaction for the `index`-th transaction of a block, with its recovered sender.
pub fn tx_env(index: TxIdx, tx: &Recovered<TxEnvelope>) -> Result<TxEnv, ExecutionError> {
    let envelope = tx.inner();
    let is_dynamic_fee = envelope.is_dynamic_fee();
    let authorization_list = envelope
        .authorization_list()
        .map(|list| list.iter().cloned().map(Either::Left).collect())
        .unwrap_or_default();
    let built = TxEnv::builder()
        .tx_type(Some(envelope.ty()))
        .caller(tx.signer())
        .gas_limit(envelope.gas_limit())
        .gas_price(if is_dynamic_fee {
            envelope.max_fee_per_gas()
        } else {
            envelope.gas_price().unwrap_or_default()
        })
        .gas_priority_fee(
            envelope
                .max_priority_fee_per_gas()
                .filter(|_| is_dynamic_fee),
        )
        .kind(envelope.kind())
        .value(envelope.value())
        .data(envelope.input().clone())
        .nonce(envelope.nonce())
        .chain_id(envelope.chain_id())
        .access_list(envelope.access_list().cloned().unwrap_or_default())
        .blob_hashes(
            envelope
                .blob_versioned_hashes()
                .map(<[_]>::to_vec)
                .unwrap_or_default(),
        )
        .max_fee_per_blob_gas(envelope.max_fee_per_blob_gas().unwrap_or_default())
        .authorization_list(authorization_list)
        .build();
    built.map_err(|error| ExecutionError::UnsupportedTransaction {
        index,
        reason: format!("{error:?}"),
    })
}
