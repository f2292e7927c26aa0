//! `imagebump set`: in-place, format-preserving edits of image references, for CI jobs.
//!
//! Owns: reading the files, calling [`crate::edit`], printing the changes and writing the files
//! atomically (a temporary file in the same directory, the original permissions, a rename).
//!
//! Invariant: every file is edited in memory and checked, and every new content staged beside
//! its file, before any file is replaced; on any error before that nothing is written and the
//! exit code is 2.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::ValueEnum;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::edit::{self, EditError, Edited, HelmField, Target, Update};
use crate::reference::{ImageRef, is_valid_digest, is_valid_tag};

/// Output format of the list of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Which part of an image a `--path` value holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FieldArg {
    /// The tag alone (`image.tag: 1.2.3`).
    Tag,
    /// The repository alone (`image.repository: ghcr.io/org/app`).
    Repository,
    /// A combined reference (`image: ghcr.io/org/app:1.2.3`).
    Ref,
    /// A digest (`image.digest: sha256:…`).
    Digest,
}

impl From<FieldArg> for HelmField {
    fn from(f: FieldArg) -> HelmField {
        match f {
            FieldArg::Tag => HelmField::Tag,
            FieldArg::Repository => HelmField::Repository,
            FieldArg::Ref => HelmField::Ref,
            FieldArg::Digest => HelmField::Digest,
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  imagebump set overlays/dev/kustomization.yaml --image ghcr.io/acme/api:1.4.2
  imagebump set k8s/*.yaml --image ghcr.io/acme/api:1.4.2@sha256:…
  imagebump set values.yaml --image ghcr.io/acme/api:1.4.2 --marker flux-system:api
  imagebump set kustomization.yaml --image nginx:1.27.1 --new-name mirror.acme.io/nginx
  imagebump set values-dev.yaml --path api.image.tag --value 1.4.2
  imagebump set values.yaml --path image.tag --value 1.4.2 --check")]
pub struct Args {
    /// Files to edit (all are checked before any is written).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Update every reference to this image: Kustomize `images:` entries, container `image:`
    /// fields and Flux markers. NAME[:TAG][@DIGEST].
    #[arg(long, value_name = "NAME[:TAG][@DIGEST]", required_unless_present = "path", conflicts_with_all = ["path", "value", "field"])]
    pub image: Option<String>,
    /// Also update the scalars marked `# {"$imagepolicy": "NS:NAME[:tag|:name|:digest]"}`.
    #[arg(long, value_name = "NS:NAME", requires = "image")]
    pub marker: Option<String>,
    /// Rename the image: set the Kustomize entry's `newName` (inserted when missing), and write
    /// `NEWNAME:TAG` in container `image:` fields and whole-reference markers.
    #[arg(long, value_name = "NEWNAME", requires = "image")]
    pub new_name: Option<String>,
    /// Helm values path of one scalar to set, like `api.image.tag` or `sidecars[1].image.tag`.
    #[arg(long, value_name = "PATH", requires = "value")]
    pub path: Option<String>,
    /// The value written at `--path`.
    #[arg(long, value_name = "VALUE", requires = "path")]
    pub value: Option<String>,
    /// What the value at `--path` holds. Default: read from the value: a valid tag is a tag,
    /// a digest a digest, else a valid image reference is a reference.
    #[arg(long, value_enum, requires = "path")]
    pub field: Option<FieldArg>,
    /// Write nothing; exit 1 if a change would be made.
    #[arg(long)]
    pub check: bool,
    /// How to list the changes.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// The edit to make, resolved from the flags.
enum Plan {
    Image {
        targets: Vec<Target>,
        update: Update,
    },
    Path {
        path: edit::ValuePath,
        field: HelmField,
        value: String,
    },
}

#[derive(serde::Serialize)]
struct JsonChange<'a> {
    file: String,
    line: usize,
    column: usize,
    old: &'a str,
    new: &'a str,
}

fn plan(args: &Args) -> Result<Plan, String> {
    if let (Some(path), Some(value)) = (&args.path, &args.value) {
        let path = edit::parse_value_path(path).map_err(|e| e.to_string())?;
        let field = match args.field {
            Some(field) => field,
            None => infer_field(value)?,
        };
        return Ok(Plan::Path {
            path,
            field: field.into(),
            value: value.clone(),
        });
    }
    let Some(image) = &args.image else {
        return Err("give --image NAME[:TAG][@DIGEST], or --path and --value".into());
    };
    let mut update = Update::parse(image).map_err(|e| e.to_string())?;
    if let Some(new_name) = &args.new_name {
        update = update
            .with_new_name(new_name)
            .map_err(|e| format!("--new-name: {e}"))?;
    }
    if update.tag.is_none() && update.digest.is_none() && update.new_name.is_none() {
        return Err(format!(
            "--image {image} has no tag or digest to write: use NAME:TAG, NAME@DIGEST or NAME:TAG@DIGEST (or give --new-name)"
        ));
    }
    let mut targets = vec![Target::Auto];
    if let Some(marker) = &args.marker {
        match marker.split(':').collect::<Vec<_>>().as_slice() {
            [ns, name] if !ns.is_empty() && !name.is_empty() => {}
            _ => {
                return Err(format!(
                    "--marker {marker:?}: expected NAMESPACE:POLICY, as in a Flux marker"
                ));
            }
        }
        targets.push(Target::Marker {
            policy: marker.clone(),
        });
    }
    Ok(Plan::Image { targets, update })
}

/// What a `--value` given without `--field` holds: a valid tag is a tag, a digest a digest,
/// otherwise a valid image reference is a reference; anything else is refused naming both
/// grammars.
fn infer_field(value: &str) -> Result<FieldArg, String> {
    if is_valid_digest(value) {
        Ok(FieldArg::Digest)
    } else if is_valid_tag(value) {
        Ok(FieldArg::Tag)
    } else if ImageRef::parse(value).is_ok() {
        Ok(FieldArg::Ref)
    } else {
        Err(format!(
            "--value {value:?} is neither an OCI tag ([A-Za-z0-9_][A-Za-z0-9._-], at most 128 characters) nor an image reference (NAME[:TAG][@sha256:DIGEST]); fix it, or say what it is with --field"
        ))
    }
}

/// `file:line:col: message`, with the source line and a caret when the error has a position.
fn describe(file: &Path, src: &[u8], err: &EditError) -> String {
    let Some((line, col)) = err.position() else {
        return format!("{}: {err}", file.display());
    };
    // The message starts with "line:col: " already for positioned errors.
    let mut out = format!("{}:{err}", file.display());
    let text = String::from_utf8_lossy(src);
    if let Some(source_line) = text.lines().nth(line.saturating_sub(1)) {
        let source_line = source_line
            .trim_end_matches('\r')
            .trim_start_matches('\u{feff}');
        let gutter = line.to_string().len();
        let pad = " ".repeat(gutter);
        let (quoted, caret_at) = window(source_line, col.saturating_sub(1));
        let caret = " ".repeat(caret_at);
        out.push_str(&format!("\n{pad} |\n{line} | {quoted}\n{pad} | {caret}^"));
    }
    out
}

/// Characters of a source line quoted around the error's column.
const QUOTE_WIDTH: usize = 120;

/// At most [`QUOTE_WIDTH`] characters of `line` around character `at` (with `…` where it was
/// cut), and where `at` falls in them: a 200 KB line is not echoed whole.
fn window(line: &str, at: usize) -> (String, usize) {
    let len = line.chars().count();
    if len <= QUOTE_WIDTH {
        return (line.to_string(), at);
    }
    let start = at.saturating_sub(QUOTE_WIDTH / 2).min(len - QUOTE_WIDTH);
    let end = start + QUOTE_WIDTH;
    let mut quoted = String::new();
    if start > 0 {
        quoted.push('…');
    }
    quoted.extend(line.chars().skip(start).take(QUOTE_WIDTH));
    if end < len {
        quoted.push('…');
    }
    (quoted, at - start + usize::from(start > 0))
}

/// Run `imagebump set`.
pub fn run(args: Args) -> ExitCode {
    let plan = match plan(&args) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let Some(results) = edit_all(&args.files, &plan) else {
        return ExitCode::from(EXIT_USAGE);
    };
    warn_templates(&results, args.check);
    let changed = results.iter().any(|(_, e)| !e.changes.is_empty());
    print_changes(&results, changed, args.output);
    if args.check {
        return ExitCode::from(if changed { EXIT_FAILED } else { EXIT_OK });
    }
    write_all(&results)
}

/// Writes the changed files: each new content is staged beside its file first, and the files
/// are replaced only once all are staged, so a file that cannot be written (a read-only
/// directory, a full disk) stops the run with every file as it was.
fn write_all(results: &[(PathBuf, Edited)]) -> ExitCode {
    let mut staged = Vec::new();
    for (file, edited) in results {
        if edited.changes.is_empty() {
            continue;
        }
        match crate::atomic::stage(file, &edited.bytes) {
            Ok(new) => staged.push((file, new)),
            Err(e) => {
                eprintln!("error: writing {}: {e}", file.display());
                eprintln!("error: nothing was written");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let names: Vec<String> = staged
        .iter()
        .map(|(f, _)| f.display().to_string())
        .collect();
    for (done, (file, new)) in staged.into_iter().enumerate() {
        if let Err(e) = new.commit() {
            // A rename in the file's own directory that failed after the staging worked: rare,
            // and said in full, since the files before it are already replaced.
            eprintln!("error: writing {}: {e}", file.display());
            let (written, left) = names.split_at(done);
            if written.is_empty() {
                eprintln!("error: nothing was written");
            } else {
                eprintln!("error: already written: {}", written.join(", "));
                eprintln!("error: not written: {}", left.join(", "));
            }
            return ExitCode::from(EXIT_USAGE);
        }
    }
    ExitCode::from(EXIT_OK)
}

/// Plan the edit of every file, in memory. `None` (after saying why on stderr) when any file
/// cannot be read or edited, or when no file references the image: nothing is written then.
fn edit_all(files: &[PathBuf], plan: &Plan) -> Option<Vec<(PathBuf, Edited)>> {
    let mut results: Vec<(PathBuf, Edited)> = Vec::new();
    let mut failed = false;
    let mut referenced = false;
    for file in files {
        let src = match fs::read(file) {
            Ok(src) => src,
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                failed = true;
                continue;
            }
        };
        let outcome = match plan {
            Plan::Image { targets, update } => {
                edit::apply_all(&src, targets, update).and_then(|edited| {
                    if !edited.changes.is_empty() {
                        referenced = true;
                    } else if !referenced {
                        referenced = references(&src, targets, update)?;
                    }
                    Ok(edited)
                })
            }
            Plan::Path { path, field, value } => {
                referenced = true;
                edit::set_value(&src, path, *field, value)
            }
        };
        match outcome {
            Ok(edited) => results.push((file.clone(), edited)),
            Err(e) => {
                eprintln!("error: {}", describe(file, &src, &e));
                failed = true;
            }
        }
    }
    if failed {
        eprintln!("error: nothing was written");
        return None;
    }
    if !referenced && let Plan::Image { update, .. } = plan {
        eprintln!(
            "error: no file references {} (Kustomize images: entry, container image: or Flux marker); nothing was written",
            update.name
        );
        return None;
    }
    Some(results)
}

/// Whether `src` references the image (or, after a rename, its new name: a rerun then finds
/// it up to date).
fn references(src: &[u8], targets: &[Target], update: &Update) -> Result<bool, EditError> {
    let renamed = update.new_name.as_deref().map(ImageRef::parse);
    let images = std::iter::once(&update.image).chain(renamed.iter().flat_map(|r| r.as_ref().ok()));
    for image in images {
        for target in targets {
            if !edit::find(src, target, image)?.is_empty() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// A value that looks like a template (`{{ .Chart.AppVersion }}`) was probably meant to be
/// rendered by something else: say that it was overwritten.
fn warn_templates(results: &[(PathBuf, Edited)], check: bool) {
    for (file, edited) in results {
        for c in &edited.changes {
            if c.old.contains("{{") && c.old.contains("}}") {
                eprintln!(
                    "warning: {}:{}: the old value {:?} looks like a template rendered elsewhere; {} {:?}",
                    file.display(),
                    c.line,
                    c.old,
                    if check {
                        "it would be replaced by"
                    } else {
                        "it is replaced by"
                    },
                    c.new
                );
            }
        }
    }
}

fn print_changes(results: &[(PathBuf, Edited)], changed: bool, output: Output) {
    match output {
        Output::Text => {
            for (file, edited) in results {
                for c in &edited.changes {
                    let old = match (c.inserted, c.old.is_empty()) {
                        (true, _) => "(added)",
                        (false, true) => "\"\"",
                        (false, false) => c.old.as_str(),
                    };
                    println!("{}:{}: {} -> {}", file.display(), c.line, old, c.new);
                }
            }
        }
        Output::Json => {
            let changes: Vec<JsonChange> = results
                .iter()
                .flat_map(|(file, edited)| {
                    edited.changes.iter().map(move |c| JsonChange {
                        file: file.display().to_string(),
                        line: c.line,
                        column: c.column,
                        old: &c.old,
                        new: &c.new,
                    })
                })
                .collect();
            let doc = serde_json::json!({ "changed": changed, "changes": changes });
            println!("{doc}");
        }
    }
}
