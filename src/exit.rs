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
        f.write_str(&each_cause_once(&self.error))
    }
}

/// The error and its causes joined with `: `, leaving out a cause whose text is already in
/// what precedes it: many messages embed their cause (`cannot read X: {source}`), and
/// anyhow's `{:#}` would print it a second time.
pub fn each_cause_once(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

impl std::error::Error for CommandError {}

impl From<crate::config::ConfigError> for CommandError {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::usage(e)
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read rollcall.toml: {source}")]
    struct Embeds {
        source: std::io::Error,
    }

    fn not_found() -> std::io::Error {
        std::io::Error::from(std::io::ErrorKind::NotFound)
    }

    #[test]
    fn a_cause_the_message_embeds_is_said_once() {
        let error = CommandError::usage(Embeds {
            source: not_found(),
        });
        let text = error.to_string();
        let cause = not_found().to_string();
        assert_eq!(text.matches(&cause).count(), 1, "{text}");
        assert_eq!(text, format!("cannot read rollcall.toml: {cause}"));
    }

    #[test]
    fn a_cause_the_message_does_not_embed_is_still_said() {
        let error: anyhow::Result<()> =
            Err(not_found()).context("cannot read the seed file x.json");
        let text = CommandError::usage(error.unwrap_err()).to_string();
        assert_eq!(
            text,
            format!("cannot read the seed file x.json: {}", not_found())
        );
    }
}
