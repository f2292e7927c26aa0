//! Property tests: generated YAML documents (random comments, quoting, indentation, flow style,
//! CRLF, BOM); after an edit, the text differs exactly in the edited scalar's span and the data
//! (read by an independent parser, yaml_serde) differs exactly at the edited node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use super::scalar::{needs_quotes, render};
use super::tree::Style;
use super::{HelmField, PathSegment, ValuePath, set_value};

#[derive(Debug, Clone)]
enum Gen {
    Scalar(String, Style),
    Map(Vec<Gen>, bool),
    Seq(Vec<Gen>, bool),
}

#[derive(Debug, Clone)]
struct Layout {
    step: usize,
    eol: &'static str,
    bom: bool,
    comments: Vec<bool>,
}

/// A scalar's place in the rendered text.
#[derive(Debug, Clone)]
struct Leaf {
    path: Vec<PathSegment>,
    start: usize,
    end: usize,
    style: Style,
}

fn scalar() -> impl Strategy<Value = Gen> {
    let values = prop::sample::select(vec![
        "1.0",
        "abc",
        "true",
        "x y",
        "1.2.3",
        "v1",
        "é ü ✓",
        "",
        "null",
        "it's",
        "012",
        "q\"d",
    ]);
    let styles = prop::sample::select(vec![Style::Plain, Style::Single, Style::Double]);
    (values, styles).prop_map(|(v, s)| {
        let s = if s == Style::Plain && (needs_quotes(v) || v.contains(['\'', '"'])) {
            Style::Double
        } else {
            s
        };
        Gen::Scalar(v.to_string(), s)
    })
}

fn tree() -> impl Strategy<Value = Gen> {
    scalar().prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            (prop::collection::vec(inner.clone(), 1..5), any::<bool>())
                .prop_map(|(v, f)| Gen::Map(v, f)),
            (prop::collection::vec(inner, 1..5), any::<bool>()).prop_map(|(v, f)| Gen::Seq(v, f)),
        ]
    })
}

struct Renderer<'a> {
    out: String,
    leaves: Vec<Leaf>,
    layout: &'a Layout,
    n: usize,
}

impl Renderer<'_> {
    fn comment(&mut self) -> bool {
        self.n += 1;
        self.layout.comments[self.n % self.layout.comments.len()]
    }

    fn scalar(&mut self, value: &str, style: Style, path: &[PathSegment]) {
        let start = self.out.len();
        self.out.push_str(&render(style, value));
        self.leaves.push(Leaf {
            path: path.to_vec(),
            start,
            end: self.out.len(),
            style,
        });
    }

    fn flow(&mut self, node: &Gen, path: &mut Vec<PathSegment>) {
        match node {
            Gen::Scalar(v, s) => self.scalar(v, *s, path),
            Gen::Map(items, _) => {
                self.out.push('{');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.out.push_str(&format!("k{i}: "));
                    path.push(PathSegment::Key(format!("k{i}")));
                    self.flow(item, path);
                    path.pop();
                }
                self.out.push('}');
            }
            Gen::Seq(items, _) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(" , ");
                    }
                    path.push(PathSegment::Index(i));
                    self.flow(item, path);
                    path.pop();
                }
                self.out.push(']');
            }
        }
    }

    /// The value after `key:` or `-`: inline scalars/flow, or a nested block on the next lines.
    fn value(&mut self, node: &Gen, indent: usize, path: &mut Vec<PathSegment>) {
        let eol = self.layout.eol;
        match node {
            Gen::Map(_, false) | Gen::Seq(_, false) => {
                if self.comment() {
                    self.out.push_str(" # nested: block");
                }
                self.out.push_str(eol);
                self.block(node, indent + self.layout.step, path);
            }
            _ => {
                self.out.push(' ');
                self.flow(node, path);
                if self.comment() {
                    self.out
                        .push_str("  # tag: 9.9.9 {\"$imagepolicy\": \"ns:x:tag\"}");
                }
                self.out.push_str(eol);
            }
        }
    }

    fn block(&mut self, node: &Gen, indent: usize, path: &mut Vec<PathSegment>) {
        let pad = " ".repeat(indent);
        let eol = self.layout.eol;
        match node {
            Gen::Map(items, false) => {
                for (i, item) in items.iter().enumerate() {
                    if self.comment() {
                        self.out.push_str(&format!("{eol}{pad}# comment ünï{eol}"));
                    }
                    self.out.push_str(&format!("{pad}k{i}:"));
                    path.push(PathSegment::Key(format!("k{i}")));
                    self.value(item, indent, path);
                    path.pop();
                }
            }
            Gen::Seq(items, false) => {
                for (i, item) in items.iter().enumerate() {
                    self.out.push_str(&format!("{pad}-"));
                    path.push(PathSegment::Index(i));
                    self.value(item, indent, path);
                    path.pop();
                }
            }
            _ => {
                self.out.push_str(&pad);
                self.flow(node, path);
                self.out.push_str(eol);
            }
        }
    }
}

