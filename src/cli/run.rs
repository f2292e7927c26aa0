//! `imagebump run`: the daemon (schedule, webhooks, metrics, health, status).

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config::{self, Config};
use crate::daemon::logging::{LogFormat, init_logging};
use crate::daemon::{
    self, Control, DaemonError, Loaded, Metrics, Receiver, ReceiverKind, Schedule, Settings,
};
use crate::engine::Engine;
use crate::engine::worker::EngineWorker;

/// Where the HTTP server listens when the config has no `webhook:` section.
const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: super::ConfigArg,
    /// Log level (error, warn, info, debug, trace) or a RUST_LOG-style filter; default:
    /// RUST_LOG, else info.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Log format on stderr: text or json.
    #[arg(long, default_value = "text")]
    pub log_format: LogFormat,
    /// Report ready at once instead of after the first full cycle.
    #[arg(long)]
    pub ready_at_start: bool,
}

pub fn run(args: Args) -> ExitCode {
    if let Err(e) = init_logging(args.log_format, args.log_level.as_deref()) {
        eprintln!("imagebump: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let runtime = match super::runtime(true) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let metrics = Arc::new(Metrics::new());
    let control = Control::new();
    let path = args.config.config.clone();
    let ready_at_start = args.ready_at_start;
    let loader_metrics = Arc::clone(&metrics);
    let shutdown = control.shutdown_signal().clone();
    let loader = move || load(&path, ready_at_start, &loader_metrics, &shutdown);
    let result = runtime.block_on(async {
        control
            .listen_for_signals()
            .map_err(|e| DaemonError::Config(format!("cannot listen for signals: {e}")))?;
        daemon::run(loader, metrics, control).await
    });
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e @ DaemonError::Config(_)) => {
            eprintln!("imagebump: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("imagebump: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Read the configuration and build the worker and the daemon settings. Broken app files are
/// logged and left out; a broken global file or a missing secret rejects the configuration.
fn load(
    path: &Path,
    ready_at_start: bool,
    metrics: &Arc<Metrics>,
    shutdown: &daemon::Shutdown,
) -> Result<Loaded<EngineWorker>, String> {
    let loaded = config::load(path).map_err(|e| e.to_string())?;
    for problem in &loaded.problems {
        tracing::error!(%problem, "app file skipped");
    }
    let settings = daemon_settings(&loaded.config, ready_at_start)?;
    let engine = Engine::new(loaded.config)
        .map_err(|e| e.to_string())?
        .with_shutdown(shutdown.clone());
    Ok(Loaded {
        worker: EngineWorker::new(engine, Arc::clone(metrics)),
        settings,
    })
}

fn schedule(schedule: &config::Schedule) -> Result<Schedule, String> {
    match schedule {
        config::Schedule::Interval(d) => Ok(Schedule::Interval(*d)),
        config::Schedule::Cron(pattern) => Schedule::cron(pattern).map_err(|e| e.to_string()),
    }
}

fn daemon_settings(config: &Config, ready_at_start: bool) -> Result<Settings, String> {
    let webhook = config.global.webhook.as_ref();
    let listen = match webhook {
        Some(w) => w.listen,
        None => SocketAddr::from_str(DEFAULT_LISTEN).map_err(|e| e.to_string())?,
    };
    let mut settings = Settings::new(listen, schedule(&config.global.schedule)?);
    for app in &config.apps {
        if let Some(s) = &app.schedule {
            settings
                .app_schedules
                .push((app.name.clone(), schedule(s)?));
        }
    }
    for r in webhook.map(|w| w.receivers.as_slice()).unwrap_or_default() {
        let kind = ReceiverKind::from_str(&r.kind).map_err(|e| e.to_string())?;
        let secret = std::env::var(&r.secret_env)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                format!(
                    "environment variable `{}` (webhook receiver `{}`) is not set",
                    r.secret_env, r.kind
                )
            })?;
        settings.receivers.push(Receiver {
            kind,
            secret: daemon::Secret::new(secret),
            registry: r.registry.clone(),
        });
    }
    settings.ready_after_first_cycle = !ready_at_start;
    // A short quiet period: a single push is acted on within ~100 ms, a burst still makes one
    // check (the window slides while events keep coming, capped at debounce_max).
    settings.checks.debounce = webhook
        .and_then(|w| w.debounce)
        .unwrap_or(Duration::from_millis(100));
    if let Some(max) = webhook.and_then(|w| w.debounce_max) {
        settings.checks.debounce_max = max;
    }
    if let Some(n) = config.global.max_concurrent_checks {
        settings.checks.max_concurrent = n as usize;
    }
    settings.watch_paths = vec![config.file.clone(), config.global.apps_dir.clone()];
    Ok(settings)
}
