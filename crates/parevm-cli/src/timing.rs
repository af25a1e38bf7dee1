//! Timing helpers shared by the commands that measure.

use std::time::Instant;

/// Milliseconds since `start`.
pub(crate) fn millis(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// The median of `values` (the upper one for an even count), sorting them in place.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The `q`-quantile (`0.0..=1.0`) of sorted `values`, interpolated linearly between the two
/// nearest ranks (so that with three values the quartiles fall between them, not on the median).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = (sorted.len() - 1) as f64 * q;
    let (below, above) = (position.floor() as usize, position.ceil() as usize);
    let fraction = position - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * fraction
}

/// The order of the `runs` runs of round `round`: a permutation drawn from a fixed seed per
/// round (the same in every invocation), so that no run always comes right after the same one.
/// A rotation, the earlier order, kept each run's predecessor: what ran just before (what the
/// caches and the allocator hold) biased the same executor every round.
pub(crate) fn run_order(round: usize, runs: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..runs).collect();
    // splitmix64 over the round number.
    let mut state = (round as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for last in (1..runs).rev() {
        order.swap(last, (next() % (last as u64 + 1)) as usize);
    }
    order
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{quantile, run_order};

    #[test]
    fn quartiles_of_three_values_lie_between_them() {
        let sorted = [1.0, 2.0, 4.0];
        assert_eq!(quantile(&sorted, 0.25), 1.5);
        assert_eq!(quantile(&sorted, 0.5), 2.0);
        assert_eq!(quantile(&sorted, 0.75), 3.0);
        assert_eq!(quantile(&[7.0], 0.75), 7.0);
    }

    #[test]
    fn run_orders_are_permutations_that_change_predecessors() {
        let orders: Vec<Vec<usize>> = (0..12).map(|round| run_order(round, 4)).collect();
        for order in &orders {
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2, 3]);
        }
        assert_eq!(
            run_order(5, 4),
            orders[5],
            "the same order every invocation"
        );
        // Over the rounds, the last run follows more than one other run, and starts some round.
        let predecessors: HashSet<Option<usize>> = (orders.iter())
            .map(|order| {
                let place = order.iter().position(|run| *run == 3).unwrap();
                place.checked_sub(1).map(|before| order[before])
            })
            .collect();
        assert!(predecessors.len() >= 3, "{predecessors:?}");
    }
}
