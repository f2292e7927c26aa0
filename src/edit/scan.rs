//! The full parser: the positioned [`Tree`] built from `saphyr-parser` events, for any YAML.
//!
//! Owns: turning a YAML stream into a flat arena of nodes (scalars, sequences, mappings,
//! aliases) that remember where their text is, in **bytes** of the original input. The fast
//! reader for the common subset is `quick`; the door that tries it first is
//! [`super::read`].
//!
//! Invariant: aliases are never expanded (an alias is a node naming its anchor), so the work is
//! linear in the input even for alias bombs; nesting deeper than [`MAX_DEPTH`] and inputs larger
//! than [`MAX_BYTES`] are refused before any work is done on them.
//!
//! Design choice: the parser reports positions in characters (and counts a UTF-8 BOM as one),
//! and the end of a quoted scalar's span runs over trailing blanks and comments. So we convert
//! character offsets to byte offsets with one table per document (skipped for ASCII input), and
//! find the end of a quoted scalar ourselves by scanning for its closing quote.

use saphyr_parser::{Event, Parser, ScalarStyle};

use super::error::EditError;
use super::tree::{Kind, MAX_BYTES, MAX_DEPTH, Node, NodeId, Style, Tree, line_col};

/// Maps the parser's character offsets to byte offsets.
struct Offsets {
    /// `None` for ASCII input (identity); otherwise byte offset of every char, plus the end.
    table: Option<Vec<usize>>,
    len: usize,
}

impl Offsets {
    fn new(src: &str) -> Offsets {
        let table = if src.is_ascii() {
            None
        } else {
            let mut t: Vec<usize> = src.char_indices().map(|(i, _)| i).collect();
            t.push(src.len());
            Some(t)
        };
        Offsets {
            table,
            len: src.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index.min(self.len),
            Some(t) => t.get(char_index).copied().unwrap_or(self.len),
        }
    }
}

/// Skip an anchor (`&a`), a tag (`!t`, `!!str`, `!<…>`), blanks, line breaks and comments that
/// precede a node's own text.
fn skip_properties(bytes: &[u8], mut i: usize, limit: usize) -> usize {
    loop {
        let start = i;
        while i < limit && matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
        }
        if i < limit && bytes[i] == b'#' {
            while i < limit && bytes[i] != b'\n' {
                i += 1;
            }
        } else if i < limit && (bytes[i] == b'&' || bytes[i] == b'!') {
            if bytes.get(i + 1) == Some(&b'<') {
                while i < limit && bytes[i] != b'>' {
                    i += 1;
                }
            }
            while i < limit && !matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n') {
                i += 1;
            }
        }
        if i == start || i >= limit {
            return i;
        }
    }
}

/// End (exclusive) of the quoted scalar that starts with the quote at `start`.
fn quoted_end(bytes: &[u8], start: usize) -> Option<usize> {
    let quote = *bytes.get(start)?;
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if quote == b'"' && b == b'\\' {
            i += 2;
            continue;
        }
        if b == quote {
            if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

fn tag_string(tag: &saphyr_parser::Tag) -> String {
    format!("{}{}", tag.handle, tag.suffix)
}

pub(super) fn check_size(src: &str) -> Result<(), EditError> {
    if src.len() > MAX_BYTES {
        return Err(EditError::TooLarge {
            size: src.len(),
            limit: MAX_BYTES,
        });
    }
    Ok(())
}

/// Parse a YAML stream with the full parser (`saphyr-parser`; a leading BOM is skipped by the
/// parser and counted by our offsets) into a [`Tree`]. The safety net reads edited text with
/// this one only.
pub fn parse_full(src: &str) -> Result<Tree, EditError> {
    check_size(src)?;
    let mut builder = Builder {
        src,
        bytes: src.as_bytes(),
        offsets: Offsets::new(src),
        tree: Tree {
            nodes: Vec::new(),
            roots: Vec::new(),
            anchors: Vec::new(),
        },
        stack: Vec::new(),
    };
    let mut parser = Parser::new_from_str(src);
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| builder.parse_error(&e))?;
        let (start, end) = (
            builder.offsets.byte(span.start.index()),
            builder.offsets.byte(span.end.index()),
        );
        let node = match event {
            Event::StreamEnd => break,
            Event::Scalar(value, style, anchor, tag) => builder.scalar(
                value.into_owned(),
                style,
                anchor,
                tag.as_deref(),
                start,
                end,
            ),
            Event::Alias(anchor) => Node {
                kind: Kind::Alias(anchor),
                anchor: 0,
                start,
                end,
                flow: false,
            },
            Event::SequenceStart(anchor, _) => builder.collection(true, anchor, start)?,
            Event::MappingStart(anchor, _) => builder.collection(false, anchor, start)?,
            Event::SequenceEnd | Event::MappingEnd => {
                builder.close(start, end);
                continue;
            }
            Event::StreamStart | Event::DocumentStart(_) | Event::DocumentEnd | Event::Nothing => {
                continue;
            }
        };
        builder.attach(node);
    }
    Ok(builder.tree)
}

