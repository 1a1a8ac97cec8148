//! The command line (DESIGN.md "Command line"): parsing, and dispatch to each command.

mod explain;
mod history;
mod reconcile;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::exit::{CommandError, Exit};
use crate::logging::{self, LogFormat};
use crate::sandbox::command::SandboxArgs;
use crate::store::{RunKind, Store};

/// rollcall keeps Microsoft 365 mailing lists in step with authoritative records.
#[derive(Debug, Parser)]
#[command(name = "rollcall", version, about, max_term_width = 100)]
pub struct Cli {
    /// The configuration file [default: ./rollcall.toml].
    #[arg(long, global = true, env = "ROLLCALL_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The shape of log lines on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// More log detail (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less log detail (repeat for less).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// A self-contained tour: a sandbox tenant, a small generated university, a full build,
    /// some enrolment changes, a second run and a verify. Needs no config and no network.
    Demo,
    /// Everything a run does except applying: prints the plan and the guard verdicts.
    Plan {
        /// Approvals the guards should take into account.
        #[command(flatten)]
        approvals: reconcile::ApprovalArgs,
        /// Readable text or one JSON document.
        #[command(flatten)]
        output: reconcile::OutputArgs,
        /// Also save the plan to FILE (JSON, owner-only), for `rollcall apply FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Applies exactly a saved plan (`plan --out FILE`), approving its guards, if the sources
    /// and Microsoft 365 are unchanged since and it is younger than `[guard].plan_ttl`.
    Apply(reconcile::ApplyArgs),
    /// One reconcile: resumes an interrupted run first, then plans and applies. What cron calls.
    Run(reconcile::ApprovalArgs),
    /// Finishes the pending operations of the last interrupted run, then stops.
    Resume,
    /// Full re-derivation from the sources and Microsoft 365, then a reconcile.
    Rebuild(reconcile::RebuildArgs),
    /// Reads desired and actual afresh and reports drift (exit 5); changes nothing.
    Verify(reconcile::OutputArgs),
    /// Lock holder, pause, pending operations, last drift, last runs.
    Status,
    /// Daemon: `run` on `[schedule].run` and `rebuild` on `[schedule].rebuild`, one at a time
    /// (through the lease, across instances), with /healthz and /metrics on `[serve].listen`.
    /// SIGTERM/SIGINT stop a run at its next batch boundary; SIGHUP reloads the config.
    Serve,
    /// Run history, newest first.
    Runs(history::RunsArgs),
    /// One run's report.
    Show(history::ShowArgs),
    /// Why a member is (not) on a list, since when and by which run; what a list is and
    /// whether it is held; with --member, every list a person is or should be on. Read-only.
    Explain(explain::ExplainArgs),
    /// Maintenance: runs skip, and a run in progress stops at its next batch (resumable).
    Pause(history::PauseArgs),
    /// Ends a pause.
    Unpause,
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Apply the state database migrations (runs also apply them on start).
    Migrate,
    /// Check the state database: schema version, foreign keys, orphaned rows, stuck runs,
    /// stale locks. Exits 1 when anything is wrong.
    Doctor,
    /// Write a synthetic university (source CSVs, control files, sandbox seed), deterministically.
    Generate(crate::generate::GenerateArgs),
    /// Run the built-in Microsoft Graph sandbox tenant on a loopback port.
    Sandbox(SandboxArgs),
}

/// `rollcall config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it with every default filled in and secrets redacted.
    Check,
}

/// What every command may need from the global options.
#[derive(Debug)]
pub struct Context {
    /// The configuration file path chosen by `--config`, `ROLLCALL_CONFIG` or the default.
    pub config_path: PathBuf,
    /// Whether logs are for a human (a progress bar may be drawn on a terminal).
    pub human_logs: bool,
}

impl Context {
    /// Loads and validates the configuration; a fault is a usage error (exit 2).
    pub fn config(&self) -> Result<Config, CommandError> {
        Ok(Config::load(&self.config_path)?)
    }
}

