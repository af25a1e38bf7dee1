//! Loader for the shared mainnet block fixtures (`fixtures/mainnet`).
//!
//! A block directory holds `block.json` (the JSON-RPC `eth_getBlockByNumber(n, true)` answer) and
//! `pre_state.json` (every account the block reads). `bytecodes.json` and `block_hashes.json` are
//! shared by all blocks: they are looked up in the block directory first, then two levels up
//! (`DIR/../..`, the `mainnet` folder of the fixtures).
//!
//! Every failure is a [`LoadError`] naming the file and what was wrong with it; the loader never
//! panics on bad input.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
};

use alloy_consensus::{Block, TxEnvelope, transaction::Recovered};
use alloy_primitives::{Address, B256, Bloom, Bytes, U256, keccak256, map::HashMap as SlotMap};
use alloy_rpc_types_eth::BlockTransactions;
use parevm::{BlockOutput, InMemoryAccount, InMemoryStorage, storage::AccountBasic};
use revm::{bytecode::Bytecode, primitives::KECCAK_EMPTY};
use serde::{
    Deserialize, Deserializer,
    de::{DeserializeSeed, MapAccess, Visitor},
};

/// The first Byzantium block: from here on receipts carry a status (EIP-658) and the receipts
/// root can be checked; before it they carry intermediate state roots, which parevm does not
/// compute.
pub const BYZANTIUM_BLOCK: u64 = 4_370_000;

/// Name of the block file in a block directory.
pub const BLOCK_FILE: &str = "block.json";
/// Name of the pre-state file in a block directory.
pub const PRE_STATE_FILE: &str = "pre_state.json";
/// Name of the shared bytecode file (by code hash).
pub const BYTECODES_FILE: &str = "bytecodes.json";
/// Name of the shared block hash file (by block number).
pub const BLOCK_HASHES_FILE: &str = "block_hashes.json";

/// Why a mainnet block fixture could not be loaded. Every variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A shared file is in neither of the places it is looked up.
    #[error("{file} not found (looked in {})", display_paths(searched))]
    NotFound {
        /// The file name.
        file: &'static str,
        /// Where it was looked for.
        searched: Vec<PathBuf>,
    },
    /// A file is not valid JSON of the expected shape (syntax error, truncation, wrong types).
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A value in a file is malformed (bad hex, out of range, inconsistent).
    #[error("{}: {what}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which value, e.g. `balance of account 0x…`.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An account of the pre-state has a code hash that the bytecode file does not contain.
    #[error(
        "{}: no bytecode for code hash {code_hash} of account {account} (from {})",
        bytecodes.display(),
        pre_state.display()
    )]
    MissingBytecode {
        /// The bytecode file searched.
        bytecodes: PathBuf,
        /// The pre-state file that refers to the code.
        pre_state: PathBuf,
        /// The account with that code hash.
        account: Address,
        /// The code hash.
        code_hash: B256,
    },
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A mainnet block ready to execute, with the header fields to check execution against.
#[derive(Debug, Clone)]
pub struct MainnetBlock {
    /// The block directory it was loaded from.
    pub dir: PathBuf,
    /// The block, transactions recovered with the `from` field of the JSON-RPC answer as signer.
    /// Its ommers are empty: JSON-RPC gives only uncle hashes (see [`Self::uncle_count`]).
    pub block: Block<Recovered<TxEnvelope>>,
    /// The state before the block: accounts, the bytecodes they use, and block hashes.
    pub storage: InMemoryStorage,
    /// How many uncles the block has. Their headers are not in the fixture, so uncle rewards (and
    /// the miner's 1/32 bonus per uncle) are not applied; this affects the state changes only, not
    /// the header fields checked by [`Self::check_header`].
    pub uncle_count: usize,
}

/// A header field that execution is compared against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HeaderField {
    /// `gasUsed`.
    GasUsed,
    /// `logsBloom`.
    LogsBloom,
    /// `receiptsRoot` (from Byzantium on).
    ReceiptsRoot,
}

impl HeaderField {
    /// The field's JSON-RPC name.
    pub fn name(self) -> &'static str {
        match self {
            Self::GasUsed => "gas_used",
            Self::LogsBloom => "logs_bloom",
            Self::ReceiptsRoot => "receipts_root",
        }
    }
}

impl fmt::Display for HeaderField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A header field whose value differs from what execution produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMismatch {
    /// The field.
    pub field: HeaderField,
    /// The header's value.
    pub expected: String,
    /// The executed value.
    pub actual: String,
}

impl fmt::Display for HeaderMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: header {}, executed {}",
            self.field, self.expected, self.actual
        )
    }
}

