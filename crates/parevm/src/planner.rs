//! The planner: how a block is to run — sequentially, through the pipeline (on the calling thread
//! alone or on the pool) or through Block-STM — chosen before anything runs, from the block's
//! transaction list and shape, its gas, the fork, and whether some recipients have code.

use std::cell::{LazyCell, OnceCell};

use alloy_consensus::{Block, Transaction, TxEnvelope, transaction::Recovered};
use revm::primitives::{KECCAK_EMPTY, hardfork::SpecId};

use crate::{
    TxIdx,
    executor::Strategy,
    pipeline::{
        CHAIN_FIRST_MIN, PUBLISH_MAX_TXS, Speculable, chain_followers, code_hash_of,
        hot_from_start, is_plain_transfer, speculability,
    },
    shape::BlockShape,
    storage::Storage,
};

/// How a block is to run: the strategy, on how many threads, and the reason when it is
/// sequential.
pub(crate) struct Plan {
    pub(crate) strategy: Strategy,
    /// On the calling thread alone, whatever the executor's threads.
    pub(crate) alone: bool,
    pub(crate) reason: Option<String>,
}

impl Plan {
    pub(crate) fn sequential(reason: String) -> Self {
        Self {
            strategy: Strategy::Sequential,
            alone: false,
            reason: Some(reason),
        }
    }

    pub(crate) fn parallel(strategy: Strategy) -> Self {
        Self {
            strategy,
            alone: false,
            reason: None,
        }
    }

    /// `strategy` on the calling thread alone.
    fn alone(strategy: Strategy) -> Self {
        Self {
            alone: true,
            ..Self::parallel(strategy)
        }
    }
}

/// Blocks with less gas than this run sequentially: the fixed cost of parallel execution (waking
/// workers, assembling the output) does not pay below it.
const MIN_PARALLEL_GAS: u64 = 5_000_000;

/// From Berlin on, a block with less gas than [`MIN_PARALLEL_GAS`] but at least this much runs
/// Block-STM if its transactions are heavy enough for it (and it suits it otherwise). EIP-2929
/// prices a cold account or slot access at 2,100-2,600 gas, close to what it costs in time, so a
/// few Mgas of such transactions take a millisecond or more; before Berlin the same gas bought
/// many more cheap accesses. Measured at 2 threads on the four mainnet fixtures concerned (seven
/// rounds of 30-40 runs, Block-STM forced, medians of the rounds): 19426587 (2.6 Mgas, 2.6 ms)
/// 1.18x, 19934116 (3.4 Mgas, 1.5 ms) 1.57x; 19923400 (1.6 Mgas) 1.11x and 19933122 (2.1 Mgas)
/// 1.12x there, but 0.64-0.94x in some `bench` rounds, when this was 2.5 Mgas. Since Block-STM
/// reads a contract's balance only where its code observes it, those two gain 1.15-1.29x in
/// `bench` (four rounds each, first quartiles of the rounds 1.07-1.24x; 0.98-1.10x before). The
/// pre-Berlin ones stay sequential (2179522: 0.43-0.47x, 3356896: 0.68-0.73x).
const MIN_HEAVY_GAS_SINCE_BERLIN: u64 = 1_500_000;

/// A block that one sender's nonce chain dominates runs the pipeline from this much gas on when
/// the pipeline speculates nearly every transaction that follows one of its sender's (with the
/// sender's funds assumed, checked at commit: see [`CHAIN_CALLS_TOLERATED`]); below it, on the
/// calling thread alone when most of the block are plain transfers
/// ([`ALONE_MIN_TRANSFERS_PERCENT`]), otherwise sequentially.
/// Measured with `examples/strategies.rs`, medians of 41 runs: one sender's chain of transfers,
/// 1.33-1.82x with the pipeline from 5 to 60 Mgas (1.99x at 200 Mgas, 7 runs). The mainnet
/// payout blocks (8-15 Mgas, 0.3-1.5 ms; a mining pool paying out in its own block) ran
/// 0.93-1.32x until their transfers were speculated natively with the beneficiary as sender and
/// the first transaction was left to the committer (a heavy first call that pays the beneficiary
/// was executed twice): since then 1.34-1.63x at 2 threads (5891667, 11814555, 12300570,
/// 12520364; `profile_block`, 300 runs each).
const MIN_CHAIN_PIPELINE_GAS: u64 = MIN_PARALLEL_GAS;

