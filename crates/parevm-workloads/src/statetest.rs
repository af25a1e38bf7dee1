//! Runs ethereum/tests `GeneralStateTests` through a caller-supplied executor.
//!
//! Each (test, fork, indexes) case becomes a one-transaction block: the header from the test's
//! `env`, the transaction selected by the case's `indexes` (with a dummy signature, since the
//! sender is given), and the test's `pre` state as an [`InMemoryStorage`]. A case passes when
//!
//! - `expectException` is set and the executor rejects the block (or the transaction cannot even
//!   be formed, e.g. a nonce above 2^64 - 1), the post-state then being the pre-state (before
//!   Spurious Dragon, plus an empty coinbase account: geth's runner touches it regardless); or
//! - the post-state root (pre-state plus the block's `state_changes`) equals `hash` and the
//!   Keccak-256 of the RLP list of all logs equals `logs`.
//!
//! State tests apply no block reward and run no system call, so the executor's block-level steps
//! must be no-ops for a [`ChainSpec::fixed`] chain. Cancun tests carry no parent beacon block root:
//! the header gets the zero root, which makes no difference because no test's pre-state holds the
//! EIP-4788 contract.
//!
//! Cases can be skipped by a [`SkipList`] (by file path suffix or test name, each with a reason),
//! and cases of forks revm has no [`SpecId`] for are skipped with that reason: both are counted,
//! never silently dropped.

use std::{
    collections::BTreeMap,
    fmt,
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
};

use alloy_consensus::{
    Block, BlockBody, Header, Signed, TxEip1559, TxEip2930, TxEip4844, TxEip7702, TxEnvelope,
    TxLegacy, transaction::Recovered,
};
use alloy_primitives::{Address, B256, Log, Signature, TxKind, U256, keccak256};
use alloy_trie::{
    TrieAccount,
    root::{state_root_unhashed, storage_root_unhashed},
};
use parevm::{BlockOutput, ChainSpec, ExecutionError, InMemoryStorage, StateChanges};
use revm::primitives::{KECCAK_EMPTY, hardfork::SpecId};
use revm_statetest_types::{Test, TestSuite, TestUnit, recover_address};

/// The fork names of state-test files.
pub use revm_statetest_types::SpecName;

/// The skip list shipped with the crate (`statetest-skips.txt`).
pub const BUILTIN_SKIPS: &str = include_str!("../statetest-skips.txt");

/// The base fee a London+ state test gets when its `env` has none (as in geth's runner).
const DEFAULT_BASE_FEE: u64 = 10;

/// One entry of a [`SkipList`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipEntry {
    /// A file path suffix (contains `/` or ends in `.json`) or an exact test name.
    pub pattern: String,
    /// Why it is skipped.
    pub reason: String,
}

impl SkipEntry {
    /// Whether the pattern names files (a path suffix) rather than a test.
    pub fn is_path(&self) -> bool {
        self.pattern.contains('/') || self.pattern.ends_with(".json")
    }
}

/// A malformed skip list line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("skip list line {line}: {reason}")]
pub struct SkipListError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// State tests not run, each with a reason. One entry per line: `pattern  reason`, where the
/// pattern is a file path suffix (containing `/` or ending in `.json`) or an exact test name;
/// blank lines and lines starting with `#` are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkipList {
    /// The entries, in file order.
    pub entries: Vec<SkipEntry>,
}

impl SkipList {
    /// Parses a skip list. Every entry needs a reason.
    pub fn parse(text: &str) -> Result<Self, SkipListError> {
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (pattern, reason) = line.split_once(char::is_whitespace).ok_or(SkipListError {
                line: index + 1,
                reason: format!("{line:?} has no reason"),
            })?;
            entries.push(SkipEntry {
                pattern: pattern.to_string(),
                reason: reason.trim().to_string(),
            });
        }
        Ok(Self { entries })
    }

    /// The crate's own skip list ([`BUILTIN_SKIPS`]).
    pub fn builtin() -> Result<Self, SkipListError> {
        Self::parse(BUILTIN_SKIPS)
    }

    /// The entry skipping the file at `path`, if any.
    pub fn file_skip(&self, path: &Path) -> Option<&SkipEntry> {
        let path = path.to_string_lossy().replace('\\', "/");
        self.entries.iter().find(|entry| {
            entry.is_path()
                && path.ends_with(&entry.pattern)
                && (path.len() == entry.pattern.len()
                    || entry.pattern.starts_with('/')
                    || path[..path.len() - entry.pattern.len()].ends_with('/'))
        })
    }

    /// The entry skipping the test named `name`, if any.
    pub fn test_skip(&self, name: &str) -> Option<&SkipEntry> {
        self.entries
            .iter()
            .find(|entry| !entry.is_path() && entry.pattern == name)
    }
}

