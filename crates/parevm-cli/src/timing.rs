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