/// A block that one sender's chain dominates runs the pipeline only if at most one in this many
/// of its transactions are left to the committer for following their sender's (see
/// [`speculability`]: the committer executes those itself, in order): mainnet 12520364, a pool's
/// 650 payouts and one call among them, 1.34x with the pipeline forced at 2 threads
/// (`profile_block`, 300 runs).
const CHAIN_CALLS_TOLERATED: usize = 20;

/// A block with less gas than [`ALONE_MAX_GAS`] of which at least this share (in percent) are
/// plain transfers runs the pipeline on the calling thread alone (see `plan_block`).
const ALONE_MIN_TRANSFERS_PERCENT: usize = 75;

/// Below this much gas, a block of mostly plain transfers runs the pipeline alone (see
/// `plan_block`): above it, a second thread pays for its wake-up. Measured in `bench` (workers
/// parked between runs, as between a node's blocks), 5 rounds, one thread against two: plain
/// transfers 1.71-1.73 against 1.59-1.62 at 8 Mgas, 1.67 against 1.67-1.74 at 12 Mgas; one
/// sender's chain 1.64-1.67 against 1.45-1.47 and 1.61-1.64 against 1.51-1.59; a hot recipient
/// 1.71-1.72 against 1.51-1.52 and 1.67-1.71 against 1.55-1.64. Mainnet payout chains:
/// 5891667 (8 Mgas) 1.48-1.52 against 1.32-1.37, 11814555 (12.5 Mgas) 1.28-1.30 against
/// 1.10-1.29; above it 12300570 (14.9 Mgas) 1.23-1.24 against 1.51-1.52, 12520364 (15 Mgas)
/// 0.89-0.90 against 1.31-1.34.
const ALONE_MAX_GAS: u64 = 13_000_000;

/// How many of a block's first plain transfers [`transfers_go_into_code`] looks at.
const INTO_CODE_SAMPLE: usize = 16;

/// Whether at least a third of the first [`INTO_CODE_SAMPLE`] plain transfers of `block` go to
/// accounts with code (or to accounts `storage` fails to read): a sample, so that a block of
/// plain transfers is not looked up account by account before it runs. The pipeline speculates
/// a plain transfer natively only between accounts without code, and executes the others
/// directly, as sequentially: mainnet 2641321 (78 plain transfers of 83, 46 of them to distinct
/// contracts) ran 0.93-0.97x on the calling thread alone and 0.98-1.00x planned sequential (four
/// alternating `bench` rounds); 2179522 (11 of its 218 into code), 3356896 (17 of 166),
/// 11814555 (28 of 578) and 5891667 (3 of 380) run 1.2-1.5x alone.
fn transfers_go_into_code<S: Storage + ?Sized>(
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
) -> bool {
    let (mut sampled, mut into_code) = (0, 0);
    for to in (block.body.transactions.iter())
        .filter(|tx| is_plain_transfer(tx))
        .filter_map(|tx| tx.kind().to().copied())
        .take(INTO_CODE_SAMPLE)
    {
        sampled += 1;
        let codeless =
            (storage.basic(&to)).is_ok_and(|account| code_hash_of(account) == KECCAK_EMPTY);
        into_code += usize::from(!codeless);
    }
    into_code * 3 >= sampled.max(1)
}

/// Blocks with fewer transactions than this run sequentially.
const MIN_PARALLEL_TXS: usize = 16;

