//! The embedded runtime bytecode (from `shared/fixtures/contracts`), its immutables and the
//! Solidity storage layouts the generators write.

use std::{collections::HashMap, sync::LazyLock};

use parevm::alloy_primitives::{Address, B256, Bytes, U256, hex, keccak256};

use super::builder::Builder;

/// A contract's runtime code with placeholders (immutables) to fill in.
#[derive(Debug)]
pub(crate) struct Template {
    code: Vec<u8>,
    /// Per placeholder, every offset where it occurs.
    holes: Vec<Vec<usize>>,
}

impl Template {
    /// Decodes `hex_code` and finds each placeholder (hex, no `0x`); a placeholder that does not
    /// occur is a bug in the embedded data.
    fn new(hex_code: &str, placeholders: &[&str]) -> Self {
        let code = hex::decode(hex_code.trim()).expect("embedded bytecode is hex");
        let holes = placeholders
            .iter()
            .map(|placeholder| {
                let pattern = hex::decode(placeholder).expect("placeholder is hex");
                let offsets: Vec<usize> = code
                    .windows(pattern.len())
                    .enumerate()
                    .filter(|(_, window)| *window == pattern.as_slice())
                    .map(|(offset, _)| offset)
                    .collect();
                assert!(!offsets.is_empty(), "placeholder {placeholder} not found");
                offsets
            })
            .collect();
        Self { code, holes }
    }

    /// The code with placeholder `i` replaced by `values[i]` (each as long as its placeholder).
    pub(crate) fn fill(&self, values: &[&[u8]]) -> Bytes {
        assert_eq!(values.len(), self.holes.len(), "one value per placeholder");
        let mut code = self.code.clone();
        for (offsets, value) in self.holes.iter().zip(values) {
            for offset in offsets {
                code[*offset..*offset + value.len()].copy_from_slice(value);
            }
        }
        code.into()
    }

    /// How often each placeholder occurs.
    #[cfg(test)]
    pub(crate) fn occurrences(&self) -> Vec<usize> {
        self.holes.iter().map(Vec::len).collect()
    }
}

/// OpenZeppelin-style ERC-20: no immutables.
pub(crate) static ERC20: LazyLock<Bytes> = LazyLock::new(|| {
    hex::decode(include_str!("../../contracts/ERC20Token.hex").trim())
        .expect("embedded bytecode is hex")
        .into()
});

/// WETH9: no immutables.
pub(crate) static WETH9: LazyLock<Bytes> = LazyLock::new(|| {
    hex::decode(include_str!("../../contracts/WETH9.hex").trim())
        .expect("embedded bytecode is hex")
        .into()
});

/// UniswapV3Factory; fill with `[factory]`.
pub(crate) static FACTORY: LazyLock<Template> = LazyLock::new(|| {
    Template::new(
        include_str!("../../contracts/UniswapV3Factory.hex"),
        &["0b748751e6f8b1a38c9386a19d9f8966b3593a9e"],
    )
});

/// UniswapV3Pool (fee 3000, tick spacing 60); fill with `[token0, token1, factory, pool]`.
pub(crate) static POOL: LazyLock<Template> = LazyLock::new(|| {
    Template::new(
        include_str!("../../contracts/UniswapV3Pool.hex"),
        &[
            "261d8c5e9742e6f7f1076fa1f560894524e19cad",
            "ce3478a9e0167a6bc5716dc39dbbbfac38f27623",
            "cba6b9a951749b8735c603e7ffc5151849248772",
            "d495d5e5cab2567777fff988c4fcd71328b17c9d",
        ],
    )
});

/// SwapRouter; fill with `[weth9, factory, pool init code hash]`.
pub(crate) static ROUTER: LazyLock<Template> = LazyLock::new(|| {
    Template::new(
        include_str!("../../contracts/SwapRouter.hex"),
        &[
            "6509f2a854ba7441039fce3b959d5badd2ffcfcd",
            "d787a42ee3ac477c46dd6c912e7af795d44453d5",
            "636fcf59d7fdf3a03833dba1c6d936c9d7c6730057c8c4c8e5059feaeab60e04",
        ],
    )
});

/// SingleSwap; fill with `[router]`.
pub(crate) static SINGLE_SWAP: LazyLock<Template> = LazyLock::new(|| {
    Template::new(
        include_str!("../../contracts/SingleSwap.hex"),
        &["e7cfcccb38ce07ba9d8d13431afe8cf6172de031"],
    )
});

/// The pool init code hash baked into the router (Uniswap's real one; only its consistent use
/// matters, since pools are written into the state, not created).
pub(crate) const POOL_INIT_CODE_HASH: B256 = B256::new(hex!(
    "e34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"
));

