//! Orders for the alphabetical and numerical policies.
//!
//! Owns: [`Order`] (`asc` picks the last value in ascending order, i.e. the greatest, as Flux;
//! `desc` the smallest) and exact decimal comparison. Invariant: pure. Design choice: numbers
//! are compared as decimal strings, never through `f64`, so 19-digit build timestamps that a
//! float would round to the same value still order correctly.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Sort direction of the alphabetical and numerical policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Ascending: the greatest value wins.
    Asc,
    /// Descending: the smallest value wins.
    Desc,
}

/// An order other than `asc` or `desc`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid order {0:?}: expected \"asc\" or \"desc\"")]
pub struct OrderError(pub String);

impl FromStr for Order {
    type Err = OrderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "asc" => Ok(Order::Asc),
            "desc" => Ok(Order::Desc),
            other => Err(OrderError(other.to_owned())),
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        })
    }
}

impl Order {
    /// Turns an ascending comparison into "which ranks higher" under this order.
    pub(crate) fn rank(self, ascending: Ordering) -> Ordering {
        match self {
            Order::Asc => ascending,
            Order::Desc => ascending.reverse(),
        }
    }
}

/// A decimal number `-?[0-9]+(\.[0-9]+)?`, borrowed and normalised.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decimal<'a> {
    negative: bool,
    /// Integer digits without leading zeros.
    int: &'a str,
    /// Fraction digits without trailing zeros.
    frac: &'a str,
}

impl<'a> Decimal<'a> {
    /// Parses `s`, or `None` when it is not a plain decimal number.
    pub(crate) fn parse(s: &'a str) -> Option<Decimal<'a>> {
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (body, None),
        };
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
        if !digits(int) || frac.is_some_and(|f| !digits(f)) {
            return None;
        }
        let int = int.trim_start_matches('0');
        let frac = frac.unwrap_or("").trim_end_matches('0');
        // -0 and 0 are the same number.
        let negative = negative && !(int.is_empty() && frac.is_empty());
        Some(Decimal {
            negative,
            int,
            frac,
        })
    }

    pub(crate) fn cmp(&self, other: &Decimal<'_>) -> Ordering {
        let magnitude = self
            .int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(other.int))
            .then_with(|| self.frac.cmp(other.frac));
        match (self.negative, other.negative) {
            (false, false) => magnitude,
            (true, true) => magnitude.reverse(),
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        Decimal::parse(a).unwrap().cmp(&Decimal::parse(b).unwrap())
    }

    #[test]
    fn decimals_compare_exactly() {
        use Ordering::*;
        let cases = [
            ("1", "2", Less),
            ("10", "9", Greater),
            ("007", "7", Equal),
            ("1.5", "1.45", Greater),
            ("1.50", "1.5", Equal),
            ("-1", "1", Less),
            ("-2", "-1", Less),
            ("-0", "0", Equal),
            ("0.0", "0", Equal),
            ("20240101123456789", "20240101123456788", Greater),
            ("9007199254740993", "9007199254740992", Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(cmp(a, b), want, "{a} vs {b}");
            assert_eq!(cmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn non_numbers_rejected() {
        for bad in [
            "", "-", "1.", ".5", "1e5", "0x10", "+1", "1.2.3", "v1", "NaN", "inf", " 1",
        ] {
            assert!(Decimal::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn order_from_str() {
        assert_eq!("asc".parse::<Order>(), Ok(Order::Asc));
        assert_eq!("desc".parse::<Order>(), Ok(Order::Desc));
        let e = "ASC".parse::<Order>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid order \"ASC\": expected \"asc\" or \"desc\""
        );
    }
}