/// Block-STM's per-transaction overhead (versioned reads, publication, validation) is amortized
/// by heavy transactions: a block runs Block-STM only if its gas per transaction is at least this
/// (swaps, the mixed workload and most recent mainnet blocks), at any thread count. Lighter
/// blocks run the pipeline, whose overhead is lower but whose committer executes every
/// conflicting transaction itself. Calibrated on 2 cores (`docs/benchmarks.md`): ERC-20
/// transfers (34,600 gas) gain 1.5× with the pipeline and 1.0–1.3× with Block-STM; the mixed
/// workload (39,900) 0.7–0.95× and 1.1–1.35×. On 16 cores the pipeline kept its lead on light
/// blocks at 4–16 threads (ERC-20 2.4–3.7× against 1.3–1.6×, plain transfers 1.9–2.1× against
/// 0.5–0.7×; mainnet 4330482 and 8038679 at 8 threads 1.40× and 1.82× against 0.74× and 1.49×),
/// so the threshold no longer falls with the thread count (it was 76,000 / threads).
const BLOCK_STM_MIN_GAS_PER_TX: u64 = 38_000;

/// The strategy for a block, judged from what is known before running it, with the reason when
/// it is sequential.
pub(crate) fn plan_block<S: Storage + ?Sized>(
    threads: usize,
    spec: SpecId,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
    shape: &OnceCell<BlockShape>,
) -> Plan {
    let sequential = Plan::sequential;
    let txs = block.body.transactions.len();
    if txs < 2 {
        return sequential("fewer than two transactions".into());
    }
    if threads < 2 {
        return sequential("one thread".into());
    }
    if txs < MIN_PARALLEL_TXS {
        return sequential(format!(
            "{txs} transactions (fewer than {MIN_PARALLEL_TXS})"
        ));
    }
    let gas = expected_gas(block, shape);
    let gas_per_tx = gas / txs as u64;
    let heavy = gas_per_tx >= BLOCK_STM_MIN_GAS_PER_TX;
    let small = gas < MIN_PARALLEL_GAS;
    // Mostly plain transfers (`ALONE_MIN_TRANSFERS_PERCENT`), not into code (a sample:
    // `transfers_go_into_code`): small, they run the pipeline on
    // this thread alone, at the end of the checks below. Counted only for blocks with less gas
    // than `ALONE_MAX_GAS` (the others never ask), from the shape if it was found already.
    let transfers = LazyCell::new(|| {
        let plain_transfers = match shape.get() {
            Some(shape) => shape.plain_transfers,
            None => (block.body.transactions.iter())
                .filter(|tx| is_plain_transfer(tx))
                .count(),
        };
        plain_transfers * 100 >= txs * ALONE_MIN_TRANSFERS_PERCENT
            && !transfers_go_into_code(block, storage)
    });
    if small
        && !*transfers
        && !(heavy && gas >= MIN_HEAVY_GAS_SINCE_BERLIN && spec.is_enabled_in(SpecId::BERLIN))
    {
        return sequential(format!("{gas} gas (less than {MIN_PARALLEL_GAS})"));
    }
    // The longest same-sender chain: Block-STM waits for each predecessor, and the pipeline's
    // committer executes each follower that is not a plain transfer itself. When the chain covers
    // most of the block, parallelism does not pay (mainnet payout blocks with Block-STM forced:
    // 0.36–0.50×), unless nearly every follower is a plain transfer (all but one in
    // `CHAIN_CALLS_TOLERATED`) and the block is big enough for the pipeline
    // (`MIN_CHAIN_PIPELINE_GAS`) or mostly plain transfers (`transfers`: then alone if small).
    // Otherwise, such a chain is found without the map of chains: its sender sends a strict
    // majority of the transactions (a majority vote).
    let chain_covers =
        |longest: usize| format!("one sender's nonce chain covers {longest} of {txs} transactions");
    let chain_pipelined = gas >= MIN_CHAIN_PIPELINE_GAS || *transfers;
    if !chain_pipelined
        && let Some(longest) = majority_sender_count(block)
        && longest * 3 > txs * 2
    {
        return sequential(chain_covers(longest));
    }
    let shape = shape.get_or_init(|| BlockShape::of(block));
    let previous_of_sender = &shape.previous_of_sender;
    let longest = longest_chain(previous_of_sender);
    // A call that follows one of its sender's to a destination it already called is not
    // speculated on the pre-block state (see `speculability`): `serial` counts those. The
    // pipeline leaves to its committer those of them that are not in a long chain, speculated
    // each on the one before (`chain_followers`): `to_committer`.
    let serial = (0..txs)
        .filter(|&tx| {
            speculability(&block.body.transactions, previous_of_sender, tx) != Speculable::Yes
        })
        .count();
    // (Counted only where it decides: a walk over the block's chains.)
    let to_committer = if serial * 3 > txs {
        let next = shape.next_of_sender();
        let chains = shape.chains(&next);
        let chained: usize = (0..txs)
            .map(|head| chain_followers(block, chains, head, txs))
            .filter(|&followers| followers >= CHAIN_FIRST_MIN)
            .sum();
        serial - chained
    } else {
        serial
    };
    if longest * 3 > txs * 2 && !(serial * CHAIN_CALLS_TOLERATED <= txs && chain_pipelined) {
        return sequential(chain_covers(longest));
    }
    // A block suited to Block-STM whose calls rarely share contracts takes the pipeline, small or
    // not (if the pipeline's own conditions below hold); at two threads, so does one whose
    // speculations read the slots committed before them (see `committed_slots_pay`).
    let suits_block_stm = heavy && block_stm_suits(block, previous_of_sender);
    if suits_block_stm
        && !calls_rarely_share_contracts(block, threads)
        && !committed_slots_pay(threads, block, gas, shape)
    {
        return Plan::parallel(Strategy::BlockStm);
    }
    if small && !suits_block_stm && !*transfers {
        return sequential(format!(
            "{gas} gas (less than {MIN_PARALLEL_GAS}), not suited to Block-STM"
        ));
    }
    // With a third of the block left to the pipeline's committer, the pipeline does not pay
    // (mainnet 4370000 while its chain was left to the committer, 37 of 97: 0.74-1.06x with the
    // pipeline, forced).
    // Where the pipeline would not pay, a block suited to Block-STM goes back to it.
    if to_committer * 3 > txs {
        if suits_block_stm {
            return Plan::parallel(Strategy::BlockStm);
        }
        return sequential(format!(
            "{gas_per_tx} gas per transaction, {to_committer} of {txs} transactions call what \
             their sender called (or created) earlier in the block: too chained for either engine"
        ));
    }
    // A call without input (value sent to a contract's receive code) to a contract that much of
    // the block calls that way changes it every time: the pipeline leaves those transactions to
    // its committer, one after another (`pipeline::hot_from_start`). When they are more than two
    // thirds of the block, it adds only its overhead (mainnet 6196166, 79 of 108: 0.92x; 8889776,
    // 106 of 330: 1.18x). Below that, the other transactions pay for it even where Block-STM
    // suits the block (6137495, 33 of 60: 1.19-1.33x against Block-STM's 0.93-1.20x in three
    // `bench` rounds; it ran Block-STM when the bound was a half).
    let left: usize = (hot_from_start(block, shape, |to| storage.basic(to)).iter())
        .map(|(_, calls)| calls)
        .sum();
    if left * 3 > txs * 2 {
        if suits_block_stm {
            return Plan::parallel(Strategy::BlockStm);
        }
        return sequential(format!(
            "{left} of {txs} transactions call without input contracts that many of them call \
             so: the pipeline's committer would execute them one after another"
        ));
    }
    // A block with less gas than `ALONE_MAX_GAS` whose transactions are mostly plain transfers
    // (`transfers`) runs the pipeline on the calling thread alone: it speculates those natively,
    // without revm, at a fraction of their sequential cost, and executes the rest directly, as
    // sequentially; with no thread to wake and nothing crossing cores it pays from a few dozen
    // transfers. Its committer is then the bottleneck, which a second thread relieves only on
    // bigger blocks (`ALONE_MAX_GAS`). Measured with `examples/strategies.rs` (medians of 200-400
    // runs, the pipeline forced), plain transfers between distinct accounts at 1 thread against
    // 2: 1.30x at 19 transactions, 1.54x at 47, 1.67x at 95 (0.61x and 0.86x at 2 threads in the
    // seventeenth session, on the previous host), 1.68x against 1.18x at 142, 1.69x against 1.47x
    // at 223, 1.65x against 1.70x at 476 (10 Mgas), 1.74x against 2.08x at 1,428; one sender's
    // chain 1.57x and a hot recipient 1.59x at 95 alone. Mainnet, alone against sequential
    // (nineteenth session, 200-300 runs): 2179522 (218 of 222 plain transfers) 1.38-1.46x, 3356896
    // (166 of 176) 1.16-1.21x, 116525 (66 of 83) 1.10-1.15x; 2641321 (78 of 83, but 46 of them
    // into code, executed directly) 0.97x, 0.93-0.97x in the twenty-third session: since then
    // sequential, its transfers going into code (`transfers_go_into_code`).
    if gas < ALONE_MAX_GAS && *transfers {
        return Plan::alone(Strategy::Pipeline);
    }
    Plan::parallel(Strategy::Pipeline)
}

