//! Splicing: planned edits become byte replacements in the original text, and the result is
//! checked by the safety net before anything is returned.
//!
//! Invariant: every byte outside the replaced spans and insertion points stays identical, and
//! an edited text is returned only after [`verify::check`] found its data equal to the
//! original's everywhere except at the intended nodes; two edits that overlap, or that want
//! different values in one scalar, are refused.

use super::edits::Edit;
use super::error::EditError;
use super::index::Index;
use super::tree::{Kind, NodeId, Style, Tree};
use super::{scalar, verify};

/// One change made to a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// 1-based line of the edited (or inserted) scalar in the original file.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
    /// Old value (empty for an inserted key, and for an empty value filled in).
    pub old: String,
    /// New value.
    pub new: String,
    /// The key was inserted (it was not in the file), rather than its value replaced.
    pub inserted: bool,
}

/// The edited bytes and what changed. `changes` is empty (and `bytes` equal to the input) when
/// the file is already up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub bytes: Vec<u8>,
    pub changes: Vec<Change>,
}

/// One byte replacement: `text` in place of `src[start..end]`, and the change it makes.
struct Piece {
    start: usize,
    end: usize,
    text: String,
    change: Change,
    /// The index of the update (of [`splice_each`]'s) this piece belongs to.
    owner: usize,
}

/// Turn edits into byte replacements, apply them, and verify the result.
pub(super) fn splice(
    src: &str,
    tree: &Tree,
    index: &Index,
    edits: Vec<Edit>,
) -> Result<Edited, EditError> {
    let edits = edits.into_iter().map(|e| (0, e)).collect();
    let (bytes, changes) = splice_each(src, tree, index, edits, 1)?;
    Ok(Edited {
        bytes,
        changes: changes.into_iter().flatten().collect(),
    })
}

/// [`splice`] for the edits of `owners` updates at once, each edit tagged with its update's
/// index: one assembly and one verification for all, and the changes per update (in line
/// order). An edit identical to an earlier one of the same node is made once, for the earlier.
pub(super) fn splice_each(
    src: &str,
    tree: &Tree,
    index: &Index,
    edits: Vec<(usize, Edit)>,
    owners: usize,
) -> Result<(Vec<u8>, Vec<Vec<Change>>), EditError> {
    let mut pieces: Vec<Piece> = Vec::new();
    let mut expect = verify::Expectations::default();
    for (owner, edit) in edits {
        match edit {
            Edit::Replace { node, value } => {
                pieces.extend(
                    replacement(src, tree, index, node, value, &mut expect)?.map(|mut piece| {
                        piece.owner = owner;
                        piece
                    }),
                );
            }
            Edit::Insert { map, key, value } => {
                let (at, text) = insertion(src, tree, index, map, &key, &value)?;
                let (line, column) = index.line_col(src, at);
                let line = if text.starts_with(['\r', '\n']) {
                    line + 1
                } else {
                    line
                };
                pieces.push(Piece {
                    start: at,
                    end: at,
                    text,
                    change: Change {
                        line,
                        column,
                        old: String::new(),
                        new: value.clone(),
                        inserted: true,
                    },
                    owner,
                });
                expect.inserts.entry(map).or_default().push((key, value));
            }
        }
    }
    let mut per_owner: Vec<Vec<Change>> = vec![Vec::new(); owners];
    if pieces.is_empty() {
        return Ok((src.as_bytes().to_vec(), per_owner));
    }
    let (out, changes) = assemble(src, pieces)?;
    verify::check(src, tree, &out, &expect)?;
    for (owner, change) in changes {
        if let Some(list) = per_owner.get_mut(owner) {
            list.push(change);
        }
    }
    for list in &mut per_owner {
        list.sort_by_key(|c| (c.line, c.column));
    }
    Ok((out.into_bytes(), per_owner))
}

