//! Turning an alloy transaction into revm's [`TxEnv`].

use alloy_consensus::{Transaction, TxEnvelope, transaction::Recovered};
use alloy_eips::Typed2718;
use revm::{
    context::{TxEnv, either::Either, tx::TxEnvBuildError},
    context_interface::transaction::TransactionType,
};

use crate::{ExecutionError, TxIdx};

/// The EVM transaction for the `index`-th transaction of a block, with its recovered sender.
pub fn tx_env(index: TxIdx, tx: &Recovered<TxEnvelope>) -> Result<TxEnv, ExecutionError> {
    let envelope = tx.inner();
    let is_dynamic_fee = envelope.is_dynamic_fee();
    // Built as one struct, not through revm's builder: each builder step moves the whole
    // transaction (a few percent of a plain transfer's execution).
    let env = TxEnv {
        tx_type: envelope.ty(),
        caller: tx.signer(),
        gas_limit: envelope.gas_limit(),
        gas_price: if is_dynamic_fee {
            envelope.max_fee_per_gas()
        } else {
            envelope.gas_price().unwrap_or_default()
        },
        kind: envelope.kind(),
        value: envelope.value(),
        data: envelope.input().clone(),
        nonce: envelope.nonce(),
        chain_id: envelope.chain_id(),
        access_list: envelope.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: envelope
            .max_priority_fee_per_gas()
            .filter(|_| is_dynamic_fee),
        blob_hashes: envelope
            .blob_versioned_hashes()
            .map(<[_]>::to_vec)
            .unwrap_or_default(),
        max_fee_per_blob_gas: envelope.max_fee_per_blob_gas().unwrap_or_default(),
        authorization_list: envelope
            .authorization_list()
            .map(|list| list.iter().cloned().map(Either::Left).collect())
            .unwrap_or_default(),
    };
    match missing_field(&env) {
        None => Ok(env),
        Some(error) => Err(ExecutionError::UnsupportedTransaction {
            index,
            reason: format!("{error:?}"),
        }),
    }
}