/// The gas `block` is expected to use: the header's gas used when known (validation, sync);
/// otherwise (block building) three quarters of the gas limits, a typical ratio on mainnet,
/// summed by the pass that finds the block's shape (into `shape`: one walk over the
/// transactions, not two, on the biggest blocks).
fn expected_gas(block: &Block<Recovered<TxEnvelope>>, shape: &OnceCell<BlockShape>) -> u64 {
    match block.header.gas_used {
        0 => shape.get_or_init(|| BlockShape::of(block)).gas_limits / 4 * 3,
        gas_used => gas_used,
    }
}

/// Whether a block heavy enough for Block-STM also has the structure it needs. Block-STM makes a
/// transaction that follows one of its sender's wait for it, and its aborts cascade through a
/// contract that most transactions change; the pipeline's committer executes such transactions
/// itself, at sequential cost. So Block-STM is not chosen
/// - when more than 2 in 5 transactions follow one of their sender's (mainnet 4370000, 48 of 97:
///   0.66-0.75x with Block-STM, forced);
/// - when 9 in 10 transactions or more carry no input (value transfers, to accounts with code or
///   without): on the four such mainnet blocks the pipeline did better at 2 threads in three
///   rounds of each (6196166, transfers to a sale contract that counts them: 0.86x vs 0.69x;
///   13217637 1.59x vs 1.30x; 14396881 1.31x vs 0.79x; 15274915 1.24x vs 0.99x, medians), and
///   on 16 cores at 8 threads too (14396881 1.56x vs 0.70x, 15274915 1.18x vs 1.00x, 13217637
///   1.71x vs 1.67x; 6196166 runs sequentially).
fn block_stm_suits(
    block: &Block<Recovered<TxEnvelope>>,
    previous_of_sender: &[Option<TxIdx>],
) -> bool {
    let txs = previous_of_sender.len();
    let followers = previous_of_sender.iter().flatten().count();
    if followers * 5 > txs * 2 {
        return false;
    }
    let without_input = block
        .body
        .transactions
        .iter()
        .filter(|tx| tx.input().is_empty())
        .count();
    without_input * 10 < txs * 9
}

