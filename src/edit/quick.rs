//! A fast reader for the plain shape most config files have, giving up on anything else.
//!
//! Owns: building the same [`Tree`] as [`scan::parse_full`](super::scan::parse_full) for a
//! common subset of YAML, at a fraction of its cost: block mappings and sequences (including a
//! sequence at its key's indentation and a mapping opened on a `- ` line), single-line plain and
//! quoted scalars, single-line flow collections, comments, blank lines, `---`/`...` between
//! documents, CRLF, a BOM and unicode text.
//!
//! Invariant: the result is either `None` ("give up": the full parser decides, and reports any
//! error) or exactly the tree the full parser builds for the same input — node for node, value,
//! style and byte span. Whatever is not plainly inside the subset gives up: tabs, anchors,
//! aliases, tags, block scalars, directives, `?` keys, multi-line scalars and flow collections,
//! escapes in double quotes, empty documents or items, and every doubtful indentation. A
//! differential property test against the full parser holds this.
//!
//! Design choice: the safety net reads edited text through the same door (this reader, else the
//! full parser). What it guards against is a wrong edit (a wrong span, quoting or insertion
//! point), which any reader that builds the right tree exposes; that this reader builds the full
//! parser's tree is what the differential tests hold, on generated, mutated and arbitrary text
//! and on every edited output of the editor's property tests. A second, independent reader in
//! the safety net would cost a full `saphyr-parser` pass per edited file (most of the editor's
//! time) for no check the data comparison does not already make.

use super::tree::{Kind, MAX_DEPTH, Node, NodeId, Style, Tree};

/// "Give up; let the full parser read it."
struct GiveUp;

type Step<T> = Result<T, GiveUp>;

/// Read `src` if it is inside the subset; `None` otherwise.
pub fn parse(src: &str) -> Option<Tree> {
    if !plain_characters(src.as_bytes()) {
        return None;
    }
    let mut reader = Reader {
        b: src.as_bytes(),
        src,
        pos: 0,
        nodes: Vec::new(),
        depth: 0,
    };
    reader.stream().ok()
}

/// False when the text holds a character the subset leaves to the full parser: a tab, a control
/// character, a lone CR, a BOM after the start, or a character YAML treats specially (NEL, the
/// unicode line and paragraph separators, U+FFFE/U+FFFF, C1 controls).
fn plain_characters(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c >= 0x80 {
            let special = match c {
                0xC2 => b.get(i + 1).is_some_and(|n| (0x80..=0x9F).contains(n)),
                0xE2 => b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0xA8 | 0xA9)),
                0xEF => {
                    (i > 0 && b.get(i + 1) == Some(&0xBB) && b.get(i + 2) == Some(&0xBF))
                        || (b.get(i + 1) == Some(&0xBF)
                            && matches!(b.get(i + 2), Some(0xBE | 0xBF)))
                }
                _ => false,
            };
            if special {
                return false;
            }
        } else if c < 0x20 || c == 0x7F {
            match c {
                b'\n' => {}
                b'\r' if b.get(i + 1) == Some(&b'\n') => {}
                _ => return false,
            }
        }
        i += 1;
    }
    true
}

/// Where a plain scalar stopped.
#[derive(PartialEq, Eq)]
enum Stop {
    /// End of line or of input.
    Eol,
    /// ` #`: a comment follows.
    Comment,
    /// `: ` or `:` at the end of the line: the scalar was a key.
    Colon,
    /// A flow indicator (`,[]{}`) or a `:` followed by one (flow context only).
    Flow,
}

struct Reader<'a> {
    b: &'a [u8],
    src: &'a str,
    /// Current byte offset.
    pos: usize,
    nodes: Vec<Node>,
    depth: usize,
}

fn is_eol(c: Option<&u8>) -> bool {
    matches!(c, None | Some(b'\n' | b'\r'))
}

fn is_blank_or_eol(c: Option<&u8>) -> bool {
    matches!(c, None | Some(b'\n' | b'\r' | b' '))
}

fn is_flow_indicator(c: Option<&u8>) -> bool {
    matches!(c, Some(b',' | b'[' | b']' | b'{' | b'}'))
}

