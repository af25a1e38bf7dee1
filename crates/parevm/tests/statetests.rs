//! ethereum/tests GeneralStateTests through the parallel executor, each case through both engines:
//! Block-STM at 2 threads, and the pipeline at 1 thread (which speculates every transaction and
//! validates it against the committed state before applying it). One trial per fixture file under
//! `<fixtures>/ethereum-tests/GeneralStateTests`.
//!
//! The fixtures live in `../shared/fixtures` relative to the repository root; `PAREVM_FIXTURES`
//! overrides the path. Files and tests on the skip list (`parevm-workloads/statetest-skips.txt`)
//! are listed as ignored, and so are the few files that take minutes (`SLOW_FILES`, kind `slow`:
//! `cargo test -p parevm --test statetests -- --ignored` runs them). A missing fixtures directory
//! is a failure, never a silent pass.

use std::{
    num::NonZeroUsize,
    path::{Path, PathBuf},
    sync::Arc,
};

use libtest_mimic::{Arguments, Failed, Trial};
use parevm::{ExecutorConfig, ParallelExecutor, Strategy};
use parevm_workloads::statetest::{SkipList, SpecName, collect_files, fork_spec, run_file};

/// At most this many failure lines per file in a trial's message.
const MAX_LINES: usize = 40;

fn fixtures_dir() -> PathBuf {
    std::env::var_os("PAREVM_FIXTURES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
        PathBuf::from,
    )
}

fn main() {
    let args = Arguments::from_args();
    libtest_mimic::run(&args, trials()).exit();
}

/// A trial that fails with `message`.
fn failing(name: &str, message: String) -> Trial {
    Trial::test(name, move || Err(Failed::from(message)))
}

fn trials() -> Vec<Trial> {
    let root = fixtures_dir().join("ethereum-tests/GeneralStateTests");
    let skips = match SkipList::builtin() {
        Ok(skips) => Arc::new(skips),
        Err(error) => return vec![failing("skip_list", error.to_string())],
    };
    let files = match collect_files(std::slice::from_ref(&root)) {
        Ok(files) if !files.is_empty() => files,
        Ok(_) => {
            return vec![failing(
                "fixtures",
                format!("no state-test files under {}", root.display()),
            )];
        }
        Err(error) => {
            return vec![failing(
                "fixtures",
                format!(
                    "state-test fixtures not found ({error}); set PAREVM_FIXTURES to the \
                     shared fixtures directory"
                ),
            )];
        }
    };

    for (file, why) in SLOW_FILES {
        eprintln!("ignored as slow (run them with `-- --ignored`): {file}: {why}");
    }
    let mut trials: Vec<Trial> = files
        .into_iter()
        .map(|path| {
            let name = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let slow = SLOW_FILES.iter().any(|(suffix, _)| name.ends_with(suffix));
            let ignored = slow || skips.file_skip(&path).is_some();
            let kind = if slow { "slow" } else { "" };
            let skips = Arc::clone(&skips);
            Trial::test(name, move || run_trial(&path, &skips))
                .with_kind(kind)
                .with_ignored_flag(ignored)
        })
        .collect();

    // Tests skipped by name, and forks revm cannot run, are listed as ignored trials too.
    for entry in skips.entries.iter().filter(|entry| !entry.is_path()) {
        let name = format!("skip-list/{}", entry.pattern);
        trials.push(Trial::test(name, || Ok(())).with_ignored_flag(true));
    }
    for fork in [SpecName::Constantinople] {
        if fork_spec(&fork).is_err() {
            let name = format!("unsupported-fork/{fork:?}");
            trials.push(Trial::test(name, || Ok(())).with_ignored_flag(true));
        }
    }
    trials
}

/// Files that take minutes through each engine (one transaction looping in the interpreter or a
/// precompile until its gas runs out): listed as ignored trials of kind `slow`, run with
/// `cargo test -p parevm --test statetests -- --ignored` (revm's, reth's and the execution specs'
/// runners skip them too). Each is named, with why, on stderr when the suite starts.
const SLOW_FILES: [(&str, &str); 2] = [
    (
        "stTimeConsuming/CALLBlake2f_MaxRounds.json",
        "BLAKE2f at 2^32-1 rounds, 6 cases: about 50 s a case in a release build, sequentially",
    ),
    (
        "VMTests/vmPerformance/loopMul.json",
        "MUL loops to the gas limit, 18 cases: 248 s for both engines in this test build",
    ),
];

/// The engines every case runs through: (strategy, threads).
const ENGINES: [(Strategy, usize); 2] = [(Strategy::BlockStm, 2), (Strategy::Pipeline, 1)];

fn run_trial(path: &Path, skips: &SkipList) -> Result<(), Failed> {
    for (strategy, threads) in ENGINES {
        run_engine(path, skips, strategy, threads)?;
    }
    Ok(())
}

fn run_engine(
    path: &Path,
    skips: &SkipList,
    strategy: Strategy,
    threads: usize,
) -> Result<(), Failed> {
    let executor = ParallelExecutor::new(ExecutorConfig {
        concurrency: NonZeroUsize::new(threads).unwrap_or(NonZeroUsize::MIN),
        strategy,
    });
    // Strict: an engine's internal failure (re-executed sequentially, so with a correct output)
    // fails the case.
    let execute =
        |chain: &_, block: &_, storage: &_| executor.execute_strict(chain, block, storage).0;
    let report = run_file(path, skips, &execute);
    let lines = report.failure_lines();
    if lines.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "{strategy} at {threads} thread(s): {} of {} case(s) failed:\n",
        report.failed(),
        report.cases.len()
    );
    for line in lines.iter().take(MAX_LINES) {
        message.push_str(line);
        message.push('\n');
    }
    if lines.len() > MAX_LINES {
        message.push_str(&format!("... and {} more\n", lines.len() - MAX_LINES));
    }
    Err(message.into())
}
