//! Helm values by path: `image.tag`, `api.image.tag`, `sidecars[1].image.tag`, `a."b.c".d`.
//!
//! Owns: the value-path grammar and walking it to exactly one scalar.
//!
//! Invariant: a path designates one scalar or is an error (missing key, index out of range, a
//! collection where a scalar was expected, a duplicated key); nothing is ever guessed.
//!
//! Design choice: a path through an alias walks to the anchored node, so an aliased value is
//! edited where its anchor is (every alias of it sees the new value, as YAML means it to).

use std::fmt;
use std::str::FromStr;

use super::error::EditError;
use super::index::Index;
use super::slot::{Field, Slot};
use super::tree::{Kind, NodeId, Tree, line_col};
use crate::reference::{ImageRef, is_valid_digest, is_valid_tag};

/// One step of a [`ValuePath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// A route from a document's root to one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuePath(pub Vec<PathSegment>);

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSegment::Index(n) => write!(f, "[{n}]")?,
                PathSegment::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if k.is_empty() || k.contains(['.', '[', ']', '"']) {
                        write!(f, "\"{}\"", k.replace('\\', "\\\\").replace('"', "\\\""))?;
                    } else {
                        f.write_str(k)?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl FromStr for ValuePath {
    type Err = EditError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_value_path(s)
    }
}

/// Which part of an image a Helm value holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HelmField {
    /// The tag alone (`image.tag`).
    #[default]
    Tag,
    /// The repository alone (`image.repository`).
    Repository,
    /// A combined `repo:tag[@digest]` string (`image: repo:tag`).
    Ref,
    /// A digest alone (`image.digest`).
    Digest,
}

/// Parse `a.b[0].c`; a key with dots or brackets is written in double quotes: `a."b.c".d`.
pub fn parse_value_path(input: &str) -> Result<ValuePath, EditError> {
    let bad = |reason: &str| EditError::BadPath {
        path: input.to_string(),
        reason: reason.to_string(),
    };
    let mut segments = Vec::new();
    let mut chars = input.chars().peekable();
    let mut expect_key = true;
    loop {
        match chars.peek() {
            None => break,
            Some('[') => {
                chars.next();
                let mut digits = String::new();
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    digits.push(c);
                }
                let index = digits
                    .parse::<usize>()
                    .map_err(|_| bad("an index must be a number in brackets, like [0]"))?;
                segments.push(PathSegment::Index(index));
                expect_key = false;
            }
            Some('.') if !expect_key => {
                chars.next();
                expect_key = true;
                if chars.peek().is_none() {
                    return Err(bad("the path ends with '.'"));
                }
            }
            Some('"') if expect_key => {
                chars.next();
                let mut key = String::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => key.extend(chars.next()),
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => key.push(c),
                    }
                }
                if !closed {
                    return Err(bad("unclosed quote"));
                }
                segments.push(PathSegment::Key(key));
                expect_key = false;
            }
            Some(_) if expect_key => {
                let mut key = String::new();
                while let Some(&c) = chars.peek() {
                    if c == '.' || c == '[' {
                        break;
                    }
                    key.push(c);
                    chars.next();
                }
                if key.is_empty() {
                    return Err(bad("empty key"));
                }
                segments.push(PathSegment::Key(key));
                expect_key = false;
            }
            Some(c) => return Err(bad(&format!("unexpected {c:?}; separate keys with '.'"))),
        }
    }
    if segments.is_empty() {
        return Err(bad("the path is empty"));
    }
    Ok(ValuePath(segments))
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Scalar { .. } => "scalar",
        Kind::Seq(_) => "sequence",
        Kind::Map(_) => "mapping",
        Kind::Alias(_) => "alias",
    }
}

/// The node `v` a path step reaches. Through an alias it is refused: editing it would edit the
/// anchor, and with it every other place that uses the anchor, without a word (a CI file whose
/// six jobs share `&golangImage`). Addressing the anchor itself is the way to change them all.
fn follow(src: &str, tree: &Tree, path: &ValuePath, v: NodeId) -> Result<NodeId, EditError> {
    let Kind::Alias(anchor) = tree.nodes[v].kind else {
        return Ok(v);
    };
    let target = tree.resolve(v);
    let (line, col) = line_col(src, tree.nodes[v].start);
    // The line of the `&name` mark (a block mapping's node starts at its first key).
    let start = tree.nodes[target].start;
    let mark = src[..start].rfind('&').unwrap_or(start);
    let (anchor_line, _) = line_col(src, mark);
    let mut users: Vec<usize> = tree
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, Kind::Alias(a) if a == anchor))
        .map(|n| line_col(src, n.start).0)
        .filter(|l| *l != line)
        .collect();
    users.dedup();
    let others = if users.is_empty() {
        String::new()
    } else {
        format!(
            " and by the aliases on line{} {}",
            if users.len() == 1 { "" } else { "s" },
            users
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Err(EditError::Unsupported {
        line,
        col,
        reason: format!(
            "path {path} goes through an alias; its anchor (line {anchor_line}) is also used where it is defined{others}, and editing it here would change all of them: address the anchor's own path to change them all"
        ),
    })
}

/// Walk `path` in one document.
fn walk(
    src: &str,
    tree: &Tree,
    index: &Index,
    root: NodeId,
    path: &ValuePath,
) -> Result<NodeId, EditError> {
    let mut here = tree.resolve(root);
    for (i, seg) in path.0.iter().enumerate() {
        let so_far = ValuePath(path.0[..i].to_vec());
        let so_far = if i == 0 {
            "the document root".to_string()
        } else {
            so_far.to_string()
        };
        let not_found = |reason: String| EditError::PathNotFound {
            path: path.to_string(),
            reason,
        };
        here = match (seg, &tree.nodes[here].kind) {
            (PathSegment::Key(key), Kind::Map(_)) => {
                let all = index.get_all(tree, here, key);
                match all.as_slice() {
                    [] => return Err(not_found(format!("{so_far} has no key {key:?}"))),
                    [(_, v)] => follow(src, tree, path, *v)?,
                    [_, (second, _), ..] => {
                        let (line, col) = line_col(src, tree.nodes[*second].start);
                        return Err(EditError::Ambiguous {
                            line,
                            col,
                            what: format!("key {key:?}"),
                            reason: format!("it appears more than once in {so_far}"),
                        });
                    }
                }
            }
            // `containers.0.tag`: a numeric key on a sequence is an index, as Helm's `--set`
            // and Argo CD's parameters write it.
            (PathSegment::Key(key), Kind::Seq(items))
                if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) =>
            {
                let Ok(n) = key.parse::<usize>() else {
                    return Err(not_found(format!("{so_far} has no index {key}")));
                };
                match items.get(n) {
                    Some(v) => follow(src, tree, path, *v)?,
                    None => {
                        return Err(not_found(format!(
                            "{so_far} has {} items, no index {n}",
                            items.len()
                        )));
                    }
                }
            }
            (PathSegment::Index(n), Kind::Seq(items)) => match items.get(*n) {
                Some(v) => follow(src, tree, path, *v)?,
                None => {
                    return Err(not_found(format!(
                        "{so_far} has {} items, no index {n}",
                        items.len()
                    )));
                }
            },
            (seg, kind) => {
                let want = match seg {
                    PathSegment::Key(_) => "a mapping",
                    PathSegment::Index(_) => "a sequence",
                };
                let (line, col) = line_col(src, tree.nodes[here].start);
                return Err(not_found(format!(
                    "{so_far} (at {line}:{col}) is a {}, not {want}",
                    kind_name(kind)
                )));
            }
        };
    }
    Ok(here)
}

