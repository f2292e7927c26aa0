//! `imagebump run`: the daemon (schedule, webhooks, metrics, health, status).
//!
//! Invariant: this file only parses arguments and maps the daemon's result to an exit code; the
//! wiring is in [`crate::service`].

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::daemon::logging::{LogFormat, init_logging};
use crate::daemon::{self, Control, DaemonError, Metrics};
use crate::service;

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
    /// Poll on the schedule only the apps this shard owns: INDEX/COUNT, e.g. 0/3, where INDEX
    /// may be a StatefulSet pod name ending in -INDEX (imagebump-2/3). Webhooks still cover
    /// every app. See docs/scaling.md.
    #[arg(long, env = "IMAGEBUMP_SHARD", value_parser = crate::shard::Shard::parse)]
    pub shard: Option<crate::shard::Shard>,
    /// With --shard: how often other shards' apps are checked here, so a dead replica delays
    /// its apps by at most this (default: 5 times the interval; 1h with a cron schedule).
    #[arg(long, env = "IMAGEBUMP_SHARD_SAFETY_NET", value_parser = parse_duration, requires = "shard")]
    pub shard_safety_net: Option<std::time::Duration>,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::schedule::parse_duration(text).map_err(|e| e.to_string())
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
    let sharding = args.shard.map(|shard| service::Sharding {
        shard,
        safety_net: args.shard_safety_net,
    });
    let loader_metrics = Arc::clone(&metrics);
    let shutdown = control.shutdown_signal().clone();
    let last_good = Mutex::new(service::LastGood::default());
    let loader = move || {
        service::load(
            &path,
            ready_at_start,
            &loader_metrics,
            &shutdown,
            &mut last_good.lock().unwrap_or_else(|p| p.into_inner()),
            sharding,
        )
    };
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
