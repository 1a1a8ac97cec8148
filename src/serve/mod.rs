//! `rollcall serve` (DESIGN.md "Command line"): a daemon that runs `run` on `[schedule].run`
//! and `rebuild` on `[schedule].rebuild`, one at a time in this process and, through the run
//! lease, across every process sharing the state database; with `/healthz`, `/metrics` and a
//! read-only status page (`/`) on `[serve].listen`.
//!
//! Signals: SIGTERM and SIGINT stop a run in flight at its next batch boundary (it stays
//! resumable; the next run finishes it), then `serve` exits 0. SIGHUP reads the config again:
//! a config that does not validate is logged and the one in use kept; a changed
//! `[serve].listen` or `[state]` is logged as needing a restart and the old value kept;
//! everything else (schedules, `max_success_age`, sources, guards, Graph) applies from the
//! next tick.

mod health;
mod html;
mod http;
mod metrics;
mod page;
mod page_chart;
mod schedule;
mod tick;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::net::TcpListener;

pub use health::{Health, judge};
pub use metrics::{Metrics, SAMPLE_NAMES, TickOutcome, TickRecord};
pub use schedule::{Schedules, Tick, jitter};

use crate::config::Config;
use crate::exit::{CommandError, Exit};
use crate::reconcile::StopSignal;
use crate::store::Store;
use http::Endpoint;
use tick::Ticker;

/// How long `serve` waits before looking again when no schedule has a tick to come.
const IDLE: Duration = Duration::from_secs(24 * 3600);

/// Runs the daemon with `config` until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<Exit, CommandError> {
    let mut schedules = Schedules::parse(&config.schedule).map_err(CommandError::usage)?;
    let url = config.state.database_url().map_err(|e| {
        CommandError::usage(anyhow::anyhow!("{}: [state]: {e}", config.path.display()))
    })?;
    let store = Store::open(&url).await.map_err(CommandError::failed)?;
    let listener = TcpListener::bind(config.serve.listen).await.map_err(|e| {
        CommandError::failed(anyhow::anyhow!(
            "{}: [serve] listen = \"{}\": cannot listen there ({e}); is another serve running?",
            config.path.display(),
            config.serve.listen
        ))
    })?;
    let address = listener.local_addr().map_err(CommandError::failed)?;
    let metrics = Arc::new(Metrics::new());
    metrics.follow_credential(config.graph.clone());
    for warning in config.warnings() {
        tracing::warn!(config = %config.path.display(), "{warning}");
    }
    let endpoint = Arc::new(Endpoint {
        store,
        metrics: metrics.clone(),
        started_at: Utc::now(),
        max_success_age: RwLock::new(config.serve.max_success_age),
        show_members: AtomicBool::new(config.serve.show_members),
    });
    let router = http::router(endpoint.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    tracing::info!(
        address = %address,
        run = %config.schedule.run,
        rebuild = config.schedule.rebuild.as_deref().unwrap_or("never"),
        timezone = %config.schedule.timezone,
        "serving /healthz and /metrics, and the status page on /; scheduled runs start on the schedule"
    );

    let mut signals = Signals::listen().map_err(CommandError::failed)?;
    let mut ticker = Ticker::default();
    let mut config = config;
    'ticks: loop {
        let now = Utc::now();
        let next = schedules.next_after(now);
        let wait = next.map_or(IDLE, |tick| {
            (tick.at - now).to_std().unwrap_or_default() + jitter(schedules.max_jitter(&tick))
        });
        if let Some(tick) = next {
            tracing::debug!(kind = %tick.kind, at = %tick.at, "next scheduled run");
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            received = signals.next() => match received {
                Received::Reload => {
                    reload(&mut config, &mut schedules, &endpoint);
                    continue 'ticks;
                }
                Received::Stop(name) => {
                    tracing::info!(signal = name, "stopping: no run in progress");
                    break 'ticks;
                }
            },
        }
        let Some(tick) = next else { continue };
        let stop = StopSignal::default();
        let mut stopping = false;
        let ticked = {
            let work = ticker.tick(config.clone(), tick.kind, tick.at, stop.clone());
            tokio::pin!(work);
            loop {
                tokio::select! {
                    ticked = &mut work => break ticked,
                    received = signals.next() => match received {
                        Received::Reload => reload(&mut config, &mut schedules, &endpoint),
                        Received::Stop(name) if !stopping => {
                            tracing::warn!(signal = name, "stopping: the run in progress stops at its next batch boundary and stays resumable");
                            stop.raise();
                            stopping = true;
                        }
                        Received::Stop(name) => {
                            tracing::warn!(signal = name, "already stopping at the next batch boundary");
                        }
                    },
                }
            }
        };
        metrics.record(tick.kind, ticked.outcome, ticked.took, &ticked.record);
        if stopping {
            break 'ticks;
        }
    }
    server.abort();
    endpoint.store.close().await;
    tracing::info!("serve stopped");
    Ok(Exit::Success)
}

