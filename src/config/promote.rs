//! The checks of `promote:` that need every app: the source app and image exist, and no chain
//! of `from:` comes back to where it started.
//!
//! Invariant: an app with a problem here is left out with its `file:line:col`, as any other
//! problem of its file; the apps it names are not touched.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::App;
use super::read::{Diagnostic, did_you_mean};

/// Check every promoted image of `apps` (the apps whose own files are fine) against the others;
/// `named` holds every app name seen, broken files' too. Apps with a problem are removed from
/// `apps` and their problems added to `problems`.
pub(super) fn check(
    apps: &mut Vec<App>,
    named: &BTreeMap<String, PathBuf>,
    problems: &mut Vec<Diagnostic>,
) {
    let mut found: Vec<Diagnostic> = Vec::new();
    let by_name: BTreeMap<&str, &App> = apps.iter().map(|a| (a.name.as_str(), a)).collect();
    let names: Vec<&str> = by_name.keys().copied().collect();
    for app in apps.iter() {
        for image in &app.images {
            let Some(promote) = &image.promote else {
                continue;
            };
            let at = |message: String| Diagnostic {
                file: app.file.clone(),
                line: promote.at.0,
                col: promote.at.1,
                message,
            };
            let Some(source) = by_name.get(promote.from.as_str()) else {
                let message = match named.get(&promote.from) {
                    Some(file) => format!(
                        "`promote.from`: app `{}` ({}) has problems of its own; fix them first",
                        promote.from,
                        file.display()
                    ),
                    None => {
                        let hint = did_you_mean(&promote.from, &names)
                            .map(|s| format!("; did you mean `{s}`?"))
                            .unwrap_or_default();
                        format!(
                            "`promote.from`: no app named `{}`{hint} (apps: {})",
                            promote.from,
                            names.join(", ")
                        )
                    }
                };
                found.push(at(message));
                continue;
            };
            if !source.images.iter().any(|i| i.name == promote.image) {
                let theirs: Vec<&str> = source.images.iter().map(|i| i.name.as_str()).collect();
                found.push(at(format!(
                    "`promote`: app `{}` has no image named `{}` (its images: {}); name it with `promote.image`",
                    promote.from,
                    promote.image,
                    theirs.join(", ")
                )));
                continue;
            }
            if let Some(cycle) = cycle_from(&by_name, &app.name, &image.name) {
                found.push(at(format!(
                    "`promote.from` makes a cycle: {}",
                    cycle.join(" → ")
                )));
            }
        }
    }
    apps.retain(|app| !found.iter().any(|p| p.file == app.file));
    problems.extend(found);
}

/// The chain of `from:` links that starts at (app, image) and comes back to it, if it does:
/// `prod/api → staging/api → prod/api`.
fn cycle_from(by_name: &BTreeMap<&str, &App>, app: &str, image: &str) -> Option<Vec<String>> {
    let start = (app.to_string(), image.to_string());
    let mut chain = vec![format!("{app}/{image}")];
    let mut here = start.clone();
    // A chain longer than the number of images revisits one: stop there.
    let limit: usize = by_name.values().map(|a| a.images.len()).sum();
    for _ in 0..=limit {
        let promote = by_name
            .get(here.0.as_str())?
            .images
            .iter()
            .find(|i| i.name == here.1)?
            .promote
            .as_ref()?;
        here = (promote.from.clone(), promote.image.clone());
        chain.push(format!("{}/{}", here.0, here.1));
        if here == start {
            return Some(chain);
        }
    }
    None
}