/// Whether, at `threads`, a block that Block-STM suits and whose calls share contracts runs the
/// pipeline anyway, its speculations reading the slots committed before them (a block of at most
/// `PUBLISH_MAX_TXS` transactions, `committed_slots.rs`): a swap on a pool swapped earlier in the
/// block is then speculated validly once the earlier swap is committed, where it was always
/// rejected. At two threads it overtook Block-STM on three of the five mainnet blocks that took
/// it (`examples/strategies 2 100`, two rounds, pipeline against Block-STM: 12522062 1.53-1.52x
/// against 1.14-1.12x, 11114732 1.69-1.66x against 1.38-1.33x, 10760440 1.35x against
/// 1.15-1.12x; 7279999 1.43x against 1.51x), not on a block one transaction dominates
/// (15537394, a 26-Mgas contract creation of its 30 Mgas: 0.97-1.01x against 1.16-1.19x: the
/// committer commits nothing past it until it ends, and re-executes serially what the others
/// speculated before it, where Block-STM re-executes on every thread). Above two threads, and
/// for blocks under `MIN_PARALLEL_GAS` (none among the fixtures that take Block-STM): unmeasured,
/// Block-STM as before. A bigger block publishes only the slots of transactions to hot or
/// conflicted destinations (`pipeline::publish_if_hot`), so it takes the pipeline too unless one
/// destination gets more than a third of its transactions: then each of those waits for the one
/// before to be committed, and Block-STM did better (`uniswap-hot-pool` at 300 Mgas, every swap
/// through one pool: 1.06x against 0.96x pipelined; `mixed` at 1 Ggas, four pools among
/// transfers: Block-STM 1.11-1.14x against the pipeline's 1.24-1.36x, `profile_block`).
fn committed_slots_pay(
    threads: usize,
    block: &Block<Recovered<TxEnvelope>>,
    gas: u64,
    shape: &BlockShape,
) -> bool {
    let txs = &block.body.transactions;
    let dominates = |tx: &TxIdx| u128::from(txs[*tx].gas_limit()) * 3 >= u128::from(gas) * 2;
    threads <= 2
        && gas >= MIN_PARALLEL_GAS
        && !shape.giants.iter().any(dominates)
        && (txs.len() <= PUBLISH_MAX_TXS || shape.dominant_destination_calls().is_none())
}

