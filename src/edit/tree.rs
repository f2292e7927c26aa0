//! The document tree with byte positions: what both readers ([`super::scan`], the full parser,
//! and `quick`, the fast one) build and everything else in `edit` reads.
//!
//! Invariant: a [`Tree`] is a flat arena of nodes that remember where their text is, in
//! **bytes** of the original input; aliases are never expanded (an alias is a node naming its
//! anchor, resolved on demand by [`Tree::resolve`]), so walking a tree is linear in the input
//! even for alias bombs. Inputs larger than [`MAX_BYTES`] or nested deeper than [`MAX_DEPTH`]
//! never become a tree.

/// Largest input accepted, in bytes.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting of collections accepted.
pub const MAX_DEPTH: usize = 128;

/// Index of a node in [`Tree::nodes`].
pub type NodeId = usize;

/// Quoting style of a scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Single,
    Double,
    Block,
}

/// What a node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Scalar {
        value: String,
        style: Style,
        tag: Option<String>,
    },
    Seq(Vec<NodeId>),
    Map(Vec<(NodeId, NodeId)>),
    Alias(usize),
}

/// One node and where its text is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Anchor id (0 = none).
    pub anchor: usize,
    /// Byte offset where the node's own text starts (after any anchor and tag).
    pub start: usize,
    /// Byte offset one past the node's text (for scalars: after the closing quote; for flow
    /// collections: after the closing bracket). Block collections keep `end == start`.
    pub end: usize,
    /// True for flow collections (`[...]`, `{...}`).
    pub flow: bool,
}

/// Every document of a stream, in one arena.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub nodes: Vec<Node>,
    pub roots: Vec<NodeId>,
    /// Anchor id -> the node that carries it.
    pub anchors: Vec<(usize, NodeId)>,
}

impl Tree {
    /// The node an alias points to (or the node itself).
    pub fn resolve(&self, id: NodeId) -> NodeId {
        match self.nodes[id].kind {
            Kind::Alias(anchor) => self
                .anchors
                .iter()
                .rev()
                .find(|(a, _)| *a == anchor)
                .map_or(id, |(_, n)| *n),
            _ => id,
        }
    }

    /// The value of a scalar node, if it is one.
    pub fn scalar(&self, id: NodeId) -> Option<&str> {
        match &self.nodes[self.resolve(id)].kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The entries of a mapping node, if it is one.
    pub fn map(&self, id: NodeId) -> Option<&[(NodeId, NodeId)]> {
        match &self.nodes[self.resolve(id)].kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items of a sequence node, if it is one.
    pub fn seq(&self, id: NodeId) -> Option<&[NodeId]> {
        match &self.nodes[self.resolve(id)].kind {
            Kind::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// Every value whose key is the scalar `key` in mapping `id`.
    pub fn get_all(&self, id: NodeId, key: &str) -> Vec<(NodeId, NodeId)> {
        self.map(id)
            .map(|entries| {
                entries
                    .iter()
                    .filter(|(k, _)| self.scalar(*k) == Some(key))
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The value of the first entry `key` in mapping `id`.
    pub fn get(&self, id: NodeId, key: &str) -> Option<NodeId> {
        self.get_all(id, key).first().map(|(_, v)| *v)
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
pub fn line_col(src: &str, at: usize) -> (usize, usize) {
    let at = at.min(src.len());
    let before = &src.as_bytes()[..at];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let col = src
        .get(line_start..at)
        .map_or(at - line_start, |s| s.chars().count())
        + 1;
    (line, col)
}
