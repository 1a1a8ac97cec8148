//! The command line (DESIGN.md "Command line"): parsing, and dispatch to each command.

mod docs;
mod explain;
mod history;
mod init;
mod reconcile;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::exit::{CommandError, Exit};
use crate::graph::{GraphClient, permissions};
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
    /// (through the lease, across instances), with /healthz, /metrics and a status page (/) on
    /// `[serve].listen`.
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
    /// Write a commented starter rollcall.toml (SQLite state, one example CSV source, the
    /// sandbox tenant as Microsoft 365) and print the next commands.
    Init(init::InitArgs),
    /// Print a shell completion script (bash, zsh or fish).
    Completions(docs::CompletionsArgs),
    /// Print the manual page (roff): `rollcall man | man -l -`.
    Man(docs::ManArgs),
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
        Command::Init(args) => init::run(context, &args),
        Command::Completions(args) => docs::completions(&args),
        Command::Man(args) => docs::man(&args),
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
    println!("state database: {}", url.redacted());
    let database_problems = match crate::store::sqlite_file(&url) {
        // Connecting would create an empty database and hide that the real one is gone.
        Some(path) if !path.exists() => {
            println!(
                "error [missing-database] {} does not exist: the first `rollcall run` or `rollcall migrate` creates it; if it was lost, `rollcall rebuild --state-only` restores it from Microsoft 365",
                path.display()
            );
            1
        }
        _ => {
            let store = Store::connect(&url).await.map_err(CommandError::failed)?;
            let findings = store.doctor().await;
            store.close().await;
            for finding in &findings {
                println!("{finding}");
            }
            findings.len()
        }
    };
    let problems = database_problems + doctor_permissions(context).await?;
    if problems == 0 {
        println!("no problems found");
        return Ok(Exit::Success);
    }
    println!("{problems} problem(s) found");
    Ok(Exit::Failed)
}

/// Signs in to Microsoft Graph and names each application permission the configuration
/// needs that the token's `roles` claim lacks; returns how many.
async fn doctor_permissions(context: &Context) -> Result<usize, CommandError> {
    let config = context.config()?;
    let Some(graph) = config.graph.as_ref() else {
        println!("permissions: not checked (the configuration has no [graph] section)");
        return Ok(0);
    };
    let signed_in = match GraphClient::connect(graph).await {
        Ok(graph) => graph.granted_roles().await,
        Err(e) => Err(e),
    };
    let roles = match signed_in {
        Ok(roles) => roles,
        Err(e) => {
            println!("error [sign-in] could not sign in to Microsoft Graph: {e}");
            return Ok(1);
        }
    };
    let needed = crate::reconcile::needed_permissions(&config);
    let Some(roles) = roles else {
        println!(
            "warning [permissions-unknown] the access token does not list its permissions              (no `roles` claim); needed: {}",
            needed.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
        );
        return Ok(0);
    };
    let missing = permissions::missing(&needed, &roles);
    if missing.is_empty() {
        println!(
            "permissions: all {} present ({})",
            needed.len(),
            needed.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
        );
    }
    for permission in &missing {
        println!(
            "error [missing-permission] {}: without it {}; grant it (with admin consent) to              the app registration in Entra ID",
            permission.name, permission.without
        );
    }
    Ok(missing.len())
}
