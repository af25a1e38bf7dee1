//! What executing a block produces: receipts and the block's state changes.

use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope, ReceiptWithBloom, TxType};
use alloy_primitives::{
    Address, B256, Bloom, Bytes, Log, U256,
    map::{AddressMap, HashMap},
};
use revm::primitives::KECCAK_EMPTY;

/// The receipt of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxReceipt {
    /// The transaction's type (legacy, 2930, 1559, 4844, 7702).
    pub tx_type: TxType,
    /// Whether execution succeeded (EIP-658 status; before Byzantium a receipt carries an
    /// intermediate state root instead, which parevm does not compute).
    pub success: bool,
    /// Gas used by this transaction.
    pub gas_used: u64,
    /// Gas used by this and all earlier transactions of the block.
    pub cumulative_gas_used: u64,
    /// Logs emitted.
    pub logs: Vec<Log>,
}

impl TxReceipt {
    /// The consensus receipt (EIP-658 status form) with its bloom.
    pub fn to_envelope(&self) -> ReceiptEnvelope {
        let receipt = Receipt {
            status: Eip658Value::Eip658(self.success),
            cumulative_gas_used: self.cumulative_gas_used,
            logs: self.logs.clone(),
        };
        let with_bloom = ReceiptWithBloom::from(receipt);
        match self.tx_type {
            TxType::Legacy => ReceiptEnvelope::Legacy(with_bloom),
            TxType::Eip2930 => ReceiptEnvelope::Eip2930(with_bloom),
            TxType::Eip1559 => ReceiptEnvelope::Eip1559(with_bloom),
            TxType::Eip4844 => ReceiptEnvelope::Eip4844(with_bloom),
            TxType::Eip7702 => ReceiptEnvelope::Eip7702(with_bloom),
        }
    }
}

/// An account's state after the block, for every account the block changed. Its `Debug`
/// rendering lists the slots in ascending order.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountChange {
    /// The account after the block; `None` when it does not exist (self-destructed, or deleted
    /// as empty under EIP-161).
    pub info: Option<AccountState>,
    /// Whether the account's storage from before the block was wiped (self-destruct, deletion
    /// or contract creation): only the slots in `storage` remain.
    pub storage_reset: bool,
    /// Slots written by the block, with their values after it (unordered: a state trie orders
    /// them by hashed key anyway).
    pub storage: SlotChanges,
}

/// Written storage slots and their values after the block.
pub type SlotChanges = HashMap<U256, U256>;

impl std::fmt::Debug for AccountChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut storage: Vec<_> = self.storage.iter().collect();
        storage.sort_unstable();
        f.debug_struct("AccountChange")
            .field("info", &self.info)
            .field("storage_reset", &self.storage_reset)
            .field("storage", &Entries(&storage))
            .finish()
    }
}

/// Key-value pairs rendered as a map, in the order given.
struct Entries<'a, K, V>(&'a [(K, V)]);

impl<K: std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for Entries<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(key, value)| (key, value)))
            .finish()
    }
}

/// Balance, nonce and code of an existing account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    /// Balance in wei.
    pub balance: U256,
    /// Nonce.
    pub nonce: u64,
    /// Keccak-256 of the code ([`KECCAK_EMPTY`] without code).
    pub code_hash: B256,
    /// The code, when the block deployed it (otherwise look it up by hash in the pre-state).
    pub code: Option<Bytes>,
}

impl AccountState {
    /// An account with no balance, nonce or code.
    pub fn empty() -> Self {
        Self {
            balance: U256::ZERO,
            nonce: 0,
            code_hash: KECCAK_EMPTY,
            code: None,
        }
    }
}

/// The state changes of a block, by address: a hash map, cheap to build for blocks that touch
/// tens of thousands of accounts (sort the keys to print them in a stable order).
pub type StateChanges = AddressMap<AccountChange>;

/// Folds `later` changes on top of `earlier` ones (inserting the smaller map into the larger).
/// Code bytes are listed only by the part that wrote the code: `later` touching an account whose
/// code `earlier` deployed keeps `earlier`'s bytes.
pub(crate) fn merge_changes(earlier: &mut StateChanges, mut later: StateChanges) {
    if earlier.len() <= later.len() {
        for (address, before) in std::mem::take(earlier) {
            if let Some(after) = later.get_mut(&address) {
                keep_deployed_code(&before.info, &mut after.info);
                if !after.storage_reset {
                    let mut storage = before.storage;
                    storage.extend(after.storage.drain());
                    after.storage = storage;
                    after.storage_reset = before.storage_reset;
                }
            } else {
                later.insert(address, before);
            }
        }
        *earlier = later;
        return;
    }
    for (address, mut change) in later {
        match earlier.get_mut(&address) {
            Some(existing) => {
                keep_deployed_code(&existing.info, &mut change.info);
                if change.storage_reset {
                    *existing = change;
                } else {
                    existing.info = change.info;
                    existing.storage.extend(change.storage);
                }
            }
            None => {
                earlier.insert(address, change);
            }
        }
    }
}

