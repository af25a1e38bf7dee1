//! Workloads for parevm's tests, benchmarks and CLI: loaders for the shared fixtures (real
//! mainnet blocks, ethereum/tests state tests) and synthetic blocks.
//!
//! Library code never reads the environment: every loader takes the fixture path as an argument.

pub mod baseline;
pub mod mainnet;
pub mod statetest;
pub mod synthetic;
