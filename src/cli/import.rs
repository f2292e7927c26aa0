//! `imagebump import flux|argo`: read Flux or Argo CD Image Updater objects, write imagebump
//! app files and a global file into a new directory, print a report on stderr.
//!
//! Invariant: nothing is written unless every input translated and the result validates;
//! `--check` writes nothing and exits 1 when anything would be approximated or dropped.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::import::{self, ImportError, Imported};

#[derive(Debug, clap::Subcommand)]
pub enum Tool {
    /// Flux ImageRepository, ImagePolicy, ImageUpdateAutomation (and their GitRepository).
    #[command(after_help = "Examples:
  kubectl get imagerepositories,imagepolicies,imageupdateautomations,gitrepositories -A -o yaml \\
    | imagebump import flux -o imported/
  imagebump import flux clusters/prod/ --repo-dir . --check")]
    Flux(FluxArgs),
    /// Argo CD Image Updater: annotated Applications/ApplicationSets, ImageUpdater resources
    /// (with the Applications they select) and the argocd-image-updater-config ConfigMap.
    #[command(after_help = "Examples:
  kubectl get applications,applicationsets,imageupdaters -n argocd -o yaml \\
    | imagebump import argo -o imported/
  imagebump import argo apps/ --repo-dir ~/src/gitops --check")]
    Argo(ArgoArgs),
}

#[derive(Debug, clap::Args)]
pub struct Common {
    /// Files or directories of YAML (`kind: List`, multi-document); `-` or none: stdin.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// The directory to write (`imagebump.yaml` and `apps/`); it must not exist or be empty.
    #[arg(
        long,
        short = 'o',
        value_name = "DIR",
        required_unless_present = "check"
    )]
    pub output: Option<PathBuf>,
    /// Write nothing; exit 1 if anything would be approximated or dropped.
    #[arg(long)]
    pub check: bool,
    /// Namespace of objects that name none.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
}

#[derive(Debug, clap::Args)]
pub struct FluxArgs {
    #[command(flatten)]
    pub common: Common,
    /// A local checkout of the config repo: only the policies with an `$imagepolicy` marker
    /// under their automation's `update.path` are imported (each automation's `update.path`
    /// becomes a directory target either way).
    #[arg(long, value_name = "DIR")]
    pub repo_dir: Option<PathBuf>,
    /// A push branch other than the checkout branch becomes `write: pull-request` (from the
    /// push branch into the checkout branch) instead of commits to the push branch.
    #[arg(long)]
    pub pull_request: bool,
}

#[derive(Debug, clap::Args)]
pub struct ArgoArgs {
    #[command(flatten)]
    pub common: Common,
    /// A local checkout of the config repo: tells Helm from Kustomize sources when an
    /// Application's status does not say, and finds each kustomization file's name.
    #[arg(long, value_name = "DIR")]
    pub repo_dir: Option<PathBuf>,
}

pub fn run(tool: Tool) -> ExitCode {
    match tool {
        Tool::Flux(args) => {
            let options = import::flux::Options {
                repo_dir: args.repo_dir,
                pull_request: args.pull_request,
            };
            finish(&args.common, "flux", |objects| {
                import::flux::translate(objects, &options)
            })
        }
        Tool::Argo(args) => {
            let options = import::argo::Options {
                repo_dir: args.repo_dir,
            };
            finish(&args.common, "argo", |objects| {
                import::argo::translate(objects, &options)
            })
        }
    }
}

fn finish(
    common: &Common,
    tool: &str,
    translate: impl FnOnce(&[import::Object]) -> Result<Imported, ImportError>,
) -> ExitCode {
    let imported = match import::read_inputs(&common.inputs, &common.namespace)
        .and_then(|objects| translate(&objects))
    {
        Ok(imported) => imported,
        Err(e) => {
            eprintln!("imagebump import {tool}: {e}");
            eprintln!("nothing was written");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    eprint!("{}", imported.report());
    if imported.apps.is_empty() {
        eprintln!("imagebump import {tool}: no app to write (see the report above)");
        return ExitCode::from(EXIT_USAGE);
    }
    if common.check {
        if imported.lossy() {
            eprintln!("check: some fields would be approximated or dropped (listed above)");
            return ExitCode::from(EXIT_FAILED);
        }
        eprintln!("check: everything translates");
        return ExitCode::from(EXIT_OK);
    }
    let Some(dir) = &common.output else {
        eprintln!("imagebump import {tool}: -o DIR is required");
        return ExitCode::from(EXIT_USAGE);
    };
    let files = imported.files(tool);
    if let Err(e) = import::write_dir(dir, &files) {
        eprintln!("imagebump import {tool}: {e}");
        eprintln!("nothing was written");
        return ExitCode::from(EXIT_USAGE);
    }
    for (file, _) in &files {
        eprintln!("wrote {}", dir.join(file).display());
    }
    eprintln!(
        "next: review the files, then `imagebump validate -c {}`",
        dir.join("imagebump.yaml").display()
    );
    ExitCode::from(EXIT_OK)
}
