//! Exit codes (DESIGN.md "Exit codes") and the error type commands end with.

use std::fmt;

/// How a command ended, as the process exit code scripts and cron rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success: no drift, or every planned change applied.
    Success = 0,
    /// The run failed; anything done is journalled.
    Failed = 1,
    /// Usage or configuration error; nothing was read or changed.
    Usage = 2,
    /// Stopped before any change: a faulty source or a tripped guard.
    Stopped = 3,
    /// Interrupted: pending operations remain for `resume`.
    Interrupted = 4,
    /// `verify` found drift.
    Drift = 5,
    /// Skipped: another run holds the lock, or rollcall is paused.
    Skipped = 6,
    /// Applied, some lists held: every other list was planned and applied; the held lists
    /// are named in the report with their reasons (`plan`: it would hold lists).
    Held = 7,
}

impl Exit {
    /// The numeric process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// A command's failure together with the exit code it maps to.
#[derive(Debug)]
pub struct CommandError {
    /// The exit code.
    pub exit: Exit,
    /// What went wrong, with context for the operator.
    pub error: anyhow::Error,
}

impl CommandError {
    /// A failure with the given exit code.
    pub fn new(exit: Exit, error: impl Into<anyhow::Error>) -> Self {
        Self {
            exit,
            error: error.into(),
        }
    }

    /// A usage or configuration error (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self::new(Exit::Usage, error)
    }

    /// A failed run (exit 1).
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Self::new(Exit::Failed, error)
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for CommandError {}

impl From<crate::config::ConfigError> for CommandError {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::usage(e)
    }
}
