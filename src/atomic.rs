//! The one way imagebump replaces a file: write a temporary file beside it, flush it to disk,
//! give it the old file's permissions, then rename it over the old one.
//!
//! Invariant: a reader (or a crash) sees either the whole old content or the whole new
//! content, never a half-written file. A symlink is followed and stays a symlink: the file it
//! points to is replaced.

use std::fs;
use std::io::Write as _;
use std::path::Path;

/// Replace the file at `path` with `bytes` atomically (creating it if it does not exist).
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    stage(path, bytes)?.commit()
}

/// A new content written and flushed beside the file it will replace, with that file's
/// permissions, not yet in place. Dropped without [`Staged::commit`], it leaves nothing behind:
/// several files can be staged first and replaced only when all of them could be.
#[derive(Debug)]
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    real: std::path::PathBuf,
}

impl Staged {
    /// Puts the new content in place (a rename over the old file).
    pub fn commit(self) -> std::io::Result<()> {
        self.tmp.persist(&self.real).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Stages `bytes` to replace the file at `path` (see [`Staged`]).
pub fn stage(path: &Path, bytes: &[u8]) -> std::io::Result<Staged> {
    let real = match fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(e),
    };
    let dir = match real.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".imagebump-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    if let Ok(meta) = fs::metadata(&real) {
        tmp.as_file().set_permissions(meta.permissions())?;
    }
    Ok(Staged { tmp, real })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[cfg(unix)]
    #[test]
    fn permissions_and_symlinks_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("values.yaml");
        fs::write(&real, "a: 1\n").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.yaml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write(&link, b"a: 2\n").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), b"a: 2\n");
        assert_eq!(
            fs::metadata(&real).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let new = dir.path().join("new.yaml");
        write(&new, b"b: 1\n").unwrap();
        assert_eq!(fs::read(&new).unwrap(), b"b: 1\n");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".imagebump-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