/// A block heavy enough for Block-STM whose calls (transactions with input) rarely go to a
/// contract that another call of the block goes to: fewer than [`SHARED_CALLS_PERCENT`] of its
/// transactions are such calls; above 2 threads, fewer than
/// [`SHARED_CALLS_MANY_THREADS_PERCENT`]. The pipeline then beats Block-STM: Block-STM's edge is
/// re-executing conflicting transactions on any thread, and conflicts mostly come from contracts
/// that several transactions call; the pipeline's overhead is lower. Calibrated at 2 threads on
/// the 23 heavy mainnet fixtures (`docs/benchmarks.md`, eleventh session: geometric mean over
/// them +3.2% in each of five runs against Block-STM on all of them, two parameters fitted on 23
/// blocks) and on the synthetic ones: Uniswap swaps through distinct pools (no call shares a
/// contract) 1.55–2.03× with the pipeline against 1.59–1.78×, ahead in 8 of 9 runs; the mixed
/// workload (half of its transactions such calls: tokens and hot pools) 0.95–1.07× against
/// 1.11–1.32×.
fn calls_rarely_share_contracts(block: &Block<Recovered<TxEnvelope>>, threads: usize) -> bool {
    let txs = block.body.transactions.len();
    let mut calls = alloy_primitives::map::AddressMap::<usize>::default();
    for tx in &block.body.transactions {
        if let Some(to) = tx.kind().to()
            && !tx.input().is_empty()
        {
            *calls.entry(*to).or_default() += 1;
        }
    }
    let shared: usize = calls.values().filter(|calls| **calls > 1).sum();
    let percent = if threads > 2 {
        SHARED_CALLS_MANY_THREADS_PERCENT
    } else {
        SHARED_CALLS_PERCENT
    };
    shared * 100 < txs * percent
}