impl Reader<'_> {
    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn scalar(&mut self, value: String, style: Style, start: usize, end: usize) -> NodeId {
        self.push(Node {
            kind: Kind::Scalar {
                value,
                style,
                tag: None,
            },
            anchor: 0,
            start,
            end,
            flow: false,
        })
    }

    fn open(&mut self, kind: Kind, start: usize, flow: bool) -> Step<NodeId> {
        self.depth += 1;
        if self.depth >= MAX_DEPTH {
            return Err(GiveUp);
        }
        Ok(self.push(Node {
            kind,
            anchor: 0,
            start,
            end: start,
            flow,
        }))
    }

    fn close(&mut self, id: NodeId, kind: Kind, end: Option<usize>) {
        self.depth -= 1;
        let node = &mut self.nodes[id];
        node.kind = kind;
        if let Some(end) = end {
            node.end = end;
        }
    }

    fn skip_spaces(&self, mut i: usize) -> usize {
        while self.b.get(i) == Some(&b' ') {
            i += 1;
        }
        i
    }

    /// Skip blank and comment lines from `self.pos` (a line start). The indentation of the next
    /// content line, with `self.pos` at its start; `None` at the end of the input.
    fn next_line(&mut self) -> Option<usize> {
        loop {
            let i = self.skip_spaces(self.pos);
            match self.b.get(i) {
                None => {
                    self.pos = self.b.len();
                    return None;
                }
                Some(b'\n') => self.pos = i + 1,
                Some(b'\r') => self.pos = i + 2,
                Some(b'#') => self.pos = self.line_end(i),
                Some(_) => return Some(i - self.pos),
            }
        }
    }

    /// The start of the line after the one holding `i` (or the end of the input).
    fn line_end(&self, i: usize) -> usize {
        self.b[i..]
            .iter()
            .position(|c| *c == b'\n')
            .map_or(self.b.len(), |n| i + n + 1)
    }

    /// From `i`, only blanks and a comment (after a blank) may remain on the line; move to the
    /// next line.
    fn end_of_line(&mut self, i: usize) -> Step<()> {
        let j = self.skip_spaces(i);
        match self.b.get(j) {
            None => self.pos = j,
            Some(b'\n') => self.pos = j + 1,
            Some(b'\r') => self.pos = j + 2,
            Some(b'#') if j > i || self.b.get(j.wrapping_sub(1)) == Some(&b' ') => {
                self.pos = self.line_end(j);
            }
            _ => return Err(GiveUp),
        }
        Ok(())
    }

    /// True when the line at `self.pos` is the document marker `marker` (`---` or `...`).
    fn at_marker(&self, marker: &[u8]) -> bool {
        self.b[self.pos..].starts_with(marker) && is_blank_or_eol(self.b.get(self.pos + 3))
    }

    fn stream(&mut self) -> Step<Tree> {
        if self.src.starts_with('\u{feff}') {
            self.pos = 3;
        }
        let mut roots = Vec::new();
        // A `---` was read and its document's node not yet.
        let mut opened = false;
        // A `...` was read: only `---` or the end may follow.
        let mut ended = false;
        while let Some(indent) = self.next_line() {
            if indent == 0 && self.at_marker(b"---") {
                if opened {
                    return Err(GiveUp);
                }
                self.end_of_line(self.pos + 3)?;
                (opened, ended) = (true, false);
                continue;
            }
            if indent == 0 && self.at_marker(b"...") {
                if opened {
                    return Err(GiveUp);
                }
                self.end_of_line(self.pos + 3)?;
                ended = true;
                continue;
            }
            // A second document needs its `---`; `%` directives are left to the full parser.
            if ended || (!roots.is_empty() && !opened) || self.b[self.pos] == b'%' {
                return Err(GiveUp);
            }
            let root = self.block_node(indent)?;
            roots.push(root);
            opened = false;
        }
        if opened || roots.is_empty() {
            return Err(GiveUp);
        }
        Ok(Tree {
            nodes: std::mem::take(&mut self.nodes),
            roots,
            anchors: Vec::new(),
        })
    }

    /// A node that starts a content line of indentation `indent` (`self.pos` at the line start):
    /// a block sequence, a block mapping or a flow collection.
    fn block_node(&mut self, indent: usize) -> Step<NodeId> {
        let at = self.pos + indent;
        match self.b[at] {
            b'-' if is_blank_or_eol(self.b.get(at + 1)) => self.block_seq(indent, false),
            b'[' | b'{' => self.flow_line(at),
            _ => self.block_map(at, indent),
        }
    }

    /// A block sequence whose `-` lines are at `indent`; `self.pos` at the first one's start.
    /// `indentless`: the sequence is a mapping value at its key's indentation (the full parser
    /// starts such a sequence at its first item, not at the dash).
    fn block_seq(&mut self, indent: usize, indentless: bool) -> Step<NodeId> {
        let id = self.open(Kind::Seq(Vec::new()), self.pos + indent, false)?;
        let mut items = Vec::new();
        loop {
            let dash = self.pos + indent;
            let at = self.skip_spaces(dash + 1);
            let item = match self.b.get(at) {
                None | Some(b'\n' | b'\r' | b'#') => {
                    // The item is on the lines below, deeper than the dash.
                    self.end_of_line(dash + 1)?;
                    match self.next_line() {
                        Some(deeper) if deeper > indent => self.block_node(deeper)?,
                        _ => return Err(GiveUp),
                    }
                }
                Some(b'[' | b'{') => self.flow_line(at)?,
                Some(b'\'' | b'"') => {
                    let (_, end) = self.quoted(at)?;
                    let after = self.skip_spaces(end);
                    if self.b.get(after) == Some(&b':') {
                        // A mapping opened on the dash's line, at the key's column.
                        self.block_map(at, at - self.line_start(dash))?
                    } else {
                        self.quoted_line(at)?
                    }
                }
                Some(_) => {
                    let (end, stop, _) = self.plain(at, false)?;
                    if stop == Stop::Colon {
                        self.block_map(at, at - self.line_start(dash))?
                    } else {
                        let node =
                            self.scalar(self.src[at..end].to_string(), Style::Plain, at, end);
                        self.end_of_line(end)?;
                        node
                    }
                }
            };
            if indentless && items.is_empty() {
                self.nodes[id].start = self.nodes[item].start;
                self.nodes[id].end = self.nodes[item].start;
            }
            items.push(item);
            match self.next_line() {
                Some(n) if n == indent => {
                    let at = self.pos + indent;
                    if self.b[at] != b'-' || !is_blank_or_eol(self.b.get(at + 1)) {
                        // The sequence sat at its key's indentation (or a `---` follows).
                        break;
                    }
                }
                Some(n) if n > indent => return Err(GiveUp),
                _ => break,
            }
        }
        self.close(id, Kind::Seq(items), None);
        Ok(id)
    }

    /// The offset of the start of the line holding `i`.
    fn line_start(&self, i: usize) -> usize {
        self.b[..i]
            .iter()
            .rposition(|c| *c == b'\n')
            .map_or(0, |n| n + 1)
    }

    /// A block mapping whose keys are at column `indent`; its first key starts at `at`.
    fn block_map(&mut self, at: usize, indent: usize) -> Step<NodeId> {
        let id = self.open(Kind::Map(Vec::new()), at, false)?;
        let mut entries = Vec::new();
        let mut key_at = at;
        loop {
            let (key, colon) = self.key(key_at)?;
            let value = self.map_value(indent, colon)?;
            entries.push((key, value));
            match self.next_line() {
                Some(n) if n == indent => {
                    if indent == 0 && (self.at_marker(b"---") || self.at_marker(b"...")) {
                        break;
                    }
                    key_at = self.pos + indent;
                    if self.b[key_at] == b'-' && is_blank_or_eol(self.b.get(key_at + 1)) {
                        return Err(GiveUp);
                    }
                }
                Some(n) if n > indent => return Err(GiveUp),
                _ => break,
            }
        }
        self.close(id, Kind::Map(entries), None);
        Ok(id)
    }

    /// A block mapping key at `at`; the key's node and the offset of its colon.
    fn key(&mut self, at: usize) -> Step<(NodeId, usize)> {
        let (node, end) = match self.b[at] {
            b'\'' | b'"' => self.quoted_node(at)?,
            _ => {
                let (end, stop, _) = self.plain(at, false)?;
                if stop != Stop::Colon {
                    return Err(GiveUp);
                }
                (
                    self.scalar(self.src[at..end].to_string(), Style::Plain, at, end),
                    end,
                )
            }
        };
        let colon = self.skip_spaces(end);
        // Implicit keys are one line of at most 1024 characters.
        if self.b.get(colon) != Some(&b':')
            || !is_blank_or_eol(self.b.get(colon + 1))
            || colon - at > 1000
        {
            return Err(GiveUp);
        }
        Ok((node, colon))
    }

    /// The value of a block mapping entry whose colon is at `colon`, in a mapping at `indent`.
    fn map_value(&mut self, indent: usize, colon: usize) -> Step<NodeId> {
        let at = self.skip_spaces(colon + 1);
        match self.b.get(at) {
            None | Some(b'\n' | b'\r' | b'#') => {
                self.end_of_line(colon + 1)?;
                let next = self.next_line();
                match next {
                    Some(n) if n > indent => self.block_node(n),
                    Some(n)
                        if n == indent
                            && self.b[self.pos + n] == b'-'
                            && is_blank_or_eol(self.b.get(self.pos + n + 1)) =>
                    {
                        self.block_seq(n, true)
                    }
                    // Nothing: an empty value, placed right after the colon.
                    _ => Ok(self.scalar(String::new(), Style::Plain, colon + 1, colon + 1)),
                }
            }
            Some(b'[' | b'{') => self.flow_line(at),
            Some(b'\'' | b'"') => self.quoted_line(at),
            Some(_) => {
                let (end, stop, _) = self.plain(at, false)?;
                if stop == Stop::Colon {
                    return Err(GiveUp);
                }
                let node = self.scalar(self.src[at..end].to_string(), Style::Plain, at, end);
                self.end_of_line(end)?;
                Ok(node)
            }
        }
    }

    /// A plain scalar at `at`: its end (trailing blanks trimmed), why it stopped, and where.
    fn plain(&self, at: usize, flow: bool) -> Step<(usize, Stop, usize)> {
        let b = self.b;
        let first = b[at];
        let next = b.get(at + 1);
        let indicator = matches!(
            first,
            b'?' | b':'
                | b','
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'#'
                | b'&'
                | b'*'
                | b'!'
                | b'|'
                | b'>'
                | b'\''
                | b'"'
                | b'%'
                | b'@'
                | b'`'
        );
        if indicator
            || (first == b'-' && (is_blank_or_eol(next) || (flow && is_flow_indicator(next))))
        {
            return Err(GiveUp);
        }
        let mut i = at;
        let stop = loop {
            match b.get(i) {
                None | Some(b'\n' | b'\r') => break Stop::Eol,
                Some(b' ') if b.get(i + 1) == Some(&b'#') => {
                    if flow {
                        return Err(GiveUp);
                    }
                    break Stop::Comment;
                }
                Some(b':') => {
                    let n = b.get(i + 1);
                    if is_blank_or_eol(n) {
                        break Stop::Colon;
                    }
                    if flow && is_flow_indicator(n) {
                        break Stop::Flow;
                    }
                }
                Some(b',' | b'[' | b']' | b'{' | b'}') if flow => break Stop::Flow,
                // The full parser refuses `-` before a flow indicator after a blank (`[a -]`).
                Some(b'-') if flow && is_flow_indicator(b.get(i + 1)) => return Err(GiveUp),
                Some(_) => {}
            }
            i += 1;
        };
        let mut end = i;
        while end > at && b[end - 1] == b' ' {
            end -= 1;
        }
        Ok((end, stop, i))
    }

    /// A quoted scalar at `at` that ends its line (a comment may follow).
    fn quoted_line(&mut self, at: usize) -> Step<NodeId> {
        let (node, end) = self.quoted_node(at)?;
        self.end_of_line(end)?;
        Ok(node)
    }

    /// The node of the quoted scalar at `at`, and the offset after its closing quote.
    fn quoted_node(&mut self, at: usize) -> Step<(NodeId, usize)> {
        let (value, end) = self.quoted(at)?;
        let style = if self.b[at] == b'"' {
            Style::Double
        } else {
            Style::Single
        };
        Ok((self.scalar(value, style, at, end), end))
    }

    /// A quoted scalar on one line at `at`: its value and the offset after the closing quote.
    fn quoted(&self, at: usize) -> Step<(String, usize)> {
        let quote = self.b[at];
        let mut value = String::new();
        let mut from = at + 1;
        let mut i = at + 1;
        loop {
            match self.b.get(i) {
                None | Some(b'\n' | b'\r') => return Err(GiveUp),
                Some(b'\\') if quote == b'"' => return Err(GiveUp),
                Some(c) if *c == quote => {
                    if quote == b'\'' && self.b.get(i + 1) == Some(&b'\'') {
                        value.push_str(&self.src[from..=i]);
                        i += 2;
                        from = i;
                        continue;
                    }
                    value.push_str(&self.src[from..i]);
                    return Ok((value, i + 1));
                }
                Some(_) => i += 1,
            }
        }
    }

    /// A flow collection at `at` that ends its line (a comment may follow); `self.pos` ends at
    /// the next line.
    fn flow_line(&mut self, at: usize) -> Step<NodeId> {
        let node = self.flow(at)?;
        self.end_of_line(self.pos)?;
        Ok(node)
    }

    /// A flow collection on one line at `at`; `self.pos` ends after its closing bracket.
    fn flow(&mut self, at: usize) -> Step<NodeId> {
        let is_map = self.b[at] == b'{';
        let close = if is_map { b'}' } else { b']' };
        let kind = if is_map {
            Kind::Map(Vec::new())
        } else {
            Kind::Seq(Vec::new())
        };
        let id = self.open(kind, at, true)?;
        let mut items = Vec::new();
        let mut entries = Vec::new();
        let mut i = self.skip_spaces(at + 1);
        if self.b.get(i) != Some(&close) {
            loop {
                if is_map {
                    let key = match self.b.get(i) {
                        Some(b'[' | b'{') => return Err(GiveUp),
                        _ => self.flow_scalar(i)?,
                    };
                    let colon = self.skip_spaces(self.pos);
                    if self.b.get(colon) != Some(&b':') || self.b.get(colon + 1) != Some(&b' ') {
                        return Err(GiveUp);
                    }
                    let v = self.skip_spaces(colon + 1);
                    if is_eol(self.b.get(v)) || matches!(self.b[v], b',' | b'}') {
                        return Err(GiveUp);
                    }
                    let value = self.flow_item(v)?;
                    entries.push((key, value));
                } else {
                    let item = self.flow_item(i)?;
                    if self.b.get(self.skip_spaces(self.pos)) == Some(&b':') {
                        // A single-pair mapping inside a sequence.
                        return Err(GiveUp);
                    }
                    items.push(item);
                }
                i = self.skip_spaces(self.pos);
                match self.b.get(i) {
                    Some(b',') => {
                        i = self.skip_spaces(i + 1);
                        if matches!(self.b.get(i), Some(b']' | b'}' | b','))
                            || is_eol(self.b.get(i))
                        {
                            return Err(GiveUp);
                        }
                    }
                    Some(c) if *c == close => break,
                    _ => return Err(GiveUp),
                }
            }
        }
        self.pos = i + 1;
        let kind = if is_map {
            Kind::Map(entries)
        } else {
            Kind::Seq(items)
        };
        self.close(id, kind, Some(i + 1));
        Ok(id)
    }

    /// A value inside a flow collection at `at`; `self.pos` ends after it.
    fn flow_item(&mut self, at: usize) -> Step<NodeId> {
        match self.b.get(at) {
            Some(b'[' | b'{') => self.flow(at),
            _ => self.flow_scalar(at),
        }
    }

    /// A scalar inside a flow collection at `at`; `self.pos` ends after it.
    fn flow_scalar(&mut self, at: usize) -> Step<NodeId> {
        match self.b.get(at) {
            Some(b'\'' | b'"') => {
                let (node, end) = self.quoted_node(at)?;
                self.pos = end;
                Ok(node)
            }
            c if is_eol(c) => Err(GiveUp),
            _ => {
                let (end, stop, stopped) = self.plain(at, true)?;
                if stop == Stop::Eol || end == at {
                    return Err(GiveUp);
                }
                self.pos = stopped;
                Ok(self.scalar(self.src[at..end].to_string(), Style::Plain, at, end))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::scan::parse_full;
    use super::parse;

    /// The quick reader reads `src` and builds exactly the full parser's tree.
    fn taken(src: &str) {
        let quick = parse(src).unwrap_or_else(|| panic!("the quick reader gave up on:\n{src}"));
        assert_eq!(Ok(quick), parse_full(src), "trees differ for:\n{src}");
    }

    #[test]
    fn common_config_shapes_are_read_quickly_and_identically() {
        taken(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n# overlay\nresources:\n  - ../../base\nimages:\n  - name: ghcr.io/acme/app\n    newTag: 1.0.0 # bumped\n  - name: nginx\n    newName: mirror.io/nginx\n    newTag: \"1.25\"\n",
        );
        taken(
            "image:\n  registry: docker.io\n  repository: bitnami/nginx\n  tag: 1.25.3-debian-12-r1\n  digest: \"\"\nresources: {limits: {cpu: 100m, memory: 128Mi}}\nports: [80 , '443', {name: x}]\n",
        );
        taken(
            "---\napiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: ghcr.io/acme/app:1.0.0 # main\n---\n# second\nkind: Service\n...\n---\nkind: ConfigMap\n",
        );
        // Indentless sequences, a mapping opened on a dash line, empty values, quoted keys.
        taken("a:\n- x\n- y: 1\n  z:\nb:\n'c': \"d\"\n\"e f\": 'it''s'\n-g: h\n");
        // CRLF, a BOM, unicode, no final newline, comments and blank lines anywhere.
        taken("\u{feff}é: ünï\r\n\r\n  # note\r\nk:\r\n  - '✓'\r\n  -\r\n    m: n  # c\r\nlast: v");
        // Plain scalars with the characters that end them elsewhere.
        taken("url: http://x:80/a#b\nlist: a,b[c]{d}\nflow: [a:b, 'c']\nsp: a  b   \n");
    }

    /// Whether or not the quick reader takes `src`, the tree is the full parser's.
    fn agrees(src: &str) {
        if let Some(quick) = parse(src) {
            assert_eq!(Ok(quick), parse_full(src), "trees differ for:\n{src}");
        }
    }

    #[test]
    fn edge_shapes_agree_with_the_full_parser() {
        taken("e: {}\nf: [ ]\ng: {a: [b, {c: d}]}\n");
        taken("a:  \nb: 'x' # c\n\"k\"  : v\n...\n");
        taken("- a:\n    b: c\n  d: e\n- f:\n  - g\n  h: i\n");
        for src in [
            "\u{feff}  a: b\n",
            "a: b\n  \n",
            "a: b\n---\n",
            "--- # c\na: b\n",
            "a:#c\n",
            "a: 'x'#c\n",
            "- a:\n",
            "- a: b\n---\n- c\n",
            "a: [b] # c\n",
            "{a: b}: c\n",
            "a: [b]: c\n",
            "a: b #c\n  d\n",
        ] {
            agrees(src);
        }
    }

    #[test]
    fn root_sequences_and_flow_roots_are_read() {
        taken("-\n  - a\n  - b\n- c: d\n");
        taken("[a, {b: c}]\n");
        taken("  a: b\n  c: d\n");
    }

    #[test]
    fn the_edit_corpus_is_read_identically() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/edit-corpus");
        let mut read = 0;
        for case in std::fs::read_dir(dir).unwrap() {
            let case = case.unwrap().path();
            if !case.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&case).unwrap() {
                let file = file.unwrap().path();
                let Ok(text) = std::fs::read_to_string(&file) else {
                    continue;
                };
                if let Some(quick) = parse(&text) {
                    assert_eq!(Ok(quick), parse_full(&text), "{}", file.display());
                    read += 1;
                }
            }
        }
        assert!(read >= 20, "only {read} corpus files were read quickly");
    }

    #[test]
    fn the_repositorys_own_config_and_chart_files_are_read_identically() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![
            root.join("charts/imagebump/values.yaml"),
            root.join("charts/imagebump/Chart.yaml"),
        ];
        let mut dirs = vec![root.join("config")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml") {
                    files.push(path);
                }
            }
        }
        let mut read = 0;
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            if let Some(quick) = parse(&text) {
                assert_eq!(Ok(quick), parse_full(&text), "{}", file.display());
                read += 1;
            }
        }
        // Comment-heavy, real files: most are inside the subset.
        assert!(
            read * 2 >= files.len(),
            "{read} of {} read quickly",
            files.len()
        );
    }
}