/// Parses the command line, runs the command and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo tells its own story on stdout, and explain's answer is its output; their info
    // logs (each source read, …) would only bury them.
    let quieter = i8::from(matches!(cli.command, Command::Demo | Command::Explain(_)));
    logging::init(
        cli.log_format,
        cli.verbose as i8 - cli.quiet as i8 - quieter,
    );
    let context = Context {
        config_path: cli
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
        human_logs: cli.log_format == LogFormat::Human,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failed.into();
        }
    };
    match runtime.block_on(dispatch(cli.command, &context)) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("error: {e}");
            e.exit.into()
        }
    }
}

async fn dispatch(command: Command, context: &Context) -> Result<Exit, CommandError> {
    match command {
        Command::Config(ConfigCommand::Check) => {
            let config = context.config()?;
            println!("# {}: valid", config.path.display());
            for warning in config.warnings() {
                eprintln!("warning: {warning}");
            }
            print!("{}", config.render_effective());
            Ok(Exit::Success)
        }
        Command::Demo => crate::demo::run().await,
        Command::Plan {
            approvals,
            output,
            out,
        } => reconcile::plan(context, approvals, output.output, out.as_deref()).await,
        Command::Apply(args) => reconcile::apply(context, args).await,
        Command::Run(approvals) => reconcile::run(context, RunKind::Run, approvals).await,
        Command::Resume => reconcile::resume(context).await,
        Command::Rebuild(args) => reconcile::rebuild(context, args).await,
        Command::Verify(output) => reconcile::verify(context, output.output).await,
        Command::Status => history::status(context).await,
        Command::Serve => crate::serve::run(context.config()?).await,
        Command::Runs(args) => history::runs(context, args).await,
        Command::Show(args) => history::show(context, args).await,
        Command::Explain(args) => explain::run(context, args).await,
        Command::Pause(args) => history::pause(context, args).await,
        Command::Unpause => history::unpause(context).await,
        Command::Migrate => migrate(context).await,
        Command::Doctor => doctor(context).await,
        Command::Generate(args) => crate::generate::run(&args),
        Command::Sandbox(args) => crate::sandbox::command::run(args.options()?).await,
    }
}

/// The state database URL from the configuration; a fault there is a usage error.
fn state_url(context: &Context) -> Result<crate::config::DatabaseUrl, CommandError> {
    let config = context.config()?;
    config.state.database_url().map_err(|e| {
        CommandError::usage(anyhow::anyhow!("{}: [state]: {e}", config.path.display()))
    })
}

async fn migrate(context: &Context) -> Result<Exit, CommandError> {
    let url = state_url(context)?;
    let store = Store::connect(&url).await.map_err(CommandError::failed)?;
    let report = store.migrate().await.map_err(CommandError::failed)?;
    let version = |v: Option<i64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
    println!("state database: {}", store.url());
    println!("schema version before: {}", version(report.before));
    for (number, description) in &report.applied {
        println!("applied: {number} {description}");
    }
    println!("schema version after: {}", version(report.after));
    store.close().await;
    Ok(Exit::Success)
}

async fn doctor(context: &Context) -> Result<Exit, CommandError> {
    let url = state_url(context)?;
    if let Some(path) = crate::store::sqlite_file(&url)
        && !path.exists()
    {
        // Connecting would create an empty database and hide that the real one is gone.
        println!("state database: {}", url.redacted());
        println!(
            "error [missing-database] {} does not exist: the first `rollcall run` or `rollcall migrate` creates it; if it was lost, `rollcall rebuild --state-only` restores it from Microsoft 365",
            path.display()
        );
        return Ok(Exit::Failed);
    }
    let store = Store::connect(&url).await.map_err(CommandError::failed)?;
    let findings = store.doctor().await;
    store.close().await;
    println!("state database: {}", store.url());
    if findings.is_empty() {
        println!("no problems found");
        return Ok(Exit::Success);
    }
    for finding in &findings {
        println!("{finding}");
    }
    println!("{} problem(s) found", findings.len());
    Ok(Exit::Failed)
}
