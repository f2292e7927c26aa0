//! When to run scheduled checks: a fixed `interval` (`30s`, `2m`, `1h30m`) or a 5-field cron
//! `schedule` (croner), plus a small random jitter so replicas and apps don't all fire at once.
//!
//! Invariant: pure computation on times given by the caller (no clock reads, no sleeping), so it
//! is tested without waiting. Design choice: an interval counts from the start of the previous
//! run and is never shorter than zero — a run that overruns its interval is followed at once by
//! one more run, never by a burst of missed ones.

use std::str::FromStr;
use std::time::Duration;

use croner::{CivilDateTime, CronDateTime, Resolution, Weekday};
use time::OffsetDateTime;

/// A schedule for checks.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Every so often, counted from the start of the previous run.
    Interval(Duration),
    /// At the times a 5-field cron pattern matches (UTC).
    Cron(Box<croner::Cron>),
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Schedule::Interval(a), Schedule::Interval(b)) => a == b,
            (Schedule::Cron(a), Schedule::Cron(b)) => {
                a.pattern.to_string() == b.pattern.to_string()
            }
            _ => false,
        }
    }
}

/// A schedule or interval that can't be used; the message says what to write instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("invalid interval {0:?}: write a number followed by s, m, h or d, e.g. 30s, 2m, 1h30m")]
    Interval(String),
    #[error("interval {0:?} is too short: the minimum is 1s")]
    TooShort(String),
    #[error(
        "invalid cron schedule {pattern:?}: {reason} (write 5 fields: minute hour day-of-month month day-of-week, e.g. \"*/2 * * * *\")"
    )]
    Cron { pattern: String, reason: String },
}

impl Schedule {
    /// Parses an interval such as `30s`, `2m`, `1h30m`, `1d` (at least one second).
    pub fn interval(text: &str) -> Result<Schedule, ScheduleError> {
        let duration = parse_duration(text)?;
        if duration < Duration::from_secs(1) {
            return Err(ScheduleError::TooShort(text.to_string()));
        }
        Ok(Schedule::Interval(duration))
    }

    /// Parses a 5-field cron pattern (minute hour day-of-month month day-of-week), evaluated
    /// in UTC. `@hourly`-style nicknames are accepted too.
    pub fn cron(pattern: &str) -> Result<Schedule, ScheduleError> {
        let trimmed = pattern.trim();
        let fields = trimmed.split_whitespace().count();
        if !trimmed.starts_with('@') && fields != 5 {
            return Err(ScheduleError::Cron {
                pattern: pattern.to_string(),
                reason: format!("it has {fields} fields"),
            });
        }
        let cron = croner::Cron::from_str(trimmed).map_err(|error| ScheduleError::Cron {
            pattern: pattern.to_string(),
            reason: error.to_string(),
        })?;
        Ok(Schedule::Cron(Box::new(cron)))
    }

    /// How long to wait, from `now`, before the next run, given when the previous run started
    /// (`None`: no run yet, which means "now" for an interval).
    pub fn delay_until_next(
        &self,
        now: OffsetDateTime,
        previous_start: Option<OffsetDateTime>,
    ) -> Duration {
        match self {
            Schedule::Interval(interval) => match previous_start {
                None => Duration::ZERO,
                Some(start) => {
                    let due = start + *interval;
                    if due <= now {
                        Duration::ZERO
                    } else {
                        (due - now).unsigned_abs()
                    }
                }
            },
            Schedule::Cron(cron) => match cron.find_next_occurrence(&UtcTime(now), false) {
                Ok(next) => (next.0 - now).unsigned_abs(),
                // A pattern that never matches again (e.g. Feb 30): check daily so the daemon
                // stays alive and visible instead of spinning.
                Err(_) => Duration::from_secs(24 * 3600),
            },
        }
    }

    /// The largest jitter that suits this schedule: a tenth of the period, at most `cap`.
    pub fn max_jitter(&self, cap: Duration) -> Duration {
        let period = match self {
            Schedule::Interval(interval) => *interval,
            Schedule::Cron(_) => Duration::from_secs(60),
        };
        (period / 10).min(cap)
    }
}

/// Parses `30s`, `2m`, `1h30m`, `500ms`, `1d`: one or more number+unit pairs.
pub fn parse_duration(text: &str) -> Result<Duration, ScheduleError> {
    let invalid = || ScheduleError::Interval(text.to_string());
    let bytes = text.trim().as_bytes();
    if bytes.is_empty() {
        return Err(invalid());
    }
    let mut total = Duration::ZERO;
    let mut index = 0;
    while index < bytes.len() {
        let digits_start = index;
        while index < bytes.len() && bytes[index].is_ascii_digit() {
            index += 1;
        }
        if index == digits_start {
            return Err(invalid());
        }
        let number: u64 = std::str::from_utf8(&bytes[digits_start..index])
            .ok()
            .and_then(|digits| digits.parse().ok())
            .ok_or_else(invalid)?;
        let unit_start = index;
        while index < bytes.len() && bytes[index].is_ascii_alphabetic() {
            index += 1;
        }
        let unit = &bytes[unit_start..index];
        let part = match unit {
            b"ms" => Duration::from_millis(number),
            b"s" => Duration::from_secs(number),
            b"m" => Duration::from_secs(number.checked_mul(60).ok_or_else(invalid)?),
            b"h" => Duration::from_secs(number.checked_mul(3600).ok_or_else(invalid)?),
            b"d" => Duration::from_secs(number.checked_mul(86_400).ok_or_else(invalid)?),
            _ => return Err(invalid()),
        };
        total = total.checked_add(part).ok_or_else(invalid)?;
    }
    Ok(total)
}

