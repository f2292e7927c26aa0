//! Doubling waits after failures in a row, shared by the retries that back off
//! (the daemon's retries of failed checks, the clone cache's repacks).
//!
//! **Invariant:** pure: `first` after the first failure, twice as long after each further one,
//! never longer than `max`.

use std::time::Duration;

/// The wait after the `n`-th failure in a row (1 is the first; 0 counts as 1):
/// `first * 2^(n-1)`, at most `max`.
pub fn doubling(first: Duration, n: u32, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_first_and_stops_at_max() {
        let s = Duration::from_secs;
        let waits: Vec<Duration> = (0..=6).map(|n| doubling(s(2), n, s(30))).collect();
        assert_eq!(waits, [s(2), s(2), s(4), s(8), s(16), s(30), s(30)]);
        assert_eq!(doubling(s(2), u32::MAX, s(30)), s(30));
        assert_eq!(
            doubling(s(2), 40, Duration::MAX),
            s(2).saturating_mul(u32::MAX)
        );
    }
}
