//! Per-registry pacing: a requests-per-second limiter, backoff delays, `Retry-After`, and a
//! circuit breaker that stops asking a registry that keeps failing.
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

/// Requests that failed for good in a row (after all their retries) before a registry is left
/// alone for a cooldown.
pub(crate) const BREAKER_THRESHOLD: u32 = 3;

/// Stops asking a registry that keeps failing. After [`BREAKER_THRESHOLD`] requests in a row
/// failed for good (no answer, timeouts, or 5xx after every retry), requests to it fail at once
/// for a cooldown that starts at `first` and doubles, up to `max`, each time the first request
/// after a cooldown fails too. Any HTTP answer other than a 5xx closes it, as does
/// [`Breaker::success`] on a registry webhook (the registry is up). A zero `first` disables it.
#[derive(Debug)]
pub(crate) struct Breaker {
    first: Duration,
    max: Duration,
    state: Mutex<BreakerState>,
}

#[derive(Debug, Default)]
struct BreakerState {
    failures: u32,
    open_until: Option<Instant>,
    /// The cooldown of the next opening.
    cooldown: Duration,
    last_error: String,
}

/// Why a request was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Open {
    /// Until the next request is let through.
    pub remaining: Duration,
    /// Requests in a row that failed for good.
    pub failures: u32,
    pub last_error: String,
}

impl Breaker {
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        Breaker {
            first,
            max: max.max(first),
            state: Mutex::new(BreakerState {
                cooldown: first,
                ..BreakerState::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err` while the registry is being left alone.
    pub(crate) fn check(&self, now: Instant) -> Result<(), Open> {
        let state = self.state();
        match state.open_until {
            Some(until) if until > now => Err(Open {
                remaining: until - now,
                failures: state.failures,
                last_error: state.last_error.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Failures in a row, how long it is still left alone, the last error.
    pub(crate) fn status(&self, now: Instant) -> super::BreakerStatus {
        let state = self.state();
        super::BreakerStatus {
            failures: state.failures,
            given_up_for: state
                .open_until
                .filter(|until| *until > now)
                .map(|until| until - now),
            last_error: state.last_error.clone(),
        }
    }

    /// True while the registry is being left alone.
    pub(crate) fn is_open(&self, now: Instant) -> bool {
        self.check(now).is_err()
    }

    /// The registry answered, or is known to be up (it sent a webhook).
    pub(crate) fn success(&self) {
        let mut state = self.state();
        state.failures = 0;
        state.open_until = None;
        state.cooldown = self.first;
    }

    /// A request failed for good with `error`. The cooldown when this opened the breaker.
    pub(crate) fn failure(&self, now: Instant, error: &str) -> Option<Duration> {
        if self.first.is_zero() {
            return None;
        }
        let mut state = self.state();
        state.failures = state.failures.saturating_add(1);
        state.last_error = error.to_string();
        let open = state.open_until.is_some_and(|until| until > now);
        if state.failures < BREAKER_THRESHOLD || open {
            return None;
        }
        let cooldown = state.cooldown;
        state.open_until = Some(now + cooldown);
        state.cooldown = cooldown.saturating_mul(2).min(self.max);
        Some(cooldown)
    }
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

    #[test]
    fn breaker_opens_after_failures_in_a_row_and_backs_off_while_the_registry_stays_down() {
        let first = Duration::from_secs(30);
        let breaker = Breaker::new(first, Duration::from_secs(100));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Two failures, a success, two failures: never three in a row, never open.
        assert_eq!(breaker.failure(at(0), "refused"), None);
        assert_eq!(breaker.failure(at(1), "refused"), None);
        breaker.success();
        assert_eq!(breaker.failure(at(2), "refused"), None);
        assert_eq!(breaker.failure(at(3), "refused"), None);
        assert!(breaker.check(at(3)).is_ok());
        // The third in a row opens it for 30 s.
        assert_eq!(breaker.failure(at(4), "timed out"), Some(first));
        assert!(breaker.is_open(at(33)) && !breaker.is_open(at(34)));
        let open = breaker.check(at(10)).unwrap_err();
        assert_eq!(open.remaining, Duration::from_secs(24));
        assert_eq!((open.failures, open.last_error.as_str()), (3, "timed out"));
        // Requests already in flight that fail meanwhile do not extend it.
        assert_eq!(breaker.failure(at(11), "refused"), None);
        assert!(breaker.check(at(34)).is_ok());
        // The first request after the cooldown fails: open again, twice as long, then capped.
        assert_eq!(
            breaker.failure(at(35), "refused"),
            Some(Duration::from_secs(60))
        );
        assert!(breaker.check(at(94)).is_err());
        assert_eq!(
            breaker.failure(at(95), "refused"),
            Some(Duration::from_secs(100))
        );
        assert_eq!(
            breaker.failure(at(195), "refused"),
            Some(Duration::from_secs(100))
        );
        // An answer closes it and starts over.
        breaker.success();
        assert!(breaker.check(at(196)).is_ok());
        assert_eq!(breaker.failure(at(197), "x"), None);
        assert_eq!(breaker.failure(at(198), "x"), None);
        assert_eq!(breaker.failure(at(199), "x"), Some(first));
        breaker.success();
        assert!(breaker.check(at(200)).is_ok());
    }

    #[test]
    fn a_zero_cooldown_disables_the_breaker() {
        let breaker = Breaker::new(Duration::ZERO, Duration::ZERO);
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(breaker.failure(now, "refused"), None);
        }
        assert!(breaker.check(now).is_ok());
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