/// The revm rules of a state-test fork, or why it cannot be run.
pub fn fork_spec(fork: &SpecName) -> Result<SpecId, &'static str> {
    match fork {
        SpecName::Constantinople | SpecName::ByzantiumToConstantinopleAt5 => {
            Err("revm 43 has no Constantinople SpecId (its EIP-1283 was withdrawn by Petersburg)")
        }
        SpecName::Unknown => Err("unknown fork name"),
        known => Ok(known.to_spec_id()),
    }
}

/// Which case of a test: the test, the fork and the transaction's indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseId {
    /// The test's name (a key of the file).
    pub test: String,
    /// The fork, as named in the file.
    pub fork: String,
    /// Index into the transaction's `data`.
    pub data: usize,
    /// Index into the transaction's `gasLimit`.
    pub gas: usize,
    /// Index into the transaction's `value`.
    pub value: usize,
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} d={} g={} v={}",
            self.test, self.fork, self.data, self.gas, self.value
        )
    }
}

/// How a case went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseOutcome {
    /// The executor produced the expected result.
    Passed,
    /// It did not: what differed.
    Failed(String),
    /// It was not run: why.
    Skipped(String),
}

/// One case and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The case.
    pub id: CaseId,
    /// Its outcome.
    pub outcome: CaseOutcome,
}

/// The outcome of one state-test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Every case of the file (all skipped when the file is).
    pub cases: Vec<CaseResult>,
    /// Why the file could not be run at all (unreadable, not a state-test file); counts as one
    /// failure.
    pub error: Option<String>,
    /// The skip list entry that skipped the whole file.
    pub skipped_by: Option<SkipEntry>,
}

impl FileReport {
    /// Cases that passed.
    pub fn passed(&self) -> usize {
        self.count(|outcome| matches!(outcome, CaseOutcome::Passed))
    }

    /// Cases that failed, plus one if the file could not be run.
    pub fn failed(&self) -> usize {
        self.count(|outcome| matches!(outcome, CaseOutcome::Failed(_)))
            + usize::from(self.error.is_some())
    }

    /// Cases skipped (at least one for a skipped file whose cases could not be counted).
    pub fn skipped(&self) -> usize {
        let cases = self.count(|outcome| matches!(outcome, CaseOutcome::Skipped(_)));
        if self.skipped_by.is_some() {
            cases.max(1)
        } else {
            cases
        }
    }

    fn count(&self, pred: impl Fn(&CaseOutcome) -> bool) -> usize {
        self.cases.iter().filter(|case| pred(&case.outcome)).count()
    }

    /// One line per failure: `FAIL <file> <test> <fork> d=.. g=.. v=..: <what differed>`.
    pub fn failure_lines(&self) -> Vec<String> {
        let file = self.path.display();
        let mut lines: Vec<String> = self
            .error
            .iter()
            .map(|error| format!("FAIL {file}: {error}"))
            .collect();
        lines.extend(self.cases.iter().filter_map(|case| match &case.outcome {
            CaseOutcome::Failed(what) => Some(format!("FAIL {file} {}: {what}", case.id)),
            _ => None,
        }));
        lines
    }
}

/// The state-test JSON files under `paths` (files are taken as given, directories searched
/// recursively for `*.json`), sorted and deduplicated.
pub fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            collect_dir(path, &mut files)?;
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}: no such file or directory", path.display()),
            ));
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn collect_dir(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|error| {
        std::io::Error::new(error.kind(), format!("{}: {error}", dir.display()))
    })?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect_dir(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        }
    }
    Ok(())
}