fn document() -> impl Strategy<Value = (String, Vec<Leaf>)> {
    let root = prop::collection::vec(tree(), 1..6).prop_map(|v| Gen::Map(v, false));
    let layout = (
        prop::sample::select(vec![2usize, 3, 4]),
        prop::sample::select(vec!["\n", "\r\n"]),
        any::<bool>(),
        prop::collection::vec(any::<bool>(), 1..7),
    )
        .prop_map(|(step, eol, bom, comments)| Layout {
            step,
            eol,
            bom,
            comments,
        });
    (root, layout).prop_map(|(root, layout)| {
        let mut r = Renderer {
            out: String::new(),
            leaves: Vec::new(),
            layout: &layout,
            n: 0,
        };
        if layout.bom {
            r.out.push('\u{feff}');
        }
        r.block(&root, 0, &mut Vec::new());
        (r.out, r.leaves)
    })
}

fn set_in(value: &mut yaml_serde::Value, path: &[PathSegment], new: &str) {
    let mut here = value;
    for seg in path {
        here = match seg {
            PathSegment::Key(k) => here.get_mut(k.as_str()).unwrap(),
            PathSegment::Index(i) => here.get_mut(*i).unwrap(),
        };
    }
    *here = yaml_serde::Value::String(new.to_string());
}

fn parse_data(text: &str) -> yaml_serde::Value {
    yaml_serde::from_str(text.trim_start_matches('\u{feff}')).unwrap()
}

fn new_tag() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_][a-zA-Z0-9._-]{0,12}",
        prop::sample::select(vec![
            "1.10",
            "012",
            "1e3",
            "0x1F",
            "yes",
            "null",
            "1_0",
            "2024-01-02"
        ])
        .prop_map(str::to_string),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn an_edit_changes_exactly_one_span_and_one_value(
        (src, leaves) in document(),
        pick in any::<prop::sample::Index>(),
        tag in new_tag(),
    ) {
        let leaf = pick.get(&leaves).clone();
        let path = ValuePath(leaf.path.clone());
        let edited = set_value(src.as_bytes(), &path, HelmField::Tag, &tag)
            .unwrap_or_else(|e| panic!("{e}\npath {path}\n{src}"));
        let out = String::from_utf8(edited.bytes).unwrap();
        // Text: identical outside the scalar's span; the span holds the new value in its style.
        let expected_text = format!("{}{}{}", &src[..leaf.start], render(leaf.style, &tag), &src[leaf.end..]);
        if edited.changes.is_empty() {
            prop_assert_eq!(&out, &src);
        } else {
            prop_assert_eq!(&out, &expected_text);
        }
        // Data: equal to the original with exactly that node replaced by the new string.
        let mut want = parse_data(&src);
        set_in(&mut want, &leaf.path, &tag);
        prop_assert_eq!(parse_data(&out), want);
        // The safety net read `out` with the quick reader when it could: it reads as the full
        // parser does.
        quick_agrees(&out)?;
    }
}

const SEED: &str = include_str!("../../tests/edit-corpus/manifests-multi-doc/manifests.yaml");

fn targets() -> Vec<super::Target> {
    vec![
        super::Target::Auto,
        super::Target::Kustomize,
        super::Target::Manifest,
        super::Target::Marker {
            policy: "ns:app".into(),
        },
        super::Target::Helm {
            path: super::parse_value_path("spec.template.spec.containers[0].image").unwrap(),
            field: HelmField::Ref,
        },
    ]
}

