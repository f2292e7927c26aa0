//! Per-registry pacing: a requests-per-second limiter, backoff delays and `Retry-After`.
//!
//! Invariant: nothing here is shared between registries; each registry owns its own limiter.
//! Design choice: the limiter hands out evenly spaced send times (a "next free slot" clock)
//! instead of a bursty token bucket: registries rate limit on short windows, and an even pace
//! never trips them.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// Spaces requests `1 / requests_per_second` apart.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval: Option<Duration>,
    next_slot: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub(crate) fn new(requests_per_second: Option<f64>) -> Self {
        let interval = requests_per_second
            .filter(|rps| rps.is_finite() && *rps > 0.0)
            .map(|rps| Duration::from_secs_f64(1.0 / rps));
        RateLimiter {
            interval,
            next_slot: Mutex::new(None),
        }
    }

    /// Wait for this caller's slot.
    pub(crate) async fn acquire(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = Instant::now();
        let slot = {
            let mut next = self
                .next_slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let slot = match *next {
                Some(at) if at > now => at,
                _ => now,
            };
            *next = Some(slot + interval);
            slot
        };
        if slot > now {
            tokio::time::sleep_until(tokio::time::Instant::from_std(slot)).await;
        }
    }
}

/// Exponential backoff with full jitter: a random delay in `[base/2, base]` where
/// `base = initial * 2^attempt`, capped at `max`.
pub(crate) fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(16));
    let base = initial.saturating_mul(factor).min(max);
    let half = base / 2;
    let jitter_range = base.saturating_sub(half).as_millis() as u64;
    let jitter = if jitter_range == 0 {
        0
    } else {
        rand::rng().random_range(0..=jitter_range)
    };
    half + Duration::from_millis(jitter)
}

/// Parse a `Retry-After` value: delay seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = OffsetDateTime::parse(value, &Rfc2822).ok()?;
    let delta = at - now;
    if delta.is_negative() {
        Some(Duration::ZERO)
    } else {
        Some(Duration::from_secs(delta.whole_seconds().unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::datetime;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = datetime!(2015-10-21 07:28:00 UTC);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for attempt in 0..10 {
            let delay = backoff(attempt, initial, max);
            let base = (initial * 2u32.pow(attempt)).min(max);
            assert!(delay >= base / 2 && delay <= base, "{attempt}: {delay:?}");
        }
    }

    #[tokio::test]
    async fn limiter_spaces_requests() {
        let limiter = RateLimiter::new(Some(50.0));
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // Five slots 20 ms apart: the fifth is at least 80 ms after the first.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(80), "{elapsed:?}");
        let unlimited = RateLimiter::new(None);
        unlimited.acquire().await;
    }
}