/// Runs every case of the state-test file at `path` through `execute`, honouring `skips`.
///
/// A panic of the executor is caught and reported as that case's failure.
pub fn run_file<F>(path: &Path, skips: &SkipList, execute: &F) -> FileReport
where
    F: Fn(
        &ChainSpec,
        &Block<Recovered<TxEnvelope>>,
        &InMemoryStorage,
    ) -> Result<BlockOutput, ExecutionError>,
{
    let mut report = FileReport {
        path: path.to_path_buf(),
        cases: Vec::new(),
        error: None,
        skipped_by: skips.file_skip(path).cloned(),
    };
    let suite = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read: {error}"))
        .and_then(|text| {
            serde_json::from_str::<TestSuite>(&text)
                .map_err(|error| format!("not a state-test file: {error}"))
        });
    let suite = match suite {
        Ok(suite) => suite,
        Err(error) => {
            if report.skipped_by.is_none() {
                report.error = Some(error);
            }
            return report;
        }
    };
    for (name, unit) in &suite.0 {
        let skip = report
            .skipped_by
            .as_ref()
            .or_else(|| skips.test_skip(name))
            .map(|entry| format!("skip list ({}): {}", entry.pattern, entry.reason));
        run_unit(name, unit, skip, execute, &mut report.cases);
    }
    report
}

