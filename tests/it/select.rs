//! `imagebump select` run as a process: stdout, stderr and exit codes 0 / 1 / 2.

use crate::support::imagebump::Imagebump;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn select(args: &[&str], stdin: &str) -> Run {
    let out = Imagebump::new(["select"]).args(args).stdin(stdin).output();
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf8"),
        stderr: String::from_utf8(out.stderr).expect("utf8"),
    }
}

#[test]
fn readme_example_prints_the_tag() {
    let r = select(&["--semver", "~1.4"], "1.0.0\n1.4.2\n2.0.0\n");
    assert_eq!((r.code, r.stdout.as_str()), (0, "1.4.2\n"), "{}", r.stderr);
}

#[test]
fn blank_lines_and_crlf_are_ignored() {
    let r = select(&["--alphabetical", "desc"], "\n  b \r\n\na\r\n");
    assert_eq!((r.code, r.stdout.as_str()), (0, "a\n"), "{}", r.stderr);
}

#[test]
fn filters_and_extract() {
    let tags = "main-abc-1700000009\nmain-def-1700000010\ndev-123-1900000000\nsha256-ff.sig\n";
    let r = select(
        &[
            "--numerical",
            "asc",
            "--include",
            r"^main-\w+-(?P<ts>\d+)$",
            "--extract",
            "$ts",
        ],
        tags,
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "main-def-1700000010\n"),
        "{}",
        r.stderr
    );
    let r = select(
        &["--semver", "*", "--exclude", "^2", "--exclude", "beta"],
        "1.0.0\n2.0.0\n1.5.0\n",
    );
    assert_eq!(r.stdout, "1.5.0\n");
}

#[test]
fn no_match_exits_1_with_the_reason() {
    let r = select(&["--semver", "~3"], "1.0.0\nlatest\n");
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "no match: semver ~3: no tag matches (2 tags: 1 not versions, 1 outside the range)\n"
    );
    let r = select(&["--numerical", "asc"], "");
    assert_eq!(r.code, 1);
}

#[test]
fn current_blocks_a_downgrade_unless_allowed() {
    let tags = "1.4.0\n1.4.2\n";
    let r = select(&["--semver", "~1.4", "--current", "2.0.0"], tags);
    assert_eq!((r.code, r.stdout.as_str()), (0, "2.0.0\n"));
    assert!(r.stderr.contains("keeping current 2.0.0"), "{}", r.stderr);
    let r = select(
        &[
            "--semver",
            "~1.4",
            "--current",
            "2.0.0",
            "--allow-downgrade",
        ],
        tags,
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "1.4.2\n"));
}

#[test]
fn strict_parsing() {
    let r = select(&["--semver", "*", "--strict"], "1.2.3\n2.0\n");
    assert_eq!(r.stdout, "1.2.3\n");
    let r = select(&["--semver", "*"], "1.2.3\n2.0\n");
    assert_eq!(r.stdout, "2.0\n");
}

#[test]
fn invalid_range_exits_2_with_a_caret() {
    let r = select(&["--semver", ">=1.0 <2.x.1.5"], "1.0.0\n");
    assert_eq!(r.code, 2);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "error: --semver: invalid semver range \">=1.0 <2.x.1.5\" at byte 12: unexpected \".5\"; \
         separate comparators with a space or a comma\n  >=1.0 <2.x.1.5\n              ^\n"
    );
}

#[test]
fn bad_policy_flags_exit_2() {
    let cases: &[&[&str]] = &[
        &[],
        &["--semver", "1", "--numerical", "asc"],
        &["--alphabetical", "up"],
        &["--numerical", "asc", "--include", "("],
        &["--semver", "1", "--extract", "$ts"],
        &["--semver", "1", "--include", r"(\d+)", "--extract", "$ts"],
        &["--strict", "--numerical", "asc"],
        &["--digest", "latest"],
    ];
    for args in cases {
        let r = select(args, "1.0.0\n");
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{args:?}");
        assert!(!r.stderr.is_empty(), "{args:?}");
    }
}
