//! The door to a [`Tree`]: the quick reader when the text is inside its subset, the full
//! parser otherwise (and for every error).
//!
//! Invariant: what comes out is the full parser's tree for the text (the quick reader builds
//! exactly that tree or gives up), and the size limit is checked before either reader runs.
//! Both the editor and its safety net read through this door.

use super::error::EditError;
use super::tree::Tree;
use super::{quick, scan};

/// Parse a YAML stream into a [`Tree`]: by the quick reader when the text is inside its subset
/// (see `quick`), by the full parser otherwise (and for every error).
pub fn parse(src: &str) -> Result<Tree, EditError> {
    scan::check_size(src)?;
    match quick::parse(src) {
        Some(tree) => Ok(tree),
        None => scan::parse_full(src),
    }
}

#[cfg(test)]
mod tests {
    use super::scan::parse_full;
    use super::*;

    /// The quick reader leaves `src` to the full parser.
    fn left(src: &str) {
        assert!(quick::parse(src).is_none(), "the quick reader took:\n{src}");
    }

    #[test]
    fn everything_outside_the_subset_is_left_to_the_full_parser() {
        for src in [
            "a: &x b\nc: *x\n",
            "a: !!str 3\n",
            "a: |\n  text\n",
            "a: >-\n  text\n",
            "a:\tb\n",
            "a: b\n  continued\n",
            "a: 'multi\n  line'\n",
            "a: [b,\n  c]\n",
            "%YAML 1.2\n---\na: b\n",
            "? a\n: b\n",
            "a: \"esc\\n\"\n",
            "---\n---\na: b\n",
            "",
            "# only a comment\n",
            "a: b\n- c\n",
            "a: b: c\n",
            "a:\n  b: c\n d: e\n",
            "a: [b, ]\n",
            "a: {b}\n",
            "a: [b: c]\n",
            "plain scalar\n",
            "a: b\nc: d\n...\ne: f\n",
            "a: 'b'c\n",
            "a: \u{2028}\n",
            "a: b\rc: d\n",
            "- - a\n",
        ] {
            left(src);
            // The full parser decides: the tree or the error parse() returns is its own.
            assert_eq!(parse(src), parse_full(src), "{src:?}");
        }
    }
}
