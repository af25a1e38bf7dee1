//! `parevm analyze`: a block's dependency structure and the parallelism it allows — edges,
//! critical path, hot locations, and a simulated Block-STM schedule at several thread counts,
//! optionally next to the engine's measured speedup.

use std::{num::NonZeroUsize, path::PathBuf, process::ExitCode, time::Instant};

use parevm::{
    ChainSpec, ExecutorConfig, ParallelExecutor,
    analysis::{CostModel, DependencyGraph, Simulation, simulate, trace_block},
    execute_sequential,
};
use parevm_workloads::mainnet::{MainnetBlock, load_block};
use serde_json::json;

use crate::timing::{median, millis};

/// Arguments of `parevm analyze`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Block directories (as for `parevm block`).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Thread counts to simulate, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,4,8,16,32")]
    threads: Vec<NonZeroUsize>,
    /// Also run the engine (Block-STM forced, against sequential) at every simulated thread count
    /// this machine has cores for, and report the measured speedup beside the prediction.
    #[arg(long)]
    measure: bool,
    /// Timed pairs (sequential, then Block-STM) per measurement after a warm-up pair; the
    /// median ratio is reported.
    #[arg(long, default_value = "11")]
    runs: NonZeroUsize,
    /// Cost-model overrides for the simulation, comma-separated NAME=VALUE in gas-equivalents
    /// (per_tx, execution_overhead, per_execution, per_validated_read, per_suspension,
    /// per_block; defaults in docs/analysis.md).
    #[arg(long, value_delimiter = ',', value_parser = parse_cost)]
    cost: Vec<(String, f64)>,
    /// Hot locations to report per block.
    #[arg(long, default_value = "5")]
    hot: usize,
    /// One JSON object per line per block instead of tables.
    #[arg(long)]
    json: bool,
    /// Write the dependency graph in Graphviz DOT to this file (with several blocks, the block
    /// number is inserted before the extension).
    #[arg(long)]
    dot: Option<PathBuf>,
}

fn parse_cost(text: &str) -> Result<(String, f64), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got `{text}`"))?;
    let value = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number (cost parameter `{name}`)"))?;
    let mut probe = CostModel::default();
    probe.set(name, value)?;
    Ok((name.to_string(), value))
}

/// The analysis of one block at one thread count.
struct Row {
    threads: usize,
    simulation: Simulation,
    /// Why the engine would run the block sequentially at this thread count.
    sequential_reason: Option<String>,
    /// The engine's measured run, Block-STM forced.
    measurement: Option<Measurement>,
}

/// The engine at one thread count against the sequential executor, Block-STM forced.
#[derive(Debug, Clone, Copy)]
struct Measurement {
    /// Median of the per-pair ratios sequential / parallel.
    speedup: f64,
    /// Executions per transaction of the last run.
    executions_per_tx: f64,
    /// Median milliseconds of the sequential executor.
    sequential_ms: f64,
    /// Median milliseconds of Block-STM.
    parallel_ms: f64,
}