/// See [`calls_rarely_share_contracts`]. Until the eighteenth session, 30% from 80,000 gas per
/// transaction on: once the caller worked a block's first share itself (the pipeline's committer
/// no longer waiting for a worker to wake), the pipeline overtook Block-STM on four blocks of 38-41%
/// such calls (`examples/strategies 2 80`, pipeline against Block-STM: 18426253 1.28× against 1.18×,
/// 17034869 1.54× against 1.42×, 18085863 1.52× against 1.47×; 16257471 1.34× against 1.40×).
/// Block-STM stays ahead above it (10760440 at 61%: 1.06× against 1.15×; 12522062 at 59%, 7279999
/// at 50%), but for 11114732 (56%: 1.63× against 1.36×).
const SHARED_CALLS_PERCENT: usize = 45;

/// Above 2 threads Block-STM's parallel re-execution pays as soon as calls share contracts at
/// all. On 16 cores at 8 threads, 21 of the 22 heavy mainnet blocks have 21–75% of their
/// transactions such calls, and 18 of them ran Block-STM faster than the pipeline (4864590 1.98×
/// against 1.43×, 14029313 1.87× against 1.37×); the one without (6137495) and Uniswap swaps
/// through distinct pools ran the pipeline faster (1.48× against 1.23×; 6.8× against 5.2×, at 16
/// threads 12.0× against 8.9×).
const SHARED_CALLS_MANY_THREADS_PERCENT: usize = 10;

/// How many transactions the sender of a strict majority of `block`'s transactions sent, if one
/// sender did (Boyer-Moore majority vote: two passes, no map).
fn majority_sender_count(block: &Block<Recovered<TxEnvelope>>) -> Option<usize> {
    let txs = &block.body.transactions;
    let mut candidate = None;
    let mut votes = 0usize;
    for tx in txs {
        let sender = tx.signer();
        if votes == 0 {
            candidate = Some(sender);
            votes = 1;
        } else if candidate == Some(sender) {
            votes += 1;
        } else {
            votes -= 1;
        }
    }
    let candidate = candidate?;
    let count = txs.iter().filter(|tx| tx.signer() == candidate).count();
    (count * 2 > txs.len()).then_some(count)
}

/// The most transactions one sender has in the block, from its same-sender links (0 for an
/// empty block).
fn longest_chain(previous_of_sender: &[Option<TxIdx>]) -> usize {
    let mut length = vec![1usize; previous_of_sender.len()];
    for (tx, previous) in previous_of_sender.iter().enumerate() {
        if let Some(previous) = previous {
            length[tx] = length[*previous] + 1;
        }
    }
    length.into_iter().max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block of contract creations by `senders`, one transaction each.
    fn block_from(senders: &[u8]) -> Block<Recovered<TxEnvelope>> {
        let txs: Vec<_> = senders
            .iter()
            .map(|&sender| (sender, None, false))
            .collect();
        crate::shape::tests::block_of(&txs)
    }

    /// The majority vote agrees with the map of chains on who sends a strict majority.
    #[test]
    fn majority_sender_is_the_longest_chain_when_it_covers_most() {
        let cases: [(&[u8], Option<usize>); 6] = [
            (&[], None),
            (&[1], Some(1)),
            (&[1, 2], None),
            (&[1, 2, 1, 3, 1], Some(3)),
            (&[2, 3, 1, 1, 1, 1, 2], Some(4)),
            (&[1, 1, 2, 2, 3, 3, 1], None),
        ];
        for (senders, expected) in cases {
            let block = block_from(senders);
            assert_eq!(majority_sender_count(&block), expected, "{senders:?}");
            let longest = longest_chain(&BlockShape::of(&block).previous_of_sender);
            match expected {
                Some(count) => assert_eq!(longest, count, "{senders:?}"),
                None => assert!(longest * 2 <= senders.len(), "{senders:?}"),
            }
        }
    }
}
