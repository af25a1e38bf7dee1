//! Grid search of the Block-STM simulator's cost model against measured speedups.
//!
//! ```text
//! parevm analyze BLOCK_DIR... --measure --threads 2 --runs 7 --json > measured.json
//! cargo run --release -p parevm-cli --example calibrate_simulator -- measured.json
//! ```
//!
//! Prints the cost models that put the most blocks within 15% of the measured speedup (ties:
//! smallest median error), best last.

use parevm::{
    ChainSpec,
    analysis::{CostModel, DependencyGraph, simulate, trace_block},
};
use parevm_workloads::mainnet::load_block;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: calibrate_simulator MEASURED.json")?;
    let chain = ChainSpec::mainnet();
    // (graph, threads, measured speedup) per measured row.
    let mut cases = Vec::new();
    for line in std::fs::read_to_string(&path)?.lines() {
        let row: serde_json::Value = serde_json::from_str(line)?;
        let Some(dir) = row["dir"].as_str() else {
            continue;
        };
        if row["txs"].as_u64().unwrap_or(0) < 2 {
            continue;
        }
        let block = load_block(std::path::Path::new(dir))?;
        let graph = DependencyGraph::new(&trace_block(&chain, &block.block, &block.storage)?);
        for simulated in row["simulated"].as_array().into_iter().flatten() {
            if let (Some(threads), Some(measured)) = (
                simulated["threads"].as_u64(),
                simulated["measured_speedup"].as_f64(),
            ) {
                cases.push((graph.clone(), threads as usize, measured));
            }
        }
    }
    let mut results = Vec::new();
    results.push(score(&cases, CostModel::default()));
    println!(
        "default: {}/{} within 15%, median error {:.1}%",
        results[0].0,
        cases.len(),
        results[0].1 * 100.0
    );
    for intrinsic_gas_weight in [0.1, 0.25, 0.5, 1.0] {
        for per_tx in [0.0, 2_000.0, 5_000.0] {
            for execution_overhead in [1.0, 1.1, 1.2] {
                for per_execution in [2_000.0, 5_000.0, 10_000.0, 20_000.0] {
                    for per_suspension in [50_000.0, 100_000.0, 200_000.0] {
                        for per_block in [0.0, 100_000.0, 300_000.0] {
                            let cost = CostModel {
                                intrinsic_gas_weight,
                                per_tx,
                                execution_overhead,
                                per_execution,
                                per_suspension,
                                per_block,
                                ..CostModel::default()
                            };
                            results.push(score(&cases, cost));
                        }
                    }
                }
            }
        }
    }
    results.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    for (within, median, cost) in results.iter().rev().take(10).rev() {
        println!(
            "{within}/{} within 15%, median error {:.1}%: {cost:?}",
            cases.len(),
            median * 100.0
        );
    }
    Ok(())
}

/// (cases within 15%, median relative error, the model).
fn score(cases: &[(DependencyGraph, usize, f64)], cost: CostModel) -> (usize, f64, CostModel) {
    let mut errors: Vec<f64> = cases
        .iter()
        .map(|(graph, threads, measured)| {
            let predicted = simulate(graph, *threads, &cost)
                .map_or(f64::INFINITY, |simulation| simulation.speedup);
            (predicted / measured - 1.0).abs()
        })
        .collect();
    errors.sort_by(f64::total_cmp);
    let within = errors.iter().filter(|error| **error <= 0.15).count();
    (within, errors[errors.len() / 2], cost)
}
