//! Paths of files inside a clone's work tree, checked before anything reads or writes them.
//!
//! **Invariant:** a path that passes [`inside_clone`] names a regular file (or nothing yet)
//! reached from the clone's root through real directories only: no component is a symlink,
//! `..`, absolute, or `.git`. Anyone who can commit to a config repository controls every name
//! in the work tree, so a committed `linkdir -> /etc` must never let imagebump read or write
//! outside the clone (libgit2 checks out committed symlinks as symlinks).
//!
//! Every component is checked with `symlink_metadata` (which never follows a link), from the
//! root down. Nothing but imagebump writes inside a clone while it holds the clone's lock, so
//! the check holds until the read or write that follows it.

use std::path::{Component, Path, PathBuf};

use super::GitError;

/// The absolute path of `file` (relative to `root`, the clone's work tree) after checking that
/// every component is a real directory inside the clone and the last one, if it exists, is a
/// regular file. A component that does not exist ends the walk (the caller's read reports it;
/// a write creates it).
pub fn inside_clone(root: &Path, file: &Path) -> Result<PathBuf, GitError> {
    checked(root, file, Last::File)
}

/// What the last component of a checked path must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    File,
    Dir,
}

fn checked(root: &Path, file: &Path, last_kind: Last) -> Result<PathBuf, GitError> {
    let refuse = |component: &Path, reason: &str| GitError::UnsafePath {
        file: file.to_path_buf(),
        component: component.to_path_buf(),
        reason: reason.to_string(),
    };
    let names: Vec<&std::ffi::OsStr> = file
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            Component::ParentDir => Err(refuse(Path::new(".."), "`..` leaves the clone")),
            Component::RootDir | Component::Prefix(_) => Err(refuse(
                file,
                "is absolute; a target is a path relative to the repository root",
            )),
            Component::CurDir => unreachable!("filtered above"),
        })
        .collect::<Result<_, _>>()?;
    // The work tree's root is a directory target (`./`), never a file.
    if names.is_empty() && last_kind == Last::File {
        return Err(refuse(file, "names no file"));
    }
    let mut relative = PathBuf::new();
    for (index, name) in names.iter().enumerate() {
        relative.push(name);
        if name.eq_ignore_ascii_case(".git") {
            return Err(refuse(
                &relative,
                "is git's own directory, not part of the work tree",
            ));
        }
        let last = index + 1 == names.len();
        let meta = match std::fs::symlink_metadata(root.join(&relative)) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(refuse(&relative, &format!("cannot be inspected: {e}"))),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(root.join(&relative))
                .map(|t| format!(" (-> {})", t.display()))
                .unwrap_or_default();
            return Err(refuse(
                &relative,
                &format!(
                    "is a symbolic link{target}; imagebump reads and writes only real files and \
                     directories inside the clone"
                ),
            ));
        }
        if (!last || last_kind == Last::Dir) && !kind.is_dir() {
            return Err(refuse(&relative, "is not a directory"));
        }
        if last && last_kind == Last::File && !kind.is_file() {
            return Err(refuse(&relative, "is not a regular file"));
        }
    }
    Ok(names
        .iter()
        .fold(root.to_path_buf(), |path, name| path.join(name)))
}

/// The YAML files of a directory target, and what the walk passed over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YamlFiles {
    /// Paths relative to the clone's root (`/`-separated), sorted bytewise: the same order on
    /// every pass and every machine.
    pub files: Vec<String>,
    /// Symbolic links met in the walk (relative paths, sorted): never followed, never read.
    pub symlinks: Vec<String>,
    /// Entries whose name is not UTF-8 (relative paths, lossy): a target names files by text,
    /// so these cannot be edited.
    pub unnamed: Vec<String>,
}

/// Every `*.yaml` / `*.yml` regular file under `dir` (relative to `root`; `./` or an empty
/// path is the whole work tree), recursively. `dir` itself is checked like [`inside_clone`]
/// checks a file (no symlink, `..` or `.git` on the way); inside it, symbolic links are listed
/// in [`YamlFiles::symlinks`] and never followed, `.git` is skipped, and files of other
/// extensions are left out. Fails when `dir` does not exist or is not a directory.
pub fn yaml_files_under(root: &Path, dir: &Path) -> Result<YamlFiles, GitError> {
    let absolute = checked(root, dir, Last::Dir)?;
    let start = absolute
        .strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let unreadable = |path: &Path, e: std::io::Error| GitError::UnsafePath {
        file: dir.to_path_buf(),
        component: path.to_path_buf(),
        reason: format!("cannot be listed: {e}"),
    };
    // A missing directory ends `checked`'s walk without an error: say so here.
    match std::fs::symlink_metadata(&absolute) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(unreadable(&start, std::io::Error::other("not a directory"))),
        Err(e) => return Err(unreadable(&start, e)),
    }
    let mut listing = YamlFiles::default();
    let mut pending = vec![start];
    while let Some(relative) = pending.pop() {
        let entries =
            std::fs::read_dir(root.join(&relative)).map_err(|e| unreadable(&relative, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| unreadable(&relative, e))?;
            let path = relative.join(entry.file_name());
            // `DirEntry::file_type` does not follow a symbolic link.
            let kind = entry.file_type().map_err(|e| unreadable(&path, e))?;
            let Some(name) = path.to_str().map(str::to_string) else {
                listing.unnamed.push(path.to_string_lossy().into_owned());
                continue;
            };
            if kind.is_symlink() {
                listing.symlinks.push(name);
            } else if kind.is_dir() {
                if !entry.file_name().eq_ignore_ascii_case(".git") {
                    pending.push(path);
                }
            } else if kind.is_file() && is_yaml(&name) {
                listing.files.push(name);
            }
        }
    }
    listing.files.sort_unstable();
    listing.symlinks.sort_unstable();
    listing.unnamed.sort_unstable();
    Ok(listing)
}