/// Any input gives Ok or Err, never a panic; an Ok edit is idempotent and reports no change
/// only when it returns the input.
fn no_surprises(input: &[u8]) -> Result<(), TestCaseError> {
    let update = super::Update::new("ghcr.io/acme/shop-api", Some("1.10"), None).unwrap();
    for target in targets() {
        let _ = super::find(input, &target, &update.image);
        if let Ok(edited) = super::apply(input, &target, &update) {
            if let Ok(text) = std::str::from_utf8(&edited.bytes) {
                quick_agrees(text)?;
            }
            if edited.changes.is_empty() {
                prop_assert_eq!(&edited.bytes, &input.to_vec());
            }
            let again = super::apply(&edited.bytes, &target, &update);
            prop_assert!(again.is_ok_and(|a| a.changes.is_empty()));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn arbitrary_yamlish_text_never_panics(src in "[a-z0-9:\\-\\[\\]{}#&*!|>'\" \n\t.@/é\\r$,?%]{0,160}") {
        no_surprises(src.as_bytes())?;
    }

    #[test]
    fn mutated_manifests_never_panic(
        at in any::<prop::sample::Index>(),
        len in 0usize..8,
        insert in "[ \n:\\-#'\"\\[{&*|>]{0,3}",
    ) {
        let mut bytes = SEED.as_bytes().to_vec();
        let start = at.index(bytes.len());
        let end = (start + len).min(bytes.len());
        bytes.splice(start..end, insert.bytes());
        no_surprises(&bytes)?;
    }
}

/// A kustomization with `n` entries at a random indentation, some with `newTag`, some with
/// comments, in LF or CRLF, with or without a final newline.
fn kustomization() -> impl Strategy<Value = (String, usize)> {
    (
        prop::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 1..5),
        0usize..4,
        prop::sample::select(vec!["\n", "\r\n"]),
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(entries, indent, eol, final_eol, pick)| {
            let pad = " ".repeat(indent);
            let mut s = format!("# overlay{eol}images:{eol}");
            for (i, (has_tag, comment, new_name)) in entries.iter().enumerate() {
                s.push_str(&format!("{pad}- name: ghcr.io/o/app{i}"));
                if *comment {
                    s.push_str("  # app");
                }
                s.push_str(eol);
                if *new_name {
                    s.push_str(&format!("{pad}  newName: ghcr.io/o/mirror{i}{eol}"));
                }
                if *has_tag {
                    s.push_str(&format!("{pad}  newTag: '1.0'{eol}"));
                }
                if *comment {
                    s.push_str(&format!("{eol}{pad}  # trailing comment{eol}"));
                }
            }
            s.push_str(&format!("resources: [a.yaml]{eol}"));
            if !final_eol {
                s.truncate(s.len() - eol.len());
            }
            (s, pick.index(entries.len()))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn kustomize_new_tag_is_set_or_inserted_and_nothing_else_moves(
        (src, i) in kustomization(),
        tag in new_tag(),
    ) {
        let update = super::Update::new(&format!("ghcr.io/o/app{i}"), Some(&tag), None).unwrap();
        let edited = super::apply(src.as_bytes(), &super::Target::Auto, &update)
            .unwrap_or_else(|e| panic!("{e}\n{src}"));
        let out = String::from_utf8(edited.bytes).unwrap();
        let mut want = parse_data(&src);
        let entry = want.get_mut("images").unwrap().get_mut(i).unwrap();
        entry.as_mapping_mut().unwrap().insert("newTag".into(), tag.clone().into());
        prop_assert_eq!(parse_data(&out), want);
        // The safety net read `out` with the quick reader when it could: it reads as the full
        // parser does.
        quick_agrees(&out)?;
        // Line endings are kept: no lone LF appears in a CRLF file.
        if src.contains("\r\n") {
            prop_assert_eq!(out.matches('\n').count(), out.matches("\r\n").count());
        }
    }
}

/// The quick reader (see `quick.rs`) either gives up or builds exactly the full parser's tree.
fn quick_agrees(src: &str) -> Result<(), TestCaseError> {
    if let Some(quick) = super::quick::parse(src) {
        prop_assert_eq!(Ok(quick), super::scan::parse_full(src), "{:?}", src);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_quick_reader_reads_generated_documents_like_the_full_parser((src, _) in document()) {
        // Double-quoted escapes are the only thing the generator writes outside the subset.
        if !src.contains('\\') {
            prop_assert!(super::quick::parse(&src).is_some(), "gave up on {:?}", src);
        }
        quick_agrees(&src)?;
    }

    #[test]
    fn the_quick_reader_agrees_on_mutated_documents(
        (src, _) in document(),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), 0usize..4, "[ \n:\\-#'\"\\[\\]{},&*|>?%!a\r]{0,3}"), 1..4),
    ) {
        let mut bytes = src.into_bytes();
        for (at, len, insert) in cuts {
            let start = at.index(bytes.len() + 1);
            let end = (start + len).min(bytes.len());
            bytes.splice(start..end, insert.bytes());
        }
        if let Ok(text) = String::from_utf8(bytes) {
            quick_agrees(&text)?;
        }
    }

    #[test]
    fn the_quick_reader_agrees_on_mutated_manifests(
        at in any::<prop::sample::Index>(),
        len in 0usize..8,
        insert in "[ \n:\\-#'\"\\[\\]{},&*|>?]{0,4}",
    ) {
        let mut bytes = SEED.as_bytes().to_vec();
        let start = at.index(bytes.len());
        let end = (start + len).min(bytes.len());
        bytes.splice(start..end, insert.bytes());
        if let Ok(text) = String::from_utf8(bytes) {
            quick_agrees(&text)?;
        }
    }

    #[test]
    fn the_quick_reader_agrees_on_arbitrary_yamlish_text(src in "[a-z0-9:\\-\\[\\]{}#'\" \n.,?é\r]{0,120}") {
        quick_agrees(&src)?;
    }
}

/// A document where one scalar is anchored (`&a`) and used through aliases at other paths.
fn aliased(v0: &str, v2: &str, v3: &str) -> String {
    let q = |v: &str| render(Style::Double, v);
    format!(
        "base: &a {}\nk1: *a\nk2: {}\nnested:\n  x: *a\n  y: {}\nlist:\n  - *a\n  - {}\n",
        q(v0),
        q(v2),
        q(v3),
        q(v2)
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Issue 20: no edit changes data at a path it did not address, aliases included. A path
    /// through an alias is refused (editing there would change the anchor and every alias);
    /// any other path changes exactly its own data, and the anchor's own path changes the
    /// anchor, which every alias shows.
    #[test]
    fn no_edit_changes_data_at_a_path_it_did_not_address(
        v0 in new_tag(), v2 in new_tag(), v3 in new_tag(), tag in new_tag(),
        pick in 0usize..8,
    ) {
        let src = aliased(&v0, &v2, &v3);
        let key = |k: &str| PathSegment::Key(k.into());
        let paths: [(Vec<PathSegment>, bool); 8] = [
            (vec![key("base")], false),
            (vec![key("k1")], true),
            (vec![key("k2")], false),
            (vec![key("nested"), key("x")], true),
            (vec![key("nested"), key("y")], false),
            (vec![key("list"), PathSegment::Index(0)], true),
            (vec![key("list"), PathSegment::Index(1)], false),
            (vec![key("list"), key("0")], true),
        ];
        let (path, through_alias) = &paths[pick];
        let result = set_value(src.as_bytes(), &ValuePath(path.clone()), HelmField::Tag, &tag);
        if *through_alias {
            prop_assert!(result.is_err(), "{path:?} went through an alias:\n{src}");
            return Ok(());
        }
        let out = String::from_utf8(result.unwrap().bytes).unwrap();
        let mut want = parse_data(&src);
        if path == &paths[0].0 {
            // The anchor itself: every alias shows the new value.
            for p in [&paths[0].0, &paths[1].0, &paths[3].0, &paths[5].0] {
                set_in(&mut want, p, &tag);
            }
        } else {
            set_in(&mut want, path, &tag);
        }
        prop_assert_eq!(parse_data(&out), want, "{:?}\n{}\n{}", path, src, out);
    }
}
