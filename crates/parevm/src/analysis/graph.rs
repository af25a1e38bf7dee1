//! The dependency graph of a traced block: edges, critical path, hot locations, Graphviz output.

use std::{collections::BTreeMap, fmt::Write as _};

use alloy_primitives::{Address, map::HashMap};

use super::BlockTrace;
use crate::{MemoryLocation, TxIdx, WriteKind};

/// Transaction `tx` wrote what a higher transaction read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The earlier transaction.
    pub tx: TxIdx,
    /// The locations it wrote that the later one read.
    pub locations: Vec<MemoryLocation>,
}

/// The longest chain of dependent transactions, weighted by gas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriticalPath {
    /// Gas of the chain's transactions together.
    pub gas: u64,
    /// The chain, in block order.
    pub txs: Vec<TxIdx>,
}

/// A location and how many dependency edges it causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotLocation {
    /// The location.
    pub location: MemoryLocation,
    /// Edges that carry it.
    pub edges: usize,
}

/// Which transactions read what earlier ones wrote, with every transaction's gas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyGraph {
    gas: Vec<u64>,
    reads: Vec<usize>,
    previous_of_sender: Vec<Option<TxIdx>>,
    /// Per tx, its dependencies sorted by tx.
    dependencies: Vec<Vec<Dependency>>,
    critical_path: CriticalPath,
}

impl DependencyGraph {
    /// Builds the graph: tx `j` depends on tx `i < j` when it read a location whose value `i`'s
    /// write decided. For most locations that is the latest writer below `j`; an exact balance
    /// read depends on every lazy increment since the latest exact write, and on that write; a
    /// storage read depends on the latest account creation or destruction if that came after the
    /// slot's latest write.
    pub fn new(trace: &BlockTrace) -> Self {
        // Per location, its writes so far in block order.
        let mut writers: HashMap<MemoryLocation, Vec<(TxIdx, WriteKind)>> = HashMap::default();
        let mut resets: HashMap<Address, TxIdx> = HashMap::default();
        let mut dependencies = Vec::with_capacity(trace.txs.len());
        for (tx, traced) in trace.txs.iter().enumerate() {
            let mut by_tx: BTreeMap<TxIdx, Vec<MemoryLocation>> = BTreeMap::new();
            let mut add = |writer: TxIdx, location: MemoryLocation| {
                let locations = by_tx.entry(writer).or_default();
                if !locations.contains(&location) {
                    locations.push(location);
                }
            };
            for location in &traced.reads {
                let history = writers.get(location).map_or(&[][..], Vec::as_slice);
                match location {
                    MemoryLocation::Balance(_) => {
                        for (writer, kind) in history.iter().rev() {
                            add(*writer, *location);
                            if *kind != WriteKind::Delta {
                                break;
                            }
                        }
                    }
                    MemoryLocation::Storage(address, _) => {
                        let slot_writer = history.last().map(|(writer, _)| *writer);
                        match resets.get(address) {
                            Some(reset) if slot_writer.is_none_or(|writer| writer < *reset) => {
                                add(*reset, MemoryLocation::Lifecycle(*address))
                            }
                            _ => {
                                if let Some(writer) = slot_writer {
                                    add(writer, *location)
                                }
                            }
                        }
                    }
                    _ => {
                        if let Some((writer, _)) = history.last() {
                            add(*writer, *location)
                        }
                    }
                }
            }
            for (location, kind) in &traced.writes {
                writers.entry(*location).or_default().push((tx, *kind));
                if *kind == WriteKind::StorageReset {
                    resets.insert(location.address(), tx);
                }
            }
            dependencies.push(
                by_tx
                    .into_iter()
                    .map(|(tx, locations)| Dependency { tx, locations })
                    .collect(),
            );
        }
        let gas: Vec<u64> = trace.txs.iter().map(|tx| tx.gas_used).collect();
        let critical_path = critical_path(&gas, &dependencies);
        Self {
            gas,
            reads: trace.txs.iter().map(|tx| tx.reads.len()).collect(),
            previous_of_sender: trace.txs.iter().map(|tx| tx.previous_of_sender).collect(),
            dependencies,
            critical_path,
        }
    }

    /// Transactions in the block.
    pub fn txs(&self) -> usize {
        self.gas.len()
    }

    /// Gas used by `tx`.
    pub fn gas(&self, tx: TxIdx) -> u64 {
        self.gas[tx]
    }

    /// Gas used by the whole block's transactions.
    pub fn total_gas(&self) -> u64 {
        self.gas.iter().sum()
    }

