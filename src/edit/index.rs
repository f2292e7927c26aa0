//! Lookups over one parsed document, built once and shared by every image looked up in it: where
//! each line starts, the keys of large mappings, the Kustomize `images:` entries and the
//! container images by the last path component of the name they hold, and the Flux markers.
//!
//! Invariant: an index answers exactly what the plain walk over the tree answers (the same slots
//! in the same order, the same first error, the same line and column); it only spares walking
//! the whole document for every image. Each part is built on first use, from the one tree it
//! was made for, and never changes afterwards.
//!
//! Design choice: a file holding thousands of images (a 2,500-entry Kustomize list, a values
//! file with 2,500 top-level keys) is searched once per image, twice per pass. Without an index
//! each search walks the whole list or mapping and each line number counts the newlines from
//! the start of the file, so a pass is quadratic in the images of one file. Matching by the
//! last path component keeps the cheap rule of [`super::slot`]: a reference whose last component
//! is plain and differs from the image's can never name it; every other reference stays a
//! candidate and gets the full parse.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::error::EditError;
use super::slot::{Field, plain_last_component};
use super::tree::{Kind, NodeId, Tree};
use crate::reference::ImageRef;

/// A mapping's entries by scalar key.
type ByKey = HashMap<String, Vec<(NodeId, NodeId)>>;

/// Mappings with fewer entries than this are searched by walking them (cheaper than hashing).
const INDEXED_MAP_ENTRIES: usize = 16;

/// The lookups of one document (see the module doc). `Default` is an empty index that builds
/// its parts when first asked.
#[derive(Debug, Clone, Default)]
pub(super) struct Index {
    /// Byte offsets of every `\n`.
    newlines: OnceLock<Vec<usize>>,
    /// For each mapping of at least [`INDEXED_MAP_ENTRIES`] entries: scalar key -> its entries.
    keys: OnceLock<HashMap<NodeId, ByKey>>,
    /// Per document (in `tree.roots` order): its Kustomize `images:` list, when it is a
    /// kustomization.
    kustomize: OnceLock<Vec<Option<ImagesList>>>,
    /// Per document (in `tree.roots` order): the `image:` scalars of its containers.
    containers: OnceLock<Vec<Containers>>,
    /// Every Flux marker of the text that marks a scalar, in text order.
    markers: OnceLock<Vec<Marker>>,
}

/// Positions (into some list) by the last path component of the reference they hold.
#[derive(Debug, Clone, Default)]
struct ByName {
    /// Plain last component -> positions, ascending.
    plain: HashMap<String, Vec<usize>>,
    /// Positions whose reference has no plain last component: candidates for every image.
    other: Vec<usize>,
}

impl ByName {
    fn add(&mut self, position: usize, reference: &str) {
        match plain_last_component(reference) {
            Some(last) => self
                .plain
                .entry(last.to_string())
                .or_default()
                .push(position),
            None => self.other.push(position),
        }
    }

