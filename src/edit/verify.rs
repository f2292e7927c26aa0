//! The safety net: the edited text is parsed again and compared with the original, node by node.
//!
//! Owns: deciding whether an edit did exactly what was intended.
//!
//! Invariant: an edited text is returned only if its data equals the original data everywhere
//! except at the intended nodes (a scalar's new value, read back as a string; a key added at the
//! end of one mapping). Anchors, aliases, tags and styles of untouched nodes must match too.
//!
//! Design choice: the comparison walks both trees side by side without expanding aliases
//! (aliases compare by anchor id), so it is linear and bounded like the parse.

use std::collections::HashMap;

use super::error::EditError;
use super::read;
use super::scalar::needs_quotes;
use super::tree::{Kind, NodeId, Style, Tree, line_col};

/// What the edit is meant to change, keyed by node of the original tree.
#[derive(Debug, Default)]
pub struct Expectations {
    /// Scalars that get a new value.
    pub values: HashMap<NodeId, String>,
    /// Mappings that get new `key: value` entries at their end.
    pub inserts: HashMap<NodeId, Vec<(String, String)>>,
}

struct Walk<'a> {
    src: &'a str,
    old: &'a Tree,
    new: &'a Tree,
    expect: &'a Expectations,
}

impl Walk<'_> {
    fn fail(&self, old: NodeId, reason: &str) -> EditError {
        let (line, col) = line_col(self.src, self.old.nodes[old].start);
        EditError::Verify {
            line,
            col,
            reason: reason.to_string(),
        }
    }

    /// True when node `id` of the new tree is the string `want` with tag `want_tag`.
    fn is_string(&self, id: NodeId, want: &str, want_tag: Option<&str>) -> bool {
        match &self.new.nodes[id].kind {
            Kind::Scalar { value, style, tag } => {
                value == want
                    && tag.as_deref() == want_tag
                    && (*style != Style::Plain || tag.is_some() || !needs_quotes(value))
            }
            _ => false,
        }
    }

    fn same(&self, a: NodeId, b: NodeId) -> Result<(), EditError> {
        let (na, nb) = (&self.old.nodes[a], &self.new.nodes[b]);
        if na.anchor != nb.anchor {
            return Err(self.fail(a, "an anchor changed"));
        }
        if let Some(want) = self.expect.values.get(&a) {
            let Kind::Scalar { tag, .. } = &na.kind else {
                return Err(self.fail(a, "the edited node is not a scalar"));
            };
            if !self.is_string(b, want, tag.as_deref()) {
                return Err(self.fail(
                    a,
                    &format!("the new value does not read back as the string {want:?}"),
                ));
            }
            return Ok(());
        }
        match (&na.kind, &nb.kind) {
            (Kind::Scalar { .. }, Kind::Scalar { .. }) | (Kind::Alias(_), Kind::Alias(_)) => {
                if na.kind == nb.kind {
                    Ok(())
                } else {
                    Err(self.fail(a, "a value that should not change changed"))
                }
            }
            (Kind::Seq(xs), Kind::Seq(ys)) => {
                if xs.len() != ys.len() {
                    return Err(self.fail(a, "a sequence changed length"));
                }
                xs.iter().zip(ys).try_for_each(|(x, y)| self.same(*x, *y))
            }
            (Kind::Map(xs), Kind::Map(ys)) => {
                let added = self.expect.inserts.get(&a).map_or(&[][..], Vec::as_slice);
                if xs.len() + added.len() != ys.len() {
                    return Err(self.fail(a, "a mapping changed its number of keys"));
                }
                for ((xk, xv), (yk, yv)) in xs.iter().zip(ys) {
                    self.same(*xk, *yk)?;
                    self.same(*xv, *yv)?;
                }
                for ((key, value), (yk, yv)) in added.iter().zip(&ys[xs.len()..]) {
                    if !self.is_string(*yk, key, None) || !self.is_string(*yv, value, None) {
                        return Err(
                            self.fail(a, &format!("the added {key} did not land in this mapping"))
                        );
                    }
                }
                Ok(())
            }
            _ => Err(self.fail(a, "a node changed kind")),
        }
    }
}

/// Parse `edited` (the quick reader when the text is inside its subset, which builds the full
/// parser's tree there; the full parser otherwise) and compare it with `old` (the tree of `src`) under `expect`.
pub fn check(src: &str, old: &Tree, edited: &str, expect: &Expectations) -> Result<(), EditError> {
    let new = read::parse(edited).map_err(|e| EditError::Verify {
        line: e.position().map_or(0, |p| p.0),
        col: e.position().map_or(0, |p| p.1),
        reason: format!("the edited text does not parse: {e}"),
    })?;
    let walk = Walk {
        src,
        old,
        new: &new,
        expect,
    };
    if old.roots.len() != new.roots.len() {
        return Err(EditError::Verify {
            line: 1,
            col: 1,
            reason: "the number of documents changed".into(),
        });
    }
    for (a, b) in old.roots.iter().zip(&new.roots) {
        walk.same(*a, *b)?;
    }
    Ok(())
}