/// The result of comparing an execution with the block header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderCheck {
    /// The fields compared.
    pub checked: Vec<HeaderField>,
    /// The fields that differ (a subset of `checked`).
    pub mismatches: Vec<HeaderMismatch>,
    /// What was not checked and why (receipts root before Byzantium, uncle rewards).
    pub notes: Vec<String>,
}

impl HeaderCheck {
    /// Whether every checked field matches.
    pub fn matches(&self) -> bool {
        self.mismatches.is_empty()
    }
}

impl MainnetBlock {
    /// The block number.
    pub fn number(&self) -> u64 {
        self.block.header.number
    }

    /// The header's `gasUsed`.
    pub fn expected_gas_used(&self) -> u64 {
        self.block.header.gas_used
    }

    /// The header's `logsBloom`.
    pub fn expected_logs_bloom(&self) -> Bloom {
        self.block.header.logs_bloom
    }

    /// The header's `receiptsRoot`.
    pub fn expected_receipts_root(&self) -> B256 {
        self.block.header.receipts_root
    }

    /// Whether the receipts root can be checked: from Byzantium on (before it, receipts carry
    /// intermediate state roots instead of a status).
    pub fn receipts_root_checkable(&self) -> bool {
        self.number() >= BYZANTIUM_BLOCK
    }

    /// Compares an execution result with the header: gas used and logs bloom always, the receipts
    /// root from Byzantium on.
    pub fn check_header(&self, output: &BlockOutput) -> HeaderCheck {
        let mut check = HeaderCheck::default();
        check.checked.push(HeaderField::GasUsed);
        if output.gas_used != self.expected_gas_used() {
            check.mismatches.push(HeaderMismatch {
                field: HeaderField::GasUsed,
                expected: self.expected_gas_used().to_string(),
                actual: output.gas_used.to_string(),
            });
        }
        check.checked.push(HeaderField::LogsBloom);
        let bloom = output.logs_bloom();
        if bloom != self.expected_logs_bloom() {
            check.mismatches.push(HeaderMismatch {
                field: HeaderField::LogsBloom,
                expected: self.expected_logs_bloom().to_string(),
                actual: bloom.to_string(),
            });
        }
        if self.receipts_root_checkable() {
            check.checked.push(HeaderField::ReceiptsRoot);
            let root = output.receipts_root();
            if root != self.expected_receipts_root() {
                check.mismatches.push(HeaderMismatch {
                    field: HeaderField::ReceiptsRoot,
                    expected: self.expected_receipts_root().to_string(),
                    actual: root.to_string(),
                });
            }
        } else {
            check.notes.push(
                "receipts root not checked: before Byzantium receipts carry intermediate state \
                 roots"
                    .into(),
            );
        }
        if self.uncle_count > 0 {
            check.notes.push(format!(
                "{} uncle(s): uncle rewards not applied (JSON-RPC gives only uncle hashes)",
                self.uncle_count
            ));
        }
        check
    }
}

/// Loads the block in `dir`: `block.json`, `pre_state.json`, and the shared `bytecodes.json` and
/// `block_hashes.json` (in `dir`, else in `dir/../..`). Only the bytecodes the pre-state uses are
/// loaded.
pub fn load_block(dir: &Path) -> Result<MainnetBlock, LoadError> {
    let block_path = dir.join(BLOCK_FILE);
    let (block, uncle_count) = parse_block(&block_path, &read(&block_path)?)?;

    let pre_state_path = dir.join(PRE_STATE_FILE);
    let accounts = parse_pre_state(&pre_state_path, &read(&pre_state_path)?)?;

    let mut storage = InMemoryStorage::new();
    let needed: HashSet<B256> = accounts
        .values()
        .map(|account| account.basic.code_hash)
        .filter(|hash| *hash != KECCAK_EMPTY)
        .collect();
    if !needed.is_empty() {
        let bytecodes_path = find_shared(dir, BYTECODES_FILE)?;
        let codes = parse_bytecodes(&bytecodes_path, &read(&bytecodes_path)?, &needed)?;
        // Report the missing code of the lowest address, so the error is deterministic.
        let mut missing: Vec<(Address, B256)> = accounts
            .iter()
            .filter(|(_, account)| {
                account.basic.code_hash != KECCAK_EMPTY
                    && !codes.contains_key(&account.basic.code_hash)
            })
            .map(|(address, account)| (*address, account.basic.code_hash))
            .collect();
        missing.sort();
        if let Some((account, code_hash)) = missing.first() {
            return Err(LoadError::MissingBytecode {
                bytecodes: bytecodes_path,
                pre_state: pre_state_path,
                account: *account,
                code_hash: *code_hash,
            });
        }
        for (hash, code) in codes {
            storage.insert_code_with_hash(hash, Bytecode::new_raw(code));
        }
    }
    for (address, account) in accounts {
        storage.insert_account(address, account);
    }

    let hashes_path = find_shared(dir, BLOCK_HASHES_FILE)?;
    for (number, hash) in parse_block_hashes(&hashes_path, &read(&hashes_path)?)? {
        storage.insert_block_hash(number, hash);
    }

    Ok(MainnetBlock {
        dir: dir.to_path_buf(),
        block,
        storage,
        uncle_count,
    })
}

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `dir/name` if it exists, else `dir/../../name`.
fn find_shared(dir: &Path, name: &'static str) -> Result<PathBuf, LoadError> {
    // `dir/../..` as a plain path when the last two components are names (for readable errors).
    let parent = dir.file_name().and(dir.parent());
    let grandparent = parent
        .and_then(|parent| parent.file_name().and(parent.parent()))
        .filter(|path| !path.as_os_str().is_empty())
        .map_or_else(|| dir.join("..").join(".."), Path::to_path_buf);
    let searched = vec![dir.join(name), grandparent.join(name)];
    searched
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or(LoadError::NotFound {
            file: name,
            searched,
        })
}

