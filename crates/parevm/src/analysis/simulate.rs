//! A discrete-event replay of Block-STM on virtual threads: the engine's own [`Scheduler`] hands
//! out tasks, and a model of the multi-version memory decides which reads were stale.
//!
//! Each transaction reads at the start of an execution and publishes its writes at the end, with
//! the dependencies of the [`DependencyGraph`]. A read of a dependency whose latest write is an
//! ESTIMATE suspends the execution (as the engine does); a read of a dependency that has not
//! written yet, or whose write came from a stale execution, yields a stale value, which a later
//! validation catches, aborting and re-executing the transaction. Values are compared as the
//! engine compares them: a re-execution that writes what a correct execution writes leaves
//! readers valid.

use super::DependencyGraph;
use crate::{
    TxIdx,
    scheduler::{Scheduler, Task},
    types::{Incarnation, TxVersion},
};

/// Costs of the simulated work, in gas-equivalents (one unit: what one gas of execution costs
/// the sequential executor).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    /// Weight of a transaction's first 21,000 gas (the intrinsic cost of any transaction, which
    /// mostly pays for signature checks the executors do not repeat: it costs them far less
    /// time than other gas).
    pub intrinsic_gas_weight: f64,
    /// Fixed cost of one transaction in the sequential executor (loading the sender, building
    /// the receipt), beyond its gas.
    pub per_tx: f64,
    /// Block-STM's cost of one gas relative to the sequential executor's (versioned reads).
    pub execution_overhead: f64,
    /// Block-STM's fixed cost of one execution, beyond the sequential per-transaction cost
    /// (building and publishing the read and write sets, scheduling).
    pub per_execution: f64,
    /// Cost of validating one read.
    pub per_validated_read: f64,
    /// Cost of an execution suspended on a dependency (the work before the blocked read, and
    /// handing the transaction back to another thread when the dependency finishes).
    pub per_suspension: f64,
    /// Block-STM's fixed cost per block (waking workers, assembling the output).
    pub per_block: f64,
}

impl Default for CostModel {
    /// Calibrated on the shared mainnet blocks at 2 threads on the 2-core machine of
    /// `docs/analysis.md`.
    fn default() -> Self {
        Self {
            intrinsic_gas_weight: 0.1,
            per_tx: 0.0,
            execution_overhead: 1.2,
            per_execution: 2_000.0,
            per_validated_read: 200.0,
            per_suspension: 50_000.0,
            per_block: 0.0,
        }
    }
}

impl CostModel {
    /// The weighted gas of a transaction that used `gas`.
    pub fn weighted_gas(&self, gas: u64) -> f64 {
        let intrinsic = gas.min(INTRINSIC_GAS);
        intrinsic as f64 * self.intrinsic_gas_weight + (gas - intrinsic) as f64
    }

    /// Sets the parameter `name` (a field name) to `value`.
    pub fn set(&mut self, name: &str, value: f64) -> Result<(), String> {
        let field = match name {
            "intrinsic_gas_weight" => &mut self.intrinsic_gas_weight,
            "per_tx" => &mut self.per_tx,
            "execution_overhead" => &mut self.execution_overhead,
            "per_execution" => &mut self.per_execution,
            "per_validated_read" => &mut self.per_validated_read,
            "per_suspension" => &mut self.per_suspension,
            "per_block" => &mut self.per_block,
            _ => return Err(format!("unknown cost parameter `{name}`")),
        };
        if !(value.is_finite() && value >= 0.0) {
            return Err(format!(
                "cost parameter `{name}` must be a finite non-negative number"
            ));
        }
        *field = value;
        Ok(())
    }
}

/// The gas every transaction pays before executing anything.
const INTRINSIC_GAS: u64 = 21_000;