/// Runs the sequential executor and Block-STM alternately (`runs` timed pairs after a warm-up
/// pair), so that the machine's drifting load affects both alike.
fn measure(
    chain: &ChainSpec,
    block: &MainnetBlock,
    threads: NonZeroUsize,
    runs: NonZeroUsize,
) -> Result<Measurement, String> {
    let executor = ParallelExecutor::new(ExecutorConfig {
        concurrency: threads,
        strategy: parevm::Strategy::BlockStm,
    });
    let (mut sequential, mut parallel, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut executions_per_tx = 0.0;
    for run in 0..=runs.get() {
        let start = Instant::now();
        let expected = execute_sequential(chain, &block.block, &block.storage);
        let sequential_ms = millis(start);
        let start = Instant::now();
        let (output, stats) = executor.execute_with_stats(chain, &block.block, &block.storage);
        let parallel_ms = millis(start);
        let output = output.map_err(|error| error.to_string())?;
        if expected.as_ref().ok() != Some(&output) {
            return Err(format!(
                "{threads} threads: parallel output differs from sequential"
            ));
        }
        executions_per_tx = stats.executions as f64 / stats.txs.max(1) as f64;
        if run > 0 {
            sequential.push(sequential_ms);
            parallel.push(parallel_ms);
            ratios.push(sequential_ms / parallel_ms);
        }
    }
    Ok(Measurement {
        speedup: median(&mut ratios),
        executions_per_tx,
        sequential_ms: median(&mut sequential),
        parallel_ms: median(&mut parallel),
    })
}

/// Everything reported for one block.
struct Report {
    block: MainnetBlock,
    fork: String,
    graph: DependencyGraph,
    rows: Vec<Row>,
}

pub(crate) fn run(args: &Args) -> ExitCode {
    let mut cost = CostModel::default();
    for (name, value) in &args.cost {
        cost.set(name, *value).expect("checked when parsing");
    }
    let chain = ChainSpec::mainnet();
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let mut ok = true;
    let several = args.dirs.len() > 1;
    if several && !args.json {
        print_summary_header(args);
    }
    for dir in &args.dirs {
        let report = match load_block(dir)
            .map_err(|error| error.to_string())
            .and_then(|block| analyze(&chain, block, args, &cost, cores))
        {
            Ok(report) => report,
            Err(error) => {
                ok = false;
                eprintln!("error: {}: {error}", dir.display());
                if args.json {
                    println!(
                        "{}",
                        json!({ "dir": dir.display().to_string(), "error": error })
                    );
                }
                continue;
            }
        };
        if let Some(path) = &args.dot {
            let path = if several {
                numbered(path, report.block.number())
            } else {
                path.clone()
            };
            let name = format!("block {}", report.block.number());
            if let Err(error) = std::fs::write(&path, report.graph.to_dot(&name)) {
                ok = false;
                eprintln!("error: cannot write {}: {error}", path.display());
            }
        }
        if args.json {
            println!("{}", json_line(&report, args.hot));
        } else if several {
            print_summary_row(&report);
        } else {
            print_report(&report, args.hot);
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn analyze(
    chain: &ChainSpec,
    block: MainnetBlock,
    args: &Args,
    cost: &CostModel,
    cores: usize,
) -> Result<Report, String> {
    let number = block.number();
    let fork = format!("{:?}", chain.spec_id(number, block.block.header.timestamp));
    let trace =
        trace_block(chain, &block.block, &block.storage).map_err(|error| error.to_string())?;
    let graph = DependencyGraph::new(&trace);
    let mut rows = Vec::with_capacity(args.threads.len());
    for threads in &args.threads {
        let simulation =
            simulate(&graph, threads.get(), cost).map_err(|error| error.to_string())?;
        let config = ExecutorConfig {
            concurrency: *threads,
            strategy: parevm::Strategy::Auto,
        };
        let measurement = if args.measure && threads.get() <= cores {
            Some(measure(chain, &block, *threads, args.runs)?)
        } else {
            None
        };
        rows.push(Row {
            threads: threads.get(),
            simulation,
            sequential_reason: config.sequential_reason(chain, &block.block, &block.storage),
            measurement,
        });
    }
    Ok(Report {
        block,
        fork,
        graph,
        rows,
    })
}

/// `graph.dot` → `graph-12345.dot`.
fn numbered(path: &std::path::Path, number: u64) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(String::new, |stem| stem.to_string_lossy().into_owned());
    let name = match path.extension() {
        Some(extension) => format!("{stem}-{number}.{}", extension.to_string_lossy()),
        None => format!("{stem}-{number}"),
    };
    path.with_file_name(name)
}

fn mgas(gas: u64) -> f64 {
    gas as f64 / 1e6
}

fn print_report(report: &Report, hot: usize) {
    let graph = &report.graph;
    let critical = graph.critical_path();
    println!(
        "block {} ({}): {} txs, {:.2} Mgas, {} edges",
        report.block.number(),
        report.fork,
        graph.txs(),
        mgas(graph.total_gas()),
        graph.edges()
    );
    println!(
        "critical path: {:.2} Mgas over {} txs; ideal speedup {:.2}",
        mgas(critical.gas),
        critical.txs.len(),
        graph.ideal_speedup()
    );
    let locations = graph.hot_locations(hot);
    if !locations.is_empty() {
        println!("hot locations:");
        for location in locations {
            println!("  {:>6} edges  {}", location.edges, location.location);
        }
    }
    println!(
        "{:>7} {:>17} {:>15} {:>16} {:>15}  engine choice",
        "threads", "simulated_speedup", "simulated_exec", "measured_speedup", "measured_exec"
    );
    for row in &report.rows {
        let (measured_speedup, measured_exec) = row.measurement.map_or_else(
            || ("-".to_string(), "-".to_string()),
            |measured| {
                (
                    format!("{:.2}", measured.speedup),
                    format!("{:.2}", measured.executions_per_tx),
                )
            },
        );
        println!(
            "{:>7} {:>17.2} {:>15.2} {:>16} {:>15}  {}",
            row.threads,
            row.simulation.speedup,
            row.simulation.executions_per_tx,
            measured_speedup,
            measured_exec,
            row.sequential_reason.as_deref().map_or_else(
                || "Block-STM".to_string(),
                |reason| format!("sequential: {reason}")
            )
        );
    }
}

fn print_summary_header(args: &Args) {
    print!(
        "{:>10} {:>10} {:>5} {:>7} {:>6} {:>8} {:>6}",
        "block", "fork", "txs", "Mgas", "edges", "cp_Mgas", "ideal"
    );
    for threads in &args.threads {
        print!(" {:>7}", format!("sim@{threads}"));
        if args.measure {
            print!(" {:>7}", format!("real@{threads}"));
        }
    }
    println!("  hottest location");
}

fn print_summary_row(report: &Report) {
    let graph = &report.graph;
    print!(
        "{:>10} {:>10} {:>5} {:>7.2} {:>6} {:>8.2} {:>6.2}",
        report.block.number(),
        report.fork,
        graph.txs(),
        mgas(graph.total_gas()),
        graph.edges(),
        mgas(graph.critical_path().gas),
        graph.ideal_speedup()
    );
    let measuring = report.rows.iter().any(|row| row.measurement.is_some());
    for row in &report.rows {
        print!(" {:>7.2}", row.simulation.speedup);
        if measuring {
            match row.measurement {
                Some(measured) => print!(" {:>7.2}", measured.speedup),
                None => print!(" {:>7}", "-"),
            }
        }
    }
    match graph.hot_locations(1).first() {
        Some(hot) => println!("  {} ({} edges)", hot.location, hot.edges),
        None => println!("  -"),
    }
}

fn json_line(report: &Report, hot: usize) -> serde_json::Value {
    let graph = &report.graph;
    let critical = graph.critical_path();
    json!({
        "block": report.block.number(),
        "dir": report.block.dir.display().to_string(),
        "fork": report.fork,
        "txs": graph.txs(),
        "gas": graph.total_gas(),
        "edges": graph.edges(),
        "critical_path_gas": critical.gas,
        "critical_path_txs": critical.txs,
        "ideal_speedup": graph.ideal_speedup(),
        "hot_locations": graph.hot_locations(hot).iter().map(|hot| json!({
            "location": hot.location.to_string(),
            "edges": hot.edges,
        })).collect::<Vec<_>>(),
        "simulated": report.rows.iter().map(|row| json!({
            "threads": row.threads,
            "speedup": row.simulation.speedup,
            "executions_per_tx": row.simulation.executions_per_tx,
            "validations_per_tx": row.simulation.validations as f64 / graph.txs().max(1) as f64,
            "engine_sequential_reason": row.sequential_reason,
            "measured_speedup": row.measurement.map(|measured| measured.speedup),
            "measured_executions_per_tx": row.measurement.map(|measured| measured.executions_per_tx),
            "measured_sequential_ms": row.measurement.map(|measured| measured.sequential_ms),
            "measured_parallel_ms": row.measurement.map(|measured| measured.parallel_ms),
        })).collect::<Vec<_>>(),
    })
}