fn is_yaml(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn reason(root: &Path, file: &str) -> String {
        match inside_clone(root, Path::new(file)) {
            Ok(path) => panic!("{file} was accepted as {}", path.display()),
            Err(e) => e.to_string(),
        }
    }

    #[cfg(unix)]
    #[test]
    fn refuses_every_kind_of_escape_and_names_the_component() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("values.yaml"), "a: 1\n").unwrap();
        let clone = tempfile::tempdir().unwrap();
        let root = clone.path();
        std::fs::create_dir_all(root.join("apps/shop")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("apps/shop/values.yaml"), "a: 1\n").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("linkdir")).unwrap();
        std::os::unix::fs::symlink("shop", root.join("apps/inner")).unwrap();
        std::os::unix::fs::symlink("values.yaml", root.join("apps/shop/link.yaml")).unwrap();

        let e = reason(root, "linkdir/values.yaml");
        assert!(e.contains("linkdir/values.yaml"), "{e}");
        assert!(e.contains("`linkdir` is a symbolic link"), "{e}");
        assert!(e.contains(&outside.path().display().to_string()), "{e}");
        // A link that stays inside the clone is refused too: it is still a link.
        let e = reason(root, "apps/inner/values.yaml");
        assert!(e.contains("`apps/inner` is a symbolic link"), "{e}");
        let e = reason(root, "apps/shop/link.yaml");
        assert!(
            e.contains("`apps/shop/link.yaml` is a symbolic link"),
            "{e}"
        );
        assert!(reason(root, "../x.yaml").contains("`..` leaves the clone"));
        assert!(reason(root, "apps/../../x.yaml").contains("`..`"));
        assert!(reason(root, "/etc/passwd").contains("is absolute"));
        assert!(reason(root, ".git/config").contains("git's own directory"));
        assert!(reason(root, "apps/shop/values.yaml/x").contains("is not a directory"));
        assert!(reason(root, "apps/shop").contains("is not a regular file"));

        assert_eq!(
            inside_clone(root, Path::new("apps/shop/values.yaml")).unwrap(),
            root.join("apps/shop/values.yaml")
        );
        assert_eq!(
            inside_clone(root, Path::new("./apps/new/file.yaml")).unwrap(),
            root.join("apps/new/file.yaml")
        );
    }
    #[cfg(unix)]
    #[test]
    fn lists_yaml_files_sorted_without_following_links() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.yaml"), "a: 1\n").unwrap();
        let clone = tempfile::tempdir().unwrap();
        let root = clone.path();
        for dir in ["prod/b", "prod/a/deep", "prod/.git", "other"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in [
            "prod/z.yaml",
            "prod/b/k.yml",
            "prod/a/deep/m.YAML",
            "prod/a/x.yaml",
            "prod/README.md",
            "prod/a/values.json",
            "prod/.git/config.yaml",
            "other/o.yaml",
        ] {
            std::fs::write(root.join(file), "a: 1\n").unwrap();
        }
        std::os::unix::fs::symlink(outside.path(), root.join("prod/linkdir")).unwrap();
        std::os::unix::fs::symlink("z.yaml", root.join("prod/link.yaml")).unwrap();

        let listing = yaml_files_under(root, Path::new("prod/")).unwrap();
        assert_eq!(
            listing.files,
            [
                "prod/a/deep/m.YAML",
                "prod/a/x.yaml",
                "prod/b/k.yml",
                "prod/z.yaml"
            ]
        );
        assert_eq!(listing.symlinks, ["prod/link.yaml", "prod/linkdir"]);
        assert!(listing.unnamed.is_empty());

        // The whole work tree, however it is written.
        for whole in ["./", ".", ""] {
            let all = yaml_files_under(root, Path::new(whole)).unwrap();
            assert_eq!(all.files.first().map(String::as_str), Some("other/o.yaml"));
            assert_eq!(all.files.len(), 5, "{whole}: {all:?}");
        }

        let refused = |dir: &str| {
            yaml_files_under(root, Path::new(dir))
                .unwrap_err()
                .to_string()
        };
        assert!(refused("prod/linkdir/").contains("is a symbolic link"));
        assert!(refused("../").contains("`..` leaves the clone"));
        assert!(refused("prod/z.yaml/").contains("is not a directory"));
        assert!(refused("prod/.git/").contains("git's own directory"));
        assert!(refused("missing/").contains("cannot be listed"));
    }
}