/// The tree being built from the parser's events.
struct Builder<'s> {
    src: &'s str,
    bytes: &'s [u8],
    offsets: Offsets,
    tree: Tree,
    /// Open collections: node id, pending mapping key.
    stack: Vec<(NodeId, Option<NodeId>)>,
}

impl Builder<'_> {
    fn parse_error(&self, e: &saphyr_parser::ScanError) -> EditError {
        let at = self.offsets.byte(e.marker().index());
        let (line, col) = line_col(self.src, at);
        EditError::Parse {
            line,
            col,
            message: e.info().to_string(),
        }
    }

    /// A scalar node, its span narrowed to its own text: after any anchor and tag, to the
    /// closing quote, without trailing blanks.
    fn scalar(
        &self,
        value: String,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&saphyr_parser::Tag>,
        start: usize,
        end: usize,
    ) -> Node {
        let bytes = self.bytes;
        let text_start = skip_properties(bytes, start, end.max(start));
        let style = match style {
            ScalarStyle::Plain => Style::Plain,
            ScalarStyle::SingleQuoted => Style::Single,
            ScalarStyle::DoubleQuoted => Style::Double,
            _ => Style::Block,
        };
        let text_end = match style {
            Style::Single | Style::Double => quoted_end(bytes, text_start).unwrap_or(end).min(end),
            Style::Plain => {
                let mut e = end.max(text_start);
                while e > text_start && matches!(bytes[e - 1], b' ' | b'\t' | b'\r' | b'\n') {
                    e -= 1;
                }
                e
            }
            Style::Block => end,
        };
        Node {
            kind: Kind::Scalar {
                value,
                style,
                tag: tag.map(tag_string),
            },
            anchor,
            start: text_start,
            end: text_end,
            flow: false,
        }
    }

    /// A sequence or mapping node (refused past [`MAX_DEPTH`]).
    fn collection(&self, is_seq: bool, anchor: usize, start: usize) -> Result<Node, EditError> {
        if self.stack.len() >= MAX_DEPTH {
            let (line, col) = line_col(self.src, start);
            return Err(EditError::TooDeep {
                line,
                col,
                limit: MAX_DEPTH,
            });
        }
        let text_start = skip_properties(self.bytes, start, self.bytes.len());
        let flow = matches!(self.bytes.get(text_start), Some(b'[' | b'{'));
        Ok(Node {
            kind: if is_seq {
                Kind::Seq(Vec::new())
            } else {
                Kind::Map(Vec::new())
            },
            anchor,
            start: text_start,
            end: text_start,
            flow,
        })
    }

    /// Closes the innermost open collection; a flow one learns its end.
    fn close(&mut self, start: usize, end: usize) {
        let Some((id, _)) = self.stack.pop() else {
            return;
        };
        let tree = &mut self.tree;
        // A sequence at its key's indentation (`key:\n- [a]`) starts at its first
        // item, so it looked like a flow collection: it is a block one.
        let indentless = match &tree.nodes[id].kind {
            Kind::Seq(items) => items
                .first()
                .is_some_and(|f| tree.nodes[*f].start == tree.nodes[id].start),
            _ => false,
        };
        let node = &mut tree.nodes[id];
        if indentless {
            node.flow = false;
        }
        // A block collection's end is not tracked (nothing needs it): it stays at
        // its start.
        if node.flow {
            node.end = (start + 1).min(end.max(start + 1)).max(node.start);
        }
    }

    /// Adds `node` to the tree under the innermost open collection (or as a root), and opens
    /// it when it is a collection.
    fn attach(&mut self, mut node: Node) {
        self.place_empty_value(&mut node);
        let tree = &mut self.tree;
        let id = tree.nodes.len();
        let opens = matches!(node.kind, Kind::Seq(_) | Kind::Map(_));
        if node.anchor != 0 {
            tree.anchors.push((node.anchor, id));
        }
        tree.nodes.push(node);
        match self.stack.last_mut() {
            None => tree.roots.push(id),
            Some((parent, pending)) => {
                let parent = *parent;
                match &mut tree.nodes[parent].kind {
                    Kind::Seq(items) => items.push(id),
                    Kind::Map(entries) => match pending.take() {
                        None => *pending = Some(id),
                        Some(key) => entries.push((key, id)),
                    },
                    _ => {}
                }
            }
        }
        if opens {
            self.stack.push((id, None));
        }
    }

    /// An empty value (`tag:`) has no text; the parser puts it at the next token. Put it
    /// right after its key's colon instead, so that writing a value there is an insertion.
    fn place_empty_value(&self, node: &mut Node) {
        if let (
            Kind::Scalar {
                value,
                style: Style::Plain,
                tag: None,
            },
            Some((_, Some(key))),
        ) = (&node.kind, self.stack.last())
            && value.is_empty()
        {
            let bytes = self.bytes;
            let mut i = self.tree.nodes[*key].end;
            while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
                i += 1;
            }
            if bytes.get(i) == Some(&b':') {
                node.start = i + 1;
                node.end = i + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::parse_full as parse;
    use super::*;

    /// (value, text) of every scalar.
    fn scalars(src: &str) -> Vec<(String, String)> {
        let tree = parse(src).unwrap();
        tree.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                Kind::Scalar { value, .. } => {
                    Some((value.clone(), src[n.start..n.end].to_string()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn spans_of_plain_and_quoted_scalars_are_exact() {
        let got = scalars("a: b  # c\nx: 'q'' r'  \ny: \"d\\\"e\" # z\nl: [p , 'q' , r]\n");
        let want = [
            ("a", "a"),
            ("b", "b"),
            ("x", "x"),
            ("q' r", "'q'' r'"),
            ("y", "y"),
            ("d\"e", "\"d\\\"e\""),
            ("l", "l"),
            ("p", "p"),
            ("q", "'q'"),
            ("r", "r"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn spans_are_bytes_with_bom_and_unicode() {
        let src = "\u{feff}é: ünï\nk: &a \"v\"\nt: !!str 3\nz: *a\n";
        let got = scalars(src);
        assert_eq!(got[1], ("ünï".into(), "ünï".into()));
        assert_eq!(got[3], ("v".into(), "\"v\"".into()));
        assert_eq!(got[5], ("3".into(), "3".into()));
    }

    #[test]
    fn flow_collections_know_their_end() {
        let src = "m: {k: v, w: [1, 2] }  # x\n";
        let tree = parse(src).unwrap();
        let flows: Vec<&str> = tree
            .nodes
            .iter()
            .filter(|n| n.flow)
            .map(|n| &src[n.start..n.end])
            .collect();
        assert_eq!(flows, ["{k: v, w: [1, 2] }", "[1, 2]"]);
    }

    #[test]
    fn a_sequence_at_its_keys_indentation_is_a_block_one_even_when_its_item_is_flow() {
        let tree = parse_full("k:\n- [a, b]\n- {c: d}\n").unwrap();
        let flags: Vec<bool> = tree
            .nodes
            .iter()
            .filter(|n| matches!(n.kind, Kind::Seq(_) | Kind::Map(_)))
            .map(|n| n.flow)
            .collect();
        // The root mapping, the sequence, then the two flow items.
        assert_eq!(flags, [false, false, true, true]);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let src = "[".repeat(MAX_DEPTH + 5) + &"]".repeat(MAX_DEPTH + 5);
        assert!(matches!(parse(&src), Err(EditError::TooDeep { .. })));
    }

    #[test]
    fn invalid_yaml_reports_position() {
        let err = parse("a: b\n c: d\n- x\n").unwrap_err();
        assert!(matches!(err, EditError::Parse { .. }), "{err:?}");
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\nçd: e", 7), (2, 4));
    }
}
