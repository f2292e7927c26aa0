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
    if names.is_empty() {
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
        if !last && !kind.is_dir() {
            return Err(refuse(&relative, "is not a directory"));
        }
        if last && !kind.is_file() {
            return Err(refuse(&relative, "is not a regular file"));
        }
    }
    Ok(names
        .iter()
        .fold(root.to_path_buf(), |path, name| path.join(name)))
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
}