/// Runs the cases of one test.
fn run_unit<F>(
    name: &str,
    unit: &TestUnit,
    skip: Option<String>,
    execute: &F,
    results: &mut Vec<CaseResult>,
) where
    F: Fn(
        &ChainSpec,
        &Block<Recovered<TxEnvelope>>,
        &InMemoryStorage,
    ) -> Result<BlockOutput, ExecutionError>,
{
    let mut storage = None;
    for (fork, cases) in &unit.post {
        let spec = fork_spec(fork);
        for case in cases {
            let id = CaseId {
                test: name.to_string(),
                fork: format!("{fork:?}"),
                data: case.indexes.data,
                gas: case.indexes.gas,
                value: case.indexes.value,
            };
            let outcome = match (&skip, spec) {
                (Some(reason), _) => CaseOutcome::Skipped(reason.clone()),
                (None, Err(reason)) => CaseOutcome::Skipped(format!("fork {fork:?}: {reason}")),
                (None, Ok(spec)) => {
                    let storage = storage.get_or_insert_with(|| pre_storage(unit));
                    let run = catch_unwind(AssertUnwindSafe(|| {
                        run_case(unit, case, spec, storage, execute)
                    }));
                    match run {
                        Ok(Ok(())) => CaseOutcome::Passed,
                        Ok(Err(what)) => CaseOutcome::Failed(what),
                        Err(panic) => CaseOutcome::Failed(format!(
                            "executor panicked: {}",
                            panic_message(panic.as_ref())
                        )),
                    }
                }
            };
            results.push(CaseResult { id, outcome });
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_string()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// The test's pre-state, with the block hashes state tests define (keccak256 of the decimal
/// block number, as geth's and revm's runners do) for the 256 blocks before the test's block.
fn pre_storage(unit: &TestUnit) -> InMemoryStorage {
    let mut storage = InMemoryStorage::new();
    for (address, account) in &unit.pre {
        let slots = account
            .storage
            .iter()
            .filter(|(_, value)| !value.is_zero())
            .map(|(slot, value)| (*slot, *value));
        storage.insert_account_with_code(
            *address,
            account.balance,
            account.nonce,
            account.code.clone(),
            slots,
        );
    }
    let number = saturating_u64(unit.env.current_number);
    for n in number.saturating_sub(256)..number {
        storage.insert_block_hash(n, keccak256(n.to_string().as_bytes()));
    }
    storage
}

/// Runs one case: `Ok` when it passes, else what differed.
fn run_case<F>(
    unit: &TestUnit,
    case: &Test,
    spec: SpecId,
    storage: &InMemoryStorage,
    execute: &F,
) -> Result<(), String>
where
    F: Fn(
        &ChainSpec,
        &Block<Recovered<TxEnvelope>>,
        &InMemoryStorage,
    ) -> Result<BlockOutput, ExecutionError>,
{
    let expected_exception = case.expect_exception.as_deref();
    let tx = match build_transaction(unit, case) {
        Ok(tx) => tx,
        // A transaction that cannot even be formed is rejected: the expected outcome.
        Err(_) if expected_exception.is_some() => return check_rejected(unit, case, spec),
        Err(reason) => return Err(format!("cannot build the transaction: {reason}")),
    };
    let block = Block {
        header: build_header(unit, spec),
        body: BlockBody {
            transactions: vec![tx],
            ommers: Vec::new(),
            withdrawals: None,
        },
    };
    let result = execute(&ChainSpec::fixed(spec), &block, storage);
    match (expected_exception, result) {
        (Some(_), Err(error)) if is_transaction_rejection(&error) => {
            check_rejected(unit, case, spec)
        }
        (Some(expected), Err(error)) => Err(format!(
            "expected exception {expected}, got a non-transaction error: {error}"
        )),
        (Some(expected), Ok(_)) => Err(format!(
            "expected exception {expected}, but the block executed"
        )),
        (None, Err(error)) => Err(format!("execution failed: {error}")),
        (None, Ok(output)) => check_post(unit, case, &output),
    }
}

/// Whether an execution error is the rejection of the transaction (what `expectException`
/// expects), rather than a storage, header or internal failure.
fn is_transaction_rejection(error: &ExecutionError) -> bool {
    matches!(
        error,
        ExecutionError::InvalidTransaction { .. }
            | ExecutionError::UnsupportedTransaction { .. }
            | ExecutionError::TxGasLimitAboveRemaining { .. }
    )
}

/// A rejected transaction leaves the pre-state: its root must be the expected one.
///
/// One convention of the state-test format (geth's runner, which fills the tests, touches the
/// coinbase with a zero reward after the transaction, valid or not): before Spurious Dragon
/// (EIP-161) that touch creates the coinbase as an empty account if it did not exist.
fn check_rejected(unit: &TestUnit, case: &Test, spec: SpecId) -> Result<(), String> {
    let mut accounts = post_accounts(unit, &StateChanges::default());
    if !spec.is_enabled_in(SpecId::SPURIOUS_DRAGON) {
        accounts
            .entry(unit.env.current_coinbase)
            .or_insert_with(PostAccount::empty);
    }
    let root = state_root(&accounts);
    if root != case.hash {
        return Err(format!(
            "transaction rejected as expected, but the pre-state root {root} is not the \
             expected post-state root {}",
            case.hash
        ));
    }
    Ok(())
}

/// Compares the post-state root and the logs hash with the case's.
fn check_post(unit: &TestUnit, case: &Test, output: &BlockOutput) -> Result<(), String> {
    let mut differences = Vec::new();
    let root = state_root(&post_accounts(unit, &output.state_changes));
    if root != case.hash {
        differences.push(format!("state root {root}, expected {}", case.hash));
    }
    let logs: Vec<Log> = output
        .receipts
        .iter()
        .flat_map(|receipt| receipt.logs.iter().cloned())
        .collect();
    let logs_hash = logs_hash(&logs);
    if logs_hash != case.logs {
        differences.push(format!(
            "logs hash {logs_hash}, expected {} ({} logs)",
            case.logs,
            logs.len()
        ));
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(differences.join("; "))
    }
}

/// Keccak-256 of the RLP list of `logs` (the `logs` field of a state test).
pub fn logs_hash(logs: &[Log]) -> B256 {
    let mut buf = Vec::new();
    alloy_rlp::encode_list::<Log, Log>(logs, &mut buf);
    keccak256(buf)
}

/// An account of the post-state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PostAccount {
    nonce: u64,
    balance: U256,
    code_hash: B256,
    /// Non-zero slots.
    storage: BTreeMap<U256, U256>,
}

impl PostAccount {
    fn empty() -> Self {
        Self {
            nonce: 0,
            balance: U256::ZERO,
            code_hash: KECCAK_EMPTY,
            storage: BTreeMap::new(),
        }
    }
}

/// The pre-state with `changes` applied: accounts without `info` removed, `storage_reset`
/// wiping old slots, zero-valued slots removed.
fn post_accounts(unit: &TestUnit, changes: &StateChanges) -> BTreeMap<Address, PostAccount> {
    let mut accounts: BTreeMap<Address, PostAccount> = unit
        .pre
        .iter()
        .map(|(address, account)| {
            let code_hash = if account.code.is_empty() {
                KECCAK_EMPTY
            } else {
                keccak256(&account.code)
            };
            let storage = account
                .storage
                .iter()
                .filter(|(_, value)| !value.is_zero())
                .map(|(slot, value)| (*slot, *value))
                .collect();
            let post = PostAccount {
                nonce: account.nonce,
                balance: account.balance,
                code_hash,
                storage,
            };
            (*address, post)
        })
        .collect();
    apply_changes(&mut accounts, changes);
    accounts
}

fn apply_changes(accounts: &mut BTreeMap<Address, PostAccount>, changes: &StateChanges) {
    for (address, change) in changes {
        let Some(info) = &change.info else {
            accounts.remove(address);
            continue;
        };
        let account = accounts.entry(*address).or_insert_with(PostAccount::empty);
        account.nonce = info.nonce;
        account.balance = info.balance;
        account.code_hash = info.code_hash;
        if change.storage_reset {
            account.storage.clear();
        }
        for (slot, value) in &change.storage {
            if value.is_zero() {
                account.storage.remove(slot);
            } else {
                account.storage.insert(*slot, *value);
            }
        }
    }
}

/// The state trie root: a secure trie keyed by keccak256(address) of RLP accounts.
fn state_root(accounts: &BTreeMap<Address, PostAccount>) -> B256 {
    state_root_unhashed(accounts.iter().map(|(address, account)| {
        let storage_root = storage_root_unhashed(
            account
                .storage
                .iter()
                .map(|(slot, value)| (B256::from(*slot), *value)),
        );
        let trie_account = TrieAccount {
            nonce: account.nonce,
            balance: account.balance,
            storage_root,
            code_hash: account.code_hash,
        };
        (*address, trie_account)
    }))
}

fn saturating_u64(value: U256) -> u64 {
    value.saturating_to()
}

fn saturating_u128(value: U256) -> u128 {
    value.saturating_to()
}

/// The one-transaction block's header from the test's `env`.
fn build_header(unit: &TestUnit, spec: SpecId) -> Header {
    let env = &unit.env;
    let london = spec.is_enabled_in(SpecId::LONDON);
    let cancun = spec.is_enabled_in(SpecId::CANCUN);
    Header {
        beneficiary: env.current_coinbase,
        difficulty: env.current_difficulty,
        number: saturating_u64(env.current_number),
        gas_limit: saturating_u64(env.current_gas_limit),
        timestamp: saturating_u64(env.current_timestamp),
        mix_hash: if spec.is_enabled_in(SpecId::MERGE) {
            env.current_random.unwrap_or_default()
        } else {
            B256::ZERO
        },
        base_fee_per_gas: env
            .current_base_fee
            .map(saturating_u64)
            .or(london.then_some(DEFAULT_BASE_FEE)),
        excess_blob_gas: env
            .current_excess_blob_gas
            .map(saturating_u64)
            .or(cancun.then_some(0)),
        blob_gas_used: cancun.then_some(0),
        // The executor requires a root from Cancun on; state tests have none and no test's
        // pre-state holds the EIP-4788 contract, so the zero root changes nothing.
        parent_beacon_block_root: env.current_beacon_root.or(cancun.then_some(B256::ZERO)),
        ..Default::default()
    }
}

/// The case's transaction, of the type its fields imply, with a dummy signature and the test's
/// sender. `Err` when it cannot be formed (unsigned, a value out of range, a blob or EIP-7702
/// transaction without a destination).
fn build_transaction(unit: &TestUnit, case: &Test) -> Result<Recovered<TxEnvelope>, String> {
    let parts = &unit.transaction;
    let indexes = &case.indexes;
    let secret_key = parts
        .secret_key
        .ok_or("no secretKey: the transaction is unsigned")?;
    let sender = match parts.sender {
        Some(sender) => sender,
        None => recover_address(secret_key.as_slice())
            .ok_or_else(|| format!("secretKey {secret_key} is not a valid key"))?,
    };
    let input = parts
        .data
        .get(indexes.data)
        .cloned()
        .ok_or_else(|| format!("data index {} out of range", indexes.data))?;
    let gas_limit = parts
        .gas_limit
        .get(indexes.gas)
        .map(|gas| saturating_u64(*gas))
        .ok_or_else(|| format!("gas index {} out of range", indexes.gas))?;
    let value = *parts
        .value
        .get(indexes.value)
        .ok_or_else(|| format!("value index {} out of range", indexes.value))?;
    let nonce = u64::try_from(parts.nonce).map_err(|_| format!("nonce {} too big", parts.nonce))?;
    let chain_id = parts.chain_id.map(saturating_u64);
    let access_list = parts
        .access_lists
        .get(indexes.data)
        .cloned()
        .flatten()
        .unwrap_or_default();
    let gas_price = parts.gas_price.map(saturating_u128).unwrap_or_default();
    let max_fee_per_gas = parts
        .max_fee_per_gas
        .map(saturating_u128)
        .unwrap_or_default();
    let max_priority_fee_per_gas = parts
        .max_priority_fee_per_gas
        .map(saturating_u128)
        .unwrap_or_default();
    let kind = parts.to.map_or(TxKind::Create, TxKind::Call);
    let call_target = || -> Result<Address, String> {
        parts
            .to
            .ok_or_else(|| "a blob or EIP-7702 transaction needs a destination".to_string())
    };
    let tx_type = parts
        .tx_type(indexes.data)
        .ok_or("a blob or EIP-7702 transaction needs a destination")? as u8;

    let signature = Signature::new(U256::from(1), U256::from(1), false);
    let envelope = match tx_type {
        0 => TxEnvelope::from(Signed::new_unhashed(
            TxLegacy {
                chain_id,
                nonce,
                gas_price,
                gas_limit,
                to: kind,
                value,
                input,
            },
            signature,
        )),
        1 => TxEnvelope::from(Signed::new_unhashed(
            TxEip2930 {
                chain_id: chain_id.unwrap_or(1),
                nonce,
                gas_price,
                gas_limit,
                to: kind,
                value,
                access_list,
                input,
            },
            signature,
        )),
        2 => TxEnvelope::from(Signed::new_unhashed(
            TxEip1559 {
                chain_id: chain_id.unwrap_or(1),
                nonce,
                gas_limit,
                max_fee_per_gas,
                max_priority_fee_per_gas,
                to: kind,
                value,
                access_list,
                input,
            },
            signature,
        )),
        3 => TxEnvelope::from(Signed::new_unhashed(
            TxEip4844 {
                chain_id: chain_id.unwrap_or(1),
                nonce,
                gas_limit,
                max_fee_per_gas,
                max_priority_fee_per_gas,
                to: call_target()?,
                value,
                access_list,
                blob_versioned_hashes: parts.blob_versioned_hashes.clone(),
                max_fee_per_blob_gas: parts
                    .max_fee_per_blob_gas
                    .map(saturating_u128)
                    .unwrap_or_default(),
                input,
            },
            signature,
        )),
        4 => TxEnvelope::from(Signed::new_unhashed(
            TxEip7702 {
                chain_id: chain_id.unwrap_or(1),
                nonce,
                gas_limit,
                max_fee_per_gas,
                max_priority_fee_per_gas,
                to: call_target()?,
                value,
                access_list,
                authorization_list: parts
                    .authorization_list
                    .iter()
                    .flatten()
                    .cloned()
                    .map(Into::into)
                    .collect(),
                input,
            },
            signature,
        )),
        other => return Err(format!("unsupported transaction type {other}")),
    };
    Ok(Recovered::new_unchecked(envelope, sender))
}

/// Counts of a state-test run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Cases passed.
    pub passed: usize,
    /// Cases failed (and files that could not be run).
    pub failed: usize,
    /// Cases skipped.
    pub skipped: usize,
}

impl Summary {
    /// Adds a file's counts.
    pub fn add(&mut self, report: &FileReport) {
        self.passed += report.passed();
        self.failed += report.failed();
        self.skipped += report.skipped();
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_list_parsing_and_matching() {
        let list =
            SkipList::parse("# comment\n\nstFoo/bar.json  too slow\nsomeTest   revm lacks X\n")
                .unwrap();
        assert_eq!(list.entries.len(), 2);
        assert!(
            list.file_skip(Path::new("/a/GeneralStateTests/stFoo/bar.json"))
                .is_some()
        );
        assert!(
            list.file_skip(Path::new("/a/GeneralStateTests/xstFoo/bar.json"))
                .is_none()
        );
        assert!(list.file_skip(Path::new("/a/stFoo/baz.json")).is_none());
        assert_eq!(list.test_skip("someTest").unwrap().reason, "revm lacks X");
        assert!(list.test_skip("bar.json").is_none());
        assert!(SkipList::parse("lonely").is_err());
        assert!(SkipList::builtin().is_ok());
    }

    #[test]
    fn empty_logs_hash() {
        // keccak256(rlp([])) = keccak256(0xc0)
        assert_eq!(logs_hash(&[]), keccak256([0xc0]));
    }

    #[test]
    fn empty_state_root() {
        assert_eq!(state_root(&BTreeMap::new()), alloy_trie::EMPTY_ROOT_HASH);
    }
}