/// The one scalar `path` designates (searching every document; more than one is ambiguous).
pub fn slot(
    src: &str,
    tree: &Tree,
    index: &Index,
    path: &ValuePath,
    field: HelmField,
) -> Result<Slot, EditError> {
    let mut hits = Vec::new();
    let mut first_error = None;
    for &root in &tree.roots {
        match walk(src, tree, index, root, path) {
            Ok(node) => hits.push(node),
            Err(e @ EditError::PathNotFound { .. }) => {
                first_error.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    let node = match hits.as_slice() {
        [] => {
            return Err(first_error.unwrap_or(EditError::PathNotFound {
                path: path.to_string(),
                reason: "the file has no document".into(),
            }));
        }
        [node] => *node,
        [_, second, ..] => {
            let (line, col) = line_col(src, tree.nodes[*second].start);
            return Err(EditError::Ambiguous {
                line,
                col,
                what: format!("path {path}"),
                reason: "it exists in more than one document".into(),
            });
        }
    };
    let kind = &tree.nodes[node].kind;
    if !matches!(kind, Kind::Scalar { .. }) {
        let (line, col) = line_col(src, tree.nodes[node].start);
        return Err(EditError::NotScalar {
            line,
            col,
            what: format!("path {path}"),
            found: kind_name(kind),
        });
    }
    let field = match field {
        HelmField::Tag => Field::HelmTag {
            digest: digest_sibling(src, tree, index, path, node),
        },
        HelmField::Repository => Field::Name,
        HelmField::Ref => Field::Ref,
        HelmField::Digest => Field::Digest,
    };
    Ok(Slot::Scalar { node, field })
}

/// The scalar `digest` key next to the tag `node` that `path` leads to (`image.digest` for
/// `image.tag`), when the mapping has exactly one.
fn digest_sibling(
    src: &str,
    tree: &Tree,
    index: &Index,
    path: &ValuePath,
    node: NodeId,
) -> Option<NodeId> {
    let (PathSegment::Key(key), parent) = path.0.split_last()? else {
        return None;
    };
    let parent = ValuePath(parent.to_vec());
    tree.roots.iter().find_map(|&root| {
        let map = walk(src, tree, index, root, &parent).ok()?;
        if !matches!(tree.nodes[map].kind, Kind::Map(_)) {
            return None;
        }
        let mine = index.get_all(tree, map, key);
        if !matches!(mine.as_slice(), [(_, v)] if tree.resolve(*v) == node) {
            return None;
        }
        match index.get_all(tree, map, "digest").as_slice() {
            [(_, v)] => {
                let v = tree.resolve(*v);
                matches!(tree.nodes[v].kind, Kind::Scalar { .. }).then_some(v)
            }
            _ => None,
        }
    })
}

/// Check that `value` is valid for `field` before writing it.
pub fn validate_value(field: HelmField, value: &str) -> Result<(), EditError> {
    let invalid = |reason: String| EditError::InvalidValue {
        value: value.to_string(),
        reason,
    };
    match field {
        HelmField::Tag if !is_valid_tag(value) => Err(invalid(
            "not a valid OCI tag (1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-')".into(),
        )),
        HelmField::Digest if !is_valid_digest(value) => Err(invalid(
            "not a valid digest (expected sha256:<64 lowercase hex>)".into(),
        )),
        HelmField::Repository => match ImageRef::parse(value) {
            Ok(r) if r.tag.is_none() && r.digest.is_none() => Ok(()),
            Ok(_) => Err(invalid("a repository has no tag or digest".into())),
            Err(e) => Err(invalid(e.to_string())),
        },
        HelmField::Ref => ImageRef::parse(value)
            .map(|_| ())
            .map_err(|e| invalid(e.to_string())),
        _ => Ok(()),
    }
}