/// The pool fee tier every cluster uses (tick spacing 60).
pub(crate) const POOL_FEE: u64 = 3000;

/// An address as a 32-byte word (left-padded).
pub(crate) fn address_word(address: Address) -> U256 {
    U256::from_be_slice(address.as_slice())
}

/// The two's-complement 256-bit word of a signed integer.
pub(crate) fn int_word(value: i64) -> U256 {
    let magnitude = U256::from(value.unsigned_abs());
    if value < 0 {
        U256::ZERO.wrapping_sub(magnitude)
    } else {
        magnitude
    }
}

/// The slot of `mapping[key]` for a mapping at `slot`: `keccak256(pad32(key) ++ pad32(slot))`.
pub(crate) fn mapping_slot(key: U256, slot: U256) -> U256 {
    let mut preimage = [0u8; 64];
    preimage[..32].copy_from_slice(&key.to_be_bytes::<32>());
    preimage[32..].copy_from_slice(&slot.to_be_bytes::<32>());
    U256::from_be_bytes(keccak256(preimage).0)
}

/// A Solidity string shorter than 32 bytes: left-aligned, `len * 2` in the lowest byte.
pub(crate) fn short_string(text: &str) -> U256 {
    assert!(text.len() < 32, "not a short string");
    let mut bytes = [0u8; 32];
    bytes[..text.len()].copy_from_slice(text.as_bytes());
    bytes[31] = (text.len() * 2) as u8;
    U256::from_be_bytes(bytes)
}

/// Concatenated 32-byte words after a 4-byte selector.
pub(crate) fn calldata(selector: [u8; 4], arguments: &[U256]) -> Bytes {
    let mut input = Vec::with_capacity(4 + 32 * arguments.len());
    input.extend_from_slice(&selector);
    for argument in arguments {
        input.extend_from_slice(&argument.to_be_bytes::<32>());
    }
    input.into()
}

/// The ERC-20 layout: `_balances` at 0, `_allowances` at 1, `_totalSupply` at 2, `_name` at 3,
/// `_symbol` at 4, `_decimals` at 5.
#[derive(Debug, Clone)]
pub(crate) struct Erc20 {
    /// Where the token lives.
    pub(crate) address: Address,
    slots: HashMap<U256, U256>,
    supply: U256,
}

impl Erc20 {
    /// A token with 18 decimals and no holders yet.
    pub(crate) fn new(address: Address, symbol: &str) -> Self {
        let slots = HashMap::from([
            (U256::from(3), short_string(symbol)),
            (U256::from(4), short_string(symbol)),
            (U256::from(5), U256::from(18)),
        ]);
        Self {
            address,
            slots,
            supply: U256::ZERO,
        }
    }

    /// Gives `holder` `amount` more tokens (and grows the total supply).
    pub(crate) fn mint(&mut self, holder: Address, amount: U256) {
        *self
            .slots
            .entry(mapping_slot(address_word(holder), U256::ZERO))
            .or_default() += amount;
        self.supply += amount;
    }

    /// Sets `owner`'s allowance for `spender`.
    pub(crate) fn approve(&mut self, owner: Address, spender: Address, amount: U256) {
        let inner = mapping_slot(address_word(owner), U256::from(1));
        self.slots
            .insert(mapping_slot(address_word(spender), inner), amount);
    }

    /// Writes the token's code and storage at [`Self::address`] into the pre-state.
    pub(crate) fn install(mut self, builder: &mut Builder) {
        self.slots.insert(U256::from(2), self.supply);
        builder.insert_contract(self.address, ERC20.clone(), self.slots);
    }
}

/// `transfer(address,uint256)`.
pub(crate) fn erc20_transfer(to: Address, amount: U256) -> Bytes {
    calldata([0xa9, 0x05, 0x9c, 0xbb], &[address_word(to), amount])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_occur_as_documented() {
        assert_eq!(FACTORY.occurrences(), [1]);
        assert_eq!(POOL.occurrences(), [6, 6, 3, 1]);
        assert_eq!(ROUTER.occurrences(), [9, 3, 1]);
        assert_eq!(SINGLE_SWAP.occurrences(), [11]);
    }

    #[test]
    fn layout_helpers() {
        assert_eq!(int_word(-1), U256::MAX);
        assert_eq!(int_word(600_000), U256::from(600_000));
        assert_eq!(
            short_string("WETH"),
            U256::from_be_bytes(hex!(
                "5745544800000000000000000000000000000000000000000000000000000008"
            ))
        );
        // keccak256(pad32(0) ++ pad32(0)), a well-known slot.
        assert_eq!(
            mapping_slot(U256::ZERO, U256::ZERO),
            U256::from_be_bytes(hex!(
                "ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5"
            ))
        );
    }
}