fn json_error(path: &Path) -> impl FnOnce(serde_json::Error) -> LoadError + '_ {
    move |source| LoadError::Json {
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(path: &Path, what: impl Into<String>, reason: impl Into<String>) -> LoadError {
    LoadError::Invalid {
        path: path.to_path_buf(),
        what: what.into(),
        reason: reason.into(),
    }
}

/// Parses `block.json` into a consensus block and its uncle count.
fn parse_block(
    path: &Path,
    text: &str,
) -> Result<(Block<Recovered<TxEnvelope>>, usize), LoadError> {
    let rpc: alloy_rpc_types_eth::Block = serde_json::from_str(text).map_err(json_error(path))?;
    match &rpc.transactions {
        BlockTransactions::Full(_) => {}
        BlockTransactions::Hashes(hashes) if hashes.is_empty() => {}
        BlockTransactions::Hashes(_) => {
            return Err(invalid(
                path,
                "transactions",
                "only transaction hashes (fetch the block with full transactions)",
            ));
        }
        BlockTransactions::Uncle => {
            return Err(invalid(path, "transactions", "missing (an uncle block?)"));
        }
    }
    let uncle_count = rpc.uncles.len();
    let block = rpc
        .into_consensus()
        .map_transactions(alloy_rpc_types_eth::Transaction::into_recovered);
    Ok((block, uncle_count))
}

/// One account of `pre_state.json`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    balance: String,
    nonce: RawNonce,
    #[serde(default)]
    code_hash: Option<String>,
    #[serde(default)]
    storage: BTreeMap<String, String>,
}

/// A nonce: a JSON integer, or a hex string.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawNonce {
    Int(u64),
    Hex(String),
}

fn parse_pre_state(
    path: &Path,
    text: &str,
) -> Result<HashMap<Address, InMemoryAccount>, LoadError> {
    let raw: BTreeMap<String, RawAccount> = serde_json::from_str(text).map_err(json_error(path))?;
    let mut accounts = HashMap::with_capacity(raw.len());
    for (key, account) in raw {
        let address = parse_address(&key)
            .map_err(|reason| invalid(path, format!("account address {key:?}"), reason))?;
        let balance = parse_u256(&account.balance)
            .map_err(|reason| invalid(path, format!("balance of account {address}"), reason))?;
        let nonce = match account.nonce {
            RawNonce::Int(nonce) => nonce,
            RawNonce::Hex(text) => parse_u256(&text)
                .and_then(|nonce| u64::try_from(nonce).map_err(|_| "above 2^64".to_string()))
                .map_err(|reason| invalid(path, format!("nonce of account {address}"), reason))?,
        };
        let code_hash = match &account.code_hash {
            None => KECCAK_EMPTY,
            Some(text) => parse_b256(text).map_err(|reason| {
                invalid(path, format!("code_hash of account {address}"), reason)
            })?,
        };
        let mut storage =
            SlotMap::with_capacity_and_hasher(account.storage.len(), Default::default());
        for (slot_text, value_text) in &account.storage {
            let slot = parse_u256(slot_text).map_err(|reason| {
                invalid(
                    path,
                    format!("storage slot {slot_text:?} of account {address}"),
                    reason,
                )
            })?;
            let value = parse_u256(value_text).map_err(|reason| {
                invalid(
                    path,
                    format!("value of storage slot {slot_text} of account {address}"),
                    reason,
                )
            })?;
            if !value.is_zero() {
                storage.insert(slot, value);
            }
        }
        let basic = AccountBasic {
            balance,
            nonce,
            code_hash,
        };
        accounts.insert(address, InMemoryAccount { basic, storage });
    }
    Ok(accounts)
}

