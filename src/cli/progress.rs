//! What `imagebump once` shows while a pass runs.
//!
//! Invariant: progress goes to stderr and only on a terminal (indicatif bars: repositories
//! listed, apps planned, config repos done); stdout gets each app's result block as the app
//! completes (text output), so a pipe or a CI log sees result lines as they come and nothing
//! else. Every app is printed once: the ones the pass never planned (broken settings) are
//! printed at the end by the caller ([`Reporter::printed`]).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::AppReport;
use crate::engine::progress::Progress;

/// The bars on a terminal.
struct Bars {
    multi: MultiProgress,
    listed: ProgressBar,
    planned: ProgressBar,
    repos: ProgressBar,
}

impl Bars {
    fn new(target: ProgressDrawTarget) -> Bars {
        let multi = MultiProgress::with_draw_target(target);
        let bar = |what: &'static str| {
            // The template is a constant known to parse; the default style is a fine fallback.
            let style = ProgressStyle::with_template("{prefix:>22} {bar:30} {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar = multi.add(ProgressBar::new(0).with_style(style));
            bar.set_prefix(what);
            bar
        };
        Bars {
            listed: bar("repositories listed"),
            planned: bar("apps planned"),
            repos: bar("config repos done"),
            multi,
        }
    }
}

/// How an app's result block reads.
pub type Block = Box<dyn Fn(&AppReport) -> String + Send + Sync>;

/// Prints result blocks as apps complete, and draws bars on a terminal.
pub struct Reporter {
    bars: Option<Bars>,
    /// Each app's block, printed as it completes (text output); `None`: print nothing.
    block: Option<Block>,
    /// Apps printed so far, and apps planned so far (a replanned app counts once).
    state: Mutex<(BTreeSet<String>, BTreeSet<String>)>,
}

impl Reporter {
    /// `terminal`: stderr is a terminal (draw bars); `block`: print each app's block on stdout
    /// as it completes.
    pub fn new(terminal: bool, block: Option<Block>) -> Reporter {
        Reporter {
            bars: terminal.then(|| Bars::new(ProgressDrawTarget::stderr())),
            block,
            state: Mutex::new((BTreeSet::new(), BTreeSet::new())),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (BTreeSet<String>, BTreeSet<String>)> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The apps whose block was printed.
    pub fn printed(&self) -> BTreeSet<String> {
        self.state().0.clone()
    }

    /// Leaves the bars as they are (not filled up: a listing that never ended shows).
    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            for bar in [&bars.listed, &bars.planned, &bars.repos] {
                bar.abandon();
            }
        }
    }

    /// Prints `text` on stdout without tearing the bars.
    fn print(&self, text: &str) {
        let write = || {
            print!("{text}");
            let _ = std::io::stdout().flush();
        };
        match &self.bars {
            Some(bars) => bars.multi.suspend(write),
            None => write(),
        }
    }
}

impl Progress for Reporter {
    fn start(&self, repositories: usize, apps: usize, config_repos: usize) {
        if let Some(bars) = &self.bars {
            bars.listed.set_length(repositories as u64);
            bars.planned.set_length(apps as u64);
            bars.repos.set_length(config_repos as u64);
        }
    }

    fn listed(&self, _repository: &str) {
        if let Some(bars) = &self.bars {
            bars.listed.inc(1);
        }
    }

    fn planned(&self, app: &str) {
        let first = self.state().1.insert(app.to_owned());
        if let (true, Some(bars)) = (first, &self.bars) {
            bars.planned.inc(1);
        }
    }

    fn app_done(&self, report: &AppReport) {
        let Some(block) = &self.block else {
            return;
        };
        if !self.state().0.insert(report.name.clone()) {
            return;
        }
        self.print(&block(report));
    }

    fn repo_done(&self, _url: &str, _pushes: usize) {
        if let Some(bars) = &self.bars {
            bars.repos.inc(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_app_is_printed_once_and_bars_count_each_app_once() {
        let reporter = Reporter {
            bars: Some(Bars::new(ProgressDrawTarget::hidden())),
            block: Some(Box::new(|app: &AppReport| format!("{}\n", app.name))),
            state: Mutex::new((BTreeSet::new(), BTreeSet::new())),
        };
        reporter.start(2, 2, 1);
        reporter.listed("ghcr.io/acme/api");
        reporter.planned("shop");
        // A rejected push replans the app: it still counts once.
        reporter.planned("shop");
        reporter.planned("blog");
        let shop = AppReport {
            name: "shop".into(),
            ..AppReport::default()
        };
        reporter.app_done(&shop);
        reporter.app_done(&shop);
        reporter.repo_done("file:///srv/deploy.git", 1);
        reporter.finish();
        let bars = reporter.bars.as_ref().map(|b| {
            (
                b.listed.position(),
                b.planned.position(),
                b.planned.length(),
                b.repos.position(),
            )
        });
        assert_eq!(bars, Some((1, 2, Some(2), 1)));
        assert_eq!(reporter.printed(), BTreeSet::from(["shop".to_string()]));
    }
}