/// The predicted run of Block-STM over one block.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    /// Virtual threads.
    pub threads: usize,
    /// The sequential executor's cost of the block.
    pub sequential_cost: f64,
    /// Block-STM's cost: the time the last thread finishes, plus the per-block cost.
    pub parallel_cost: f64,
    /// `sequential_cost / parallel_cost`.
    pub speedup: f64,
    /// Executions started, including those suspended on an ESTIMATE (as the engine counts).
    pub executions: usize,
    /// Validations performed.
    pub validations: usize,
    /// Executions per transaction.
    pub executions_per_tx: f64,
}

/// The simulation could not finish: a scheduler state the model cannot leave (a bug).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Block-STM simulation stalled after {steps} steps")]
pub struct SimulationError {
    /// Scheduler steps taken before giving up.
    pub steps: usize,
}

/// What a reader saw of one dependency's write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// The dependency had not written yet: an older value.
    Missing,
    /// The value a correct execution writes.
    Correct,
    /// The value of a stale execution (its incarnation: each stale value is distinct).
    Stale(Incarnation),
}

/// The model of the multi-version memory: per transaction, its latest write.
struct Memory {
    /// `Some((incarnation, correct))` once the tx has written.
    written: Vec<Option<(Incarnation, bool)>>,
    /// The tx was aborted: its writes are ESTIMATEs.
    estimate: Vec<bool>,
    /// Per tx, what its latest execution saw of each dependency.
    seen: Vec<Vec<Seen>>,
}

impl Memory {
    fn seen(&self, tx: TxIdx) -> Seen {
        match self.written[tx] {
            None => Seen::Missing,
            Some((_, true)) => Seen::Correct,
            Some((incarnation, false)) => Seen::Stale(incarnation),
        }
    }
}

/// The work a virtual thread is busy with until its `free_at`.
enum Busy {
    Execution {
        version: TxVersion,
        seen: Vec<Seen>,
    },
    Validation(TxVersion),
    /// An execution that suspended on a dependency.
    Suspension,
}

struct VirtualThread {
    free_at: f64,
    busy: Option<Busy>,
}

