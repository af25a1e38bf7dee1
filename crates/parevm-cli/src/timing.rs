//! Timing helpers shared by the commands that measure.

use std::{hint::black_box, time::Instant};

use parevm::WorkerPlacement;

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

/// How many threads' worth of work the host does at once right now, on `threads` threads: a
/// fixed arithmetic kernel (registers only, no memory traffic) timed on one thread, then on
/// `threads` threads together, each bound to its own core as pinned workers are (unbound, two
/// new threads sometimes ran on one core for the whole try); the best of three tries. About
/// `threads` on dedicated idle cores; less when other load or the hypervisor shares them: a
/// host that runs two vCPUs as one gives about 1 for 2. Speedups measured beside a low figure say
/// more about the host than about the executor. Takes about 25 ms here.
pub(crate) fn parallel_capacity(threads: usize) -> f64 {
    /// About 4 ms of work on this project's 2.6 GHz host.
    const ITERATIONS: u64 = 1_500_000;
    let kernel = || {
        let mut x = black_box(0x9e37_79b9_7f4a_7c15_u64);
        for _ in 0..ITERATIONS {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        }
        black_box(x);
    };
    (0..3)
        .map(|_| {
            let start = Instant::now();
            kernel();
            let alone = start.elapsed().as_secs_f64();
            let start = Instant::now();
            std::thread::scope(|scope| {
                for index in 0..threads {
                    scope.spawn(move || {
                        WorkerPlacement::Pinned.place_current_thread(index);
                        kernel();
                    });
                }
            });
            threads as f64 * alone / start.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{parallel_capacity, quantile, run_order};

    #[test]
    fn one_thread_has_a_capacity_of_about_one() {
        // Thread start-up counts against the threads: at most a little above one.
        let capacity = parallel_capacity(1);
        assert!(capacity > 0.1 && capacity < 1.5, "{capacity}");
        let capacity = parallel_capacity(2);
        assert!(capacity > 0.1 && capacity < 3.0, "{capacity}");
    }

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