/// SIGHUP: reads and validates the config again; what cannot change without a restart keeps
/// its old value, with a warning.
fn reload(current: &mut Config, schedules: &mut Schedules, endpoint: &Endpoint) {
    let path = current.path.clone();
    let mut fresh = match Config::load(&path) {
        Ok(fresh) => fresh,
        Err(e) => {
            tracing::error!(config = %path.display(), error = %e, "SIGHUP: the configuration is not valid; keeping the one in use");
            return;
        }
    };
    let parsed = match Schedules::parse(&fresh.schedule) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::error!(config = %path.display(), error = %e, "SIGHUP: the configuration is not valid; keeping the one in use");
            return;
        }
    };
    if fresh.serve.listen != current.serve.listen {
        tracing::warn!(
            listening = %current.serve.listen, configured = %fresh.serve.listen,
            "SIGHUP: [serve] listen changed; restart serve to listen there (still listening on the old address)"
        );
        fresh.serve.listen = current.serve.listen;
    }
    if serde_json::to_value(&fresh.state).ok() != serde_json::to_value(&current.state).ok() {
        tracing::warn!(
            "SIGHUP: [state] changed; restart serve to use it (runs keep the state database in use)"
        );
        fresh.state = current.state.clone();
    }
    *endpoint
        .max_success_age
        .write()
        .unwrap_or_else(|e| e.into_inner()) = fresh.serve.max_success_age;
    endpoint
        .show_members
        .store(fresh.serve.show_members, Ordering::Relaxed);
    *schedules = parsed;
    endpoint.metrics.follow_credential(fresh.graph.clone());
    for warning in fresh.warnings() {
        tracing::warn!(config = %path.display(), "{warning}");
    }
    *current = fresh;
    tracing::info!(
        run = %current.schedule.run,
        rebuild = current.schedule.rebuild.as_deref().unwrap_or("never"),
        timezone = %current.schedule.timezone,
        "SIGHUP: configuration reloaded; it applies from the next scheduled run"
    );
}

/// A signal `serve` acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Received {
    /// SIGHUP.
    Reload,
    /// SIGTERM or SIGINT, by name.
    Stop(&'static str),
}

/// The signal streams, installed once for the life of the daemon.
#[cfg(unix)]
#[derive(Debug)]
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn listen() -> anyhow::Result<Signals> {
        use anyhow::Context as _;
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("cannot listen for {name}"))
        };
        Ok(Signals {
            terminate: install(SignalKind::terminate(), "SIGTERM")?,
            interrupt: install(SignalKind::interrupt(), "SIGINT")?,
            hangup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    async fn next(&mut self) -> Received {
        tokio::select! {
            Some(()) = self.terminate.recv() => Received::Stop("SIGTERM"),
            Some(()) = self.interrupt.recv() => Received::Stop("SIGINT"),
            Some(()) = self.hangup.recv() => Received::Reload,
            else => std::future::pending().await,
        }
    }
}

#[cfg(not(unix))]
#[derive(Debug)]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn listen() -> anyhow::Result<Signals> {
        Ok(Signals)
    }

    async fn next(&mut self) -> Received {
        let _ = tokio::signal::ctrl_c().await;
        Received::Stop("Ctrl-C")
    }
}
