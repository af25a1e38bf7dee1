//! Block analysis: why a block is fast or slow in parallel, from the block itself.
//!
//! 1. [`trace_block`] executes the block once through the engine on one thread and records what
//!    each transaction read and wrote, at the engine's own granularity and with its EVM-aware
//!    rules (lazy beneficiary and transfer credits are [`WriteKind::Delta`] writes, which create
//!    no dependency unless someone reads the exact balance).
//! 2. [`DependencyGraph`] turns the trace into edges "tx j read what tx i < j wrote", the
//!    critical path by gas, the ideal speedup (total gas / critical-path gas) and the locations
//!    that cause the most edges.
//! 3. [`simulate()`] replays Block-STM on virtual threads — the engine's real scheduler, with each
//!    transaction's gas as its cost under a [`CostModel`] — and predicts speedup and executions
//!    per transaction at any thread count.
//!
//! ```no_run
//! # fn demo(block: &parevm::alloy_consensus::Block<parevm::alloy_consensus::transaction::Recovered<parevm::alloy_consensus::TxEnvelope>>, storage: &parevm::InMemoryStorage) -> Result<(), Box<dyn std::error::Error>> {
//! use parevm::analysis::{CostModel, DependencyGraph, simulate, trace_block};
//!
//! let trace = trace_block(&parevm::ChainSpec::mainnet(), block, storage)?;
//! let graph = DependencyGraph::new(&trace);
//! println!("ideal speedup {:.2}", graph.ideal_speedup());
//! let predicted = simulate(&graph, 8, &CostModel::default())?;
//! println!("8 threads: {:.2}x", predicted.speedup);
//! # Ok(()) }
//! ```
//!
//! [`WriteKind::Delta`]: crate::WriteKind::Delta

mod graph;
mod simulate;
mod trace;

pub use graph::{CriticalPath, Dependency, DependencyGraph, HotLocation};
pub use simulate::{CostModel, Simulation, SimulationError, simulate};
pub use trace::{BlockTrace, TxTrace, trace_block};