/// Replays Block-STM over `graph` on `threads` virtual threads under `cost`.
pub fn simulate(
    graph: &DependencyGraph,
    threads: usize,
    cost: &CostModel,
) -> Result<Simulation, SimulationError> {
    let txs = graph.txs();
    let threads = threads.max(1);
    let gas = |tx: TxIdx| cost.weighted_gas(graph.gas(tx));
    let sequential_cost: f64 = (0..txs).map(|tx| gas(tx) + cost.per_tx).sum();
    let execution_cost =
        |tx: TxIdx| gas(tx) * cost.execution_overhead + cost.per_tx + cost.per_execution;
    let validation_cost = |tx: TxIdx| graph.reads(tx) as f64 * cost.per_validated_read;

    let scheduler = Scheduler::new(txs);
    let mut memory = Memory {
        written: vec![None; txs],
        estimate: vec![false; txs],
        seen: vec![Vec::new(); txs],
    };
    let mut pool: Vec<VirtualThread> = (0..threads)
        .map(|_| VirtualThread {
            free_at: 0.0,
            busy: None,
        })
        .collect();
    let (mut executions, mut validations, mut steps) = (0usize, 0usize, 0usize);
    let step_limit = 1_000 + 64 * (txs + 1) * (txs + 1).min(1_000) * threads;
    let mut end = 0.0f64;
    while txs > 0 && !scheduler.done() {
        steps += 1;
        if steps > step_limit {
            return Err(SimulationError { steps });
        }
        // The thread that finishes first; at equal times busy ones first, so that an idle thread
        // looks for work after the completions it waits for.
        let index = (0..threads)
            .min_by(|a, b| {
                let (a, b) = (&pool[*a], &pool[*b]);
                a.free_at
                    .total_cmp(&b.free_at)
                    .then(b.busy.is_some().cmp(&a.busy.is_some()))
            })
            .expect("at least one thread");
        let now = pool[index].free_at;
        end = end.max(now);
        let follow_up = match pool[index].busy.take() {
            None | Some(Busy::Suspension) => None,
            Some(Busy::Execution { version, seen }) => {
                let tx = version.tx_idx;
                let correct = seen.iter().all(|seen| *seen == Seen::Correct);
                // The write set is the same in every incarnation: it is new only the first time
                // the tx writes (its first incarnations may have been suspended).
                let wrote_new_location = memory.written[tx].is_none();
                memory.written[tx] = Some((version.incarnation, correct));
                memory.estimate[tx] = false;
                memory.seen[tx] = seen;
                scheduler.finish_execution(version, wrote_new_location)
            }
            Some(Busy::Validation(version)) => {
                validations += 1;
                let tx = version.tx_idx;
                let valid = graph.dependencies(tx).iter().zip(&memory.seen[tx]).all(
                    |(dependency, seen)| {
                        !memory.estimate[dependency.tx] && memory.seen(dependency.tx) == *seen
                    },
                );
                let aborted = !valid && scheduler.try_validation_abort(version);
                if aborted {
                    memory.estimate[tx] = true;
                }
                scheduler.finish_validation(tx, aborted)
            }
        };
        let thread = &mut pool[index];
        let mut task = follow_up.or_else(|| scheduler.next_task());
        // A `None` while an index is inside the block is spurious (the index moved past a tx
        // that was not ready): a real worker asks again at once.
        while task.is_none() && !scheduler.done() && scheduler.has_unclaimed_indices() {
            task = scheduler.next_task();
        }
        match task {
            Some(Task::Execute(version)) => {
                let tx = version.tx_idx;
                // As the engine: wait for the sender's previous transaction first (not counted
                // as an execution), then suspend on the first ESTIMATE read (counted).
                if let Some(previous) = graph.previous_of_sender(tx)
                    && scheduler.add_dependency(tx, previous)
                {
                    thread.free_at = now + cost.per_suspension;
                    thread.busy = Some(Busy::Suspension);
                    continue;
                }
                executions += 1;
                let blocked = graph
                    .dependencies(tx)
                    .iter()
                    .map(|dependency| dependency.tx)
                    .filter(|dependency| memory.estimate[*dependency])
                    .any(|blocking| scheduler.add_dependency(tx, blocking));
                if blocked {
                    // The model's reads happen at the start of an execution.
                    thread.free_at = now + cost.per_suspension;
                    thread.busy = Some(Busy::Suspension);
                    continue;
                }
                let seen = graph
                    .dependencies(tx)
                    .iter()
                    .map(|dependency| memory.seen(dependency.tx))
                    .collect();
                thread.free_at = now + execution_cost(tx);
                thread.busy = Some(Busy::Execution { version, seen });
            }
            Some(Task::Validate(version)) => {
                thread.free_at = now + validation_cost(version.tx_idx);
                thread.busy = Some(Busy::Validation(version));
            }
            None => {
                // Idle until the next completion.
                let next = pool
                    .iter()
                    .filter(|thread| thread.busy.is_some())
                    .map(|thread| thread.free_at)
                    .min_by(f64::total_cmp);
                match next {
                    Some(next) => pool[index].free_at = next,
                    None if scheduler.done() => {}
                    None => return Err(SimulationError { steps }),
                }
            }
        }
    }
    let parallel_cost = end + cost.per_block;
    Ok(Simulation {
        threads,
        sequential_cost,
        parallel_cost,
        speedup: if txs == 0 {
            1.0
        } else {
            sequential_cost / parallel_cost
        },
        executions,
        validations,
        executions_per_tx: if txs == 0 {
            0.0
        } else {
            executions as f64 / txs as f64
        },
    })
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{Address, U256};

    use super::*;
    use crate::{
        MemoryLocation, WriteKind,
        analysis::{BlockTrace, TxTrace},
    };

    /// A block of `gas.len()` transactions where tx `j` reads slot `reads[j]` and writes slot
    /// `writes[j]` (when given), each from its own sender.
    fn block(gas: &[u64], reads: &[Option<u64>], writes: &[Option<u64>]) -> BlockTrace {
        let slot = |slot: u64| MemoryLocation::Storage(Address::ZERO, U256::from(slot));
        BlockTrace {
            txs: (0..gas.len())
                .map(|tx| TxTrace {
                    gas_used: gas[tx],
                    reads: reads[tx].into_iter().map(slot).collect(),
                    writes: writes[tx]
                        .into_iter()
                        .map(|written| (slot(written), WriteKind::Exact))
                        .collect(),
                    previous_of_sender: None,
                })
                .collect(),
        }
    }

    fn unit_costs() -> CostModel {
        CostModel {
            intrinsic_gas_weight: 1.0,
            per_tx: 0.0,
            execution_overhead: 1.0,
            per_execution: 0.0,
            per_validated_read: 0.0,
            per_suspension: 0.0,
            per_block: 0.0,
        }
    }

    #[test]
    fn independent_transactions_scale_with_threads() {
        let n = 64;
        let trace = block(&vec![100_000; n], &vec![None; n], &vec![None; n]);
        let graph = DependencyGraph::new(&trace);
        assert_eq!(graph.edges(), 0);
        for threads in [1, 2, 4, 8] {
            let simulation = simulate(&graph, threads, &unit_costs()).unwrap();
            assert!(
                (simulation.speedup - threads as f64).abs() < 0.01,
                "{threads} threads: {simulation:?}"
            );
            assert_eq!(simulation.executions, n);
        }
    }

    #[test]
    fn a_chain_does_not_scale() {
        let n = 32;
        let reads: Vec<Option<u64>> = (0..n).map(|_| Some(0)).collect();
        let trace = block(&vec![100_000; n], &reads, &reads);
        let graph = DependencyGraph::new(&trace);
        assert_eq!(graph.edges(), n - 1);
        assert!((graph.ideal_speedup() - 1.0).abs() < 1e-9);
        let simulation = simulate(&graph, 4, &unit_costs()).unwrap();
        assert!(simulation.speedup <= 1.0 + 1e-9, "{simulation:?}");
        assert!(simulation.executions > n, "{simulation:?}");
    }

    /// Random blocks over a few slots and balances, with sender chains: the simulation always
    /// finishes, executes every tx at least once, and never beats the thread count.
    #[test]
    fn random_blocks_finish_within_bounds() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |below: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % below
        };
        for _ in 0..300 {
            let txs = 1 + next(60) as usize;
            let locations = 1 + next(12);
            let location = |index: u64| match index % 3 {
                0 => MemoryLocation::Storage(Address::ZERO, U256::from(index)),
                1 => MemoryLocation::Balance(Address::with_last_byte(index as u8)),
                _ => MemoryLocation::Nonce(Address::with_last_byte(index as u8)),
            };
            let mut last_of_sender = [None; 4];
            let trace = BlockTrace {
                txs: (0..txs)
                    .map(|tx| {
                        let sender = next(8) as usize;
                        let previous_of_sender = if sender < 4 {
                            last_of_sender[sender].replace(tx)
                        } else {
                            None
                        };
                        TxTrace {
                            gas_used: 21_000 + next(500_000),
                            reads: (0..next(4)).map(|_| location(next(locations))).collect(),
                            writes: (0..next(3))
                                .map(|_| {
                                    let kind = if next(4) == 0 {
                                        WriteKind::Delta
                                    } else {
                                        WriteKind::Exact
                                    };
                                    (location(next(locations)), kind)
                                })
                                .collect(),
                            previous_of_sender,
                        }
                    })
                    .collect(),
            };
            let graph = DependencyGraph::new(&trace);
            for threads in [1, 2, 3, 4, 8, 16] {
                let simulation = simulate(&graph, threads, &CostModel::default())
                    .unwrap_or_else(|error| panic!("{error} on {trace:?}"));
                assert!(simulation.executions >= txs, "{simulation:?}");
                assert!(simulation.validations >= txs, "{simulation:?}");
                assert!(
                    simulation.speedup <= threads as f64 + 1e-9,
                    "{simulation:?}"
                );
            }
        }
    }
}