    /// The positions that may name one of `images`, ascending, each once.
    fn candidates(&self, images: &[ImageRef]) -> Vec<usize> {
        let mut out = self.other.clone();
        for image in images {
            let last = image.repository.rsplit('/').next().unwrap_or_default();
            if let Some(positions) = self.plain.get(last) {
                out.extend(positions);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// A kustomization's `images:` entries that are mappings, in list order.
#[derive(Debug, Clone, Default)]
pub(super) struct ImagesList {
    /// The entries (aliases resolved).
    pub entries: Vec<NodeId>,
    /// Entries by the `name` and `newName` they hold, before `stop`.
    names: ByName,
    /// The first entry whose `name` or `newName` cannot be read (a duplicated key, a
    /// collection): a walk stops there with that entry's error, so no later entry is indexed.
    pub stop: Option<usize>,
}

impl ImagesList {
    /// The entries a walk for `images` must look at, in list order: the candidates before
    /// `stop`, then the entry at `stop`. Every other entry names none of `images`.
    pub fn walk(&self, images: &[ImageRef]) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = self
            .names
            .candidates(images)
            .into_iter()
            .map(|i| self.entries[i])
            .collect();
        out.extend(self.stop.map(|i| self.entries[i]));
        out
    }
}

/// The `image:` scalars of one document's containers (aliases resolved), in node order.
#[derive(Debug, Clone, Default)]
pub(super) struct Containers {
    pub images: Vec<NodeId>,
    names: ByName,
}

impl Containers {
    /// The `image:` scalars that may name one of `images`, in node order.
    pub fn candidates(&self, images: &[ImageRef]) -> Vec<NodeId> {
        self.names
            .candidates(images)
            .into_iter()
            .map(|i| self.images[i])
            .collect()
    }
}

/// One `# {"$imagepolicy": "ns:name[:part]"}` comment and the scalar it marks.
#[derive(Debug, Clone)]
pub(super) struct Marker {
    /// `ns:name`.
    pub policy: String,
    pub field: Field,
    pub node: NodeId,
}

impl Index {
    /// 1-based line and column of byte `at`: [`line_col`] without counting from the start.
    pub fn line_col(&self, src: &str, at: usize) -> (usize, usize) {
        let newlines = self
            .newlines
            .get_or_init(|| memchr_all(src.as_bytes(), b'\n'));
        let at = at.min(src.len());
        let before = newlines.partition_point(|&n| n < at);
        let line_start = before.checked_sub(1).map_or(0, |i| newlines[i] + 1);
        let col = src
            .get(line_start..at)
            .map_or(at - line_start, |s| s.chars().count())
            + 1;
        (before + 1, col)
    }

    /// [`Tree::get_all`], by hash for a large mapping.
    pub fn get_all(&self, tree: &Tree, map: NodeId, key: &str) -> Vec<(NodeId, NodeId)> {
        let keys = self.keys.get_or_init(|| index_keys(tree));
        match keys.get(&tree.resolve(map)) {
            Some(by_key) => by_key.get(key).cloned().unwrap_or_default(),
            None => tree.get_all(map, key),
        }
    }

    /// The value of the first entry `key` in mapping `map` ([`Tree::get`]).
    pub fn get(&self, tree: &Tree, map: NodeId, key: &str) -> Option<NodeId> {
        self.get_all(tree, map, key).first().map(|(_, v)| *v)
    }

    /// The `images:` list of document `root`, when it is a kustomization (a top-level
    /// `images:` sequence); the `Err` is that of reading the first unreadable entry's names,
    /// should a walk get that far.
    pub fn kustomize(
        &self,
        tree: &Tree,
        root: NodeId,
        read_names: impl Fn(NodeId) -> Result<[Option<NodeId>; 2], EditError>,
    ) -> Option<&ImagesList> {
        let lists = self.kustomize.get_or_init(|| {
            tree.roots
                .iter()
                .map(|&root| self.images_list(tree, root, &read_names))
                .collect()
        });
        let at = tree.roots.iter().position(|&r| r == root)?;
        lists.get(at)?.as_ref()
    }

    fn images_list(
        &self,
        tree: &Tree,
        root: NodeId,
        read_names: &impl Fn(NodeId) -> Result<[Option<NodeId>; 2], EditError>,
    ) -> Option<ImagesList> {
        let images = self.get(tree, root, "images")?;
        let items = tree.seq(images)?;
        let mut list = ImagesList::default();
        for &entry in items {
            let entry = tree.resolve(entry);
            if tree.map(entry).is_none() {
                continue;
            }
            let position = list.entries.len();
            list.entries.push(entry);
            let Ok(names) = read_names(entry) else {
                list.stop = Some(position);
                break;
            };
            for node in names.into_iter().flatten() {
                if let Some(value) = tree.scalar(node) {
                    list.names.add(position, value);
                }
            }
        }
        Some(list)
    }

    /// The containers' `image:` scalars of document `root`, found by `walk` (which lists them
    /// in node order).
    pub fn containers(
        &self,
        tree: &Tree,
        root: NodeId,
        walk: impl Fn(NodeId) -> Vec<NodeId>,
    ) -> Option<&Containers> {
        let all = self.containers.get_or_init(|| {
            tree.roots
                .iter()
                .map(|&root| {
                    let images = walk(root);
                    let mut names = ByName::default();
                    for (position, &node) in images.iter().enumerate() {
                        // Not a scalar: never names an image, never a candidate.
                        if let Some(value) = tree.scalar(node) {
                            names.add(position, value);
                        }
                    }
                    Containers { images, names }
                })
                .collect()
        });
        let at = tree.roots.iter().position(|&r| r == root)?;
        all.get(at)
    }

    /// Every marker of the text, found once by `find`.
    pub fn markers(&self, find: impl FnOnce() -> Vec<Marker>) -> &[Marker] {
        self.markers.get_or_init(find)
    }
}

/// Every position of `byte` in `bytes`.
fn memchr_all(bytes: &[u8], byte: u8) -> Vec<usize> {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == byte)
        .map(|(i, _)| i)
        .collect()
}

/// The keys of every mapping with at least [`INDEXED_MAP_ENTRIES`] entries.
fn index_keys(tree: &Tree) -> HashMap<NodeId, ByKey> {
    let mut out = HashMap::new();
    for (id, node) in tree.nodes.iter().enumerate() {
        let Kind::Map(entries) = &node.kind else {
            continue;
        };
        if entries.len() < INDEXED_MAP_ENTRIES {
            continue;
        }
        let mut by_key = ByKey::new();
        for &(key, value) in entries {
            if let Some(name) = tree.scalar(key) {
                by_key
                    .entry(name.to_string())
                    .or_default()
                    .push((key, value));
            }
        }
        out.insert(id, by_key);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::read;
    use crate::edit::tree::line_col;

    #[test]
    fn line_and_column_match_counting_from_the_start() {
        let src = "a: 1\r\n\nçé: [x, y]\n  - z\nlast";
        let index = Index::default();
        for at in 0..=src.len() + 2 {
            if src.is_char_boundary(at.min(src.len())) {
                assert_eq!(index.line_col(src, at), line_col(src, at), "at {at}");
            }
        }
    }

    fn image(reference: &str) -> ImageRef {
        ImageRef::parse(reference).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A kustomization of 40 entries: `svcN` at entry N, except entry 3 (`${REGISTRY}/svc3`,
    /// not a plain name, not an image either), entry 20 (`svc3` again, through `newName`) and, when `broken`, entry 30 (`name`
    /// twice).
    fn long_list(broken: bool) -> String {
        let mut src = String::from("images:\n");
        for i in 0..40 {
            match i {
                3 => src.push_str("  - name: ${REGISTRY}/Svc3\n    newTag: a\n"),
                20 => src.push_str("  - name: other\n    newName: ghcr.io/x/svc3\n"),
                30 if broken => src.push_str("  - name: svc30\n    name: again\n"),
                _ => src.push_str(&format!(
                    "  - name: ghcr.io/x/svc{i}\n    newTag: \"{i}\"\n"
                )),
            }
        }
        src
    }

    #[test]
    fn a_long_kustomize_list_answers_like_walking_it() {
        let src = long_list(false);
        let document =
            crate::edit::Document::parse(src.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let find = |name: &str| document.find(&crate::edit::Target::Kustomize, &image(name));
        // Found by its bucket, with its line.
        let found = find("ghcr.io/x/svc7").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (found.len(), found[0].line, found[0].tag.as_deref()),
            (1, 16, Some("7"))
        );
        assert_eq!(find("ghcr.io/x/none").map(|f| f.len()), Ok(0));
        // Entry 3 is not a plain name, so a candidate for every image, and the full parse
        // rules it out; svc3 is named by entry 20's `newName` alone.
        let found = find("ghcr.io/x/svc3").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((found.len(), found[0].line), (1, 42));
        let err = find("ghcr.io/x/svc20").map(|f| f.len());
        assert_eq!(err, Ok(0), "entry 20 names `other` and svc3, not svc20");

        // An entry that cannot be read stops the walk wherever it is: every lookup reports it,
        // unless a second entry naming the image came first.
        let src = long_list(true);
        let document =
            crate::edit::Document::parse(src.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let find = |name: &str| document.find(&crate::edit::Target::Kustomize, &image(name));
        for name in [
            "ghcr.io/x/svc7",
            "ghcr.io/x/svc35",
            "ghcr.io/x/none",
            "ghcr.io/x/svc3",
        ] {
            let err = find(name).map(|f| f.len());
            assert!(
                matches!(&err, Err(EditError::Ambiguous { what, line: 63, .. }) if what == "key name"),
                "{name}: {err:?}"
            );
        }
    }

    #[test]
    fn a_second_entry_naming_the_image_is_refused_where_the_walk_refused_it() {
        let mut src = long_list(false);
        src.push_str("  - name: ghcr.io/x/svc3\n");
        let document =
            crate::edit::Document::parse(src.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let err = document
            .find(&crate::edit::Target::Kustomize, &image("ghcr.io/x/svc3"))
            .map(|f| f.len());
        // Entry 20 names it by `newName`, the added entry 40 (line 82) by `name`.
        assert!(
            matches!(err, Err(EditError::Ambiguous { line: 82, .. })),
            "{err:?}"
        );
    }

    #[test]
    fn a_large_mapping_answers_its_keys_like_the_walk() {
        let mut src = String::new();
        for i in 0..40 {
            src.push_str(&format!("k{i}: {i}\n"));
        }
        src.push_str("k7: again\n&a x: 1\n*a : 2\n");
        let tree = read::parse(&src).unwrap_or_else(|e| panic!("{e}"));
        let index = Index::default();
        let root = tree.roots[0];
        for key in ["k0", "k7", "k39", "x", "missing", ""] {
            assert_eq!(
                index.get_all(&tree, root, key),
                tree.get_all(root, key),
                "{key}"
            );
        }
    }
}
