//! The one config-dir builder: a temp dir with the global file `imagebump.yaml`, an `apps/`
//! folder of app files, and the workdir `cache` inside, so a test owns everything it runs on.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::imagebump::Imagebump;

/// A config dir; removed when dropped.
#[derive(Debug)]
pub struct ConfigDir {
    dir: TempDir,
}

impl ConfigDir {
    /// The usual global file: apps in `apps/`, workdir `cache`, the bot's git author, the lines
    /// of `extra_global` (whole top-level keys), and `registry` as an insecure (plain HTTP)
    /// registry prefix.
    pub fn new(registry: &str, extra_global: &str) -> ConfigDir {
        ConfigDir::with_global(&format!(
            "apps: apps\nworkdir: cache\ngit:\n  author: {{name: imagebump, email: bot@imagebump.test}}\n{extra_global}registries:\n  - prefix: {registry}\n    insecure: true\n"
        ))
    }

    /// `global` as the global file, and an empty `apps/` folder.
    pub fn with_global(global: &str) -> ConfigDir {
        let dir = tempfile::tempdir().expect("create a temp dir");
        std::fs::create_dir(dir.path().join("apps")).expect("create apps/");
        std::fs::write(dir.path().join("imagebump.yaml"), global).expect("write imagebump.yaml");
        ConfigDir { dir }
    }

    /// Adds the app file `apps/NAME.yaml`.
    pub fn app(self, name: &str, text: &str) -> ConfigDir {
        self.write(&format!("apps/{name}.yaml"), text);
        self
    }

    /// Adds the app files `apps/NAME.yaml`.
    pub fn apps<S: AsRef<str>>(self, apps: &[(&str, S)]) -> ConfigDir {
        apps.iter()
            .fold(self, |dir, (name, text)| dir.app(name, text.as_ref()))
    }

    /// Writes `text` at `relative` (a path inside the dir, its folder existing).
    pub fn write(&self, relative: &str, text: &str) {
        std::fs::write(self.dir.path().join(relative), text)
            .unwrap_or_else(|e| panic!("write {relative}: {e}"));
    }

    /// The dir itself.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The global file, as `--config` takes it.
    pub fn global(&self) -> PathBuf {
        self.dir.path().join("imagebump.yaml")
    }

    /// The workdir (`cache`) the usual global file names.
    pub fn workdir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Rewrites the global file's text with `edit`.
    pub fn edit_global(&self, edit: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(self.global()).expect("read imagebump.yaml");
        std::fs::write(self.global(), edit(text)).expect("write imagebump.yaml");
    }

    /// `imagebump ARGS... --config GLOBAL`.
    pub fn imagebump<S: AsRef<std::ffi::OsStr>>(
        &self,
        args: impl IntoIterator<Item = S>,
    ) -> Imagebump {
        Imagebump::new(args).config(self.global())
    }

    /// The clone directories in the workdir.
    pub fn clones(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.workdir()) else {
            return Vec::new();
        };
        let mut clones: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join(".git").is_dir())
            .collect();
        clones.sort();
        clones
    }
}
