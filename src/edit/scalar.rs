//! Quoting rules: how a new value is written so that YAML reads it back as the same string.
//!
//! Owns: deciding whether a plain scalar would be read as something other than a string, and
//! rendering a value in a given style.
//!
//! Invariant: [`render`] never produces text that a YAML 1.1 or 1.2 reader resolves to a
//! non-string (number, bool, null, timestamp) or that changes the structure around it.
//!
//! Design choice: the edited scalar keeps its style; a plain value that is not safe as plain is
//! written double-quoted. "Not safe" is the union of the YAML 1.1 and 1.2 core schema rules,
//! because Helm (go-yaml) and Kustomize (kyaml) do not agree on one.

use std::sync::LazyLock;

use regex::Regex;

use super::tree::Style;

static NON_STRING: LazyLock<Regex> = LazyLock::new(|| {
    let patterns = [
        // null
        r"~|null|Null|NULL",
        // bool (1.1 and 1.2)
        r"y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
        // int: binary, octal (0o and 1.1 leading 0), hex, decimal, sexagesimal
        r"[-+]?(0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*|[0-9][0-9_]*(:[0-5]?[0-9])+)",
        // float, including sexagesimal floats, infinities and NaN
        r"[-+]?(\.[0-9_]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?",
        r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*",
        r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)",
        // timestamps (1.1): a date prefix is enough to be careful
        r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*",
        // 1.1 merge and value keys
        r"<<|=",
    ];
    let joined = patterns
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|");
    // The patterns are literals above; a failure here is a programming error caught by tests.
    #[allow(clippy::expect_used)]
    Regex::new(&format!("^(?:{joined})$")).expect("quoting patterns compile")
});

/// True when `value` written as a plain scalar would not be read back as this same string.
pub fn needs_quotes(value: &str) -> bool {
    let Some(first) = value.chars().next() else {
        return true;
    };
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return true;
    }
    if value.ends_with([' ', '\t', ':'])
        || value.starts_with([' ', '\t'])
        || value.contains(": ")
        || value.contains(" #")
        || value.contains([',', '[', ']', '{', '}', '\t'])
        || value.chars().any(char::is_control)
    {
        return true;
    }
    NON_STRING.is_match(value)
}

fn double_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The text for `value` in the style of the scalar it replaces.
pub fn render(style: Style, value: &str) -> String {
    match style {
        Style::Plain if !needs_quotes(value) => value.to_string(),
        Style::Single if !value.chars().any(char::is_control) => {
            format!("'{}'", value.replace('\'', "''"))
        }
        _ => double_quoted(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_yaml_would_read_as_non_strings_are_quoted() {
        for v in [
            "1.10",
            "1e3",
            "true",
            "yes",
            "no",
            "on",
            "off",
            "null",
            "~",
            "0x1F",
            "012",
            ".inf",
            "",
            "1",
            "-1",
            "+1.5",
            "1_000",
            "2024-01-02",
            "1:20",
            "Y",
            "NULL",
            ".NaN",
            "0o17",
            "-rc",
            "@x",
            "*a",
            "&a",
            "!t",
            "%x",
            "a: b",
            "a #b",
            "[x]",
            "a,b",
            "=",
            "<<",
        ] {
            assert!(needs_quotes(v), "{v:?} must be quoted");
        }
    }

    #[test]
    fn ordinary_tags_and_refs_stay_plain() {
        for v in [
            "1.2.3",
            "v1.10",
            "1.21-alpine",
            "sha-a1b2c3d",
            "latest",
            "ghcr.io/org/app:1.0",
            "localhost:5000/app",
            "sha256:0123abcd",
            "app@sha256:00",
            "20240102",
            "1.0.0-rc.1",
            "yesterday",
            "nginx",
        ] {
            // `20240102` is an integer: it must be quoted, so check it separately.
            if v == "20240102" {
                assert!(needs_quotes(v));
                continue;
            }
            assert!(!needs_quotes(v), "{v:?} must stay plain");
        }
    }

    #[test]
    fn rendering_keeps_the_style() {
        assert_eq!(render(Style::Plain, "1.2.3"), "1.2.3");
        assert_eq!(render(Style::Plain, "1.10"), "\"1.10\"");
        assert_eq!(render(Style::Single, "1.10"), "'1.10'");
        assert_eq!(render(Style::Single, "it's"), "'it''s'");
        assert_eq!(render(Style::Double, "a\"b\\"), "\"a\\\"b\\\\\"");
    }
}
