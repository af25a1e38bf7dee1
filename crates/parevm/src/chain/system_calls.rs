//! Block-level state changes around the transactions, in their documented order.
//!
//! Before the transactions: the DAO fork drain (mainnet block 1,920,000), the EIP-4788 beacon
//! root call (Cancun) and the EIP-2935 block-hash history call (Prague). After them: block and
//! ommer rewards (before the Merge), withdrawals (Shanghai), and the EIP-7002 withdrawal-request and
//! EIP-7251 consolidation-request calls (Prague).

use alloy_consensus::{Block, TxEnvelope, transaction::Recovered};
use alloy_eips::{
    eip2935::HISTORY_STORAGE_ADDRESS, eip4788::BEACON_ROOTS_ADDRESS,
    eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
    eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
};
use alloy_primitives::{Address, Bytes, U256};
use revm::{
    Database, SystemCallEvm,
    context::{
        BlockEnv, CfgEnv,
        result::{EVMError, ExecutionResult},
    },
    primitives::hardfork::SpecId,
};

use super::{BlockRewards, ChainSpec, DAO_FORK_BLOCK, dao_fork_accounts, dao_fork_beneficiary};
use crate::{
    ExecutionError,
    output::StateChanges,
    sequential::SequentialState,
    storage::{OverlayStorage, Storage, StorageError},
};

/// The caller of system calls (EIP-4788).
const SYSTEM_ADDRESS: Address = alloy_eips::eip4788::SYSTEM_ADDRESS;

fn storage_error(source: StorageError) -> ExecutionError {
    ExecutionError::Storage {
        index: None,
        source,
    }
}

/// Whether a failed call invalidates the block (request calls) or is ignored (root calls).
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnFailure {
    Ignore,
    Reject,
}

/// Runs one system call on `state` and applies its writes (without the system address and the
/// beneficiary, which a system call does not pay).
fn system_call<S: Storage + ?Sized>(
    state: &mut SequentialState<'_, S>,
    env: (&BlockEnv, &CfgEnv),
    address: Address,
    data: Bytes,
    on_failure: OnFailure,
) -> Result<(), ExecutionError> {
    let (block_env, cfg) = env;
    let spec = cfg.spec;
    if on_failure == OnFailure::Reject {
        let code_hash = state
            .basic(address)
            .map_err(storage_error)?
            .map(|info| info.code_hash);
        if code_hash.is_none_or(|hash| hash == revm::primitives::KECCAK_EMPTY) {
            return Err(ExecutionError::SystemCall {
                address,
                reason: "no code deployed".into(),
            });
        }
    }
    let outcome = {
        let mut evm = super::build_evm(&mut *state, block_env.clone(), cfg.clone());
        evm.system_call_with_caller(SYSTEM_ADDRESS, address, data)
            .map_err(|error| match error {
                EVMError::Database(source) => storage_error(source),
                other => ExecutionError::SystemCall {
                    address,
                    reason: other.to_string(),
                },
            })?
    };
    if on_failure == OnFailure::Reject && !matches!(outcome.result, ExecutionResult::Success { .. })
    {
        return Err(ExecutionError::SystemCall {
            address,
            reason: format!("call did not succeed: {:?}", outcome.result),
        });
    }
    let mut writes = outcome.state;
    writes.remove(&SYSTEM_ADDRESS);
    writes.remove(&block_env.beneficiary);
    state.commit(spec, &writes);
    Ok(())
}

/// The changes made before the first transaction.
pub(crate) fn pre_block_changes<S: Storage + ?Sized>(
    chain: &ChainSpec,
    spec: SpecId,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
) -> Result<StateChanges, ExecutionError> {
    let header = &block.header;
    let mut state = SequentialState::new(storage);
    if chain.is_mainnet_schedule() && header.number == DAO_FORK_BLOCK {
        let mut drained = U256::ZERO;
        for account in dao_fork_accounts() {
            drained += state.drain_balance(*account).map_err(storage_error)?;
        }
        state
            .increment_balance(dao_fork_beneficiary(), drained)
            .map_err(storage_error)?;
    }
    if header.number > 0 && spec.is_enabled_in(SpecId::CANCUN) {
        let block_env = super::block_env(header, spec)?;
        let cfg = super::cfg_env(chain, spec);
        let root = header.parent_beacon_block_root.ok_or_else(|| {
            ExecutionError::InvalidHeader("parent beacon block root missing (Cancun)".into())
        })?;
        let env = (&block_env, &cfg);
        system_call(
            &mut state,
            env,
            BEACON_ROOTS_ADDRESS,
            root.0.into(),
            OnFailure::Ignore,
        )?;
        if spec.is_enabled_in(SpecId::PRAGUE) {
            let parent = header.parent_hash.0.into();
            system_call(
                &mut state,
                env,
                HISTORY_STORAGE_ADDRESS,
                parent,
                OnFailure::Ignore,
            )?;
        }
    }
    Ok(state.into_changes())
}

/// The changes made after the last transaction, on top of `changes` (everything before).
pub(crate) fn post_block_changes<S: Storage + ?Sized>(
    chain: &ChainSpec,
    spec: SpecId,
    block: &Block<Recovered<TxEnvelope>>,
    storage: &S,
    changes: &StateChanges,
) -> Result<StateChanges, ExecutionError> {
    let header = &block.header;
    let overlay = OverlayStorage {
        base: storage,
        changes,
    };
    let mut state = SequentialState::new(&overlay);
    if chain.block_rewards {
        for (recipient, amount) in BlockRewards::new(spec, header, &block.body.ommers).payments {
            state
                .increment_balance(recipient, amount)
                .map_err(storage_error)?;
        }
    }
    if spec.is_enabled_in(SpecId::SHANGHAI) {
        for withdrawal in block.body.withdrawals.iter().flatten() {
            let amount = withdrawal.amount_wei();
            state
                .increment_balance(withdrawal.address, amount)
                .map_err(storage_error)?;
        }
    }
    if spec.is_enabled_in(SpecId::PRAGUE) {
        let block_env = super::block_env(header, spec)?;
        let cfg = super::cfg_env(chain, spec);
        let env = (&block_env, &cfg);
        for address in [
            WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
            CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
        ] {
            system_call(&mut state, env, address, Bytes::new(), OnFailure::Reject)?;
        }
    }
    Ok(state.into_changes())
}
