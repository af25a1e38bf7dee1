//! Which accounts' balances a transaction's code observed.
//!
//! An account with code is usually read by a transaction only to run it or to credit it (value
//! sent to a contract: WETH deposits, payable calls). Its balance then does not decide anything the
//! transaction does, and another transaction changing it earlier in the block is no conflict: the
//! pipeline validates only its existence, nonce and code hash, and adds what it received at commit
//! (`pipeline::Read::Contract`). The balance of an account with code decides an outcome only
//! through the instructions wrapped here, which report the account to the host before running as
//! revm runs them:
//!
//! - `BALANCE` of it, and `SELFBALANCE` in its code;
//! - `CALL` and `CALLCODE` with value from it, `CREATE` and `CREATE2` with value from it (revm
//!   checks that it can pay: reported as that comparison, [`BalanceObserver::require_balance`],
//!   which Block-STM turns into bounds on the balance);
//! - `SELFDESTRUCT` of it (its whole balance moves).
//!
//! Nothing else reads a balance once the transaction runs: an account with code is never empty
//! (EIP-161), so the cost of a call to it does not depend on its balance, and a transfer's
//! recipient is credited with only an overflow check — which no real balance comes near: a
//! transfer of [`HUGE`] wei or more reports its recipient too (as does `SELFDESTRUCT` its
//! beneficiary), and the pipeline treats an account holding that much as observed. The sender,
//! which pays for gas, is not concerned: the pipeline reads it exactly (or checks its assumed
//! funds).

use alloy_primitives::{Address, B256, U256};
use revm::{
    Database,
    bytecode::opcode,
    handler::MainnetContext,
    interpreter::{
        Host, Instruction, InstructionContext, InstructionExecResult, InstructionTable,
        instructions::{contract, host},
        interpreter::EthInterpreter,
        interpreter_types::InputsTr,
    },
};

/// 2^200 wei, some 10^34 times all the ether there is: below it, no sum of the transfers of a
/// block overflows a balance, so a recipient's balance cannot decide whether a credit succeeds.
pub(crate) const HUGE: U256 = U256::from_limbs([0, 0, 0, 1 << 8]);

/// The starting balances of an account with code that give a transaction the outcome it had
/// from the balance it read: `low..high`, narrowed by each check that the account could pay
/// ([`BalanceObserver::require_balance`]). Both engines keep one per contract that sent value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BalanceBounds {
    pub(crate) low: U256,
    pub(crate) high: U256,
}

impl Default for BalanceBounds {
    /// Any balance below [`HUGE`] (which no credit of a block can overflow).
    fn default() -> Self {
        Self {
            low: U256::ZERO,
            high: HUGE,
        }
    }
}

impl BalanceBounds {
    /// Narrows the bounds by revm's check `balance >= value`, made when the account held
    /// `balance` having started from `read`: from a starting balance `R` it would hold
    /// `R + (balance - read)` there, so the outcome is the same iff `R` is on the same side of
    /// `value + read - balance`. Returns `false` (the balance then counts as observed) when that
    /// sum overflows.
    pub(crate) fn require(&mut self, read: U256, balance: U256, value: U256) -> bool {
        let Some(sum) = value.checked_add(read) else {
            return false;
        };
        if balance >= value {
            if let Some(threshold) = sum.checked_sub(balance) {
                self.low = self.low.max(threshold);
            }
        } else {
            self.high = self.high.min(sum - balance);
        }
        true
    }

    /// Whether a starting balance gives the same outcome.
    pub(crate) fn contains(&self, balance: &U256) -> bool {
        (self.low..self.high).contains(balance)
    }
}

/// What the wrapped instructions report to: the accounts whose balance the code observed.
pub(crate) trait BalanceObserver {
    /// The code observed `address`'s balance.
    fn observe_balance(&mut self, address: Address);

    /// The code is about to send `value` from `address`, whose balance is `balance` now: revm
    /// checks `balance >= value`, and only the outcome of that comparison depends on the
    /// balance. By default the balance counts as observed.
    fn require_balance(&mut self, address: Address, balance: U256, value: U256) {
        let _ = (balance, value);
        self.observe_balance(address);
    }
}

impl<DB: Database + BalanceObserver> BalanceObserver for MainnetContext<DB> {
    fn observe_balance(&mut self, address: Address) {
        self.journaled_state.database.observe_balance(address);
    }

    fn require_balance(&mut self, address: Address, balance: U256, value: U256) {
        (self.journaled_state.database).require_balance(address, balance, value);
    }
}

type Context_<'a, H> = InstructionContext<'a, H, EthInterpreter>;

