//! A small YAML tree with positions, for configuration files.
//!
//! Config files are small and written by people, so we build a plain tree (scalars keep their
//! text, every node keeps its line and column) and validate it by hand: that is what lets every
//! error name `file:line:col`. Aliases are expanded here, with a bound on the nodes an expansion
//! may create (an alias bomb is an error, not an out-of-memory).
//!
//! Invariant: every node carries the line and column it came from, and an alias expansion never
//! creates more than its bound of nodes.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Most nodes a document may expand to (aliases included).
const MAX_NODES: usize = 100_000;
/// Deepest nesting accepted.
const MAX_DEPTH: usize = 64;

/// A node with its position (line and column are 1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// A scalar's text; `quoted` is true for quoted and block scalars (never null, bool or number).
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A syntax error with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Node {
    /// A short description of the node's kind, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

fn position(span: &Span) -> (usize, usize) {
    (span.start.line(), span.start.col() + 1)
}

enum Frame {
    Seq(Node, Vec<Node>, usize),
    Map(Node, Vec<(Node, Node)>, Option<Node>, usize),
}

/// Parse the first document of `src`. An empty document is `Ok(None)`; a second document is an
/// error (a config file holds one).
pub fn parse(src: &str) -> Result<Option<Node>, SyntaxError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    let mut nodes = 0usize;
    for event in Parser::new_from_str(src) {
        let (event, span) = event.map_err(|e| SyntaxError {
            line: e.marker().line(),
            col: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
        let (line, col) = position(&span);
        let mut complete: Option<(Node, usize)> = None;
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        line,
                        col,
                        message: "a config file holds one YAML document; found a second one"
                            .to_string(),
                    });
                }
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = !matches!(style, ScalarStyle::Plain);
                let value = if !quoted && matches!(&*text, "" | "~" | "null" | "Null" | "NULL") {
                    Value::Null
                } else {
                    Value::Scalar {
                        text: text.into_owned(),
                        quoted,
                    }
                };
                complete = Some((Node { value, line, col }, anchor));
            }
            Event::Alias(id) => {
                let node = anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                    line,
                    col,
                    message: "alias to an unknown anchor".to_string(),
                })?;
                nodes += count(&node);
                // Keep the alias's own position so errors point where it is used.
                complete = Some((Node { line, col, ..node }, 0));
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq(
                    Node {
                        value: Value::Null,
                        line,
                        col,
                    },
                    Vec::new(),
                    anchor,
                ));
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map(
                    Node {
                        value: Value::Null,
                        line,
                        col,
                    },
                    Vec::new(),
                    None,
                    anchor,
                ));
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(mut node, items, anchor)) = stack.pop() {
                    node.value = Value::Seq(items);
                    complete = Some((node, anchor));
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(mut node, entries, _, anchor)) = stack.pop() {
                    node.value = Value::Map(entries);
                    complete = Some((node, anchor));
                }
            }
            _ => {}
        }
        if stack.len() > MAX_DEPTH {
            return Err(SyntaxError {
                line,
                col,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        if let Some((node, anchor)) = complete {
            nodes += 1;
            if nodes > MAX_NODES {
                return Err(SyntaxError {
                    line,
                    col,
                    message: format!(
                        "document expands to more than {MAX_NODES} nodes (alias bomb?)"
                    ),
                });
            }
            if anchor != 0 {
                anchors.insert(anchor, node.clone());
            }
            match stack.last_mut() {
                Some(Frame::Seq(_, items, _)) => items.push(node),
                Some(Frame::Map(_, entries, key, _)) => match key.take() {
                    Some(k) => entries.push((k, node)),
                    None => *key = Some(node),
                },
                None => root = Some(node),
            }
        }
    }
    Ok(root)
}

fn count(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count(k) + count(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scalar(node: &Node) -> &str {
        match &node.value {
            Value::Scalar { text, .. } => text,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn positions_are_one_based() {
        let root = parse("a: 1\nb:\n  - x\n  - 'y'\n").unwrap().unwrap();
        let Value::Map(entries) = &root.value else {
            panic!()
        };
        assert_eq!((entries[0].0.line, entries[0].0.col), (1, 1));
        let Value::Seq(items) = &entries[1].1.value else {
            panic!()
        };
        assert_eq!((items[1].line, items[1].col), (4, 5));
        assert_eq!(scalar(&items[1]), "y");
        assert!(matches!(items[1].value, Value::Scalar { quoted: true, .. }));
    }

    #[test]
    fn null_and_empty() {
        assert_eq!(parse("").unwrap(), None);
        let root = parse("a: ~\nb:\nc: ''\n").unwrap().unwrap();
        let Value::Map(entries) = &root.value else {
            panic!()
        };
        assert_eq!(entries[0].1.value, Value::Null);
        assert_eq!(entries[1].1.value, Value::Null);
        assert_eq!(scalar(&entries[2].1), "");
    }

    #[test]
    fn aliases_expand_with_a_bound() {
        let root = parse("a: &x {k: v}\nb: *x\n").unwrap().unwrap();
        let Value::Map(entries) = &root.value else {
            panic!()
        };
        assert_eq!(entries[1].1.line, 2);
        assert!(matches!(entries[1].1.value, Value::Map(_)));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let err = parse(&bomb).unwrap_err();
        assert!(err.message.contains("alias bomb"), "{err:?}");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.line >= 1, "{err:?}");
        let err = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("second"));
    }

    #[test]
    fn bom_is_ignored() {
        let root = parse("\u{feff}a: 1\n").unwrap().unwrap();
        assert!(matches!(root.value, Value::Map(_)));
    }
}