/// A UTC time croner can search over (croner's own impls need chrono, which we don't use).
#[derive(Clone, Copy, Debug)]
struct UtcTime(OffsetDateTime);

impl CronDateTime for UtcTime {
    fn to_civil(&self) -> CivilDateTime {
        let t = self.0;
        // Any UTC OffsetDateTime is a valid civil date and time (seconds 0..=59 in `time`).
        CivilDateTime::new(
            croner::CivilDate::from_parts_unchecked(
                t.year(),
                u32::from(u8::from(t.month())),
                u32::from(t.day()),
            ),
            croner::CivilTime::from_parts_unchecked(
                u32::from(t.hour()),
                u32::from(t.minute()),
                u32::from(t.second()),
            ),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        Weekday::from_days_from_sunday(u32::from(self.0.weekday().number_days_from_sunday()))
    }

    fn resolve_civil(
        &self,
        civil: CivilDateTime,
    ) -> Result<Resolution<Self>, croner::errors::CronError> {
        let month = u8::try_from(civil.month())
            .ok()
            .and_then(|m| time::Month::try_from(m).ok());
        let date = month.and_then(|month| {
            time::Date::from_calendar_date(civil.year(), month, u8::try_from(civil.day()).ok()?)
                .ok()
        });
        let clock = time::Time::from_hms(
            u8::try_from(civil.hour()).unwrap_or(u8::MAX),
            u8::try_from(civil.minute()).unwrap_or(u8::MAX),
            u8::try_from(civil.second()).unwrap_or(u8::MAX),
        )
        .ok();
        match (date, clock) {
            (Some(date), Some(clock)) => Ok(Resolution::Single(UtcTime(
                time::PrimitiveDateTime::new(date, clock).assume_utc(),
            ))),
            _ => Ok(Resolution::Gap),
        }
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0
            .checked_add(time::Duration::seconds(seconds))
            .map(UtcTime)
    }

    fn cmp_instant(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::datetime;

    #[test]
    fn durations() {
        let check = |text: &str, secs: u64| {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            )
        };
        check("30s", 30);
        check("2m", 120);
        check("1h", 3600);
        check("1h30m", 5400);
        check("1d", 86_400);
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "2", "m", "2x", "-1s", "1.5m", "2 m", "s2"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(matches!(
            Schedule::interval("0s"),
            Err(ScheduleError::TooShort(_))
        ));
        assert!(matches!(
            Schedule::interval("2 minutes"),
            Err(ScheduleError::Interval(_))
        ));
    }

    #[test]
    fn interval_counts_from_previous_start_and_never_bursts() {
        let schedule = Schedule::interval("2m").unwrap();
        let now = datetime!(2026-01-01 10:00:00 UTC);
        assert_eq!(schedule.delay_until_next(now, None), Duration::ZERO);
        assert_eq!(
            schedule.delay_until_next(now, Some(datetime!(2026-01-01 09:59:30 UTC))),
            Duration::from_secs(90)
        );
        // Overran by several intervals: run once, now.
        assert_eq!(
            schedule.delay_until_next(now, Some(datetime!(2026-01-01 09:50:00 UTC))),
            Duration::ZERO
        );
    }

    #[test]
    fn cron_next_occurrence_in_utc() {
        let schedule = Schedule::cron("*/15 * * * *").unwrap();
        let now = datetime!(2026-03-01 10:07:30 UTC);
        assert_eq!(
            schedule.delay_until_next(now, None),
            Duration::from_secs(7 * 60 + 30)
        );
        let daily = Schedule::cron("30 2 * * *").unwrap();
        assert_eq!(
            daily.delay_until_next(datetime!(2026-02-28 03:00:00 UTC), None),
            Duration::from_secs(23 * 3600 + 30 * 60)
        );
        // Mondays at 06:00; 2026-03-01 is a Sunday.
        let weekly = Schedule::cron("0 6 * * MON").unwrap();
        assert_eq!(
            weekly.delay_until_next(datetime!(2026-03-01 06:00:00 UTC), None),
            Duration::from_secs(24 * 3600)
        );
    }

    #[test]
    fn cron_rejects_other_field_counts_and_garbage() {
        assert!(matches!(
            Schedule::cron("* * * *"),
            Err(ScheduleError::Cron { .. })
        ));
        assert!(matches!(
            Schedule::cron("0 * * * * *"),
            Err(ScheduleError::Cron { .. })
        ));
        assert!(matches!(
            Schedule::cron("61 * * * *"),
            Err(ScheduleError::Cron { .. })
        ));
        assert!(Schedule::cron("@hourly").is_ok());
    }

    #[test]
    fn jitter_is_a_tenth_capped() {
        let schedule = Schedule::interval("30s").unwrap();
        assert_eq!(
            schedule.max_jitter(Duration::from_secs(5)),
            Duration::from_secs(3)
        );
        let schedule = Schedule::interval("1h").unwrap();
        assert_eq!(
            schedule.max_jitter(Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }
}
