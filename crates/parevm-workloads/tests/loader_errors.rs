//! Bad input to the mainnet block loader: every failure is a typed error naming the file (and
//! the account or code hash involved), never a panic.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
};

use alloy_primitives::{Address, B256, U256, keccak256};
use parevm::Storage;
use parevm_workloads::mainnet::{LoadError, load_block};

const ACCOUNT: &str = "0x00000000000000000000000000000000000000aa";
const CODE: &str = "0x6001600055";

/// A `mainnet/`-shaped directory in the system temp dir, removed on drop:
/// `root/{bytecodes.json, block_hashes.json}` and `root/blocks/100/{block.json, pre_state.json}`.
struct Fixture {
    root: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "parevm-loader-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("blocks/100")).expect("create temp fixture dir");
        let fixture = Self { root };
        let code_hash = code_hash();
        fixture.write("blocks/100/block.json", &block_json());
        fixture.write(
            "blocks/100/pre_state.json",
            &format!(
                r#"{{"{ACCOUNT}": {{"balance": "0x10", "nonce": 1, "code_hash": "{code_hash}",
                    "storage": {{"0x1": "0x2", "0x3": "0x0"}}}},
                   "0x00000000000000000000000000000000000000bb": {{"balance": "0x0", "nonce": 0,
                    "storage": {{}}}}}}"#
            ),
        );
        fixture.write(
            "bytecodes.json",
            &format!(
                r#"{{"{code_hash}": "{CODE}", "0x{}": "0xnot-needed"}}"#,
                "11".repeat(32)
            ),
        );
        fixture.write(
            "block_hashes.json",
            &format!(r#"{{"99": "0x{}"}}"#, "22".repeat(32)),
        );
        fixture
    }

    fn dir(&self) -> PathBuf {
        self.root.join("blocks/100")
    }

    fn write(&self, relative: &str, contents: &str) {
        std::fs::write(self.root.join(relative), contents).expect("write temp fixture file");
    }

    fn remove(&self, relative: &str) {
        std::fs::remove_file(self.root.join(relative)).expect("remove temp fixture file");
    }

    fn error(&self) -> LoadError {
        match load_block(&self.dir()) {
            Ok(_) => panic!("loading {} should fail", self.dir().display()),
            Err(error) => error,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn code_hash() -> B256 {
    keccak256(alloy_primitives::hex::decode(CODE).expect("valid hex"))
}

fn block_json() -> String {
    let zero = format!("0x{}", "00".repeat(32));
    let bloom = format!("0x{}", "00".repeat(256));
    format!(
        r#"{{"hash": "{zero}", "parentHash": "{zero}", "sha3Uncles": "{zero}",
            "miner": "0x0000000000000000000000000000000000000001", "stateRoot": "{zero}",
            "transactionsRoot": "{zero}", "receiptsRoot": "{zero}", "logsBloom": "{bloom}",
            "difficulty": "0x1", "number": "0x64", "gasLimit": "0x1c9c380", "gasUsed": "0x0",
            "timestamp": "0x1", "extraData": "0x", "mixHash": "{zero}",
            "nonce": "0x0000000000000000", "uncles": ["{zero}"], "transactions": []}}"#
    )
}

fn assert_mentions(error: &LoadError, needles: &[&str]) {
    let message = error.to_string().to_lowercase();
    for needle in needles {
        assert!(
            message.contains(&needle.to_lowercase()),
            "error {message:?} should mention {needle:?}"
        );
    }
}