/// The field a transaction of its type must have and lacks: the checks of revm's `TxEnvBuilder`.
fn missing_field(env: &TxEnv) -> Option<TxEnvBuildError> {
    let tx_type = TransactionType::from(env.tx_type);
    let dynamic_fee = matches!(
        tx_type,
        TransactionType::Eip1559 | TransactionType::Eip4844 | TransactionType::Eip7702
    );
    if dynamic_fee && env.gas_priority_fee.is_none() {
        return Some(TxEnvBuildError::MissingGasPriorityFeeForEip1559);
    }
    match tx_type {
        TransactionType::Eip4844 if env.blob_hashes.is_empty() => {
            Some(TxEnvBuildError::MissingBlobHashesForEip4844)
        }
        TransactionType::Eip4844 if !env.kind.is_call() => {
            Some(TxEnvBuildError::MissingTargetForEip4844)
        }
        TransactionType::Eip7702 if env.authorization_list.is_empty() => {
            Some(TxEnvBuildError::MissingAuthorizationListForEip7702)
        }
        TransactionType::Eip7702 if !env.kind.is_call() => {
            Some(revm::context::tx::DeriveTxTypeError::MissingTargetForEip7702.into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use alloy_consensus::{
        Signed, TxEip1559, TxEip2930, TxEip4844, TxEip7702, TxLegacy,
        transaction::SignerRecoverable as _,
    };
    use alloy_eips::{eip2930::AccessList, eip2930::AccessListItem};
    use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256};

    use super::*;

    /// The same transaction through revm's builder (what `tx_env` replaced).
    fn through_builder(tx: &Recovered<TxEnvelope>) -> Result<TxEnv, String> {
        let envelope = tx.inner();
        let dynamic = envelope.is_dynamic_fee();
        TxEnv::builder()
            .tx_type(Some(envelope.ty()))
            .caller(tx.signer())
            .gas_limit(envelope.gas_limit())
            .gas_price(if dynamic {
                envelope.max_fee_per_gas()
            } else {
                envelope.gas_price().unwrap_or_default()
            })
            .gas_priority_fee(envelope.max_priority_fee_per_gas().filter(|_| dynamic))
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
            .authorization_list(
                envelope
                    .authorization_list()
                    .map(|list| list.iter().cloned().map(Either::Left).collect())
                    .unwrap_or_default(),
            )
            .build()
            .map_err(|error| format!("{error:?}"))
    }

    fn recovered(envelope: TxEnvelope) -> Recovered<TxEnvelope> {
        let signer = envelope.recover_signer().unwrap_or(Address::repeat_byte(7));
        Recovered::new_unchecked(envelope, signer)
    }

    /// Every transaction type, valid and with the fields its type requires missing: the same
    /// environment, or the same error, as revm's builder.
    #[test]
    fn same_as_revm_builder() {
        let to = Address::repeat_byte(0x22);
        let access_list = AccessList(vec![AccessListItem {
            address: to,
            storage_keys: vec![B256::repeat_byte(1)],
        }]);
        let sig = Signature::test_signature;
        let legacy = TxLegacy {
            chain_id: Some(1),
            nonce: 3,
            gas_price: 7,
            gas_limit: 21_000,
            to: TxKind::Call(to),
            value: U256::from(5),
            input: Bytes::from_static(&[1, 2]),
        };
        let eip2930 = TxEip2930 {
            chain_id: 1,
            nonce: 1,
            gas_price: 9,
            gas_limit: 50_000,
            to: TxKind::Create,
            value: U256::ZERO,
            access_list: access_list.clone(),
            input: Bytes::new(),
        };
        let eip1559 = TxEip1559 {
            chain_id: 1,
            nonce: 2,
            gas_limit: 60_000,
            max_fee_per_gas: 100,
            max_priority_fee_per_gas: 3,
            to: TxKind::Call(to),
            value: U256::from(1),
            access_list: access_list.clone(),
            input: Bytes::new(),
        };
        let eip4844 = |blobs: usize| TxEip4844 {
            chain_id: 1,
            nonce: 4,
            gas_limit: 70_000,
            max_fee_per_gas: 100,
            max_priority_fee_per_gas: 3,
            to,
            value: U256::ZERO,
            access_list: AccessList::default(),
            blob_versioned_hashes: vec![B256::repeat_byte(1); blobs],
            max_fee_per_blob_gas: 11,
            input: Bytes::new(),
        };
        let eip7702 = |authorizations: usize| TxEip7702 {
            chain_id: 1,
            nonce: 5,
            gas_limit: 80_000,
            max_fee_per_gas: 100,
            max_priority_fee_per_gas: 3,
            to,
            value: U256::ZERO,
            access_list: AccessList::default(),
            authorization_list: vec![
                alloy_eips::eip7702::Authorization {
                    chain_id: U256::from(1),
                    address: to,
                    nonce: 0,
                }
                .into_signed(sig());
                authorizations
            ],
            input: Bytes::new(),
        };
        let envelopes = [
            TxEnvelope::Legacy(Signed::new_unchecked(legacy, sig(), B256::ZERO)),
            TxEnvelope::Eip2930(Signed::new_unchecked(eip2930, sig(), B256::ZERO)),
            TxEnvelope::Eip1559(Signed::new_unchecked(eip1559, sig(), B256::ZERO)),
            TxEnvelope::Eip4844(Signed::new_unchecked(eip4844(2).into(), sig(), B256::ZERO)),
            TxEnvelope::Eip4844(Signed::new_unchecked(eip4844(0).into(), sig(), B256::ZERO)),
            TxEnvelope::Eip7702(Signed::new_unchecked(eip7702(1), sig(), B256::ZERO)),
            TxEnvelope::Eip7702(Signed::new_unchecked(eip7702(0), sig(), B256::ZERO)),
        ];
        let mut errors = 0;
        for envelope in envelopes {
            let tx = recovered(envelope);
            let expected = through_builder(&tx);
            let actual = tx_env(0, &tx).map_err(|error| match error {
                ExecutionError::UnsupportedTransaction { reason, .. } => reason,
                other => panic!("{other}"),
            });
            errors += usize::from(expected.is_err());
            assert_eq!(actual, expected, "type {}", tx.inner().ty());
        }
        // The two incomplete transactions are refused.
        assert_eq!(errors, 2);
    }
}