/// The piece that replaces scalar `node` by `value` (`None`: an earlier edit already writes
/// the same value there), noted in `expect`.
fn replacement(
    src: &str,
    tree: &Tree,
    index: &Index,
    node: NodeId,
    value: String,
    expect: &mut verify::Expectations,
) -> Result<Option<Piece>, EditError> {
    let node = tree.resolve(node);
    let n = &tree.nodes[node];
    let (line, column) = index.line_col(src, n.start);
    let Kind::Scalar {
        value: old, style, ..
    } = &n.kind
    else {
        return Err(EditError::NotScalar {
            line,
            col: column,
            what: "the target".into(),
            found: "collection",
        });
    };
    let original = &src[n.start..n.end];
    if *style == Style::Block || original.contains('\n') {
        return Err(EditError::Unsupported {
            line,
            col: column,
            reason: "the value is a block or multi-line scalar; write it on one line first".into(),
        });
    }
    // Two targets reaching one scalar (a Kustomize entry's newTag that also carries
    // a `:tag` marker, an anchor and its alias): the same new value is one edit,
    // different ones are refused.
    match expect.values.get(&node) {
        Some(earlier) if *earlier == value => return Ok(None),
        Some(earlier) => {
            return Err(EditError::Ambiguous {
                line,
                col: column,
                what: "the value".into(),
                reason: format!(
                    "two targets reach it and want different values, {earlier:?} and {value:?} (a marker and an entry of different images, or an anchor and its alias?)"
                ),
            });
        }
        None => {}
    }
    let mut text = scalar::render(*style, &value);
    if original.is_empty() {
        // An empty value right after its key's colon.
        text.insert(0, ' ');
    }
    let piece = Piece {
        start: n.start,
        end: n.end,
        text,
        change: Change {
            line,
            column,
            old: old.clone(),
            new: value.clone(),
            inserted: false,
        },
        owner: 0,
    };
    expect.values.insert(node, value);
    Ok(Some(piece))
}

/// The original text with `pieces` applied, and their changes in text order.
fn assemble(
    src: &str,
    mut pieces: Vec<Piece>,
) -> Result<(String, Vec<(usize, Change)>), EditError> {
    pieces.sort_by_key(|p| (p.start, p.end));
    let mut out = String::with_capacity(src.len() + 64);
    let mut cursor = 0;
    let mut changes = Vec::new();
    for piece in pieces {
        if piece.start < cursor {
            return Err(EditError::Ambiguous {
                line: piece.change.line,
                col: piece.change.column,
                what: "the value".into(),
                reason: "two edits overlap".into(),
            });
        }
        out.push_str(&src[cursor..piece.start]);
        out.push_str(&piece.text);
        cursor = piece.end;
        changes.push((piece.owner, piece.change));
    }
    out.push_str(&src[cursor..]);
    Ok((out, changes))
}

/// The line ending used by the line containing byte `at` (or the file's first one).
fn line_ending(src: &str, at: usize) -> &'static str {
    let from_here = src[at..].find('\n').map(|i| at + i);
    let any = from_here.or_else(|| src.find('\n'));
    match any {
        Some(i) if i > 0 && src.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

/// Where and what to insert to add `key: value` as the last entry of mapping `map`.
fn insertion(
    src: &str,
    tree: &Tree,
    index: &Index,
    map: NodeId,
    key: &str,
    value: &str,
) -> Result<(usize, String), EditError> {
    let node = &tree.nodes[map];
    let (line, col) = index.line_col(src, node.start);
    let entries = tree.map(map).unwrap_or_default();
    let Some(&(first_key, _)) = entries.first() else {
        return Err(EditError::Unsupported {
            line,
            col,
            reason: format!("cannot add {key} to an empty mapping"),
        });
    };
    let Some(&(_, last_value)) = entries.last() else {
        return Err(EditError::Unsupported {
            line,
            col,
            reason: format!("cannot add {key} to an empty mapping"),
        });
    };
    let rendered = scalar::render(Style::Plain, value);
    let last_end = tree.nodes[last_value].end;
    if node.flow {
        return Ok((last_end, format!(", {key}: {rendered}")));
    }
    let last = &tree.nodes[last_value];
    if matches!(
        last.kind,
        Kind::Scalar {
            style: Style::Block,
            ..
        }
    ) || matches!(last.kind, Kind::Seq(_) | Kind::Map(_)) && !last.flow
    {
        return Err(EditError::Unsupported {
            line,
            col,
            reason: format!("the entry ends with a nested block; add {key} by hand"),
        });
    }
    let key_start = tree.nodes[first_key].start;
    let (_, key_col) = index.line_col(src, key_start);
    let indent = " ".repeat(key_col - 1);
    let eol = line_ending(src, last_end);
    match src[last_end..].find('\n') {
        Some(i) => Ok((last_end + i + 1, format!("{indent}{key}: {rendered}{eol}"))),
        None => Ok((src.len(), format!("{eol}{indent}{key}: {rendered}"))),
    }
}