/// Gives `after` the code bytes of `before` when both have the same code and `after` lists no
/// bytes (it did not write the code).
fn keep_deployed_code(before: &Option<AccountState>, after: &mut Option<AccountState>) {
    if let (Some(before), Some(after)) = (before, after)
        && after.code.is_none()
        && before.code_hash == after.code_hash
    {
        after.code.clone_from(&before.code);
    }
}

/// The result of executing a block: the same for the parallel and the sequential executor.
/// Its `Debug` rendering lists the state changes by address, so equal outputs print the same.
#[derive(Clone, PartialEq, Eq)]
pub struct BlockOutput {
    /// One receipt per transaction, in block order.
    pub receipts: Vec<TxReceipt>,
    /// Total gas used by the block's transactions.
    pub gas_used: u64,
    /// Every account changed by the block (transactions, system calls, rewards, withdrawals).
    pub state_changes: StateChanges,
}

impl std::fmt::Debug for BlockOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockOutput")
            .field("receipts", &self.receipts)
            .field("gas_used", &self.gas_used)
            .field("state_changes", &Entries(&self.sorted_state_changes()))
            .finish()
    }
}

impl BlockOutput {
    /// The state changes sorted by address: a stable order to print, diff or hash them in.
    pub fn sorted_state_changes(&self) -> Vec<(&Address, &AccountChange)> {
        let mut changes: Vec<_> = self.state_changes.iter().collect();
        changes.sort_unstable_by_key(|(address, _)| **address);
        changes
    }

    /// Where `other` first differs from this output, for a person to read (`None`: they are
    /// equal): gas used, then the first receipt by index, then the first account by address.
    /// Compares an expected output (this one, from sequential execution) with another.
    pub fn first_difference(&self, other: &BlockOutput) -> Option<String> {
        if self.gas_used != other.gas_used {
            return Some(format!(
                "gas used: expected {}, got {}",
                self.gas_used, other.gas_used
            ));
        }
        let receipts = self.receipts.len().max(other.receipts.len());
        if let Some(index) =
            (0..receipts).find(|index| self.receipts.get(*index) != other.receipts.get(*index))
        {
            return Some(format!(
                "receipt {index}: expected {:?}, got {:?}",
                self.receipts.get(index),
                other.receipts.get(index)
            ));
        }
        let mut accounts: Vec<&Address> = (self.state_changes.keys())
            .chain(other.state_changes.keys())
            .collect();
        accounts.sort_unstable();
        accounts
            .into_iter()
            .find(|address| self.state_changes.get(*address) != other.state_changes.get(*address))
            .map(|address| {
                format!(
                    "account {address}: expected {:?}, got {:?}",
                    self.state_changes.get(address),
                    other.state_changes.get(address)
                )
            })
    }

    /// The receipts trie root, receipts in EIP-658 form (valid from Byzantium on).
    pub fn receipts_root(&self) -> B256 {
        let envelopes: Vec<ReceiptEnvelope> =
            self.receipts.iter().map(TxReceipt::to_envelope).collect();
        alloy_consensus::proofs::calculate_receipt_root(&envelopes)
    }

