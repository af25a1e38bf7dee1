//! Recording each transaction's reads and writes through the engine itself.

use alloy_consensus::{Block, TxEnvelope, transaction::Recovered};

use crate::{
    ChainSpec, ExecutionError, MemoryLocation, TxIdx, WriteKind, block_stm::trace_block_stm,
    storage::Storage,
};

/// What one transaction's execution read and wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxTrace {
    /// Gas the transaction used, as in its receipt.
    pub gas_used: u64,
    /// Every location it read, in read order.
    pub reads: Vec<MemoryLocation>,
    /// Every location it wrote, with how.
    pub writes: Vec<(MemoryLocation, WriteKind)>,
    /// The previous transaction of the same sender in the block, which the engine waits for
    /// before executing this one.
    pub previous_of_sender: Option<TxIdx>,
}

/// The traced transactions of one block, in block order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockTrace {
    /// One entry per transaction.
    pub txs: Vec<TxTrace>,
}

/// Executes `block` through the parallel engine on the calling thread (each transaction runs
/// once, in order) and records what every transaction read and wrote. Fails like the executors
/// on an invalid block or a failing storage.
pub fn trace_block<S: Storage + ?Sized>(
    chain: &ChainSpec,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
) -> Result<BlockTrace, ExecutionError> {
    let (output, accesses, previous_of_sender) = trace_block_stm(chain, block, storage)?;
    let txs = output
        .receipts
        .iter()
        .zip(accesses)
        .zip(previous_of_sender)
        .map(|((receipt, (reads, writes)), previous_of_sender)| TxTrace {
            gas_used: receipt.gas_used,
            reads,
            writes,
            previous_of_sender,
        })
        .collect();
    Ok(BlockTrace { txs })
}