/// Parses `bytecodes.json`, keeping only the codes in `needed` (the file is shared by all blocks
/// and large) and checking that each hashes to its key.
fn parse_bytecodes(
    path: &Path,
    text: &str,
    needed: &HashSet<B256>,
) -> Result<HashMap<B256, Bytes>, LoadError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let raw = NeededCodes { needed }
        .deserialize(&mut deserializer)
        .and_then(|raw| deserializer.end().map(|()| raw))
        .map_err(json_error(path))?;
    let mut codes = HashMap::with_capacity(raw.len());
    for (hash, hex) in raw {
        let code = parse_bytes(hex)
            .map_err(|reason| invalid(path, format!("bytecode of code hash {hash}"), reason))?;
        let actual = keccak256(&code);
        if actual != hash {
            return Err(invalid(
                path,
                format!("bytecode of code hash {hash}"),
                format!("its keccak256 is {actual}"),
            ));
        }
        codes.insert(hash, code);
    }
    Ok(codes)
}

/// Deserializes a `{code_hash: hex}` map, keeping the entries whose hash is in `needed`, without
/// copying the others.
struct NeededCodes<'a> {
    needed: &'a HashSet<B256>,
}

impl<'de> DeserializeSeed<'de> for NeededCodes<'_> {
    type Value = Vec<(B256, &'de str)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for NeededCodes<'_> {
    type Value = Vec<(B256, &'de str)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map from code hash to hex bytecode")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = Vec::with_capacity(self.needed.len());
        while let Some(key) = map.next_key::<&'de str>()? {
            let hash = parse_b256(key).map_err(|reason| {
                serde::de::Error::custom(format!("code hash key {key:?}: {reason}"))
            })?;
            if self.needed.contains(&hash) {
                found.push((hash, map.next_value::<&'de str>()?));
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

fn parse_block_hashes(path: &Path, text: &str) -> Result<Vec<(u64, B256)>, LoadError> {
    let raw: BTreeMap<String, String> = serde_json::from_str(text).map_err(json_error(path))?;
    raw.iter()
        .map(|(number, hash)| {
            let parsed_number = number.parse::<u64>().map_err(|error| {
                invalid(path, format!("block number {number:?}"), error.to_string())
            })?;
            let parsed_hash = parse_b256(hash)
                .map_err(|reason| invalid(path, format!("hash of block {number}"), reason))?;
            Ok((parsed_number, parsed_hash))
        })
        .collect()
}

/// The hex digits after a mandatory `0x`.
fn hex_digits(text: &str) -> Result<&str, String> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .ok_or_else(|| format!("{text:?} is not hex (no 0x prefix)"))?;
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("{text:?} is not hex (bad character {bad:?})"));
    }
    Ok(digits)
}

/// A `0x`-prefixed hex quantity of at most 256 bits (`0x` alone is zero).
pub(crate) fn parse_u256(text: &str) -> Result<U256, String> {
    let digits = hex_digits(text)?;
    if digits.is_empty() {
        return Ok(U256::ZERO);
    }
    U256::from_str_radix(digits, 16).map_err(|error| format!("{text:?}: {error}"))
}

/// A `0x`-prefixed 32-byte hex value.
fn parse_b256(text: &str) -> Result<B256, String> {
    let digits = hex_digits(text)?;
    if digits.len() != 64 {
        return Err(format!(
            "{text:?} is not 32 bytes ({} hex digits)",
            digits.len()
        ));
    }
    B256::from_str(digits).map_err(|error| format!("{text:?}: {error}"))
}

/// A `0x`-prefixed 20-byte hex address.
fn parse_address(text: &str) -> Result<Address, String> {
    let digits = hex_digits(text)?;
    if digits.len() != 40 {
        return Err(format!(
            "{text:?} is not 20 bytes ({} hex digits)",
            digits.len()
        ));
    }
    Address::from_str(digits).map_err(|error| format!("{text:?}: {error}"))
}

/// `0x`-prefixed hex bytes.
fn parse_bytes(text: &str) -> Result<Bytes, String> {
    let digits = hex_digits(text)?;
    if digits.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    alloy_primitives::hex::decode(digits)
        .map(Bytes::from)
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_parsing() {
        assert_eq!(parse_u256("0x0"), Ok(U256::ZERO));
        assert_eq!(parse_u256("0x"), Ok(U256::ZERO));
        assert_eq!(parse_u256("0xff"), Ok(U256::from(255)));
        assert!(parse_u256("ff").is_err());
        assert!(parse_u256("0xzz").is_err());
        assert!(parse_u256(&format!("0x1{}", "0".repeat(64))).is_err());
        assert!(parse_b256("0x12").is_err());
        assert!(parse_address("0x0000000000000000000000000000000000000001").is_ok());
        assert!(parse_bytes("0x123").is_err());
        assert_eq!(parse_bytes("0x"), Ok(Bytes::new()));
    }
}