/// Replaces the instructions that observe a balance in `table` by ones that report it first.
pub(crate) fn observe_balances<H: Host + BalanceObserver>(
    table: &mut InstructionTable<EthInterpreter, H>,
) {
    table[opcode::BALANCE as usize] = Instruction::new(balance);
    table[opcode::SELFBALANCE as usize] = Instruction::new(selfbalance);
    table[opcode::CALL as usize] = Instruction::new(call);
    table[opcode::CALLCODE as usize] = Instruction::new(callcode);
    table[opcode::CREATE as usize] = Instruction::new(create);
    table[opcode::CREATE2 as usize] = Instruction::new(create2);
    table[opcode::SELFDESTRUCT as usize] = Instruction::new(selfdestruct);
}

/// The account executing (whose balance `SELFBALANCE`, a value transfer or `SELFDESTRUCT`
/// concerns).
fn executing<H>(context: &Context_<'_, H>) -> Address {
    context.interpreter.input.target_address()
}

/// Reports the executing account's balance check when the stack item `depth` from the top (a
/// value) is not zero; observes its balance when the item is missing (the instruction then fails
/// as revm fails it) or the balance cannot be loaded.
fn observe_if_value<H: Host + BalanceObserver>(context: &mut Context_<'_, H>, depth: usize) {
    let value = context.interpreter.stack.peek(depth).ok();
    if value.is_some_and(|value| value.is_zero()) {
        return;
    }
    let address = executing(context);
    match (value, context.host.balance(address)) {
        (Some(value), Some(balance)) => context.host.require_balance(address, balance.data, value),
        _ => context.host.observe_balance(address),
    }
}

fn balance<H: Host + BalanceObserver>(context: Context_<'_, H>) -> InstructionExecResult {
    if let Ok(top) = context.interpreter.stack.peek(0) {
        let address = Address::from_word(B256::from(top));
        context.host.observe_balance(address);
    }
    host::balance(context)
}

fn selfbalance<H: Host + BalanceObserver>(context: Context_<'_, H>) -> InstructionExecResult {
    let address = executing(&context);
    context.host.observe_balance(address);
    host::selfbalance(context)
}

fn call<H: Host + BalanceObserver>(mut context: Context_<'_, H>) -> InstructionExecResult {
    observe_if_value(&mut context, 2);
    // A recipient of `HUGE` wei or more: its balance could decide whether the credit overflows.
    if let Ok(value) = context.interpreter.stack.peek(2)
        && value >= HUGE
        && let Ok(to) = context.interpreter.stack.peek(1)
    {
        context
            .host
            .observe_balance(Address::from_word(B256::from(to)));
    }
    contract::call::<{ opcode::CALL }, _, _>(context)
}

fn callcode<H: Host + BalanceObserver>(mut context: Context_<'_, H>) -> InstructionExecResult {
    observe_if_value(&mut context, 2);
    contract::call::<{ opcode::CALLCODE }, _, _>(context)
}

fn create<H: Host + BalanceObserver>(mut context: Context_<'_, H>) -> InstructionExecResult {
    observe_if_value(&mut context, 0);
    contract::create::<false, _, _>(context)
}

fn create2<H: Host + BalanceObserver>(mut context: Context_<'_, H>) -> InstructionExecResult {
    observe_if_value(&mut context, 0);
    contract::create::<true, _, _>(context)
}

fn selfdestruct<H: Host + BalanceObserver>(context: Context_<'_, H>) -> InstructionExecResult {
    let address = executing(&context);
    context.host.observe_balance(address);
    if let Ok(target) = context.interpreter.stack.peek(0) {
        // It receives the whole balance, however large.
        context
            .host
            .observe_balance(Address::from_word(B256::from(target)));
    }
    host::selfdestruct(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_keep_the_outcome_of_each_check() {
        let mut bounds = BalanceBounds::default();
        // Read 10, received 5, sends 12: succeeds from any start of at least 7.
        assert!(bounds.require(U256::from(10), U256::from(15), U256::from(12)));
        // Then holds 3 and fails to send 4: fails from any start below 11.
        assert!(bounds.require(U256::from(10), U256::from(3), U256::from(4)));
        assert_eq!((bounds.low, bounds.high), (U256::from(7), U256::from(11)));
        assert!(bounds.contains(&U256::from(10)) && !bounds.contains(&U256::from(11)));
        assert!(!bounds.require(U256::from(1), U256::ZERO, U256::MAX));
    }

    #[test]
    fn huge_is_two_to_the_two_hundred() {
        assert_eq!(HUGE, U256::from(1) << 200);
    }
}