fn path_str(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn valid_fixture_loads() {
    let fixture = Fixture::new();
    let block = load_block(&fixture.dir()).expect("valid fixture");
    assert_eq!(block.number(), 100);
    assert_eq!(block.expected_gas_used(), 0);
    assert_eq!(block.uncle_count, 1);
    assert!(block.block.body.transactions.is_empty());
    assert!(!block.receipts_root_checkable());
    let account: Address = ACCOUNT.parse().expect("address");
    let basic = block
        .storage
        .basic(&account)
        .unwrap()
        .expect("account exists");
    assert_eq!(basic.balance, U256::from(16));
    assert_eq!(basic.nonce, 1);
    assert_eq!(basic.code_hash, code_hash());
    assert_eq!(
        block.storage.storage(&account, &U256::from(1)).unwrap(),
        U256::from(2)
    );
    // The zero-valued slot is not stored; only the used bytecode is loaded.
    assert_eq!(block.storage.accounts()[&account].storage.len(), 1);
    assert!(block.storage.has_code(&code_hash()));
    assert!(!block.storage.has_code(&B256::repeat_byte(0x11)));
    assert_eq!(
        block.storage.block_hash(99).unwrap(),
        B256::repeat_byte(0x22)
    );
}

#[test]
fn shared_files_in_the_block_dir_take_precedence() {
    let fixture = Fixture::new();
    fixture.write("blocks/100/block_hashes.json", "{");
    let error = fixture.error();
    assert!(matches!(error, LoadError::Json { .. }), "{error:?}");
    assert_mentions(
        &error,
        &[&path_str(&fixture.dir().join("block_hashes.json"))],
    );
}

#[test]
fn missing_block_file() {
    let fixture = Fixture::new();
    fixture.remove("blocks/100/block.json");
    let error = fixture.error();
    assert!(matches!(error, LoadError::Io { .. }), "{error:?}");
    assert_mentions(&error, &["block.json"]);
}

#[test]
fn missing_pre_state_file() {
    let fixture = Fixture::new();
    fixture.remove("blocks/100/pre_state.json");
    assert_mentions(&fixture.error(), &["pre_state.json"]);
}

#[test]
fn missing_bytecodes_file() {
    let fixture = Fixture::new();
    fixture.remove("bytecodes.json");
    let error = fixture.error();
    assert!(matches!(error, LoadError::NotFound { .. }), "{error:?}");
    assert_mentions(&error, &["bytecodes.json"]);
}

#[test]
fn missing_block_hashes_file() {
    let fixture = Fixture::new();
    fixture.remove("block_hashes.json");
    assert_mentions(&fixture.error(), &["block_hashes.json"]);
}

#[test]
fn truncated_block_json() {
    let fixture = Fixture::new();
    let json = block_json();
    fixture.write("blocks/100/block.json", &json[..json.len() / 2]);
    let error = fixture.error();
    assert!(matches!(error, LoadError::Json { .. }), "{error:?}");
    assert_mentions(&error, &["block.json", "invalid JSON"]);
}

#[test]
fn truncated_pre_state_json() {
    let fixture = Fixture::new();
    fixture.write(
        "blocks/100/pre_state.json",
        &format!(r#"{{"{ACCOUNT}": {{"balance": "0x1", "#),
    );
    let error = fixture.error();
    assert!(matches!(error, LoadError::Json { .. }), "{error:?}");
    assert_mentions(&error, &["pre_state.json"]);
}

#[test]
fn truncated_bytecodes_json() {
    let fixture = Fixture::new();
    fixture.write("bytecodes.json", &format!(r#"{{"{}": "0x60"#, code_hash()));
    let error = fixture.error();
    assert!(matches!(error, LoadError::Json { .. }), "{error:?}");
    assert_mentions(&error, &["bytecodes.json"]);
}

#[test]
fn bad_hex_balance() {
    let fixture = Fixture::new();
    fixture.write(
        "blocks/100/pre_state.json",
        &format!(r#"{{"{ACCOUNT}": {{"balance": "0xzz", "nonce": 0, "storage": {{}}}}}}"#),
    );
    let error = fixture.error();
    assert!(matches!(error, LoadError::Invalid { .. }), "{error:?}");
    assert_mentions(&error, &["pre_state.json", "balance", ACCOUNT]);
}

#[test]
fn bad_hex_storage_value() {
    let fixture = Fixture::new();
    fixture.write(
        "blocks/100/pre_state.json",
        &format!(
            r#"{{"{ACCOUNT}": {{"balance": "0x1", "nonce": 0, "storage": {{"0x5": "12"}}}}}}"#
        ),
    );
    assert_mentions(&fixture.error(), &["pre_state.json", ACCOUNT, "slot 0x5"]);
}

#[test]
fn bad_hex_address() {
    let fixture = Fixture::new();
    fixture.write(
        "blocks/100/pre_state.json",
        r#"{"0xnothex": {"balance": "0x1", "nonce": 0, "storage": {}}}"#,
    );
    assert_mentions(&fixture.error(), &["pre_state.json", "0xnothex"]);
}

#[test]
fn bad_hex_code_hash() {
    let fixture = Fixture::new();
    fixture.write(
        "blocks/100/pre_state.json",
        &format!(
            r#"{{"{ACCOUNT}": {{"balance": "0x1", "nonce": 0, "code_hash": "0x1234",
                 "storage": {{}}}}}}"#
        ),
    );
    assert_mentions(&fixture.error(), &["pre_state.json", "code_hash", ACCOUNT]);
}

#[test]
fn bad_hex_bytecode() {
    let fixture = Fixture::new();
    fixture.write(
        "bytecodes.json",
        &format!(r#"{{"{}": "0x60g1"}}"#, code_hash()),
    );
    let error = fixture.error();
    assert!(matches!(error, LoadError::Invalid { .. }), "{error:?}");
    assert_mentions(&error, &["bytecodes.json", &code_hash().to_string()]);
}

#[test]
fn bytecode_not_matching_its_hash() {
    let fixture = Fixture::new();
    fixture.write(
        "bytecodes.json",
        &format!(r#"{{"{}": "0x00"}}"#, code_hash()),
    );
    assert_mentions(
        &fixture.error(),
        &["bytecodes.json", &code_hash().to_string(), "keccak256"],
    );
}

#[test]
fn missing_bytecode() {
    let fixture = Fixture::new();
    fixture.write("bytecodes.json", "{}");
    let error = fixture.error();
    assert!(
        matches!(error, LoadError::MissingBytecode { .. }),
        "{error:?}"
    );
    assert_mentions(
        &error,
        &[
            "bytecodes.json",
            "pre_state.json",
            ACCOUNT,
            &code_hash().to_string(),
        ],
    );
}

#[test]
fn bad_block_hash() {
    let fixture = Fixture::new();
    fixture.write("block_hashes.json", r#"{"99": "0x12"}"#);
    assert_mentions(&fixture.error(), &["block_hashes.json", "block 99"]);
}

#[test]
fn bad_hex_in_block_json() {
    let fixture = Fixture::new();
    fixture.write(
        "blocks/100/block.json",
        &block_json().replace(r#""gasUsed": "0x0""#, r#""gasUsed": "0xqq""#),
    );
    assert_mentions(&fixture.error(), &["block.json", "invalid JSON"]);
}
