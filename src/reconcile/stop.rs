//! Why a run stops short, and what makes an applying run stop at the next batch boundary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::lease::RunLease;
use crate::exit::{CommandError, Exit};
use crate::graph::GraphError;
use crate::source::SourceError;
use crate::store::{PauseState, RunStatus, Store, StoreError};

/// Why a run stopped short: the exit code, the status its record ends in, and the cause.
#[derive(Debug)]
pub struct Stop {
    /// The process exit code.
    pub exit: Exit,
    /// The run's final status.
    pub status: RunStatus,
    /// What happened and what to do next.
    pub error: anyhow::Error,
}

impl Stop {
    fn new(exit: Exit, status: RunStatus, error: impl Into<anyhow::Error>) -> Stop {
        Stop {
            exit,
            status,
            error: error.into(),
        }
    }

    /// The state store failed before anything was sent.
    pub fn store(e: StoreError) -> Stop {
        if e.is_data_error() {
            return Stop::refused_write(e);
        }
        Stop::new(Exit::Failed, RunStatus::Failed, e)
    }

    /// The state store refused what rollcall wrote (a constraint violation, a value the
    /// column cannot hold): rollcall's defect, exit 1, never reported as a lost database.
    /// The refused write was rolled back; anything sent before it is journalled, and the next
    /// run plans again from the sources and Microsoft 365.
    fn refused_write(e: StoreError) -> Stop {
        tracing::error!(error = %e, "the state database refused a write: a defect in rollcall");
        Stop::new(Exit::Failed, RunStatus::Failed, e)
    }

    /// The state store failed while applying: stop sending at once. A refused write is
    /// rollcall's defect (exit 1), not a lost database.
    pub fn lost_store(e: StoreError) -> Stop {
        if e.is_data_error() {
            return Stop::refused_write(e);
        }
        Stop::new(
            Exit::Interrupted,
            RunStatus::Interrupted,
            anyhow::Error::new(e).context(
                "the state database failed while applying; sending stopped at once. \
                 When it is back, `rollcall resume` (or the next run) finishes the pending operations",
            ),
        )
    }

    /// A batch's outcomes could not be committed: the lease was taken over (another run now
    /// owns the journal) or the state database failed. Either way, stop sending at once.
    pub fn commit(e: StoreError) -> Stop {
        match e {
            StoreError::LeaseLost { .. } => Stop::interrupted(
                "the run lease was lost (it expired and another run took it over)",
            ),
            e => Stop::lost_store(e),
        }
    }

    /// Microsoft Graph failed while reading.
    pub fn graph(what: impl std::fmt::Display, e: GraphError) -> Stop {
        Stop::new(
            Exit::Failed,
            RunStatus::Failed,
            anyhow::Error::new(e).context(format!("could not {what}")),
        )
    }

    /// A source is faulty or incomplete: nothing was planned.
    pub fn source(e: SourceError) -> Stop {
        let check = e.check();
        Stop::new(
            Exit::Stopped,
            RunStatus::Stopped,
            anyhow::Error::new(e).context(format!(
                "source check `{check}` failed; nothing was planned and every list keeps its members"
            )),
        )
    }

    /// Stopped before any change for another reason (a tripped guard, an invalid list).
    pub fn stopped(error: anyhow::Error) -> Stop {
        Stop::new(Exit::Stopped, RunStatus::Stopped, error)
    }

    /// Anything else.
    pub fn failed(error: anyhow::Error) -> Stop {
        Stop::new(Exit::Failed, RunStatus::Failed, error)
    }

    /// Every operation of a batch failed for now: Microsoft 365 is unreachable.
    pub fn unreachable(operations: usize) -> Stop {
        Stop::new(
            Exit::Interrupted,
            RunStatus::Interrupted,
            anyhow::anyhow!(
                "Microsoft 365 accepted none of the last {operations} operations (throttled, \
                 unavailable or unreachable past the retry budget); sending stopped. \
                 `rollcall resume` or the next run finishes the pending operations"
            ),
        )
    }

    /// Operations are still pending after every pass.
    pub fn still_pending(operations: usize, last_error: Option<String>) -> Stop {
        let cause = last_error.map_or_else(String::new, |e| format!(" (last error: {e})"));
        Stop::new(
            Exit::Interrupted,
            RunStatus::Interrupted,
            anyhow::anyhow!(
                "{operations} operations are still pending{cause}; `rollcall resume` or the next run finishes them"
            ),
        )
    }

    fn interrupted(why: &str) -> Stop {
        Stop::new(
            Exit::Interrupted,
            RunStatus::Interrupted,
            anyhow::anyhow!(
                "{why}: stopped at a batch boundary; `rollcall resume` or the next run finishes the pending operations"
            ),
        )
    }
}

impl From<Stop> for CommandError {
    fn from(stop: Stop) -> Self {
        CommandError::new(stop.exit, stop.error)
    }
}

/// What makes an applying run stop at the next batch boundary: SIGINT/SIGTERM, `pause`, or a
/// lost lease.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    signalled: Arc<AtomicBool>,
}

impl StopSignal {
    /// Listens for SIGINT and SIGTERM from now on.
    pub fn install() -> StopSignal {
        let signal = StopSignal::default();
        let flag = signal.signalled.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::warn!("signal received: stopping at the next batch boundary");
            flag.store(true, Ordering::SeqCst);
        });
        signal
    }

    /// Asks the run to stop at the next batch boundary.
    pub fn raise(&self) {
        self.signalled.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_raised(&self) -> bool {
        self.signalled.load(Ordering::SeqCst)
    }

    /// Called between batches: stops on a signal, a lost lease, or the pause flag, read from
    /// the store unless `known` (the flag as the last batch commit read it) is given.
    pub async fn check(
        &self,
        store: &Store,
        lease: &RunLease,
        known: Option<PauseState>,
    ) -> Result<(), Stop> {
        if self.is_raised() {
            return Err(Stop::interrupted("a signal asked rollcall to stop"));
        }
        if lease.is_lost() {
            return Err(Stop::interrupted(
                "the run lease was lost (another run took it over after it expired)",
            ));
        }
        let pause = match known {
            Some(pause) => pause,
            None => store.pause_state().await.map_err(Stop::lost_store)?,
        };
        if pause.paused {
            let reason = pause.reason.unwrap_or_default();
            return Err(Stop::interrupted(&format!(
                "rollcall was paused ({reason})"
            )));
        }
        Ok(())
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