    /// Locations `tx` read (the size of its read set, which validation re-reads).
    pub fn reads(&self, tx: TxIdx) -> usize {
        self.reads[tx]
    }

    /// The previous transaction of `tx`'s sender.
    pub fn previous_of_sender(&self, tx: TxIdx) -> Option<TxIdx> {
        self.previous_of_sender[tx]
    }

    /// The transactions `tx` depends on, sorted.
    pub fn dependencies(&self, tx: TxIdx) -> &[Dependency] {
        &self.dependencies[tx]
    }

    /// Number of edges (pairs of dependent transactions).
    pub fn edges(&self) -> usize {
        self.dependencies.iter().map(Vec::len).sum()
    }

    /// The chain of dependent transactions with the most gas.
    pub fn critical_path(&self) -> &CriticalPath {
        &self.critical_path
    }

    /// Total gas over critical-path gas: the speedup of an ideal engine with unlimited threads
    /// and no overhead (1 for an empty block).
    pub fn ideal_speedup(&self) -> f64 {
        let critical = self.critical_path.gas;
        if critical == 0 {
            1.0
        } else {
            self.total_gas() as f64 / critical as f64
        }
    }

    /// The `limit` locations carried by the most edges, most first.
    pub fn hot_locations(&self, limit: usize) -> Vec<HotLocation> {
        let mut counts: HashMap<MemoryLocation, usize> = HashMap::default();
        for dependency in self.dependencies.iter().flatten() {
            for location in &dependency.locations {
                *counts.entry(*location).or_default() += 1;
            }
        }
        let mut hot: Vec<HotLocation> = counts
            .into_iter()
            .map(|(location, edges)| HotLocation { location, edges })
            .collect();
        hot.sort_by(|a, b| b.edges.cmp(&a.edges).then(a.location.cmp(&b.location)));
        hot.truncate(limit);
        hot
    }

    /// The graph in Graphviz DOT: one node per transaction (with its gas), one edge per
    /// dependency labelled with a location it carries; the critical path in red.
    pub fn to_dot(&self, name: &str) -> String {
        let critical = &self.critical_path.txs;
        let on_path = |tx: TxIdx| critical.binary_search(&tx).is_ok();
        let critical_edges: Vec<(TxIdx, TxIdx)> =
            critical.windows(2).map(|pair| (pair[0], pair[1])).collect();
        let mut dot = format!(
            "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];\n",
            escape(name)
        );
        for tx in 0..self.txs() {
            let color = if on_path(tx) { ", color=red" } else { "" };
            let _ = writeln!(
                dot,
                "  tx{tx} [label=\"{tx}\\n{} gas\"{color}];",
                self.gas[tx]
            );
        }
        for (tx, dependencies) in self.dependencies.iter().enumerate() {
            for dependency in dependencies {
                let mut label = dependency.locations[0].to_string();
                if dependency.locations.len() > 1 {
                    let _ = write!(label, " (+{})", dependency.locations.len() - 1);
                }
                let color = if critical_edges.contains(&(dependency.tx, tx)) {
                    ", color=red"
                } else {
                    ""
                };
                let _ = writeln!(
                    dot,
                    "  tx{} -> tx{tx} [label=\"{}\"{color}];",
                    dependency.tx,
                    escape(&label)
                );
            }
        }
        dot.push_str("}\n");
        dot
    }
}

/// The chain of dependent transactions with the most gas (ties: the earliest).
fn critical_path(gas: &[u64], dependencies: &[Vec<Dependency>]) -> CriticalPath {
    let txs = gas.len();
    let mut longest = vec![0u64; txs];
    let mut previous: Vec<Option<TxIdx>> = vec![None; txs];
    for tx in 0..txs {
        let heaviest = dependencies[tx]
            .iter()
            .map(|dependency| dependency.tx)
            .max_by_key(|before| (longest[*before], std::cmp::Reverse(*before)));
        previous[tx] = heaviest;
        longest[tx] = gas[tx] + heaviest.map_or(0, |before| longest[before]);
    }
    let Some(end) = (0..txs).max_by_key(|tx| (longest[*tx], std::cmp::Reverse(*tx))) else {
        return CriticalPath {
            gas: 0,
            txs: Vec::new(),
        };
    };
    let mut path = vec![end];
    while let Some(before) = previous[*path.last().expect("non-empty")] {
        path.push(before);
    }
    path.reverse();
    CriticalPath {
        gas: longest[end],
        txs: path,
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