    /// The block's logs bloom: the union of every receipt's bloom.
    pub fn logs_bloom(&self) -> Bloom {
        let mut bloom = Bloom::ZERO;
        for receipt in &self.receipts {
            for log in &receipt.logs {
                bloom.accrue_log(log);
            }
        }
        bloom
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first difference is found in gas, receipts and accounts, in that order, and equal
    /// outputs have none.
    #[test]
    fn first_difference_names_gas_then_receipt_then_account() {
        let receipt = |gas_used| TxReceipt {
            tx_type: TxType::Legacy,
            success: true,
            gas_used,
            cumulative_gas_used: gas_used,
            logs: Vec::new(),
        };
        let account = |nonce| AccountChange {
            info: Some(AccountState {
                balance: U256::ZERO,
                nonce,
                code_hash: KECCAK_EMPTY,
                code: None,
            }),
            storage_reset: false,
            storage: SlotChanges::default(),
        };
        let expected = BlockOutput {
            receipts: vec![receipt(21_000)],
            gas_used: 21_000,
            state_changes: [(Address::repeat_byte(1), account(1))]
                .into_iter()
                .collect(),
        };
        assert_eq!(expected.first_difference(&expected.clone()), None);
        let mut other = expected.clone();
        other
            .state_changes
            .insert(Address::repeat_byte(2), account(0));
        let difference = expected.first_difference(&other).unwrap();
        assert!(difference.starts_with("account 0x0202"), "{difference}");
        other.receipts[0].success = false;
        let difference = expected.first_difference(&other).unwrap();
        assert!(difference.starts_with("receipt 0:"), "{difference}");
        other.gas_used += 1;
        let difference = expected.first_difference(&other).unwrap();
        assert_eq!(difference, "gas used: expected 21000, got 21001");
    }

    /// Equal outputs print the same whatever order their state changes were inserted in.
    #[test]
    fn debug_rendering_ignores_insertion_order() {
        // Slots inserted in ascending or descending order.
        let change = |byte: u8, ascending: bool| {
            let mut slots: Vec<u8> = (0..byte % 9).collect();
            if !ascending {
                slots.reverse();
            }
            let mut storage = SlotChanges::default();
            if !ascending {
                // A map grown from small buckets the other does not have.
                storage.reserve(64);
            }
            storage.extend(
                slots
                    .into_iter()
                    .map(|slot| (U256::from(slot), U256::from(byte))),
            );
            AccountChange {
                info: None,
                storage_reset: byte.is_multiple_of(2),
                storage,
            }
        };
        let output = |bytes: &mut dyn Iterator<Item = u8>, ascending: bool| BlockOutput {
            receipts: Vec::new(),
            gas_used: 0,
            state_changes: bytes
                .map(|byte| (Address::repeat_byte(byte), change(byte, ascending)))
                .collect(),
        };
        let forward = output(&mut (0..=255), true);
        let mut backward = output(&mut (0..=255).rev(), false);
        // Grown from small to large, so its buckets differ from the other map's.
        backward.state_changes.shrink_to_fit();
        assert_eq!(forward, backward);
        let rendered = format!("{forward:?}");
        assert_eq!(rendered, format!("{backward:?}"));
        // Every address, in ascending order (a hash map's own order is not).
        let positions: Vec<usize> = (0..=255)
            .map(|byte| {
                rendered
                    .find(&format!("{:?}", Address::repeat_byte(byte)))
                    .unwrap()
            })
            .collect();
        assert!(positions.is_sorted(), "not sorted by address");
        // And every account's slots in ascending order.
        let slots = format!("{:?}", forward.state_changes[&Address::repeat_byte(8)]);
        let positions: Vec<usize> = (0..8u8)
            .map(|slot| slots.find(&format!("{:?}: ", U256::from(slot))).unwrap())
            .collect();
        assert!(positions.is_sorted(), "slots not sorted: {slots}");
    }

    /// A later part of the block that only touches an account an earlier part deployed keeps the
    /// deployed bytes, whichever map is the larger; a later redeployment or destruction wins.
    #[test]
    fn merging_keeps_code_deployed_by_the_earlier_part() {
        let code = Bytes::from_static(&[0x60, 0x00]);
        let state = |balance: u64, code: Option<Bytes>| AccountState {
            balance: U256::from(balance),
            nonce: 1,
            code_hash: B256::repeat_byte(7),
            code,
        };
        let change = |info: Option<AccountState>, storage_reset: bool| AccountChange {
            info,
            storage_reset,
            storage: SlotChanges::from_iter([(U256::from(storage_reset as u8), U256::from(1))]),
        };
        let contract = Address::repeat_byte(1);
        // Maps of other accounts make either side the larger one.
        let padded = |change: AccountChange, others: u8| -> StateChanges {
            let mut changes: StateChanges = (2..2 + others)
                .map(|byte| (Address::repeat_byte(byte), change.clone()))
                .collect();
            changes.insert(contract, change);
            changes
        };
        for (earlier_others, later_others) in [(0, 5), (5, 0)] {
            let deployed = change(Some(state(1, Some(code.clone()))), true);
            let touched = change(Some(state(9, None)), false);
            let mut merged = padded(deployed.clone(), earlier_others);
            merge_changes(&mut merged, padded(touched, later_others));
            let merged = &merged[&contract];
            assert_eq!(merged.info, Some(state(9, Some(code.clone()))));
            assert!(merged.storage_reset, "the deployment's reset stays");
            assert_eq!(merged.storage.len(), 2, "both parts' slots");

            let redeployed = change(Some(state(3, Some(Bytes::from_static(&[0x00])))), true);
            let mut merged = padded(deployed.clone(), earlier_others);
            merge_changes(&mut merged, padded(redeployed.clone(), later_others));
            assert_eq!(merged[&contract], redeployed);

            let destroyed = change(None, true);
            let mut merged = padded(deployed, earlier_others);
            merge_changes(&mut merged, padded(destroyed.clone(), later_others));
            assert_eq!(merged[&contract], destroyed);
        }
    }
}
