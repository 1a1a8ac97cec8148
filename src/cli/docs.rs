//! `rollcall completions SHELL` and `rollcall man [COMMAND]`: generated from the same clap
//! definitions that parse the command line, so they never disagree with it.

use std::io::Write as _;

use clap::{Args, CommandFactory as _};
use clap_complete::Shell;

use super::Cli;
use crate::exit::{CommandError, Exit};

/// `rollcall completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell: e.g. `rollcall completions bash > /etc/bash_completion.d/rollcall`, or
    /// `rollcall completions zsh > "${fpath[1]}/_rollcall"`, or
    /// `rollcall completions fish > ~/.config/fish/completions/rollcall.fish`.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The shells completions are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// `rollcall man`.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// A command's own page (e.g. `run`) instead of rollcall's.
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

/// Writes the completion script for `args.shell` to stdout.
pub fn completions(args: &CompletionsArgs) -> Result<Exit, CommandError> {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "rollcall", &mut out);
    emit(&out)
}

/// Writes the manual page (roff) of rollcall, or of one of its commands, to stdout.
pub fn man(args: &ManArgs) -> Result<Exit, CommandError> {
    let mut command = Cli::command();
    command.build();
    let man = match &args.command {
        None => clap_mangen::Man::new(command),
        Some(name) => {
            let names: Vec<String> = command
                .get_subcommands()
                .map(|c| c.get_name().to_owned())
                .collect();
            let sub = command.find_subcommand(name).cloned().ok_or_else(|| {
                CommandError::usage(anyhow::anyhow!(
                    "rollcall has no command `{name}`; the commands are: {}",
                    names.join(", ")
                ))
            })?;
            // The page is titled rollcall-COMMAND(1), the way git's are.
            let title = format!("rollcall-{}", sub.get_name());
            clap_mangen::Man::new(sub).title(title)
        }
    };
    let mut out = Vec::new();
    man.render(&mut out)
        .map_err(|e| CommandError::failed(anyhow::anyhow!("cannot render the manual page: {e}")))?;
    emit(&out)
}

fn emit(bytes: &[u8]) -> Result<Exit, CommandError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| CommandError::failed(anyhow::anyhow!("cannot write to stdout: {e}")))?;
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: Shell) -> String {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "rollcall", &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_shell_completes_every_command() {
        let commands: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        assert!(commands.iter().any(|c| c == "init"));
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = script(shell);
            for command in &commands {
                assert!(text.contains(command.as_str()), "{shell}: no `{command}`");
            }
        }
    }
}
