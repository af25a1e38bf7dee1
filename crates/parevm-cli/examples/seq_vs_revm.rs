//! Runs one synthetic workload with plain revm and with parevm's sequential executor (for
//! profiling the difference): `seq_vs_revm NAME GAS`.
#![allow(missing_docs)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "raw-transfers".into());
    let gas: u64 = args.next().map_or(20_000_000, |gas| gas.parse().unwrap());
    let w = parevm_workloads::synthetic::workload(&name, gas, 1).expect("workload");
    let revm = parevm_workloads::baseline::run_revm(&w.chain, &w.block, &w.storage).unwrap();
    let seq = parevm::execute_sequential(&w.chain, &w.block, &w.storage).unwrap();
    assert_eq!(revm, seq.gas_used);
}
